//! The Troupe guest of the benchmark harness: `bench <workload> [key=value ...]`.
//!
//! One `wasm32-wasip1` command implementing every workload of
//! `benches/README.md` with the Rust guest SDK. It prints exactly one JSON line
//! on stdout (the runner's contract) and exits 0, or explains on stderr and
//! exits 1. Times come from WASI's monotonic clock (`Instant`) and start after
//! the root process (this `main`) is running, so compiling and instantiating
//! the module are never part of a number.
//!
//! The runner passes `--env TROUPE_BENCH_THREADS=N` (the VM's `--threads`) so
//! the guest can report, and for `preemption` use, the thread count.

use std::process::exit;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use troupe::{receive_tagged, send_tagged, spawn, Mailbox, Process, SpawnOptions};

use troupe_bench_kernels::{memloop, xorshift32, XORSHIFT_SEED};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((workload, raw)) = args.split_first() else {
        fail("usage: bench <workload> [key=value ...]");
    };
    let Some(w) = WORKLOADS.iter().find(|w| w.name == workload) else {
        let known: Vec<&str> = WORKLOADS.iter().map(|w| w.name).collect();
        fail(format!(
            "unknown workload {workload:?} (known: {})",
            known.join(", ")
        ));
    };
    let params = parse_params(w, raw).unwrap_or_else(|e| fail(e));
    let p = |k: &str| -> u64 {
        params
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| *v)
            .expect("every key has a default")
    };
    let threads: Option<u64> = std::env::var("TROUPE_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok());

    let out = match w.name {
        "spawn" => spawn_bench(p("n")),
        "idle" => idle(p("n"), p("hibernate") == 1),
        "pingpong" => pingpong(p("rounds")),
        "ring" => ring(p("procs"), p("laps")),
        "fanin" => fanin(p("producers"), p("msgs")),
        "payload" => payload(p("size") as usize, p("rounds")),
        "preemption" => preemption(p("iters"), threads.unwrap_or(1)),
        "bounds" => bounds(p("passes"), p("reserve_mib")),
        _ => unreachable!("listed in WORKLOADS"),
    };
    emit(w.name, threads, &params, &out);
}

// ------------------------------------------------------------- parameters

struct Workload {
    name: &'static str,
    /// The full-size defaults, in the order the runner passes them.
    defaults: &'static [(&'static str, u64)],
}

/// Parameters that are switches, 0 (off) or 1 (on), rather than positive
/// integers.
const SWITCHES: &[&str] = &["hibernate"];

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "spawn",
        defaults: &[("n", 100_000)],
    },
    Workload {
        name: "idle",
        // `hibernate=1`: the children wait hibernated (`troupe::hibernate`).
        defaults: &[("n", 100_000), ("hibernate", 0)],
    },
    Workload {
        name: "pingpong",
        defaults: &[("rounds", 1_000_000)],
    },
    Workload {
        name: "ring",
        defaults: &[("procs", 10_000), ("laps", 100)],
    },
    Workload {
        name: "fanin",
        defaults: &[("producers", 1_000), ("msgs", 1_000)],
    },
    Workload {
        name: "payload",
        defaults: &[("size", 1024), ("rounds", 100_000)],
    },
    Workload {
        name: "preemption",
        defaults: &[("iters", 200_000_000)],
    },
    Workload {
        name: "bounds",
        // `reserve_mib` is the VM's `--max-memory`, set by the runner; the
        // guest only reports it.
        defaults: &[("reserve_mib", 64), ("passes", 5_000)],
    },
];

