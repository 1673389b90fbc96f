//! What the native baselines (`src/bin/tokio_baseline.rs` and the
//! `wasmtime-floor` crate) share: parameters, the JSON result line, a
//! countdown of processes, and the process's memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use tokio::sync::Notify;

/// One benchmark result: the primary number plus named extras.
pub struct Outcome {
    pub value: f64,
    pub unit: &'static str,
    pub elapsed_ms: f64,
    pub extra: Vec<(&'static str, f64)>,
}

impl Outcome {
    /// The spawn workload's outcome: `n` processes, the spawn calls done
    /// after `spawned`, the last process gone after `total`.
    pub fn spawn(n: usize, spawned: Duration, total: Duration) -> Outcome {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        Outcome {
            value: per(total),
            unit: "us/spawn",
            elapsed_ms: ms(total),
            extra: vec![("spawn_call_us", per(spawned)), ("total_ms", ms(total))],
        }
    }

    /// The ping-pong workload's outcome: `rounds` round trips in `elapsed`.
    pub fn pingpong(rounds: usize, elapsed: Duration) -> Outcome {
        Outcome {
            value: rounds as f64 / elapsed.as_secs_f64(),
            unit: "roundtrips/s",
            elapsed_ms: ms(elapsed),
            extra: vec![("rtt_ns", elapsed.as_secs_f64() * 1e9 / rounds as f64)],
        }
    }

    /// The ring workload's outcome: `hops` messages passed on in `elapsed`,
    /// after a ring set up in `setup`.
    pub fn ring(hops: usize, elapsed: Duration, setup: Duration) -> Outcome {
        Outcome {
            value: hops as f64 / elapsed.as_secs_f64(),
            unit: "msgs/s",
            elapsed_ms: ms(elapsed),
            extra: vec![("setup_ms", ms(setup))],
        }
    }
}

/// Every workload's parameters with their full-size defaults, in the order
/// the runner passes them.
pub const WORKLOADS: &[(&str, &[(&str, u64)])] = &[
    ("spawn", &[("n", 100_000)]),
    // `hibernate=1` is the hibernated variant of Troupe and Erlang.
    ("idle", &[("n", 100_000), ("hibernate", 0)]),
    ("pingpong", &[("rounds", 1_000_000)]),
    ("ring", &[("procs", 10_000), ("laps", 100)]),
    ("fanin", &[("producers", 1_000), ("msgs", 1_000)]),
    ("payload", &[("size", 1024), ("rounds", 100_000)]),
    ("preemption", &[("iters", 200_000_000)]),
    // `reserve_mib` only matters to Troupe (its `--max-memory`).
    ("bounds", &[("reserve_mib", 64), ("passes", 5_000)]),
];

/// A workload enum's name on the command line (its clap value).
pub fn workload_name<W: clap::ValueEnum>(w: W) -> &'static str {
    let value = w.to_possible_value().expect("no skipped variants");
    WORKLOADS
        .iter()
        .map(|(name, _)| *name)
        .find(|name| *name == value.get_name())
        .expect("every workload is in WORKLOADS")
}

/// `workload`'s parameters: its defaults in [`WORKLOADS`], overridden by
/// the `key=value`s of `raw`. Values are positive integers, except
/// `hibernate` (0 or 1).
pub fn parse_params(workload: &str, raw: &[String]) -> Result<BTreeMap<String, u64>> {
    let defaults = WORKLOADS
        .iter()
        .find(|(name, _)| *name == workload)
        .map(|(_, d)| *d)
        .with_context(|| format!("unknown workload {workload}"))?;
    let mut map: BTreeMap<String, u64> =
        defaults.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    for p in raw {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("parameter {p:?} is not key=value"))?;
        if !map.contains_key(k) {
            bail!("unknown parameter {k:?} for workload {workload}");
        }
        let v: u64 = v
            .parse()
            .with_context(|| format!("parameter {k}: {v:?} is not an integer"))?;
        if k == "hibernate" {
            if v > 1 {
                bail!("parameter {k} must be 0 or 1");
            }
        } else if v == 0 {
            bail!("parameter {k} must be > 0");
        }
        map.insert(k.to_string(), v);
    }
    Ok(map)
}

/// Prints the one JSON result line (the contract in benches/README.md).
pub fn print_line(
    system: &str,
    workload: &str,
    threads: usize,
    params: &BTreeMap<String, u64>,
    out: Outcome,
) -> Result<()> {
    let mut line = Map::new();
    line.insert("system".into(), json!(system));
    line.insert("workload".into(), json!(workload));
    line.insert("threads".into(), json!(threads));
    line.insert("params".into(), json!(params));
    line.insert("value".into(), json!(out.value));
    line.insert("unit".into(), json!(out.unit));
    line.insert("elapsed_ms".into(), json!(out.elapsed_ms));
    for (k, v) in out.extra {
        line.insert(k.into(), json!(v));
    }
    println!("{}", Value::Object(line));
    use std::io::Write;
    std::io::stdout().flush()?;
    Ok(())
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Counts processes that reached a point; the last one wakes the waiter.
pub struct Countdown {
    left: AtomicUsize,
    done: Notify,
}

impl Countdown {
    pub fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            left: AtomicUsize::new(n),
            done: Notify::new(),
        })
    }

    // Inlined into the baselines as when this was a module of each.
    #[inline]
    pub fn tick(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }

    pub async fn wait(&self) {
        // notify_one stores a permit, so a tick racing ahead of wait() is not lost.
        while self.left.load(Ordering::Acquire) != 0 {
            self.done.notified().await;
        }
    }
}

/// This process's memory, in bytes: `VmRSS` (/proc/self/status) and `Pss`
/// (/proc/self/smaps_rollup: like RSS, but a page shared by k mappings
/// counts 1/k; 0 if the kernel does not provide it).
#[derive(Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub pss: u64,
}

impl Memory {
    pub fn now() -> Result<Memory> {
        let field = |file: &str, key: &str| -> Option<u64> {
            let s = std::fs::read_to_string(file).ok()?;
            let kb = s.lines().find_map(|l| l.strip_prefix(key))?;
            kb.split_whitespace().next()?.parse::<u64>().ok()
        };
        let rss = field("/proc/self/status", "VmRSS:").context("no VmRSS in /proc/self/status")?;
        let pss = field("/proc/self/smaps_rollup", "Pss:").unwrap_or(0);
        Ok(Memory {
            rss: rss * 1024,
            pss: pss * 1024,
        })
    }

    /// The idle workloads' outcome: growth from `self` to now per process
    /// (`n` of them, started in `elapsed`).
    pub fn idle_outcome(self, n: usize, elapsed: Duration) -> Result<Outcome> {
        let after = Memory::now()?;
        let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / n as f64;
        Ok(Outcome {
            value: per(after.rss, self.rss),
            unit: "bytes/proc",
            elapsed_ms: ms(elapsed),
            extra: vec![
                ("spawn_rate", n as f64 / elapsed.as_secs_f64()),
                ("pss_bytes_per_proc", per(after.pss, self.pss)),
                ("rss_before_kb", (self.rss / 1024) as f64),
                ("rss_after_kb", (after.rss / 1024) as f64),
            ],
        })
    }
}
