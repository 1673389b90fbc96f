//! The scheduler: the tokio runtime that drives processes (one task each),
//! the spin that keeps a busy worker from waking idle ones, the preemption
//! ticker, and the termination signals (SIGTERM, SIGINT) a VM may handle.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::Engine;

/// How long a worker that ran out of tasks spins before parking, while
/// another worker is awake.
const PARK_SPIN: Duration = Duration::from_micros(50);

/// The tokio runtime builder of a VM with `threads` scheduler threads
/// (public, in `troupe_vm::bench`, for the benchmarks' wasmtime floor, as
/// [`engine_config`](crate::engine::engine_config)).
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
pub(crate) struct TerminationSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl TerminationSignals {
    pub(crate) fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        TerminationSignals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Waits for one and returns the exit code it stands for.
    pub(crate) async fn recv(&mut self) -> i32 {
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

/// The preemption ticker: a thread that bumps the VM's tick count, then the
/// engine's epoch, every `tick`; at each epoch a running process yields its
/// thread unless it got it during the current tick (see the epoch-deadline
/// callback in `VmInner::new_store`).
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts the ticker's thread.
    pub(crate) fn start(
        engine: Engine,
        tick: Duration,
        ticks: Arc<AtomicU64>,
    ) -> std::io::Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("troupe-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        ticks.fetch_add(1, Ordering::Relaxed);
                        engine.increment_epoch();
                    }
                })?
        };
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the ticker and waits for its thread to end.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
