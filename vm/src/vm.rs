//! The VM: the public [`Vm`] and the state its processes share
//! ([`VmInner`]: the process table, the counters, the registry, monitors and
//! timers). Each concern of the VM has its own module: the engine
//! (`engine`), the scheduler and the preemption ticker (`scheduler`), a
//! process's life (`lifecycle`, `hibernation`), the slot pool (`pool`),
//! links and monitors (`links`), the name registry (`registry`) and timers
//! (`timers`); each adds its part of `impl VmInner`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
// Pids and references are the VM's own counters, not input a guest picks, so
// the maps keyed by them use a fast hash instead of SipHash.
use rustc_hash::FxBuildHasher;
use troupe_abi::err;
use troupe_host_api::{HostError, Message, SendError};
use wasmtime::{Engine, Linker};

use crate::budget::VmBudget;
use crate::config::{RootOptions, VmConfig};
use crate::engine;
use crate::error::RunError;
use crate::lifecycle::NewProcess;
use crate::limits;
use crate::mailbox::PushError;
use crate::module_cache::ModuleCache;
use crate::process::{Limits, Perms, Preopen, ProcessShared, ProcessState};
use crate::scheduler::{scheduler_builder, TerminationSignals, Ticker};
use crate::timers::Timer;
use crate::ExitReason;

/// State shared by every process of a VM.
pub(crate) struct VmInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<ProcessState>,
    pub(crate) modules: ModuleCache,
    pub(crate) processes: DashMap<u64, Arc<ProcessShared>, FxBuildHasher>,
    pub(crate) next_pid: AtomicU64,
    /// Pool slots taken: processes alive and not hibernated.
    pub(crate) live: AtomicU32,
    /// Slots given back so far (a process ended or hibernated).
    pub(crate) exits: AtomicU64,
    pub(crate) max_processes: u32,
    /// One guest compile at a time (see `load_module_off_thread`).
    pub(crate) compiling: tokio::sync::Semaphore,
    /// Told each time a slot is given back, for processes waking from
    /// hibernation that wait for one.
    pub(crate) slot_freed: tokio::sync::Notify,
    /// About how many processes the kernel's `vm.max_map_count` allows.
    pub(crate) map_limit: Option<u64>,
    pub(crate) warned_map_limit: AtomicBool,
    /// Preemption ticks so far: the ticker bumps it just before the engine's
    /// epoch. A process that got its thread in the current tick has not used
    /// up its time slice (see the epoch-deadline callback in
    /// `VmInner::new_store`).
    pub(crate) ticks: Arc<AtomicU64>,
    pub(crate) fuel: Option<u64>,
    /// The name registry.
    pub(crate) registry: DashMap<String, u64>,
    /// Live monitors: reference -> (watcher, target).
    pub(crate) monitors: DashMap<u64, (u64, u64), FxBuildHasher>,
    /// Pending timers: reference -> its owner and the task that fires it
    /// (set just after the task is spawned).
    pub(crate) timers: DashMap<u64, Timer, FxBuildHasher>,
    /// Monitor and timer references.
    pub(crate) next_ref: AtomicU64,
    pub(crate) max_memory: u64,
    /// What all processes together may hold (`--max-vm-memory`).
    pub(crate) budget: Arc<VmBudget>,
}

/// A Troupe VM: create it with a [`VmConfig`], then [`Vm::run`] a module as
/// its root process.
///
/// ```no_run
/// use troupe_vm::{RootOptions, Vm, VmConfig};
/// let vm = Vm::new(VmConfig::new().max_processes(10_000))?;
/// let outcome = vm.run_file("app.wasm".as_ref(), RootOptions {
///     args: vec!["app.wasm".into()],
///     ..RootOptions::default()
/// })?;
/// std::process::exit(outcome.exit_code());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Vm {
    inner: Arc<VmInner>,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    ticker: Ticker,
    handle_signals: bool,
}

impl Vm {
    /// Creates the engine, the process pools (address space is reserved, not
    /// committed), the scheduler threads and the preemption ticker.
    pub fn new(config: VmConfig) -> Result<Vm, RunError> {
        limits::raise_open_file_limit();
        let n = config.get_max_processes();
        engine::check_pool_fits(&config, n)?;
        let (engine, linker) = engine::new_engine(&config)?;

        let runtime = scheduler_builder(config.get_threads())
            .build()
            .map_err(|e| RunError::Engine(format!("cannot start the scheduler: {e}")))?;

        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = Ticker::start(engine.clone(), config.preemption_tick, ticks.clone())
            .map_err(|e| RunError::Engine(format!("cannot start the ticker: {e}")))?;

        let map_limit = limits::max_map_count().map(|m| m / limits::MAPS_PER_PROCESS);
        let handle_signals = config.handle_signals;
        let inner = Arc::new(VmInner {
            engine,
            linker,
            modules: ModuleCache::default(),
            processes: DashMap::with_hasher(FxBuildHasher),
            next_pid: AtomicU64::new(1),
            live: AtomicU32::new(0),
            exits: AtomicU64::new(0),
            max_processes: n,
            slot_freed: tokio::sync::Notify::new(),
            compiling: tokio::sync::Semaphore::new(1),
            map_limit,
            warned_map_limit: AtomicBool::new(false),
            ticks,
            fuel: config.fuel,
            registry: DashMap::new(),
            monitors: DashMap::with_hasher(FxBuildHasher),
            timers: DashMap::with_hasher(FxBuildHasher),
            next_ref: AtomicU64::new(1),
            max_memory: config.max_memory,
            budget: VmBudget::new(config.get_max_vm_memory()),
        });
        Ok(Vm {
            inner,
            runtime: Some(runtime),
            ticker,
            handle_signals,
        })
    }