fn parse_params(w: &Workload, raw: &[String]) -> Result<Vec<(&'static str, u64)>, String> {
    let mut params = w.defaults.to_vec();
    for kv in raw {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("parameter {kv:?} is not key=value"))?;
        let slot = params
            .iter_mut()
            .find(|(key, _)| *key == k)
            .ok_or_else(|| format!("unknown parameter {k:?} for workload {}", w.name))?;
        slot.1 = if SWITCHES.contains(&k) {
            v.parse()
                .ok()
                .filter(|&n: &u64| n <= 1)
                .ok_or_else(|| format!("parameter {k}: {v:?} is not 0 or 1"))?
        } else {
            v.parse()
                .ok()
                .filter(|&n: &u64| n > 0)
                .ok_or_else(|| format!("parameter {k}: {v:?} is not a positive integer"))?
        };
    }
    Ok(params)
}

// ----------------------------------------------------------------- output

/// One result: the primary value and its unit, plus named extras.
struct Outcome {
    value: f64,
    unit: &'static str,
    elapsed_ms: f64,
    extra: Vec<(&'static str, f64)>,
}

fn emit(workload: &str, threads: Option<u64>, params: &[(&str, u64)], out: &Outcome) {
    let num = |v: f64| {
        if v.is_finite() {
            format!("{v}")
        } else {
            "null".to_string()
        }
    };
    let mut line = format!("{{\"system\":\"troupe\",\"workload\":\"{workload}\"");
    if let Some(t) = threads {
        line.push_str(&format!(",\"threads\":{t}"));
    }
    let params: Vec<String> = params.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    line.push_str(&format!(",\"params\":{{{}}}", params.join(",")));
    line.push_str(&format!(
        ",\"value\":{},\"unit\":\"{}\",\"elapsed_ms\":{}",
        num(out.value),
        out.unit,
        num(out.elapsed_ms)
    ));
    for (k, v) in &out.extra {
        line.push_str(&format!(",\"{k}\":{}", num(*v)));
    }
    line.push('}');
    println!("{line}");
}

fn fail(what: impl std::fmt::Display) -> ! {
    eprintln!("bench (troupe guest): {what}");
    exit(1)
}

/// Unwraps an SDK result or fails the run, naming what was being done.
fn check<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| fail(format!("{what}: {e}")))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// -------------------------------------------------------------- workloads

/// spawn: `n` processes that start, tell the root they ran, and exit. Timed
/// from the first spawn until the root has heard from all of them.
fn spawn_bench(n: u64) -> Outcome {
    fn child(root: Process<u8>, _mailbox: Mailbox<()>) {
        let _ = root.send(1);
    }
    let mailbox = Mailbox::<u8>::this();
    let me = mailbox.process();
    let t0 = Instant::now();
    for _ in 0..n {
        check(spawn(me, child), "spawn");
    }
    let spawned = t0.elapsed();
    for _ in 0..n {
        mailbox.receive();
    }
    let total = t0.elapsed();
    Outcome {
        value: total.as_secs_f64() * 1e6 / n as f64,
        unit: "us/spawn",
        elapsed_ms: ms(total),
        extra: vec![
            ("spawn_call_us", spawned.as_secs_f64() * 1e6 / n as f64),
            ("total_ms", ms(total)),
        ],
    }
}

/// The VM's resident set size in bytes: `VmRSS` of `/proc/self/status`,
/// which the runner preopens (`--dir /proc::/proc`). `/proc/self` is the
/// VM's host process, since every guest process runs inside it.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_else(|e| {
        fail(format!(
            "cannot read /proc/self/status ({e}): run with `--dir /proc::/proc`"
        ))
    });
    let kb: Option<u64> = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok());
    kb.unwrap_or_else(|| fail("no VmRSS line in /proc/self/status")) * 1024
}

/// The VM's proportional set size in bytes (`Pss` of
/// `/proc/self/smaps_rollup`): like RSS, but a page mapped by k processes
/// counts 1/k. Every process maps the module's memory image, whose pages it
/// has only read are shared, and RSS counts them once per process. 0 if the
/// kernel does not provide it.
fn pss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            let kb = s.lines().find_map(|l| l.strip_prefix("Pss:"))?;
            kb.split_whitespace().next()?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// Fails the run, rather than letting the kernel's OOM killer pick a
