//! Native baseline: the benchmark workloads as tokio tasks talking over
//! unbounded mpsc channels (one channel = one mailbox).
//!
//! `tokio-baseline <workload> [key=value ...] --threads N` prints exactly one
//! JSON line on stdout (the contract described in benches/README.md).
//! `--threads 1` uses a current_thread runtime, `--threads N` (N > 1) a
//! multi_thread runtime with N workers. Runtime construction and process
//! start-up are excluded from the timings.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use tokio::sync::{mpsc, oneshot};

use troupe_bench_kernels::{memloop, xorshift32, XORSHIFT_SEED};
use troupe_benches::baseline::{
    ms, parse_params, print_line, workload_name, Countdown, Memory, Outcome,
};

#[derive(Parser, Debug)]
#[command(about = "tokio baseline for the Troupe benchmarks (prints one JSON line)")]
struct Cli {
    /// Workload to run.
    #[arg(value_enum)]
    workload: Workload,
    /// Workload parameters as key=value (e.g. n=100000); missing keys take defaults.
    params: Vec<String>,
    /// Scheduler threads: 1 = current_thread runtime, N > 1 = multi_thread with N workers.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum Workload {
    Spawn,
    Idle,
    Pingpong,
    Ring,
    Fanin,
    Payload,
    Preemption,
    Bounds,
}

impl Workload {
    fn name(self) -> &'static str {
        workload_name(self)
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.threads == 0 {
        bail!("--threads must be >= 1");
    }
    let params = parse_params(cli.workload.name(), &cli.params)?;
    if params.get("hibernate") == Some(&1) {
        bail!(
            "idle hibernate=1 does not apply to tokio: a task parked on a channel has no \
             stack to give up (the runner reports it as n/a)"
        );
    }
    let owned = params.clone();
    let p = move |k: &str| owned[k] as usize;

    let rt = if cli.threads == 1 {
        tokio::runtime::Builder::new_current_thread().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .build()?
    };

    // The driver runs as a spawned task so that, as in the actor systems, it
    // is itself scheduled on a worker rather than on the blocking main thread.
    let w = cli.workload;
    let job = async move {
        match w {
            Workload::Spawn => spawn(p("n")).await,
            Workload::Idle => idle(p("n")).await,
            Workload::Pingpong => pingpong(p("rounds")).await,
            Workload::Ring => ring(p("procs"), p("laps")).await,
            Workload::Fanin => fanin(p("producers"), p("msgs")).await,
            Workload::Payload => payload(p("size"), p("rounds")).await,
            Workload::Preemption => preemption(p("iters") as u64).await,
            Workload::Bounds => bounds(p("passes") as u64).await,
        }
    };
    let out = rt.block_on(async move { tokio::spawn(job).await })??;

    print_line("tokio", w.name(), cli.threads, &params, out)?;
    // Skip runtime teardown (idle leaves up to a million parked tasks behind).
    std::process::exit(0);
}

/// spawn: n tasks that start and exit; time from the first spawn until the
/// last one has exited.
async fn spawn(n: usize) -> Result<Outcome> {
    let cd = Countdown::new(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let cd = cd.clone();
        tokio::spawn(async move { cd.tick() });
    }
    let spawned = t0.elapsed();
    cd.wait().await;
    let total = t0.elapsed();
    Ok(Outcome::spawn(n, spawned, total))
}

/// idle: n tasks each parked on its own mailbox (an mpsc receiver); the
/// senders are kept alive. RSS growth per task is the memory floor.
async fn idle(n: usize) -> Result<Outcome> {
    let before = Memory::now()?;
    let started = Countdown::new(n);
    let mut mailboxes = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
        let started = started.clone();
        tokio::spawn(async move {
            started.tick();
            let _ = rx.recv().await;
        });
        mailboxes.push(tx);
    }
    started.wait().await;
    let elapsed = t0.elapsed();
    let out = before.idle_outcome(n, elapsed);
    std::hint::black_box(&mailboxes);
    out
}

/// Two tasks bounce a message; `reply` builds the message sent in each hop.
async fn bounce<M: Send + 'static>(
    rounds: usize,
    first: M,
    reply: fn(&M) -> M,
) -> Result<std::time::Duration> {
    let (to_pong, mut pong_rx) = mpsc::unbounded_channel::<M>();
    let (to_ping, mut ping_rx) = mpsc::unbounded_channel::<M>();
    let pong = tokio::spawn(async move {
        while let Some(m) = pong_rx.recv().await {
            if to_ping.send(reply(&m)).is_err() {
                break;
            }
        }
    });
    let ping = tokio::spawn(async move {
        let t0 = Instant::now();
        let mut m = first;
        for _ in 0..rounds {
            to_pong.send(reply(&m)).ok().context("pong gone")?;
            m = ping_rx.recv().await.context("pong closed")?;
        }
        let el = t0.elapsed();
        drop(to_pong);
        std::hint::black_box(&m);
        anyhow::Ok(el)
    });
    let el = ping.await??;
    pong.await?;
    Ok(el)
}

