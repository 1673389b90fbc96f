//! The VM: one wasmtime `Engine` with a pooling allocator, the process table,
//! the module cache, the preemption ticker and the tokio scheduler.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use dashmap::DashMap;
use troupe_abi::err;
use troupe_host_api::{HostError, Message, NoProcess};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, Linker, PoolConcurrencyLimitError,
    PoolingAllocationConfig, Store, UpdateDeadline, Val, ValType,
};

use crate::config::{RootOptions, VmConfig};
use crate::limits;
use crate::mailbox::Mailbox;
use crate::module_cache::{LoadError, LoadedModule, ModuleCache};
use crate::process::{ExitReason, Perms, Preopen, ProcessShared, ProcessState};

/// State shared by every process of a VM.
pub(crate) struct VmInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<ProcessState>,
    pub(crate) modules: ModuleCache,
    processes: DashMap<u64, Arc<ProcessShared>>,
    next_pid: AtomicU64,
    live: AtomicU32,
    max_processes: u32,
    /// About how many processes the kernel's `vm.max_map_count` allows.
    map_limit: Option<u64>,
    warned_map_limit: AtomicBool,
}

/// A process just started.
pub(crate) struct Spawned {
    pub pid: u64,
    pub done: tokio::task::JoinHandle<ExitReason>,
}

/// Why a VM could not run a module.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read module {path:?}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path:?} {source}")]
    Load {
        path: std::path::PathBuf,
        source: LoadError,
    },
    #[error(
        "{path:?} has no `_start` function: it is not a WASI command module \
         (build a binary crate for wasm32-wasip1, or GOOS=wasip1 GOARCH=wasm)"
    )]
    NoStart { path: std::path::PathBuf },
    #[error("cannot start the root process: {0}")]
    Start(HostError),
    #[error("cannot create the VM: {0}")]
    Engine(String),
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
    stop_ticker: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
    handle_signals: bool,
}

impl Vm {
    /// Creates the engine, the process pools (address space is reserved, not
    /// committed), the scheduler threads and the preemption ticker.
    pub fn new(config: VmConfig) -> Result<Vm, RunError> {
        limits::raise_open_file_limit();
        let n = config.get_max_processes();
        if let Some(max) = limits::max_map_count() {
            let needed = u64::from(n) * limits::MAPS_PER_PROCESS;
            if needed > max {
                return Err(RunError::Engine(format!(
                    "--max-processes {n} needs the kernel's vm.max_map_count to be at least \
                     {needed}, and it is {max}; raise it as root with `sysctl -w \
                     vm.max_map_count={needed}` or ask for fewer processes"
                )));
            }
        }
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(n)
            .total_memories(n)
            .total_tables(n)
            .total_stacks(n)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .max_memory_size(config.max_memory as usize)
            .table_elements(config.table_elements)
            .pagemap_scan(Enabled::Auto);
        let mut wasm = Config::new();
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .memory_reservation(config.max_memory)
            .memory_guard_size(64 << 10)
            .memory_reservation_for_growth(0)
            .memory_init_cow(true)
            .async_stack_size(config.async_stack_size)
            .max_wasm_stack(config.max_wasm_stack);
        let engine = Engine::new(&wasm).map_err(|e| RunError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut ProcessState| &mut s.wasi)
            .and_then(|_| troupe_host_api::register(&mut linker))
            .map_err(|e| RunError::Engine(format!("{e:#}")))?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.get_threads())
            .thread_name("troupe-sched")
            .enable_all()
            .build()
            .map_err(|e| RunError::Engine(format!("cannot start the scheduler: {e}")))?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            let tick = config.preemption_tick;
            std::thread::Builder::new()
                .name("troupe-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| RunError::Engine(format!("cannot start the ticker: {e}")))?
        };

