//! The VM: one wasmtime `Engine` with a pooling allocator, the process table,
//! the module cache, the preemption ticker and the tokio scheduler.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use dashmap::DashMap;
// Pids and references are the VM's own counters, not input a guest picks, so
// the maps keyed by them use a fast hash instead of SipHash.
use rustc_hash::FxBuildHasher;
use troupe_abi::err;
use troupe_host_api::{Hibernate, HostError, Message, SendError};
use wasmtime::{
    Config, Enabled, Engine, Func, InstanceAllocationStrategy, Linker, PoolConcurrencyLimitError,
    PoolingAllocationConfig, Store, UpdateDeadline, Val, ValType,
};

use crate::budget::{Budget, Charge, VmBudget};
use crate::config::{RootOptions, VmConfig};
use crate::hibernate::Snapshot;
use crate::limits;
use crate::mailbox::PushError;
use crate::module_cache::{LoadError, LoadedModule, ModuleCache};
use crate::process::{
    down_message, exit_reason, ExitReason, Limits, Perms, Preopen, ProcessShared, ProcessState,
};

/// State shared by every process of a VM.
pub(crate) struct VmInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<ProcessState>,
    pub(crate) modules: ModuleCache,
    processes: DashMap<u64, Arc<ProcessShared>, FxBuildHasher>,
    next_pid: AtomicU64,
    /// Pool slots taken: processes alive and not hibernated.
    live: AtomicU32,
    /// Slots given back so far (a process ended or hibernated).
    exits: AtomicU64,
    max_processes: u32,
    /// One guest compile at a time (see `load_module_off_thread`).
    compiling: tokio::sync::Semaphore,
    /// Told each time a slot is given back, for processes waking from
    /// hibernation that wait for one.
    slot_freed: tokio::sync::Notify,
    /// About how many processes the kernel's `vm.max_map_count` allows.
    map_limit: Option<u64>,
    warned_map_limit: AtomicBool,
    /// Preemption ticks so far: the ticker bumps it just before the engine's
    /// epoch. A process that got its thread in the current tick has not used
    /// up its time slice (see the epoch-deadline callback in `spawn`).
    ticks: Arc<AtomicU64>,
    fuel: Option<u64>,
    /// The name registry.
    registry: DashMap<String, u64>,
    /// Live monitors: reference -> (watcher, target).
    monitors: DashMap<u64, (u64, u64), FxBuildHasher>,
    /// Pending timers: reference -> its owner and the task that fires it
    /// (set just after the task is spawned).
    timers: DashMap<u64, Timer, FxBuildHasher>,
    /// Monitor and timer references.
    next_ref: AtomicU64,
    max_memory: u64,
    /// What all processes together may hold (`--max-vm-memory`).
    pub(crate) budget: Arc<VmBudget>,
}

/// Bytes of a freed linear memory zeroed in place rather than decommitted.
const KEEP_RESIDENT_MEMORY: usize = (1 << 20) + (64 << 10);
/// The guard region after each linear memory's slot.
const MEMORY_GUARD: u64 = 64 << 10;
/// Address space the memory pool may reserve. The pool is one mapping, and
/// of the 128 TiB a process has on x86-64 the largest free range is about
/// 84 TiB (below the executable, which ASLR places near 85 TiB).
const ADDRESS_SPACE_BUDGET: u64 = 80 << 40;
/// Bytes of a freed table zeroed in place rather than decommitted.
const KEEP_RESIDENT_TABLE: usize = 64 << 10;

/// What a new process is made of.
pub(crate) struct NewProcess<'a> {
    pub module: Arc<LoadedModule>,
    pub perms: Perms,
    /// Whether it reads the VM's stdin (the root only).
    pub stdin: bool,
    /// The exported function it runs, and its parameters.
    pub entry: &'a str,
    pub params: &'a [i64],
    /// Its first message (the spawn argument), if any.
    pub arg: Option<Message>,
    /// The process it is linked to before it runs, if any.
    pub link_to: Option<&'a Arc<ProcessShared>>,
    /// Sockets it owns from the start (moved with its spawn argument).
    pub sockets: Vec<(u64, troupe_host_api::SocketRef)>,
}

