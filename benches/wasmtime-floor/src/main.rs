//! The wasmtime floor: Troupe's benchmark workloads run by bare wasmtime on
//! tokio, with none of Troupe's code.
//!
//! Every "process" is, as in Troupe, a wasmtime instance in a `Store` of its
//! own, run by `call_async` on a tokio task, and waiting for a message inside
//! an async host call (so on its fiber stack). The engine and the scheduler
//! are built by the VM's own [`troupe_vm::bench::engine_config`] and
//! [`troupe_vm::bench::scheduler_builder`], so the pool, memory reservation,
//! copy-on-write images, epoch preemption and async stacks are the VM's. What
//! is left out is everything Troupe adds: pids, the process table, links and
//! monitors, typed messages copied through linear memory, the Rust guest SDK.
//! The mailbox is a tokio unbounded channel of `i32`, as in the tokio baseline.
//!
//! The numbers are therefore a floor for any runtime built as Troupe is
//! (wasmtime 48, a store per process, tokio): the cost of the instance, the
//! fiber switch and the task wake-up alone.
//!
//! `wasmtime-floor <workload> [key=value ...] --threads N [--max-processes N]
//! [--max-memory SIZE] [--module FILE]` prints one JSON line (the contract in
//! benches/README.md). Workloads: `spawn` (instantiates and drops `--module`,
//! Troupe's guest, with its imports stubbed: no call is made into it), `idle`,
//! `pingpong` and `ring` (a small WAT guest, below). `idle --module FILE`
//! instead keeps instances of FILE that are never called (a diagnostic).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use tokio::sync::{mpsc, oneshot};
use troupe_vm::bench::{engine_config, scheduler_builder};