/// process, when the machine is nearly out of memory.
fn stop_before_oom(spawned: u64, rss_before: u64) {
    const RESERVE: u64 = 512 << 20;
    let avail = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let kb = info.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?;
            kb.split_whitespace().next()?.parse::<u64>().ok()
        })
        .map(|kb| kb * 1024);
    if avail.is_some_and(|a| a < RESERVE) {
        let per = rss_bytes().saturating_sub(rss_before) / spawned;
        fail(format!(
            "idle: stopped after {spawned} processes, the machine is out of memory \
             (MemAvailable < 512 MiB; about {per} bytes per process)"
        ));
    }
}

/// idle: `n` processes, each of which tells the root it is ready and then
/// waits in `receive` forever. RSS growth of the VM per process, measured
/// once the root has all `n` "ready" messages.
///
/// With `hibernate`, each child waits hibernated instead (`troupe::hibernate`:
/// no stack, no instance, no pool slot; only its changed memory pages,
/// compressed), and `receive`s only once a message wakes it, which none does.
/// The runner then leaves the VM's pool at its default size whatever `n`.
fn idle(n: u64, hibernate: bool) -> Outcome {
    fn child(root: Process<u8>, mailbox: Mailbox<u8>) {
        let _ = root.send(1);
        mailbox.receive();
    }
    fn hibernating_child(root: Process<u8>, _mailbox: Mailbox<u8>) {
        let _ = root.send(1);
        troupe::hibernate((), |_: (), mb: Mailbox<u8>| {
            mb.receive();
        });
    }
    let f: fn(Process<u8>, Mailbox<u8>) = if hibernate { hibernating_child } else { child };
    let mailbox = Mailbox::<u8>::this();
    let me = mailbox.process();
    let before = rss_bytes();
    let pss_before = pss_bytes();
    let t0 = Instant::now();
    // The children do not need the root's `/proc`: without it they hold no
    // file descriptor each (the VM opens one per preopened directory).
    let no_dirs = SpawnOptions::new().preopens(Vec::<String>::new());
    let mut children = Vec::with_capacity(n as usize);
    for i in 0..n {
        children.push(check(no_dirs.spawn(me, f), "spawn"));
        if i % 8192 == 8191 {
            stop_before_oom(i + 1, before);
        }
    }
    for _ in 0..n {
        mailbox.receive();
    }
    let elapsed = t0.elapsed();
    // A child that was preempted between its "ready" and its receive (or
    // its hibernation) parks now: give it a moment before reading the RSS.
    troupe::sleep(Duration::from_millis(20));
    let after = rss_bytes();
    let pss_after = pss_bytes();
    std::hint::black_box(&children);
    Outcome {
        value: after.saturating_sub(before) as f64 / n as f64,
        unit: "bytes/proc",
        elapsed_ms: ms(elapsed),
        extra: vec![
            ("spawn_rate", n as f64 / elapsed.as_secs_f64()),
            (
                "pss_bytes_per_proc",
                pss_after.saturating_sub(pss_before) as f64 / n as f64,
            ),
            ("rss_before_kb", (before / 1024) as f64),
            ("rss_after_kb", (after / 1024) as f64),
        ],
    }
}

/// pingpong: the root and one child bounce a `u64` (typed messages,
/// bincode), `rounds` round trips, timed by the root.
fn pingpong(rounds: u64) -> Outcome {
    fn pong(ping: Process<u64>, mailbox: Mailbox<u64>) {
        loop {
            let n = mailbox.receive();
            if n == u64::MAX || ping.send(n + 1).is_err() {
                return;
            }
        }
    }
    let mailbox = Mailbox::<u64>::this();
    let pong = check(spawn(mailbox.process(), pong), "spawn");
    let t0 = Instant::now();
    let mut m = 0u64;
    for _ in 0..rounds {
        check(pong.send(m + 1), "send");
        m = mailbox.receive();
    }
    let el = t0.elapsed();
    if m != 2 * rounds {
        fail(format!("pingpong: got {m} back, expected {}", 2 * rounds));
    }
    let _ = pong.send(u64::MAX);
    Outcome {
        value: rounds as f64 / el.as_secs_f64(),
        unit: "roundtrips/s",
        elapsed_ms: ms(el),
        extra: vec![("rtt_ns", el.as_secs_f64() * 1e9 / rounds as f64)],
    }
}