/// A process just started.
pub(crate) struct Spawned {
    pub pid: u64,
    /// Gets the process's exit reason when it ends.
    pub done: tokio::sync::oneshot::Receiver<ExitReason>,
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
    #[error("cannot open directory {path:?}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
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
        // Each slot reserves `max_memory` plus its guard of address space.
        let reserve = u64::from(n).saturating_mul(config.max_memory + MEMORY_GUARD);
        if reserve > ADDRESS_SPACE_BUDGET {
            let most = ADDRESS_SPACE_BUDGET / (config.max_memory + MEMORY_GUARD);
            return Err(RunError::Engine(format!(
                "--max-processes {n} with --max-memory {} MiB would reserve {} TiB of address \
                 space for linear memories, more than the {} TiB it can reserve in one piece; ask \
                 for at most {most} processes, or less memory per process",
                config.max_memory >> 20,
                reserve >> 40,
                ADDRESS_SPACE_BUDGET >> 40,
            )));
        }
        let mut wasm = engine_config(&config);
        if config.compile_cache {
            match wasmtime::Cache::from_file(None) {
                Ok(cache) => {
                    wasm.cache(Some(cache));
                }
                Err(e) => tracing::warn!("running without the compiled-module cache: {e:#}"),
            }
        }
        let engine = Engine::new(&wasm).map_err(|e| RunError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, ProcessState::wasi)
            .and_then(|_| troupe_host_api::register(&mut linker))
            .map_err(|e| RunError::Engine(format!("{e:#}")))?;