    /// Reads a module file and runs it as the root process (see [`Vm::run`]).
    pub fn run_file(
        self,
        path: &std::path::Path,
        root: RootOptions,
    ) -> Result<ExitReason, RunError> {
        let bytes = std::fs::read(path).map_err(|source| RunError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.run(path, &bytes, root)
    }

    /// Runs the module's `_start` as the root process (pid 1) and returns how
    /// it ended. When the root ends the VM ends: every other process is
    /// stopped.
    pub fn run(
        self,
        name: &std::path::Path,
        bytes: &[u8],
        root: RootOptions,
    ) -> Result<ExitReason, RunError> {
        let text = name.extension().is_some_and(|e| e == "wat");
        let module = self
            .inner
            .load_module(bytes, text)
            .map_err(|source| RunError::Load {
                path: name.to_owned(),
                source,
            })?;
        if module.entry_params(troupe_abi::val::START, 0).is_err() {
            return Err(RunError::NoStart {
                path: name.to_owned(),
            });
        }
        let preopens = root
            .dirs
            .into_iter()
            .map(|d| {
                Preopen::open(&d).map_err(|source| RunError::Dir {
                    path: d.host,
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let perms = Perms {
            args: root.args.into(),
            envs: root.envs.into(),
            preopens: preopens.into(),
            stdout: root.stdout,
            stderr: root.stderr,
            net: Arc::new(root.net),
            limits: Limits {
                max_memory: self.inner.max_memory,
                fuel: self.inner.fuel,
                can_spawn: true,
            },
        };
        let inner = self.inner.clone();
        let handle_signals = self.handle_signals;
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        let reason = runtime.block_on(async move {
            // Listen before the root runs, so no early signal is missed.
            let signals = handle_signals.then(TerminationSignals::new);
            let root = inner
                .spawn(NewProcess {
                    module,
                    perms,
                    stdin: root.stdin,
                    entry: troupe_abi::val::START,
                    params: &[],
                    arg: None,
                    link_to: None,
                    sockets: Vec::new(),
                })
                .await
                .map_err(RunError::Start)?;
            debug_assert_eq!(root.pid, 1);
            let done = async {
                root.done
                    .await
                    .unwrap_or_else(|_| ExitReason::Trap("the root process's task failed".into()))
            };
            match signals {
                Some(mut signals) => tokio::select! {
                    reason = done => Ok(reason),
                    code = signals.recv() => Err(RunError::Stopped { signal: code - 128 }),
                },
                None => Ok(done.await),
            }
        })?;
        Ok(reason)
    }

    /// What all processes together hold now against the VM's memory budget
    /// ([`VmConfig::max_vm_memory`]), in bytes, counted in 1 MiB granules
    /// per process.
    pub fn memory_in_use(&self) -> u64 {
        self.inner.budget.used()
    }

    /// How many processes hold an instance (a pool slot): alive and not
    /// hibernated.
    pub fn live_processes(&self) -> u32 {
        self.inner.live.load(Ordering::Relaxed)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // Stop the processes first, while the ticker still runs: a process
        // spinning in Wasm is only dropped at its next preemption point.
        if let Some(rt) = self.runtime.take() {
            // Tasks are dropped at once (a running one at its next
            // preemption point); what is left is blocking work that cannot
            // be interrupted (a compile, a file read), not waited for long.
            rt.shutdown_timeout(SHUTDOWN_GRACE);
        }
        self.ticker.stop();
    }
}

/// How long dropping a VM waits for blocking work still running.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

impl VmInner {
    /// Queues `msg` in `to`'s mailbox.
    pub(crate) fn send(&self, msg: Message, to: u64) -> Result<(), SendError> {
        let Some(p) = self.processes.get(&to) else {
            return Err(SendError::NoProcess(to));
        };
        match p.mailbox.push(msg) {
            Ok(()) => Ok(()),
            Err(PushError::Closed) => Err(SendError::NoProcess(to)),
            Err(PushError::Full(over)) => Err(SendError::Full {
                to,
                why: over.to_string(),
            }),
        }
    }

    pub(crate) fn process(&self, pid: u64) -> Option<Arc<ProcessShared>> {
        self.processes.get(&pid).map(|p| p.clone())
    }

    /// The error for a pid that names no live process.
    pub(crate) fn no_process(pid: u64) -> HostError {
        HostError::new(err::NO_PROCESS, format!("process {pid} does not exist"))
    }

    pub(crate) fn fuel_metering(&self) -> bool {
        self.fuel.is_some()
    }
}