#[derive(Serialize, Deserialize)]
enum Ring {
    /// The next process in the ring (sent once, before any token).
    Next(Process<Ring>),
    /// The token, with the number of hops left.
    Token(u64),
}

/// ring: `procs` processes in a ring; one token goes round `laps` times.
fn ring(procs: u64, laps: u64) -> Outcome {
    fn node(root: Process<u8>, mailbox: Mailbox<Ring>) {
        let mut next = None;
        loop {
            match mailbox.receive() {
                Ring::Next(p) => next = Some(p),
                Ring::Token(0) => {
                    let _ = root.send(1);
                    return;
                }
                Ring::Token(left) => {
                    let next = next.expect("ring: token before Next");
                    if next.send(Ring::Token(left - 1)).is_err() {
                        return;
                    }
                }
            }
        }
    }
    let mailbox = Mailbox::<u8>::this();
    let me = mailbox.process();
    let setup = Instant::now();
    let nodes: Vec<Process<Ring>> = (0..procs)
        .map(|_| check(spawn(me, node), "spawn"))
        .collect();
    for (i, n) in nodes.iter().enumerate() {
        let next = nodes[(i + 1) % nodes.len()];
        check(n.send(Ring::Next(next)), "send");
    }
    let setup = setup.elapsed();
    let hops = procs * laps;
    let t0 = Instant::now();
    check(nodes[0].send(Ring::Token(hops)), "send");
    mailbox.receive();
    let el = t0.elapsed();
    Outcome {
        value: hops as f64 / el.as_secs_f64(),
        unit: "msgs/s",
        elapsed_ms: ms(el),
        extra: vec![("setup_ms", ms(setup))],
    }
}

/// fanin: `producers` processes each send `msgs` messages (`u64`) to the
/// root. Timed from the first spawn until the root has all of them.
fn fanin(producers: u64, msgs: u64) -> Outcome {
    fn producer((root, first, msgs): (Process<u64>, u64, u64), _mailbox: Mailbox<()>) {
        for i in 0..msgs {
            if root.send(first + i).is_err() {
                return;
            }
        }
    }
    let mailbox = Mailbox::<u64>::this();
    let me = mailbox.process();
    let total = producers * msgs;
    let t0 = Instant::now();
    for p in 0..producers {
        check(spawn((me, p * msgs, msgs), producer), "spawn");
    }
    let mut sum = 0u64;
    for _ in 0..total {
        sum = sum.wrapping_add(mailbox.receive());
    }
    let el = t0.elapsed();
    if sum != total * (total - 1) / 2 {
        fail(format!(
            "fanin: checksum {sum}, expected {}",
            total * (total - 1) / 2
        ));
    }
    Outcome {
        value: total as f64 / el.as_secs_f64(),
        unit: "msgs/s",
        elapsed_ms: ms(el),
        extra: vec![],
    }
}

/// The tag of payload messages (raw bytes, no bincode).
const PAYLOAD: u64 = 1;