        let mut builder = scheduler_builder(config.get_threads());
        let runtime = builder
            .build()
            .map_err(|e| RunError::Engine(format!("cannot start the scheduler: {e}")))?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            let ticks = ticks.clone();
            let tick = config.preemption_tick;
            std::thread::Builder::new()
                .name("troupe-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        ticks.fetch_add(1, Ordering::Relaxed);
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
        let preopens = root
            .dirs
            .into_iter()
            .map(|d| {
                Preopen::open(d.host.clone(), d.guest).map_err(|source| RunError::Dir {
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

/// How long a worker that ran out of tasks spins before parking, while
/// another worker is awake.
const PARK_SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// The wasmtime [`Config`] of a VM made with `config`: the pooling allocator
/// sized for `--max-processes` slots with copy-on-write memory images, small
/// memory reservations, epoch interruption (preemption), async stacks for
/// processes that wait inside host calls, and fuel if asked for. Public so
/// that the benchmarks' "wasmtime floor" (`benches/wasmtime-floor`) runs bare
/// wasmtime with exactly the VM's settings.
pub fn engine_config(config: &VmConfig) -> Config {
    let n = config.get_max_processes();
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
    // A freed slot's dirty pages (found with pagemap_scan) are zeroed in
    // place instead of being decommitted, up to these sizes, so the next
    // process in the slot does not page-fault them back in. 1 MiB + 64 KiB
    // covers a Rust guest's shadow stack (the first MiB) and the start of
    // its heap. Spawn + run + exit costs about 30% less CPU with it
    // (benches/README.md); the price is that the pages a process dirtied
    // stay resident in its slot after it exits, until the slot is reused.
    pool.linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
        .table_keep_resident(KEEP_RESIDENT_TABLE);
    // A freed slot is used again before a fresh one is, also one another
    // module used: with wasmtime's default (100), a VM running several
    // modules takes fresh slots first and, since every slot a process used
    // keeps its resident pages (see above), its RSS climbs towards the
    // pool's size times those pages. So the slots holding pages are about
    // as many as the most processes alive at once. (The stack pool already
    // works this way; vm/tests/chaos.rs shows the plateau.)
    pool.max_unused_warm_slots(0);
    let mut wasm = Config::new();
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .memory_reservation(config.max_memory)
        .memory_guard_size(MEMORY_GUARD)
        .memory_reservation_for_growth(0)
        .memory_init_cow(true)
        .async_stack_size(config.async_stack_size)
        .max_wasm_stack(config.max_wasm_stack)
        .consume_fuel(config.fuel.is_some());
    wasm
}

/// The tokio runtime builder of a VM with `threads` scheduler threads (public
/// for the benchmarks' wasmtime floor, as [`engine_config`]).
///
/// One thread: tokio's current-thread scheduler (one FIFO queue, no
/// cross-thread wake-ups), which spawns ~35% faster than a 1-worker
/// multi-threaded one and serves 1,000 connections with an 8× lower p99.
pub fn scheduler_builder(threads: usize) -> tokio::runtime::Builder {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        spin_before_park(&mut b, threads);
        b
    };
    builder.thread_name("troupe-sched").enable_all();
    builder
}

/// Makes a worker that ran out of tasks spin for up to [`PARK_SPIN`] before
/// it parks, as long as another worker is awake and the global queue is empty.
///
/// Why: tokio runs a task woken by the running one next (its LIFO slot), but at
/// most 3 times in a row (`MAX_LIFO_POLLS_PER_TICK`, tokio 1.54); the 4th wake
/// goes to the run queue and wakes an idle worker (an eventfd write or a futex,
/// so an IPI). Two processes exchanging messages hit that every 2 round trips:
/// with 2 threads the idle worker was woken ~100k times per 1M round trips,
/// found nothing or stole the pair to its own core, and parked again; ping-pong
/// ran at 470k round trips/s against 770k on 1 thread. A worker in this hook
/// normally still counts as searching for work, and tokio wakes no worker while
/// one searches, so the busy worker makes no syscall. The spin stops as soon as
/// every other worker is parked too (an idle VM does not spin) or a task is in
/// the global queue (woken from outside the workers: it would otherwise wait
/// for the spin). Not used with 1 thread, whose worker has nobody to wait for.
fn spin_before_park(builder: &mut tokio::runtime::Builder, threads: usize) {
    let parked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let unparked = parked.clone();
    builder
        .on_thread_park(move || {
            let start = std::time::Instant::now();
            let global = tokio::runtime::Handle::try_current().ok();
            let global_empty = || {
                global
                    .as_ref()
                    .is_none_or(|h| h.metrics().global_queue_depth() == 0)
            };
            while parked.load(Ordering::Relaxed) + 1 < threads
                && global_empty()
                && start.elapsed() < PARK_SPIN
            {
                for _ in 0..32 {
                    std::hint::spin_loop();
                }
            }
            parked.fetch_add(1, Ordering::Relaxed);
        })
        .on_thread_unpark(move || {
            unparked.fetch_sub(1, Ordering::Relaxed);
        });
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
            // Tasks are dropped at once (a running one at its next
            // preemption point); what is left is blocking work that cannot
            // be interrupted (a compile, a file read), not waited for long.
            rt.shutdown_timeout(SHUTDOWN_GRACE);
        }
        self.stop_ticker.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// A pending timer: only its owner may cancel it, and it is cancelled when
/// its owner ends.
struct Timer {
    owner: u64,
    task: Option<tokio::task::AbortHandle>,
}

/// Adds `item` to a process's list of what it holds, unless it already
/// holds `cap`: first the entries `live` no longer knows (fired, removed)
/// are dropped, so the list is as long as what is really held.
fn hold(list: &mut Vec<u64>, item: u64, cap: u32, live: impl Fn(&u64) -> bool) -> bool {
    if list.len() >= cap as usize {
        list.retain(live);
        if list.len() >= cap as usize {
            return false;
        }
    }
    list.push(item);
    true
}

fn over_limit(what: &str, cap: u32) -> HostError {
    HostError::new(
        err::RESOURCE_LIMIT,
        format!("this process already holds {cap} {what}, the most one process may hold"),
    )
}

/// What a pending timer costs its owner besides its payload: its task, its
/// entry in the timer wheel and in the VM's table (measured: a million
/// pending timers hold about 500 MB).
const TIMER_OVERHEAD: u64 = 512;

/// The largest module a guest may load (`module_load`). Go modules are
/// 2-10 MiB; compiling takes about 150 MiB of memory per MiB of code.
const MAX_MODULE_BYTES: usize = 32 << 20;

/// How long dropping a VM waits for blocking work still running.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Where a process's exit reason goes when it ends.
type Done = tokio::sync::oneshot::Sender<ExitReason>;

/// What a hibernated process keeps.
struct Hibernated {
    state: Box<ProcessState>,
    snapshot: Snapshot,
    /// The snapshot's charge to the process's budget.
    charge: Charge,
    fuel: Option<u64>,
    hibernate: Hibernate,
}

/// Decrements the live count when a process slot is given back.
struct LiveSlot(Arc<VmInner>);

impl Drop for LiveSlot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
        self.0.exits.fetch_add(1, Ordering::Release);
        self.0.slot_freed.notify_one();
    }
}

/// Puts a hibernated process's memory back into its fresh instance.
fn restore(store: &mut Store<ProcessState>, snapshot: &Snapshot) -> Result<(), String> {
    let memory = store
        .data()
        .memory
        .ok_or("the module exports no memory named \"memory\"")?;
    let grow = snapshot.size().saturating_sub(memory.data_size(&*store)) as u64 / 65536;
    if grow > 0 {
        memory
            .grow(&mut *store, grow)
            .map_err(|e| format!("cannot grow the memory back: {e:#}"))?;
    }
    snapshot.restore(memory.data_mut(&mut *store))
}

/// How long `spawn` waits on a full pool during which no process ends, before
/// it gives up with `RESOURCE_LIMIT`.
const FULL_POOL_PATIENCE: std::time::Duration = std::time::Duration::from_millis(10);

impl VmInner {
    pub(crate) fn load_module(
        &self,
        bytes: &[u8],
        allow_text: bool,
    ) -> Result<Arc<LoadedModule>, LoadError> {
        self.modules
            .load(&self.engine, &self.linker, bytes, allow_text)
    }

    /// Loads a module for a guest (`module_load`): hashed and compiled on
    /// blocking threads, one compile at a time, so that neither a scheduler thread
    /// nor the machine's memory is taken by guests' compiles; at most
    /// [`MAX_MODULE_BYTES`].
    pub(crate) async fn load_module_off_thread(
        self: &Arc<Self>,
        bytes: Vec<u8>,
    ) -> Result<Arc<LoadedModule>, HostError> {
        if bytes.len() > MAX_MODULE_BYTES {
            return Err(HostError::new(
                err::INVALID_MODULE,
                format!(
                    "the module is {} bytes; a process may load modules of at most {} MiB",
                    bytes.len(),
                    MAX_MODULE_BYTES >> 20
                ),
            ));
        }
        // Hashing 32 MiB takes tens of milliseconds: not on a scheduler
        // thread either.
        let (bytes, hash) = tokio::task::spawn_blocking(move || {
            let hash = ModuleCache::hash(&bytes);
            (bytes, hash)
        })
        .await
        .map_err(|e| HostError::new(err::INVALID_MODULE, format!("hashing failed: {e}")))?;
        if let Some(m) = self.modules.cached(&hash) {
            return Ok(m);
        }
        let invalid = |e: LoadError| HostError::new(err::INVALID_MODULE, format!("the module {e}"));
        ModuleCache::check_magic(&bytes, false).map_err(invalid)?;
        let _turn = self.compiling.acquire().await;
        let vm = self.clone();
        tokio::task::spawn_blocking(move || {
            vm.modules.load_hashed(&vm.engine, &vm.linker, &bytes, hash)
        })
        .await
        .map_err(|e| HostError::new(err::INVALID_MODULE, format!("the compiler failed: {e}")))?
        .map_err(invalid)
    }

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

    /// Creates a process running `entry(params)` of `module` and starts it.
    pub(crate) async fn spawn(self: &Arc<Self>, new: NewProcess<'_>) -> Result<Spawned, HostError> {
        let NewProcess {
            module,
            perms,
            stdin,
            entry,
            params,
            arg,
            link_to,
            sockets,
        } = new;
        let types = module
            .entry_params(entry, params.len())
            .map_err(|e| HostError::new(err::NO_SUCH_EXPORT, e.to_string()))?;

        let slot = self.reserve_slot().await?;
        self.warn_map_limit(self.live.load(Ordering::Relaxed));

        // Without preopens the context cannot fail to build: it is built on
        // the process's first WASI call (see `ProcessState::wasi`).
        let wasi = if perms.preopens.is_empty() {
            None
        } else {
            Some(perms.build_wasi(stdin)?)
        };
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let budget = Arc::new(Budget::new(perms.limits.max_memory, self.budget.clone()));
        let shared = Arc::new(ProcessShared::new(pid, budget));
        if let Some(arg) = arg {
            if let Err(PushError::Full(over)) = shared.mailbox.push(arg) {
                return Err(HostError::new(
                    err::RESOURCE_LIMIT,
                    format!("the spawn argument does not fit the new process: {over}"),
                ));
            }
        }
        if !sockets.is_empty() {
            shared.sockets.receive(sockets);
        }
        let fuel = perms.limits.fuel;
        let state = ProcessState::new(
            wasi,
            stdin,
            self.clone(),
            shared.clone(),
            module.clone(),
            perms,
        );
        let mut store = self.new_store(state, fuel);
        // In the table before it is instantiated: a module's start function
        // runs during instantiation, as the child (its fuel, its preemption),
        // and the child can be killed there like anywhere else.
        self.processes.insert(pid, shared.clone());
        let instantiated = shared
            .run_killable(
                &self.ticks,
                self.instantiate(&mut store, &module, entry, params, types),
            )
            .await;
        let (func, params) = match instantiated {
            Ok(Ok(instance)) => instance,
            Ok(Err(e)) => {
                self.process_ended(&shared, &ExitReason::Trap(e.message.clone()));
                return Err(e);
            }
            Err(reason) => {
                self.process_ended(&shared, &reason);
                return Err(HostError::new(
                    err::SPAWN_FAILED,
                    format!("the new process ended in its start function: {reason}"),
                ));
            }
        };

        if let Some(parent) = link_to {
            // Before the child runs its entry: spawn-and-link is atomic.
            parent.signals().links.push(pid);
            shared.signals().links.push(parent.pid);
        }
        let (done, exited) = tokio::sync::oneshot::channel();
        tokio::spawn(self.clone().run(shared, store, func, params, slot, done));
        Ok(Spawned { pid, done: exited })
    }

    /// A process's store: its limiter, fuel and preemption.
    fn new_store(&self, state: ProcessState, fuel: Option<u64>) -> Store<ProcessState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s);
        if self.fuel.is_some() {
            store
                .set_fuel(fuel.unwrap_or(u64::MAX))
                .expect("the engine meters fuel");
        }
        // Preemption: a store's deadline is the next tick, and at the deadline
        // the process yields its thread, unless it got the thread during the
        // current tick. A process that waited (for a message, a timer, a
        // socket) past its deadline gets a fresh slice when it runs again,
        // as in Erlang, instead of yielding at once: that extra trip through
        // tokio's queue made a ring hop with 10,000 processes 30% slower.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|s| {
            let state = s.data();
            let now = state.vm.ticks.load(Ordering::Relaxed);
            if state.shared.slice_start.load(Ordering::Relaxed) >= now {
                return Ok(UpdateDeadline::Continue(1));
            }
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        store
    }

    /// Instantiates `module` in `store` and finds its `entry` (checked to
    /// take `types`), with `params` converted to them.
    async fn instantiate(
        &self,
        store: &mut Store<ProcessState>,
        module: &LoadedModule,
        entry: &str,
        params: &[i64],
        types: Vec<ValType>,
    ) -> Result<(Func, Vec<Val>), HostError> {
        let instance = module
            .pre
            .instantiate_async(&mut *store)
            .await
            .map_err(|e| self.instantiate_error(e))?;
        let memory = instance.get_memory(&mut *store, "memory");
        store.data_mut().memory = memory;
        let func = instance
            .get_func(&mut *store, entry)
            .expect("entry was checked against the module's exports");
        let params = params
            .iter()
            .zip(types)
            .map(|(v, t)| match t {
                ValType::I32 => Val::I32(*v as i32),
                _ => Val::I64(*v),
            })
            .collect();
        Ok((func, params))
    }

    /// Runs a process's entry call (or the call it wakes in) until the
    /// process ends or hibernates. A spawned process runs it on a task of
    /// its own, whose future holds wasmtime's call future inline (it is
    /// polled at every resume: boxing it cost 4% of ping-pong's rate). A
    /// hibernated process sleeps on another, small task
    /// ([`VmInner::hibernated`]) and runs the call it wakes in there, boxed,
    /// so that it does not sleep 1.7 KB larger.
    async fn run(
        self: Arc<Self>,
        shared: Arc<ProcessShared>,
        mut store: Store<ProcessState>,
        func: Func,
        params: Vec<Val>,
        slot: LiveSlot,
        done: Done,
    ) {
        let mut results = vec![Val::I32(0); func.ty(&store).results().len()];
        let call = func.call_async(&mut store, &params, &mut results);
        let result = match shared.run_killable(&self.ticks, call).await {
            Ok(result) => result,
            Err(reason) => return self.end(&shared, reason, false, (store, slot), done),
        };
        match result {
            Err(e) if e.is::<Hibernate>() => {
                let hibernate = e.downcast::<Hibernate>().expect("checked");
                self.hibernate(shared, store, slot, hibernate, done)
            }
            other => self.end(&shared, exit_reason(other), true, (store, slot), done),
        }
    }

    /// Keeps a process's memory and state, frees its instance, memory slot
    /// and stack, and waits for its next message on a task of its own.
    fn hibernate(
        self: &Arc<Self>,
        shared: Arc<ProcessShared>,
        store: Store<ProcessState>,
        slot: LiveSlot,
        hibernate: Hibernate,
        done: Done,
    ) {
        let state = store.data();
        let image = state.module.layout.image().expect("checked by `hibernate`");
        let snapshot = match state.memory {
            Some(memory) => Snapshot::take(memory.data(&store), image),
            None => Snapshot::take(&[], image),
        };
        let fuel = store.get_fuel().ok();
        let mut state = Box::new(store.into_data());
        // The handle belongs to the store being dropped: the fresh instance
        // sets its own (a host call made with this one would panic inside
        // wasmtime).
        state.memory = None;
        state.release_linear();
        drop(slot);
        // The saved pages replace the linear memory in the budget.
        let charge = match Charge::new(&shared.budget, snapshot.packed_len() as u64) {
            Ok(charge) => charge,
            Err(_) => {
                let reason = ExitReason::Limit(crate::Limit::Memory);
                return self.end(&shared, reason, true, state, done);
            }
        };
        tracing::trace!(
            pid = shared.pid,
            bytes = snapshot.packed_len(),
            "process hibernated"
        );
        let sleeper = Hibernated {
            state,
            snapshot,
            charge,
            fuel,
            hibernate,
        };
        tokio::spawn(self.clone().hibernated(shared, sleeper, done));
    }

    /// A hibernated process: waits for a message (or its end), then wakes in
    /// a fresh instance with its memory back.
    async fn hibernated(
        self: Arc<Self>,
        shared: Arc<ProcessShared>,
        sleeper: Hibernated,
        done: Done,
    ) {
        let woken = shared
            .run_killable(&self.ticks, shared.mailbox.wait_nonempty())
            .await;
        if let Err(reason) = woken {
            return self.end(&shared, reason, false, sleeper, done);
        }
        let Hibernated {
            state,
            snapshot,
            charge,
            fuel,
            hibernate,
        } = sleeper;
        // A full pool is no reason to die: wait (killable) for a slot.
        let slot = match shared.run_killable(&self.ticks, self.wait_for_slot()).await {
            Ok(slot) => slot,
            Err(reason) => return self.end(&shared, reason, false, state, done),
        };
        let mut store = self.new_store(*state, fuel);
        let module = store.data().module.clone();
        let types = module
            .entry_params(&hibernate.entry, hibernate.params.len())
            .expect("checked by `hibernate`");
        // Boxed: this task's future would otherwise be as large as wasmtime's
        // instantiation future for as long as the process sleeps.
        let instance = Box::pin(self.instantiate(
            &mut store,
            &module,
            &hibernate.entry,
            &hibernate.params,
            types,
        ))
        .await;
        match instance.map_err(|e| e.to_string()).and_then(|instance| {
            restore(&mut store, &snapshot)?;
            Ok(instance)
        }) {
            // Right away, on this task, as a process woken in a receive
            // (without holding on to the saved memory).
            Ok((func, params)) => {
                drop((snapshot, charge, hibernate));
                Box::pin(self.run(shared, store, func, params, slot, done)).await
            }
            Err(e) => {
                let reason = ExitReason::Trap(format!("cannot wake from hibernation: {e}"));
                self.end(&shared, reason, true, (store, slot), done)
            }
        }
    }

    /// A process ends: its exit is delivered, then what it `held` (its
    /// store and slot, or its hibernated state) is freed, and its reason is
    /// reported (`own`: its own doing, not an exit signal from another
    /// process) and sent to whoever waits for it.
    fn end<H>(&self, shared: &ProcessShared, reason: ExitReason, own: bool, held: H, done: Done) {
        self.process_ended(shared, &reason);
        drop(held);
        let pid = shared.pid;
        match &reason {
            ExitReason::Trap(trap) if own => eprintln!("[troupe] process {pid} trapped: {trap}"),
            ExitReason::Limit(_) if own => eprintln!("[troupe] process {pid} ended: {reason}"),
            _ => {}
        }
        tracing::debug!(pid, %reason, "process ended");
        let _ = done.send(reason);
    }

    /// Removes an ended process and delivers its exit: signals to its links,
    /// DOWN messages to its monitors; frees its names.
    fn process_ended(&self, shared: &ProcessShared, reason: &ExitReason) {
        let pid = shared.pid;
        self.processes.remove(&pid);
        let (links, monitors, names, watching, timers) = {
            let mut sig = shared.signals();
            sig.alive = false;
            (
                std::mem::take(&mut sig.links),
                std::mem::take(&mut sig.monitors),
                std::mem::take(&mut sig.names),
                std::mem::take(&mut sig.watching),
                std::mem::take(&mut sig.timers),
            )
        };
        shared.mailbox.close();
        shared.sockets.close_all();
        // What it held on others: its monitors of other processes and its
        // pending timers go with it.
        for reference in watching {
            if let Some((_, (_, target))) = self.monitors.remove(&reference) {
                if let Some(t) = self.process(target) {
                    t.signals().monitors.retain(|(r, _)| *r != reference);
                }
            }
        }
        for reference in timers {
            if let Some((_, timer)) = self.timers.remove(&reference) {
                if let Some(task) = timer.task {
                    task.abort();
                }
            }
        }
        for name in names {
            self.registry.remove_if(&name, |_, p| *p == pid);
        }
        for other in links {
            if let Some(p) = self.process(other) {
                p.signals().links.retain(|l| *l != pid);
                p.exit_signal(pid, reason, false);
            }
        }
        for (reference, watcher) in monitors {
            // Queue the DOWN while holding the monitor's entry, so that a
            // concurrent `demonitor` sees either the monitor (and then no
            // DOWN is ever sent) or the queued DOWN (which it flushes).
            self.monitors.remove_if(&reference, |_, _| {
                if let Some(w) = self.process(watcher) {
                    w.mailbox.push_signal(down_message(reference, pid, reason));
                }
                true
            });
        }
    }

    pub(crate) fn process(&self, pid: u64) -> Option<Arc<ProcessShared>> {
        self.processes.get(&pid).map(|p| p.clone())
    }

    fn no_process(pid: u64) -> HostError {
        HostError::new(err::NO_PROCESS, format!("process {pid} does not exist"))
    }

    pub(crate) fn fuel_metering(&self) -> bool {
        self.fuel.is_some()
    }

    pub(crate) fn link(&self, me: &Arc<ProcessShared>, pid: u64) -> Result<(), HostError> {
        if pid == me.pid {
            return Ok(());
        }
        let other = self.process(pid).ok_or_else(|| Self::no_process(pid))?;
        // Lock in pid order: two processes may link to each other at once.
        let (first, second) = if me.pid < pid {
            (me, &other)
        } else {
            (&other, me)
        };
        let mut a = first.signals();
        let mut b = second.signals();
        if !a.alive || !b.alive {
            return Err(Self::no_process(pid));
        }
        if !a.links.contains(&second.pid) {
            let cap = troupe_abi::limit::LINKS as usize;
            if a.links.len() >= cap || b.links.len() >= cap {
                return Err(over_limit("links", troupe_abi::limit::LINKS));
            }
            a.links.push(second.pid);
            b.links.push(first.pid);
        }
        Ok(())
    }

    pub(crate) fn unlink(&self, me: &ProcessShared, pid: u64) {
        me.signals().links.retain(|l| *l != pid);
        if let Some(other) = self.process(pid) {
            other.signals().links.retain(|l| *l != me.pid);
        }
    }

    pub(crate) fn monitor(&self, me: &ProcessShared, pid: u64) -> Result<u64, HostError> {
        let reference = self.next_ref.fetch_add(1, Ordering::Relaxed);
        let held = hold(
            &mut me.signals().watching,
            reference,
            troupe_abi::limit::MONITORS,
            |r| self.monitors.contains_key(r),
        );
        if !held {
            return Err(over_limit("monitors", troupe_abi::limit::MONITORS));
        }
        if let Some(target) = self.process(pid) {
            let mut sig = target.signals();
            if sig.alive {
                self.monitors.insert(reference, (me.pid, pid));
                sig.monitors.push((reference, me.pid));
                return Ok(reference);
            }
        }
        me.mailbox
            .push_signal(down_message(reference, pid, &ExitReason::NoProc));
        Ok(reference)
    }

    pub(crate) fn demonitor(&self, me: &ProcessShared, reference: u64) -> Result<(), HostError> {
        let held = self
            .monitors
            .remove_if(&reference, |_, (w, _)| *w == me.pid);
        if let Some((_, (_, target))) = &held {
            if let Some(t) = self.process(*target) {
                t.signals().monitors.retain(|(r, _)| *r != reference);
            }
        }
        let flushed = me.mailbox.remove_first(|m| {
            m.tag == troupe_abi::tag::DOWN && m.data.get(..8) == Some(&reference.to_le_bytes())
        });
        if held.is_some() || flushed {
            Ok(())
        } else {
            Err(HostError::new(
                err::NOT_FOUND,
                format!("this process holds no monitor {reference}"),
            ))
        }
    }

    pub(crate) fn exit_signal(
        &self,
        from: u64,
        to: u64,
        reason: &ExitReason,
        untrappable: bool,
    ) -> Result<(), HostError> {
        let target = self.process(to).ok_or_else(|| Self::no_process(to))?;
        target.exit_signal(from, reason, untrappable);
        Ok(())
    }

    pub(crate) fn register(&self, name: String, pid: u64) -> Result<(), HostError> {
        let target = self.process(pid).ok_or_else(|| Self::no_process(pid))?;
        let mut sig = target.signals();
        if !sig.alive {
            return Err(Self::no_process(pid));
        }
        match self.registry.entry(name) {
            dashmap::Entry::Occupied(e) => Err(HostError::new(
                err::ALREADY_REGISTERED,
                format!("{:?} is already registered to process {}", e.key(), e.get()),
            )),
            dashmap::Entry::Vacant(_) if sig.names.len() >= troupe_abi::limit::NAMES as usize => {
                Err(HostError::new(
                    err::RESOURCE_LIMIT,
                    format!(
                        "process {pid} already has {} names, the most one process may have",
                        troupe_abi::limit::NAMES
                    ),
                ))
            }
            dashmap::Entry::Vacant(e) => {
                sig.names.push(e.key().clone());
                e.insert(pid);
                Ok(())
            }
        }
    }

    /// Frees `name`. The entry is removed while its process's signals are
    /// locked, as `register` adds it: otherwise a `register` of the same
    /// name for the same process between the two steps lost its record in
    /// the process's names, and the name outlived the process.
    pub(crate) fn unregister(&self, name: &str) -> Result<(), HostError> {
        loop {
            let pid = self.whereis(name).ok_or_else(|| {
                HostError::new(
                    err::NOT_FOUND,
                    format!("no process is registered as {name:?}"),
                )
            })?;
            let owner = self.process(pid);
            let mut sig = owner.as_ref().map(|p| p.signals());
            if self.registry.remove_if(name, |_, p| *p == pid).is_some() {
                if let Some(sig) = sig.as_mut() {
                    if let Some(at) = sig.names.iter().position(|n| n == name) {
                        sig.names.swap_remove(at);
                    }
                }
                return Ok(());
            }
            // Freed and registered again meanwhile: look again.
        }
    }

    pub(crate) fn whereis(&self, name: &str) -> Option<u64> {
        self.registry.get(name).map(|p| *p)
    }

    /// Sends `msg` (from `owner`) to `to` after `delay`; the timer's
    /// reference. The owner holds at most [`troupe_abi::limit::TIMERS`]
    /// pending timers, and they are cancelled when it ends.
    pub(crate) fn send_after(
        self: &Arc<Self>,
        owner: &ProcessShared,
        to: u64,
        msg: Message,
        delay: std::time::Duration,
    ) -> Result<u64, HostError> {
        let reference = self.next_ref.fetch_add(1, Ordering::Relaxed);
        // The payload is the owner's until the timer fires or is cancelled.
        let charge =
            Charge::new(&owner.budget, msg.data.len() as u64 + TIMER_OVERHEAD).map_err(|over| {
                HostError::new(err::RESOURCE_LIMIT, format!("the timer's message: {over}"))
            })?;
        {
            let mut sig = owner.signals();
            if !sig.alive {
                return Err(Self::no_process(owner.pid));
            }
            let held = hold(&mut sig.timers, reference, troupe_abi::limit::TIMERS, |r| {
                self.timers.contains_key(r)
            });
            if !held {
                return Err(over_limit("pending timers", troupe_abi::limit::TIMERS));
            }
            // Registered before the task exists, so a zero delay cannot fire
            // before it is known; and while the owner's signals are locked,
            // so an owner ending now cancels it.
            self.timers.insert(
                reference,
                Timer {
                    owner: owner.pid,
                    task: None,
                },
            );
        }
        let vm = self.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if vm.timers.remove(&reference).is_some() {
                drop(charge);
                // Into the receiver's budget now, or dropped (as a send).
                let _ = vm.send(msg, to);
            }
        });
        if let Some(mut timer) = self.timers.get_mut(&reference) {
            timer.task = Some(task.abort_handle());
        }
        Ok(reference)
    }

    /// Cancels `owner`'s timer `reference`; whether it was pending. A timer
    /// of another process is not `owner`'s to cancel (as if unknown).
    pub(crate) fn cancel_timer(&self, owner: &ProcessShared, reference: u64) -> bool {
        match self
            .timers
            .remove_if(&reference, |_, t| t.owner == owner.pid)
        {
            Some((_, timer)) => {
                if let Some(task) = timer.task {
                    task.abort();
                }
                let mut sig = owner.signals();
                if let Some(at) = sig.timers.iter().position(|r| *r == reference) {
                    sig.timers.swap_remove(at);
                }
                true
            }
            None => false,
        }
    }

    /// Takes one of the `--max-processes` slots. On a full pool, waits while
    /// processes keep ending: a parent spawning short-lived children in a
    /// loop can outrun them (tokio runs a preempted task again before the
    /// children that overflowed into its global queue), and should be slowed
    /// to their pace rather than fail. Gives up with `RESOURCE_LIMIT` once
    /// [`FULL_POOL_PATIENCE`] passes without any process ending.
    async fn reserve_slot(self: &Arc<Self>) -> Result<LiveSlot, HostError> {
        let mut exits = self.exits.load(Ordering::Acquire);
        let mut since: Option<std::time::Instant> = None;
        loop {
            if self.live.fetch_add(1, Ordering::AcqRel) < self.max_processes {
                return Ok(LiveSlot(self.clone()));
            }
            // Not a slot after all: give it back (not an exit).
            self.live.fetch_sub(1, Ordering::AcqRel);
            let now = std::time::Instant::now();
            let seen = self.exits.load(Ordering::Acquire);
            if seen != exits {
                exits = seen;
                since = Some(now);
            }
            if now.duration_since(*since.get_or_insert(now)) > FULL_POOL_PATIENCE {
                return Err(self.pool_full());
            }
            tokio::task::yield_now().await;
        }
    }

    /// Takes a slot, waiting for as long as it takes (a process waking from
    /// hibernation has nobody to return an error to).
    async fn wait_for_slot(self: &Arc<Self>) -> LiveSlot {
        loop {
            let freed = self.slot_freed.notified();
            let mut freed = std::pin::pin!(freed);
            // Registered before looking, so a slot freed in between is seen.
            freed.as_mut().enable();
            if self.live.fetch_add(1, Ordering::AcqRel) < self.max_processes {
                return LiveSlot(self.clone());
            }
            self.live.fetch_sub(1, Ordering::AcqRel);
            freed.await;
        }
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
