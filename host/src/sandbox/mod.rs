//! Runs step components under wasmtime, deny-by-default.
//!
//! One [`Sandbox`] per process: one engine, one linker, one artifact cache. Each step type is
//! compiled and pre-instantiated once ([`StepComponent`]); each step run gets a fresh `Store`
//! with its own limits, log and grants, and is dropped when the run ends. A run is bounded by a
//! wall-clock timeout (which also covers time spent in host calls) and by an epoch deadline
//! (which stops a guest spinning in a tight loop even if nothing polls the timeout).

pub mod artifact;
pub mod bindings;
mod context;
pub mod engine;
pub mod limits;
mod stdio;
mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use wasmtime::component::Linker;
use wasmtime::component::types::ComponentItem;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::capability::{self, Grants, Requirement, WitError, requirement};
use crate::log::StepLog;
use artifact::{ArtifactCache, Provenance, sha256_hex};
use bindings::PlatformPre;
pub use context::lookup as spec_lookup;
use limits::StepLimits;
pub use store::{StepContext, StepRun, StepState};

/// The process-wide wasm runtime.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<StepState>,
    cache: ArtifactCache,
    allocator: engine::Allocator,
}

/// A compiled, pre-instantiated step component.
pub struct StepComponent {
    pub digest: String,
    pub provenance: Provenance,
    /// Imports that need a grant, with the capability each needs.
    granted_imports: Vec<(String, crate::capability::Capability)>,
    /// An import no grant allows: every run of this component is refused before it starts.
    forbidden_import: Option<(String, &'static str)>,
    pre: Option<PlatformPre<StepState>>,
}

/// Why a component could not be loaded. Each names what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "the component's sha256 is {actual}, but it is pinned to {expected}; rebuild or re-pin it"
    )]
    DigestMismatch { expected: String, actual: String },
    #[error("{0}")]
    Invalid(String),
}

/// One run of a step.
pub struct Invocation {
    pub identifier: String,
    pub step_type: String,
    pub spec: serde_json::Value,
    /// The operator's settings for the step type ([`crate::steps::Bound::settings`]).
    pub settings: Option<serde_json::Value>,
    pub grants: Grants,
    pub workspace: PathBuf,
    pub log: StepLog,
    pub limits: StepLimits,
    pub timeout: Duration,
}

/// A step run whose store is built; [`PreparedRun::call`] runs it, [`PreparedRun::finish`] reads
/// the result and drops the store (which resets its pool slot, off the call's critical path).
pub struct PreparedRun<'a> {
    pre: &'a PlatformPre<StepState>,
    store: Store<StepState>,
    timeout: Duration,
    hostcall_bytes: usize,
    log: StepLog,
    result: Option<
        Result<wasmtime::Result<Result<bindings::Outcome, WitError>>, tokio::time::error::Elapsed>,
    >,
}

impl PreparedRun<'_> {
    /// Instantiates the component and calls `run`, within the step's timeout.
    pub async fn call(&mut self) {
        let (pre, store) = (self.pre, &mut self.store);
        let call = async {
            let instance = pre.instantiate_async(&mut *store).await?;
            let context = store.data_mut().table.push(StepContext)?;
            instance.call_run(&mut *store, context).await
        };
        self.result = Some(tokio::time::timeout(self.timeout, call).await);
        self.log.flush();
    }

    /// The step's result, with what it published. Drops the store.
    /// Every text the step chose (its summary, its error, a trap's message) is cleaned by its log:
    /// control sequences stripped, secrets masked.
    pub fn finish(self) -> Result<Success, Failure> {
        let state = self.store.into_data();
        let ran_out_of_time = state.ran_out_of_time();
        let run = state.step;
        let log = &self.log;
        let kind = match self.result {
            Some(Ok(Ok(Ok(outcome)))) => {
                return Ok(Success {
                    outputs: run.outputs,
                    summary: outcome.summary.map(|s| log.clean(&s)),
                });
            }
            // A host call gave up because the step's time was running out: the step's error is
            // how it recorded that, and the step timed out.
            Some(Ok(Ok(Err(_)))) if ran_out_of_time => FailureKind::Timeout(self.timeout),
            Some(Ok(Ok(Err(error)))) => FailureKind::Step(clean_error(error, log)),
            Some(Ok(Err(trap))) => classify_trap(&trap, self.timeout, self.hostcall_bytes, log),
            Some(Err(_elapsed)) => FailureKind::Timeout(self.timeout),
            None => FailureKind::Trap("the step was never called".to_string()),
        };
        Err(Failure {
            kind,
            outputs: run.outputs,
        })
    }
}