        let map_limit = limits::max_map_count().map(|m| m / limits::MAPS_PER_PROCESS);
        let handle_signals = config.handle_signals;
        let inner = Arc::new(VmInner {
            engine,
            linker,
            modules: ModuleCache::default(),
            processes: DashMap::new(),
            next_pid: AtomicU64::new(1),
            live: AtomicU32::new(0),
            max_processes: n,
            map_limit,
            warned_map_limit: AtomicBool::new(false),
        });
        Ok(Vm {
            inner,
            runtime: Some(runtime),
            stop_ticker,
            ticker: Some(ticker),
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
        let perms = Perms {
            args: root.args.into(),
            envs: root.envs.into(),
            preopens: root
                .dirs
                .into_iter()
                .map(|d| Preopen {
                    host: d.host,
                    guest: d.guest,
                })
                .collect::<Vec<_>>()
                .into(),
            stdout: root.stdout,
            stderr: root.stderr,
        };
        let inner = self.inner.clone();
        let handle_signals = self.handle_signals;
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        let reason = runtime.block_on(async move {
            // Listen before the root runs, so no early signal is missed.
            let signals = handle_signals.then(TerminationSignals::new);
            let root = inner
                .spawn(module, perms, root.stdin, troupe_abi::val::START, &[], None)
                .await
                .map_err(RunError::Start)?;
            debug_assert_eq!(root.pid, 1);
            let done = async {
                root.done.await.unwrap_or_else(|e| {
                    ExitReason::Trap(format!("the root process's task failed: {e}"))
                })
            };
            Ok::<_, RunError>(match signals {
                Some(mut signals) => tokio::select! {
                    reason = done => reason,
                    code = signals.recv() => ExitReason::Stopped(code),
                },
                None => done.await,
            })
        })?;
        Ok(reason)
    }

    /// How many processes are alive.
    pub fn live_processes(&self) -> u32 {
        self.inner.live.load(Ordering::Relaxed)
    }
}

/// SIGTERM and SIGINT, listened for.
struct TerminationSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl TerminationSignals {
    fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        TerminationSignals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Waits for one and returns the exit code it stands for.
    async fn recv(&mut self) -> i32 {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.term) => 128 + libc::SIGTERM,
            _ = next(&mut self.int) => 128 + libc::SIGINT,
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // Stop the processes first, while the ticker still runs: a process
        // spinning in Wasm is only dropped at its next preemption point.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(10));
        }
        self.stop_ticker.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// Decrements the live count when a process slot is given back.
struct LiveSlot(Arc<VmInner>);

impl Drop for LiveSlot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

impl VmInner {
    pub(crate) fn load_module(
        &self,
        bytes: &[u8],
        allow_text: bool,
    ) -> Result<Arc<LoadedModule>, LoadError> {
        self.modules
            .load(&self.engine, &self.linker, bytes, allow_text)
    }

    /// Queues `msg` in `to`'s mailbox.
    pub(crate) fn send(&self, msg: Message, to: u64) -> Result<(), NoProcess> {
        match self.processes.get(&to) {
            Some(p) if p.mailbox.push(msg) => Ok(()),
            _ => Err(NoProcess(to)),
        }
    }

    /// Creates a process running `entry(params)` of `module` and starts it.
    pub(crate) async fn spawn(
        self: &Arc<Self>,
        module: Arc<LoadedModule>,
        perms: Perms,
        stdin: bool,
        entry: &str,
        params: &[i64],
        arg: Option<Message>,
    ) -> Result<Spawned, HostError> {
        let types = module
            .entry_params(entry, params.len())
            .map_err(|e| HostError::new(err::NO_SUCH_EXPORT, e.to_string()))?;

        let live = self.live.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = LiveSlot(self.clone());
        if live > self.max_processes {
            return Err(self.pool_full());
        }
        self.warn_map_limit(live);

        let wasi = perms.build_wasi(stdin)?;
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(ProcessShared {
            pid,
            mailbox: Mailbox::default(),
        });
        if let Some(arg) = arg {
            shared.mailbox.push(arg);
        }
        let state = ProcessState::new(wasi, self.clone(), shared.clone(), module.clone(), perms);
        let mut store = Store::new(&self.engine, state);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| {
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        let instance = module
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| self.instantiate_error(e))?;
        let memory = instance.get_memory(&mut store, "memory");
        store.data_mut().memory = memory;
        let func = instance
            .get_func(&mut store, entry)
            .expect("entry was checked against the module's exports");
        let params: Vec<Val> = params
            .iter()
            .zip(types)
            .map(|(v, t)| match t {
                ValType::I32 => Val::I32(*v as i32),
                _ => Val::I64(*v),
            })
            .collect();

        self.processes.insert(pid, shared.clone());
        let vm = self.clone();
        let done = tokio::spawn(async move {
            let mut results = vec![Val::I32(0); func.ty(&store).results().len()];
            let result = func.call_async(&mut store, &params, &mut results).await;
            let reason = ExitReason::from_result(result);
            vm.processes.remove(&pid);
            shared.mailbox.close();
            drop(store);
            drop(slot);
            if let ExitReason::Trap(trap) = &reason {
                eprintln!("[troupe] process {pid} trapped: {trap}");
            }
            tracing::debug!(pid, ?reason, "process ended");
            reason
        });
        Ok(Spawned { pid, done })
    }

    fn pool_full(&self) -> HostError {
        HostError::new(
            err::RESOURCE_LIMIT,
            format!(
                "the VM already holds its maximum of {} processes (raise it with \
                 --max-processes)",
                self.max_processes
            ),
        )
    }

    fn instantiate_error(&self, e: wasmtime::Error) -> HostError {
        if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
            return self.pool_full();
        }
        let text = format!("{e:#}");
        if text.contains("os error 12") || text.contains("Cannot allocate memory") {
            return HostError::new(
                err::RESOURCE_LIMIT,
                format!(
                    "the kernel refused memory for a new process ({text}); {}",
                    limits::map_count_advice(self.live.load(Ordering::Relaxed))
                ),
            );
        }
        HostError::new(err::SPAWN_FAILED, format!("instantiation failed: {text}"))
    }

    fn warn_map_limit(&self, live: u32) {
        if let Some(limit) = self.map_limit {
            if u64::from(live) * 10 >= limit * 9
                && !self.warned_map_limit.swap(true, Ordering::Relaxed)
            {
                eprintln!("[troupe] warning: {}", limits::map_count_advice(live));
            }
        }
    }
}