/// pingpong: two tasks, `rounds` round trips of a small integer message.
async fn pingpong(rounds: usize) -> Result<Outcome> {
    let el = bounce(rounds, 0u64, |m| m + 1).await?;
    Ok(Outcome::pingpong(rounds, el))
}

/// payload: ping-pong of a `size`-byte buffer. Every hop allocates a fresh
/// buffer and copies the bytes into it, modelling a message copied out of one
/// isolated heap into another (a plain `Vec` move would cost nothing per byte).
async fn payload(size: usize, rounds: usize) -> Result<Outcome> {
    let el = bounce(rounds, vec![7u8; size], |m: &Vec<u8>| m.clone()).await?;
    let secs = el.as_secs_f64();
    Ok(Outcome {
        value: (2 * rounds * size) as f64 / secs,
        unit: "bytes/s",
        elapsed_ms: ms(el),
        extra: vec![("roundtrips_per_s", rounds as f64 / secs)],
    })
}

/// ring: `procs` tasks in a ring; one token travels `laps` times round.
async fn ring(procs: usize, laps: usize) -> Result<Outcome> {
    let setup = Instant::now();
    let hops = procs * laps;
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let mut txs = Vec::with_capacity(procs);
    let mut rxs = Vec::with_capacity(procs);
    for _ in 0..procs {
        let (tx, rx) = mpsc::unbounded_channel::<usize>();
        txs.push(tx);
        rxs.push(rx);
    }
    let first = txs[0].clone();
    for (i, mut rx) in rxs.into_iter().enumerate() {
        let next = txs[(i + 1) % procs].clone();
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            while let Some(left) = rx.recv().await {
                if left == 0 {
                    if let Some(d) = done_tx.lock().unwrap().take() {
                        let _ = d.send(());
                    }
                    return;
                }
                if next.send(left - 1).is_err() {
                    return;
                }
            }
        });
    }
    drop(txs);
    let setup = setup.elapsed();
    let t0 = Instant::now();
    first.send(hops).ok().context("ring closed")?;
    done_rx.await?;
    Ok(Outcome::ring(hops, t0.elapsed(), setup))
}

/// fanin: `producers` tasks each send `msgs` messages to one consumer.
async fn fanin(producers: usize, msgs: usize) -> Result<Outcome> {
    let total = producers * msgs;
    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    let t0 = Instant::now();
    for p in 0..producers {
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in 0..msgs {
                let _ = tx.send((p * msgs + i) as u64);
            }
        });
    }
    drop(tx);
    let mut got = 0usize;
    let mut sum = 0u64;
    while got < total {
        sum = sum.wrapping_add(rx.recv().await.context("producers closed early")?);
        got += 1;
    }
    let el = t0.elapsed();
    std::hint::black_box(sum);
    Ok(Outcome {
        value: total as f64 / el.as_secs_f64(),
        unit: "msgs/s",
        elapsed_ms: ms(el),
        extra: vec![],
    })
}

/// preemption, native reference: the loop alone, in a task. tokio cannot
/// preempt a task that never awaits, so there is no shared run here (a
/// spinning task would hold its worker forever).
async fn preemption(iters: u64) -> Result<Outcome> {
    let t0 = Instant::now();
    let checksum = std::hint::black_box(xorshift32(XORSHIFT_SEED, std::hint::black_box(iters)));
    let el = t0.elapsed();
    Ok(Outcome {
        value: ms(el),
        unit: "ms",
        elapsed_ms: ms(el),
        extra: vec![
            ("ns_per_iter", el.as_secs_f64() * 1e9 / iters as f64),
            ("checksum", checksum as f64),
        ],
    })
}

/// bounds, native reference: `kernels::memloop`, compiled by LLVM for the
/// host (where it may use SIMD, which the Wasm build does not).
async fn bounds(passes: u64) -> Result<Outcome> {
    let t0 = Instant::now();
    let checksum = std::hint::black_box(memloop(std::hint::black_box(passes)));
    let el = t0.elapsed();
    Ok(Outcome {
        value: ms(el),
        unit: "ms",
        elapsed_ms: ms(el),
        extra: vec![("checksum", checksum as f64)],
    })
}
