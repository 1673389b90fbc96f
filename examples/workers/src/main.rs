//! A pool of worker processes counts the primes below N: the root hands out
//! ranges as workers become free, gathers the counts, asks each worker for its
//! statistics with request/reply, and checks the total against a sequential
//! count.
//!
//! `troupe run workers.wasm [WORKERS] [N] [JOBS]` (defaults: 4, 2000000, 40).

use std::collections::VecDeque;
use std::process::exit;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use troupe::{self_pid, spawn, Mailbox, Process, Reply};

/// What a worker's mailbox takes.
#[derive(Serialize, Deserialize)]
enum Work {
    /// Count the primes in `lo..hi`; answer with a [`Done`] to the boss.
    Job { id: u32, lo: u64, hi: u64 },
    /// How much have you done?
    Stats(Reply<Stats>),
    /// End.
    Stop,
}

/// A finished job, sent to the root's mailbox.
#[derive(Serialize, Deserialize)]
struct Done {
    worker: usize,
    id: u32,
    primes: u64,
}

/// A worker's totals.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct Stats {
    jobs: u32,
    primes: u64,
}

fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

fn count_primes(lo: u64, hi: u64) -> u64 {
    (lo..hi).filter(|&n| is_prime(n)).count() as u64
}

/// A worker process: does jobs until told to stop.
fn worker((index, boss): (usize, Process<Done>), mailbox: Mailbox<Work>) {
    let mut stats = Stats { jobs: 0, primes: 0 };
    loop {
        match mailbox.receive() {
            Work::Job { id, lo, hi } => {
                let primes = count_primes(lo, hi);
                stats.jobs += 1;
                stats.primes += primes;
                if boss
                    .send(Done {
                        worker: index,
                        id,
                        primes,
                    })
                    .is_err()
                {
                    return; // the boss is gone
                }
            }
            Work::Stats(reply) => {
                let _ = reply.send(stats);
            }
            Work::Stop => return,
        }
    }
}

fn arg<T: std::str::FromStr>(index: usize, default: T) -> T {
    match std::env::args().nth(index) {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("usage: workers [WORKERS] [N] [JOBS]  (bad argument {s:?})");
            exit(2)
        }),
    }
}

fn fail(what: &str, error: impl std::fmt::Display) -> ! {
    eprintln!("workers: {what}: {error}");
    exit(1)
}

fn main() {
    let workers: usize = arg(1, 4);
    let n: u64 = arg(2, 2_000_000);
    let jobs: u32 = arg(3, 40);
    if workers == 0 || jobs == 0 {
        fail("arguments", "WORKERS and JOBS must be at least 1");
    }
    println!(
        "workers: root {} counts the primes below {n} with {workers} workers and {jobs} jobs",
        self_pid()
    );

    let mailbox = Mailbox::<Done>::this();
    let pool: Vec<Process<Work>> = (0..workers)
        .map(|i| spawn((i, mailbox.process()), worker).unwrap_or_else(|e| fail("spawn", e)))
        .collect();
    let pids: Vec<String> = pool.iter().map(|w| w.pid().to_string()).collect();
    println!("workers: spawned {}", pids.join(" "));

    // Jobs are equal ranges of 0..n; the last one takes the remainder.
    let step = n / u64::from(jobs);
    let mut queue: VecDeque<Work> = (0..jobs)
        .map(|id| {
            let lo = u64::from(id) * step;
            let hi = if id + 1 == jobs { n } else { lo + step };
            Work::Job { id, lo, hi }
        })
        .collect();

    let start = Instant::now();
    // Two jobs in flight per worker, then one more each time one finishes.
    let mut in_flight = 0;
    for _ in 0..2 {
        for w in &pool {
            if let Some(job) = queue.pop_front() {
                w.send(job).unwrap_or_else(|e| fail("send", e));
                in_flight += 1;
            }
        }
    }
    let mut results = vec![None; jobs as usize];
    while in_flight > 0 {
        let done = mailbox
            .receive_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| fail("waiting for results", e));
        in_flight -= 1;
        results[done.id as usize] = Some(done.primes);
        if let Some(job) = queue.pop_front() {
            pool[done.worker]
                .send(job)
                .unwrap_or_else(|e| fail("send", e));
            in_flight += 1;
        }
    }
    let parallel = start.elapsed();
    let total: u64 = results.iter().map(|r| r.expect("every job answered")).sum();

    let mut from_stats = 0;
    for (i, w) in pool.iter().enumerate() {
        let stats: Stats = w
            .request_timeout(Work::Stats, Duration::from_secs(10))
            .unwrap_or_else(|e| fail("stats request", e));
        println!(
            "workers: worker {i} {}: {} jobs, {} primes",
            w.pid(),
            stats.jobs,
            stats.primes
        );
        from_stats += stats.primes;
        let _ = w.send(Work::Stop);
    }
    println!(
        "workers: total {total} primes below {n} in {:.3} s",
        parallel.as_secs_f64()
    );

    let start = Instant::now();
    let sequential = count_primes(0, n);
    println!(
        "workers: sequential count {sequential} in {:.3} s",
        start.elapsed().as_secs_f64()
    );
    if total == sequential && from_stats == sequential {
        println!("workers: OK");
    } else {
        println!(
            "workers: MISMATCH (pool {total}, worker stats {from_stats}, sequential {sequential})"
        );
        exit(1);
    }
}
