//! The one wasmtime [`Engine`] of a Lockstep process, and its epoch ticker.
//!
//! Invariants: the engine uses the pooling allocator with slots for `2 × max_parallel` step
//! instances when the address-space reservation succeeds (otherwise on-demand allocation, with a
//! warning); copy-on-write memory images and epoch interruption are always on; the ticker
//! stops when the last engine clone is dropped.

use std::thread;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::limits::{EPOCH_TICK, MAX_MEMORIES_PER_STORE, MAX_MEMORY_BYTES, MAX_TABLES_PER_STORE};

/// How the engine allocates instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    Pooling { slots: u32 },
    OnDemand,
}

/// Builds the engine. `warn` receives a message when pooling had to be given up.
pub fn build(max_parallel: usize, warn: &dyn Fn(&str)) -> anyhow::Result<(Engine, Allocator)> {
    let slots = u32::try_from(max_parallel.max(1) * 2).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots * 4)
        .total_memories(slots * 2)
        .total_tables(slots * 4)
        .max_memories_per_component(MAX_MEMORIES_PER_STORE as u32)
        .max_tables_per_component(MAX_TABLES_PER_STORE as u32)
        .max_memory_size(MAX_MEMORY_BYTES)
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(512 << 10);
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let (engine, allocator) = match Engine::new(&config) {
        Ok(engine) => (engine, Allocator::Pooling { slots }),
        Err(e) => {
            warn(&format!(
                "the pooling allocator could not reserve its memory ({e:#}); falling back to on-demand allocation, which makes each step start slower"
            ));
            (Engine::new(&base_config())?, Allocator::OnDemand)
        }
    };
    start_ticker(&engine);
    Ok((engine, allocator))
}

fn base_config() -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true);
    config
}

fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    thread::Builder::new()
        .name("lockstep-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning a thread at start-up");
}