/// A step that ran to success.
#[derive(Debug, Clone, Default)]
pub struct Success {
    pub outputs: BTreeMap<String, String>,
    pub summary: Option<String>,
}

/// A step that did not succeed, with what it published before it stopped.
#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub outputs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum FailureKind {
    #[error(
        "refused before it started: it imports `{import}`, but the step was not granted that; add `{grant}` to the step type in lockstep.yaml if it should be"
    )]
    Denied { import: String, grant: &'static str },
    /// The sandbox could not be prepared (a granted directory is missing, …).
    #[error("could not be set up: {0}")]
    Setup(String),
    #[error("refused before it started: it imports `{import}`, which no grant allows: {why}")]
    Forbidden { import: String, why: &'static str },
    #[error("timed out after {}", crate::pipeline::duration::format(*.0))]
    Timeout(Duration),
    #[error("ran out of memory: {0}")]
    OutOfMemory(String),
    #[error("passed more than {} MiB to the host in one call", .0 >> 20)]
    HostcallLimit(usize),
    #[error(
        "holds too many handles (connections, clients, streams) at once; drop those it no longer needs"
    )]
    HandleLimit,
    #[error("crashed: {0}")]
    Trap(String),
    /// The step returned an error.
    /// The step returned an error (its messages cleaned of control sequences and secrets).
    #[error("{0}")]
    Step(capability::Error),
}

/// Marks the epoch callback's refusal to extend a step that used up its time.
#[derive(Debug)]
struct CpuDeadline;

impl std::fmt::Display for CpuDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the step's time ran out")
    }
}

impl std::error::Error for CpuDeadline {}

impl Sandbox {
    /// `max_parallel` sizes the instance pool. `warn` receives start-up warnings.
    pub fn new(
        max_parallel: usize,
        cache_dir: impl Into<PathBuf>,
        warn: &dyn Fn(&str),
    ) -> anyhow::Result<Self> {
        let (engine, allocator) = engine::build(max_parallel, warn)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // The step's own interface, then each capability's: a composition, nothing more.
        bindings::lockstep::step::host::add_to_linker::<_, wasmtime::component::HasSelf<StepState>>(
            &mut linker,
            |state| state,
        )?;
        capability::error::wit::lockstep::common::types::add_to_linker::<
            _,
            wasmtime::component::HasSelf<StepState>,
        >(&mut linker, |state| state)?;
        capability::process::add_to_linker(&mut linker)?;
        capability::db::add_to_linker(&mut linker)?;
        capability::mongo::add_to_linker(&mut linker)?;
        capability::git::add_to_linker(&mut linker)?;
        capability::kube::add_to_linker(&mut linker)?;
        Ok(Sandbox {
            engine,
            linker,
            cache: ArtifactCache::open(cache_dir)?,
            allocator,
        })
    }

    pub fn allocator(&self) -> engine::Allocator {
        self.allocator
    }