/// payload: ping-pong of a `size`-byte buffer with the raw API
/// (`send_tagged`/`receive_tagged`): each hop copies the bytes out of the
/// sender's linear memory, into the receiver's, and into a fresh `Vec`.
fn payload(size: usize, rounds: u64) -> Outcome {
    fn pong(_: (), _mailbox: Mailbox<()>) {
        loop {
            let m = check(receive_tagged(&[PAYLOAD], None), "receive");
            if m.data.is_empty() || send_tagged(m.from, PAYLOAD, &m.data).is_err() {
                return;
            }
        }
    }
    let pong = check(spawn((), pong), "spawn");
    let mut buf = vec![7u8; size];
    let t0 = Instant::now();
    for _ in 0..rounds {
        check(send_tagged(pong.pid(), PAYLOAD, &buf), "send");
        buf = check(receive_tagged(&[PAYLOAD], None), "receive").data;
    }
    let el = t0.elapsed();
    if buf.len() != size {
        fail(format!(
            "payload: got {} bytes back, expected {size}",
            buf.len()
        ));
    }
    let _ = send_tagged(pong.pid(), PAYLOAD, &[]);
    let secs = el.as_secs_f64();
    Outcome {
        value: (2 * rounds * size as u64) as f64 / secs,
        unit: "bytes/s",
        elapsed_ms: ms(el),
        extra: vec![("roundtrips_per_s", rounds as f64 / secs)],
    }
}

/// Spinners check for "stop" every this many iterations (about a millisecond).
const SPIN_CHUNK: u64 = 1 << 20;

/// preemption: the xorshift loop timed alone (`value`), then again while
/// `2*threads - 1` processes spin on the same loop without ever blocking
/// (`shared_ms`), so that with fair time-slicing each thread is shared by
/// two spinning processes and `slowdown` = shared / alone is about 2.
fn preemption(iters: u64, threads: u64) -> Outcome {
    fn spinner(root: Process<u8>, mailbox: Mailbox<u8>) {
        let _ = root.send(1);
        let mut x = XORSHIFT_SEED;
        loop {
            x = std::hint::black_box(xorshift32(x, SPIN_CHUNK));
            // A poll is a host call that never yields: the spinner gives up
            // its thread only when the VM preempts it.
            if mailbox.poll().is_some() {
                return;
            }
        }
    }
    let t0 = Instant::now();
    let checksum = std::hint::black_box(xorshift32(XORSHIFT_SEED, std::hint::black_box(iters)));
    let alone = t0.elapsed();

    let mailbox = Mailbox::<u8>::this();
    let me = mailbox.process();
    let n_spinners = 2 * threads.max(1) - 1;
    let spinners: Vec<Process<u8>> = (0..n_spinners)
        .map(|_| check(spawn(me, spinner), "spawn"))
        .collect();
    for _ in 0..n_spinners {
        mailbox.receive();
    }
    let t1 = Instant::now();
    let again = std::hint::black_box(xorshift32(XORSHIFT_SEED, std::hint::black_box(iters)));
    let shared = t1.elapsed();
    for s in &spinners {
        let _ = s.send(0);
    }
    if again != checksum {
        fail("preemption: the two loops disagree");
    }
    Outcome {
        value: ms(alone),
        unit: "ms",
        elapsed_ms: ms(alone),
        extra: vec![
            ("shared_ms", ms(shared)),
            ("slowdown", shared.as_secs_f64() / alone.as_secs_f64()),
            ("spinners", n_spinners as f64),
            ("ns_per_iter", alone.as_secs_f64() * 1e9 / iters as f64),
            ("checksum", checksum as f64),
        ],
    }
}

/// bounds: `kernels::memloop` timed in one process. The runner runs it with
/// `--max-memory 64M` (the default: wasmtime bounds-checks every load and
/// store) and `4096M` (a 4 GiB reservation: the checks are elided), so the
/// two Troupe rows differ only by the bounds checks.
fn bounds(passes: u64, reserve_mib: u64) -> Outcome {
    let t0 = Instant::now();
    let checksum = std::hint::black_box(memloop(std::hint::black_box(passes)));
    let el = t0.elapsed();
    Outcome {
        value: ms(el),
        unit: "ms",
        elapsed_ms: ms(el),
        extra: vec![
            ("reserve_mib", reserve_mib as f64),
            ("checksum", checksum as f64),
        ],
    }
}
