//! Limits that bound what one step run may consume. Units are in the names.

use std::time::Duration;

/// The budget of one step run. Built-in steps get [`StepLimits::built_in`]; custom and
/// third-party steps get [`StepLimits::third_party`] unless `lockstep.yaml` lowers or raises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepLimits {
    /// Sum of all linear memories of the instance.
    pub memory_bytes: usize,
    /// stdout + stderr + log lines kept; past this the log is truncated with a marker.
    pub log_bytes: usize,
    /// Sum of output names and values.
    pub outputs_bytes: usize,
    /// Bytes the guest may pass to the host in one call (strings, lists).
    pub hostcall_bytes: usize,
    /// Live resource handles in the store.
    pub handles: usize,
    /// Database sessions and cluster clients open at once.
    pub connections: usize,
    /// Wall-clock time when the step has no `timeout` of its own.
    pub default_timeout: Duration,
}

impl StepLimits {
    pub fn built_in() -> Self {
        StepLimits {
            memory_bytes: 512 << 20,
            log_bytes: 4 << 20,
            outputs_bytes: 64 << 10,
            hostcall_bytes: 16 << 20,
            handles: 1024,
            connections: 8,
            default_timeout: Duration::from_secs(600),
        }
    }

    /// The third-party defaults with a step type's `limits:` applied.
    pub fn third_party_with(overrides: &crate::config::StepTypeLimits) -> Self {
        let defaults = Self::third_party();
        StepLimits {
            memory_bytes: overrides.memory_bytes.unwrap_or(defaults.memory_bytes),
            log_bytes: overrides.log_bytes.unwrap_or(defaults.log_bytes),
            outputs_bytes: overrides.outputs_bytes.unwrap_or(defaults.outputs_bytes),
            ..defaults
        }
    }

    pub fn third_party() -> Self {
        StepLimits {
            memory_bytes: 128 << 20,
            log_bytes: 1 << 20,
            ..Self::built_in()
        }
    }
}

/// Instances, tables and memories one step's store may create.
pub const MAX_INSTANCES_PER_STORE: usize = 10;
pub const MAX_TABLES_PER_STORE: usize = 20;
pub const MAX_MEMORIES_PER_STORE: usize = 10;

/// The largest memory any step may be given; the pooling allocator reserves this per slot.
pub const MAX_MEMORY_BYTES: usize = crate::config::MAX_STEP_MEMORY_BYTES;

/// Components larger than this are refused before compiling (compiling is not bounded otherwise).
pub const MAX_COMPONENT_BYTES: usize = 50 << 20;

/// How often the epoch ticker advances; a busy guest yields to the scheduler at this interval.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