    /// Refuses a layout in which a step could reach the compiled-component cache (and its seal
    /// key): a stage workspace or a path the operator shares with scripts that overlaps it.
    pub fn check_isolation(
        &self,
        workspace_root: &std::path::Path,
        shared: &[&std::path::Path],
    ) -> Result<(), String> {
        let real = |p: &std::path::Path| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
        };
        let cache = real(self.cache.dir());
        for (what, path) in std::iter::once(("the workspace", workspace_root))
            .chain(shared.iter().map(|p| ("processSandbox.paths", *p)))
        {
            let path = real(path);
            if path.starts_with(&cache) || cache.starts_with(&path) {
                return Err(format!(
                    "{what} {} overlaps the component cache {}: steps could rewrite compiled code; choose another directory, or move the cache with LOCKSTEP_CACHE_DIR",
                    path.display(),
                    cache.display()
                ));
            }
        }
        Ok(())
    }

    /// Checks the pin, compiles (or loads from the cache) and pre-instantiates a component.
    pub fn load(
        &self,
        wasm: &[u8],
        pinned_sha256: Option<&str>,
    ) -> Result<StepComponent, LoadError> {
        let digest = sha256_hex(wasm);
        if let Some(expected) = pinned_sha256
            && !expected.eq_ignore_ascii_case(&digest)
        {
            return Err(LoadError::DigestMismatch {
                expected: expected.to_string(),
                actual: digest,
            });
        }
        let (component, provenance) = self
            .cache
            .load(&self.engine, wasm, &digest)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let mut granted_imports = vec![];
        let mut forbidden_import = None;
        // The step API first: its version is what a step's author chose.
        let component_type = component.component_type();
        let mut imports: Vec<&str> = component_type
            .imports(&self.engine)
            .map(|(import, _)| import)
            .collect();
        imports.sort_by_key(|import| !import.starts_with("lockstep:step/"));
        for import in imports {
            crate::capability::check_version(import).map_err(|e| {
                LoadError::Invalid(format!("the component imports `{import}`: {e}"))
            })?;
        }
        for (import, item) in component.component_type().imports(&self.engine) {
            // Type imports (the `context` resource the world uses) carry no capability.
            if matches!(item.ty, ComponentItem::Type(_) | ComponentItem::Resource(_)) {
                continue;
            }
            match requirement(import) {
                Requirement::Always => {}
                Requirement::Granted(capability) => {
                    granted_imports.push((import.to_string(), capability))
                }
                Requirement::Never(why) => {
                    forbidden_import = forbidden_import.or(Some((import.to_string(), why)))
                }
            }
        }
        if forbidden_import.is_some() {
            return Ok(StepComponent {
                digest,
                provenance,
                granted_imports,
                forbidden_import,
                pre: None,
            });
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Invalid(format!("the component cannot be linked: {e:#}")))?;
        let pre = PlatformPre::new(pre).map_err(|e| {
            LoadError::Invalid(format!(
                "the component does not export a Lockstep step (`run`): {e:#}"
            ))
        })?;
        Ok(StepComponent {
            digest,
            provenance,
            granted_imports,
            forbidden_import,
            pre: Some(pre),
        })
    }

    /// Runs one step: [`Sandbox::prepare`], [`PreparedRun::call`], [`PreparedRun::finish`].
    pub async fn run(
        &self,
        component: &StepComponent,
        invocation: Invocation,
    ) -> Result<Success, Failure> {
        let mut prepared = self.prepare(component, invocation)?;
        prepared.call().await;
        prepared.finish()
    }

    /// Checks the grants and builds the run's store. Refuses, before anything is instantiated,
    /// a component whose imports exceed its grants.
    pub fn prepare<'a>(
        &self,
        component: &'a StepComponent,
        invocation: Invocation,
    ) -> Result<PreparedRun<'a>, Failure> {
        let refuse = |kind| {
            Err(Failure {
                kind,
                outputs: BTreeMap::new(),
            })
        };
        if let Some((import, why)) = &component.forbidden_import {
            return refuse(FailureKind::Forbidden {
                import: import.clone(),
                why,
            });
        }
        let pre = component
            .pre
            .as_ref()
            .expect("components without a forbidden import are pre-instantiated");
        for (import, capability) in &component.granted_imports {
            if !capability.granted(&invocation.grants) {
                return refuse(FailureKind::Denied {
                    import: import.clone(),
                    grant: capability.how_to_grant(),
                });
            }
        }
        let (timeout, hostcall_bytes, log) = (
            invocation.timeout,
            invocation.limits.hostcall_bytes,
            invocation.log.clone(),
        );
        match self.store(invocation) {
            Ok(store) => Ok(PreparedRun {
                pre,
                store,
                timeout,
                hostcall_bytes,
                log,
                result: None,
            }),
            Err(e) => refuse(FailureKind::Setup(format!("{e:#}"))),
        }
    }

    fn store(&self, invocation: Invocation) -> anyhow::Result<Store<StepState>> {
        let Invocation {
            identifier,
            step_type,
            spec,
            settings,
            grants,
            workspace,
            log,
            limits,
            timeout,
        } = invocation;
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdio::LogStream(log.clone()))
            .stderr(stdio::LogStream(log.clone()))
            .max_random_size(1 << 20);
        for (name, value) in &grants.env {
            wasi.env(name, value);
        }
        for file in &grants.files {
            let perms = if file.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            let host_path = workspace.join(&file.host_path);
            let directory = open_granted_dir(&workspace, &file.host_path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open {} for the step's `files` grant: {e}",
                    host_path.display()
                )
            })?;
            // The directory as opened above, not as its path resolves now.
            let opened = format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&directory)
            );
            wasi.preopened_dir(&opened, &file.guest_path, perms)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot open {} for the step's `files` grant: {e}",
                        host_path.display()
                    )
                })?;
        }
        let step = StepRun::new(
            identifier,
            step_type,
            spec,
            settings,
            log,
            limits.outputs_bytes,
        );
        let state = StepState::new(wasi.build(), step, grants, workspace, &limits, timeout);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_hostcall_fuel(limits.hostcall_bytes);
        let deadline = Instant::now() + timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                return Err(CpuDeadline.into());
            }
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(store)
    }
}