use troupe_benches::baseline::{
    parse_params, print_line, workload_name, Countdown, Memory, Outcome,
};
use troupe_vm::VmConfig;
use wasmtime::{AsContextMut, Caller, Engine, InstancePre, Linker, Module, Store, UpdateDeadline};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The guest of `idle`, `pingpong` and `ring`: a process that receives
/// (`recv`, async: the instance waits on its fiber) and sends `i32`s.
/// `TOUCH_PAGES` is replaced by `--touch-pages`: before each wait for a
/// message, `$recv` adds one to a word in each of that many 4 KiB pages of
/// the linear memory, as a real guest touches its stack, heap and statics
/// between two messages.
const GUEST: &str = r#"(module
  (import "floor" "recv" (func $wait (result i32)))
  (import "floor" "send" (func $send (param i32 i32)))
  (import "floor" "finish" (func $finish))
  (memory 17)
  (func $recv (result i32)
    (local $at i32)
    (local.set $at (i32.mul (i32.const TOUCH_PAGES) (i32.const 4096)))
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $at)))
        (local.set $at (i32.sub (local.get $at) (i32.const 4096)))
        (i32.store (local.get $at) (i32.add (i32.load (local.get $at)) (i32.const 1)))
        (br $l)))
    (call $wait))
  ;; idle: wait for one message.
  (func (export "idle") (drop (call $recv)))
  ;; pingpong, process 0: wait for the start, then n round trips with 1.
  (func (export "ping") (param $n i32)
    (local $i i32)
    (drop (call $recv))
    (loop $l
      (call $send (i32.const 1) (local.get $i))
      (drop (call $recv))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (call $finish))
  ;; pingpong, process 1: send back what it receives, n times.
  (func (export "pong") (param $n i32)
    (local $i i32)
    (loop $l
      (call $send (i32.const 0) (call $recv))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
  ;; ring: pass the count of hops left on to `next`; at 0, finish.
  (func (export "ring") (param $next i32)
    (local $left i32)
    (loop $l
      (local.set $left (call $recv))
      (if (i32.eqz (local.get $left)) (then (call $finish) (return)))
      (call $send (local.get $next) (i32.sub (local.get $left) (i32.const 1)))
      (br $l)))
)"#;

#[derive(Parser, Debug)]
#[command(about = "bare-wasmtime floor for the Troupe benchmarks (prints one JSON line)")]
struct Cli {
    #[arg(value_enum)]
    workload: Workload,
    /// Workload parameters as key=value; missing keys take defaults.
    params: Vec<String>,
    /// Scheduler threads, as `troupe run --threads`.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pool slots, as `troupe run --max-processes`.
    #[arg(long, default_value_t = troupe_vm::DEFAULT_MAX_PROCESSES)]
    max_processes: u32,
    /// Memory reservation per slot, as `troupe run --max-memory` (e.g. 64M).
    #[arg(long, value_parser = troupe_vm::parse_size, default_value_t = troupe_vm::DEFAULT_MAX_MEMORY)]
    max_memory: u64,
    /// The module `spawn` instantiates (Troupe's guest of the same workload);
    /// with `idle`, keep uncalled instances of it instead of the WAT guest.
    #[arg(long)]
    module: Option<std::path::PathBuf>,
    /// Before each wait for a message, the WAT guest writes to this many
    /// distinct 4 KiB pages of its memory (0-272). A diagnostic of memory
    /// locality: a Rust guest touches its stack, heap and statics at each
    /// message, the plain floor touches none.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=272))]
    touch_pages: u32,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum Workload {
    Spawn,
    Idle,
    Pingpong,
    Ring,
}

impl Workload {
    fn name(self) -> &'static str {
        workload_name(self)
    }
}

/// A process's host state: its mailbox, everyone's mailboxes, and the
/// signals to the driver.
struct Proc {
    rx: mpsc::UnboundedReceiver<i32>,
    peers: Arc<Vec<mpsc::UnboundedSender<i32>>>,
    /// Ticked once, when the process first waits in `recv`.
    waiting: Option<Arc<Countdown>>,
    finished: Arc<Finish>,
}

/// The time the workload finished (a guest called `finish`).
type Finish = Mutex<Option<oneshot::Sender<Instant>>>;

struct Floor {
    engine: Engine,
    guest: InstancePre<Proc>,
}

impl Floor {
    fn new(engine: Engine, touch_pages: u32) -> Result<Self> {
        let mut linker = Linker::new(&engine);
        linker.func_wrap_async("floor", "recv", |mut c: Caller<'_, Proc>, (): ()| {
            Box::new(async move {
                let p = c.data_mut();
                if let Some(waiting) = p.waiting.take() {
                    waiting.tick();
                }
                let v = p.rx.recv().await.unwrap_or(-1);
                // As in the VM: a process that waited gets a fresh time
                // slice, instead of yielding at its first epoch check.
                c.as_context_mut().set_epoch_deadline(1);
                Ok(v)
            })
        })?;
        linker.func_wrap("floor", "send", |c: Caller<'_, Proc>, to: i32, v: i32| {
            if let Some(peer) = c.data().peers.get(to as usize) {
                let _ = peer.send(v);
            }
        })?;
        linker.func_wrap("floor", "finish", |c: Caller<'_, Proc>| {
            if let Some(tx) = c.data().finished.lock().unwrap().take() {
                let _ = tx.send(Instant::now());
            }
        })?;
        let module = Module::new(
            &engine,
            GUEST.replace("TOUCH_PAGES", &touch_pages.to_string()),
        )?;
        let guest = linker.instantiate_pre(&module)?;
        Ok(Floor { engine, guest })
    }

    /// `module` (a file) ready to instantiate, its imports stubbed with traps.
    fn stubbed(&self, module: &std::path::Path) -> Result<Arc<InstancePre<()>>> {
        let bytes =
            std::fs::read(module).with_context(|| format!("cannot read {}", module.display()))?;
        let module = Module::new(&self.engine, bytes)?;
        let mut linker: Linker<()> = Linker::new(&self.engine);
        linker.define_unknown_imports_as_traps(&module)?;
        Ok(Arc::new(linker.instantiate_pre(&module)?))
    }

    /// A store as the VM makes one: preempted at each epoch tick.
    fn store<T: Send>(&self, data: T) -> Store<T> {
        let mut store = Store::new(&self.engine, data);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| {
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        store
    }

    /// Starts `procs` processes of the guest, process i calling the export
    /// and params `entry(i)` with mailbox i; returns when each waits in
    /// `recv` (or has passed it), with the mailboxes and the finish signal.
    async fn start<P>(
        self: &Arc<Self>,
        procs: usize,
        entry: impl Fn(usize) -> (&'static str, P),
    ) -> Result<(
        Arc<Vec<mpsc::UnboundedSender<i32>>>,
        oneshot::Receiver<Instant>,
    )>
    where
        P: wasmtime::WasmParams + Send + Sync + 'static,
    {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..procs).map(|_| mpsc::unbounded_channel()).unzip();
        let peers = Arc::new(txs);
        let (done_tx, done_rx) = oneshot::channel();
        let finished = Arc::new(Mutex::new(Some(done_tx)));
        let waiting = Countdown::new(procs);
        let (err_tx, mut err_rx) = mpsc::unbounded_channel::<anyhow::Error>();
        for (i, rx) in rxs.into_iter().enumerate() {
            let me = self.clone();
            let proc = Proc {
                rx,
                peers: peers.clone(),
                waiting: Some(waiting.clone()),
                finished: finished.clone(),
            };
            let (export, params) = entry(i);
            let err_tx = err_tx.clone();
            tokio::spawn(async move {
                let run = async {
                    let mut store = me.store(proc);
                    let instance = me.guest.instantiate_async(&mut store).await?;
                    let f = instance.get_typed_func::<P, ()>(&mut store, export)?;
                    f.call_async(&mut store, params).await
                };
                if let Err(e) = run.await {
                    let _ = err_tx.send(anyhow::anyhow!("{e:#}"));
                }
            });
        }
        drop(err_tx);
        tokio::select! {
            () = waiting.wait() => Ok((peers, done_rx)),
            Some(e) = err_rx.recv() => Err(e.context("a process failed")),
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.threads == 0 {
        bail!("--threads must be >= 1");
    }
    let params = parse_params(cli.workload.name(), &cli.params)?;
    if params.get("hibernate") == Some(&1) {
        bail!("idle hibernate=1: bare wasmtime has no hibernation (the runner reports it as n/a)");
    }
    let p = |k: &str| params[k] as usize;
    let config = VmConfig::new()
        .max_processes(cli.max_processes)
        .max_memory(cli.max_memory);
    let engine = Engine::new(&engine_config(&config))?;
    // The VM's preemption ticker: one epoch per tick.
    let (ticker, tick) = (engine.clone(), config.get_preemption_tick());
    std::thread::spawn(move || loop {
        std::thread::sleep(tick);
        ticker.increment_epoch();
    });
    let floor = Arc::new(Floor::new(engine, cli.touch_pages)?);
    let runtime = scheduler_builder(cli.threads).build()?;
    let w = cli.workload;
    let module = cli.module.clone();
    let (n, rounds, procs, laps) = match w {
        Workload::Spawn | Workload::Idle => (p("n"), 0, 0, 0),
        Workload::Pingpong => (0, p("rounds"), 0, 0),
        Workload::Ring => (0, 0, p("procs"), p("laps")),
    };
    let job = async move {
        match w {
            Workload::Spawn => {
                let module = module.context("spawn needs --module (Troupe's guest)")?;
                spawn(&floor, &module, n).await
            }
            Workload::Idle => match module {
                Some(module) => idle_uncalled(&floor, &module, n).await,
                None => idle(&floor, n).await,
            },
            Workload::Pingpong => pingpong(&floor, rounds).await,
            Workload::Ring => ring(&floor, procs, laps).await,
        }
    };
    let mut out = runtime.block_on(async move { tokio::spawn(job).await })??;
    if cli.touch_pages > 0 {
        out.extra.push(("touch_pages", f64::from(cli.touch_pages)));
    }

    print_line("wasmtime-floor", w.name(), cli.threads, &params, out)?;
    // Skip the teardown of processes still waiting (idle, ring).
    std::process::exit(0);
}

/// spawn: `n` processes of Troupe's own guest module (its imports stubbed
/// with traps, none called), each instantiated on a task of its own and
/// dropped; time from the first spawn until the last one is gone.
async fn spawn(floor: &Arc<Floor>, module: &std::path::Path, n: usize) -> Result<Outcome> {
    let pre = floor.stubbed(module)?;
    let gone = Countdown::new(n);
    let failed = Arc::new(Mutex::new(None));
    let t0 = Instant::now();
    for _ in 0..n {
        let (floor, pre, gone, failed) = (floor.clone(), pre.clone(), gone.clone(), failed.clone());
        tokio::spawn(async move {
            let mut store = floor.store(());
            if let Err(e) = pre.instantiate_async(&mut store).await {
                failed.lock().unwrap().get_or_insert(e);
            }
            drop(store);
            gone.tick();
        });
    }
    let spawned = t0.elapsed();
    gone.wait().await;
    let total = t0.elapsed();
    if let Some(e) = failed.lock().unwrap().take() {
        bail!("instantiation failed: {e:#}");
    }
    Ok(Outcome::spawn(n, spawned, total))
}

/// idle with `--module` (a diagnostic, not run by the harness): `n`
/// instances of `module`, never called, each kept by a task that waits on a
/// channel outside Wasm (so with no fiber stack): what an instance of that
/// module costs before it runs anything.
async fn idle_uncalled(floor: &Arc<Floor>, module: &std::path::Path, n: usize) -> Result<Outcome> {
    let pre = floor.stubbed(module)?;
    let before = Memory::now()?;
    let started = Countdown::new(n);
    let (err_tx, mut err_rx) = mpsc::unbounded_channel::<String>();
    let mut keep = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let (tx, mut rx) = mpsc::unbounded_channel::<i32>();
        keep.push(tx);
        let (floor, pre, started, err_tx) =
            (floor.clone(), pre.clone(), started.clone(), err_tx.clone());
        tokio::spawn(async move {
            let mut store = floor.store(());
            if let Err(e) = pre.instantiate_async(&mut store).await {
                let _ = err_tx.send(format!("{e:#}"));
                return;
            }
            started.tick();
            let _ = rx.recv().await;
        });
    }
    drop(err_tx);
    tokio::select! {
        () = started.wait() => {}
        Some(e) = err_rx.recv() => bail!("instantiation failed: {e}"),
    }
    let out = before.idle_outcome(n, t0.elapsed());
    std::hint::black_box(&keep);
    out
}

/// idle: `n` processes each waiting in `recv`; memory growth per process.
async fn idle(floor: &Arc<Floor>, n: usize) -> Result<Outcome> {
    let before = Memory::now()?;
    let t0 = Instant::now();
    let (mailboxes, _) = floor.start(n, |_| ("idle", ())).await?;
    let out = before.idle_outcome(n, t0.elapsed());
    std::hint::black_box(&mailboxes);
    out
}

/// pingpong: two processes, `rounds` round trips, timed from the start
/// message to the last reply.
async fn pingpong(floor: &Arc<Floor>, rounds: usize) -> Result<Outcome> {
    let r = i32::try_from(rounds).context("rounds too large")?;
    let (mailboxes, done) = floor
        .start(2, move |i| (if i == 0 { "ping" } else { "pong" }, r))
        .await?;
    let t0 = Instant::now();
    mailboxes[0].send(0).ok().context("ping gone")?;
    let el = done.await.context("ping-pong stopped")? - t0;
    Ok(Outcome::pingpong(rounds, el))
}

/// ring: `procs` processes in a ring; a count of `procs × laps` hops is
/// passed on, timed from its start to the hop that reaches 0.
async fn ring(floor: &Arc<Floor>, procs: usize, laps: usize) -> Result<Outcome> {
    let hops = procs * laps;
    let count = i32::try_from(hops).context("procs × laps too large")?;
    let setup = Instant::now();
    let (mailboxes, done) = floor
        .start(procs, move |i| ("ring", ((i + 1) % procs) as i32))
        .await?;
    let setup = setup.elapsed();
    let t0 = Instant::now();
    mailboxes[0].send(count).ok().context("ring closed")?;
    let end = done.await.context("the ring stopped")?;
    Ok(Outcome::ring(hops, end - t0, setup))
}