/// A granted directory: an absolute path as the operator wrote it, or a path inside the stage
/// workspace reached without following any symlink (a step may have planted one to lead a later
/// step's preopen outside the workspace).
fn open_granted_dir(
    workspace: &std::path::Path,
    path: &std::path::Path,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let directory = OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY;
    if path.is_absolute() {
        return Ok(rustix::fs::open(path, directory, Mode::empty())?);
    }
    let root = rustix::fs::open(workspace, directory, Mode::empty())?;
    if path.as_os_str().is_empty() {
        return Ok(root);
    }
    let beneath = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    rustix::fs::openat2(&root, path, directory, Mode::empty(), beneath).map_err(|e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => {
            std::io::Error::other("it goes through a symlink, which a grant never follows")
        }
        e => e.into(),
    })
}

fn clean_error(error: WitError, log: &StepLog) -> capability::Error {
    capability::Error::from(error).map_message(|m| log.clean(&m))
}

fn classify_trap(
    error: &wasmtime::Error,
    timeout: Duration,
    hostcall_bytes: usize,
    log: &StepLog,
) -> FailureKind {
    if error.chain().any(|e| e.is::<CpuDeadline>()) {
        return FailureKind::Timeout(timeout);
    }
    if error.chain().any(|e| {
        matches!(
            e.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    }) {
        return FailureKind::HandleLimit;
    }
    // A trap's message carries names the component chose (functions, panics).
    let text = log.clean(&format!("{error:#}"));
    if text.contains("fuel allocated for hostcalls has been exhausted") {
        return FailureKind::HostcallLimit(hostcall_bytes);
    }
    if text.contains("forcing trap when growing memory") || text.contains("memory allocation") {
        return FailureKind::OutOfMemory(text.lines().next().unwrap_or_default().to_string());
    }
    FailureKind::Trap(text)
}
