//! The Rust half of the `go-supervised` example: a Rust supervisor whose
//! children are Go worker processes (`../worker/main.go`).
//!
//! ```sh
//! troupe run --dir DIR::/modules go-supervised.wasm /modules/go-worker.wasm [CRASHES]
//! ```
//!
//! The root loads the Go module, starts a one-for-one supervisor with two Go
//! workers (`ChildSpec::module`, each registered under its name), asks them
//! to square numbers, and then makes worker `a` crash `CRASHES` times (a Go
//! panic). Each time the supervisor restarts it with a fresh Go process and
//! the name moves to the new pid; worker `b` is untouched and keeps its
//! state. Finally the supervisor is stopped, and stops its Go children.

use std::process::exit;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use troupe::{
    monitor, receive_down_from, whereis, ChildSpec, ExitReason, Module, Pid, Process, Reply,
    SpawnOptions, Strategy, Supervisor, SupervisorSpec,
};

/// What a Go worker's mailbox takes (the Go side: `Job` in `main.go`).
#[derive(Serialize, Deserialize, Debug)]
enum Job {
    /// Answer `n * n`.
    Square(u64, Reply<u64>),
    /// Panic with this text.
    Crash(String),
    /// Answer the worker's statistics.
    Stats(Reply<Stats>),
}

#[derive(Serialize, Deserialize, Debug)]
struct Stats {
    name: String,
    pid: u64,
    jobs: u32,
}

const WORKERS: [&str; 2] = ["a", "b"];
const TIMEOUT: Duration = Duration::from_secs(10);

fn fail(what: &str, error: impl std::fmt::Display) -> ! {
    eprintln!("go-supervised: {what}: {error}");
    exit(1)
}

/// The registered worker `name`.
fn worker(name: &str) -> Process<Job> {
    Process::whereis(&format!("worker-{name}"))
        .unwrap_or_else(|| fail("whereis", format!("no worker-{name}")))
}

fn square(name: &str, n: u64) -> u64 {
    worker(name)
        .request_timeout(|r| Job::Square(n, r), TIMEOUT)
        .unwrap_or_else(|e| fail("square", e))
}

fn stats(name: &str) -> Stats {
    worker(name)
        .request_timeout(Job::Stats, TIMEOUT)
        .unwrap_or_else(|e| fail("stats", e))
}

/// Waits until `worker-{name}` names a process other than `old`.
fn wait_for_restart(name: &str, old: Pid) -> Pid {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match whereis(&format!("worker-{name}")) {
            Some(pid) if pid != old => return pid,
            _ if Instant::now() > deadline => fail("restart", "the worker was not restarted"),
            _ => troupe::sleep(Duration::from_millis(1)),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("/modules/go-worker.wasm");
    let crashes: u32 = match args.get(2).map(|s| s.parse()) {
        None => 3,
        Some(Ok(n)) => n,
        Some(Err(e)) => fail("usage: go-supervised [MODULE] [CRASHES]", e),
    };
    let module = Module::from_file(path).unwrap_or_else(|e| fail("load", e));
    println!("go-supervised: loaded {path}");

    let mut spec =
        SupervisorSpec::new(Strategy::OneForOne).intensity(crashes + 1, Duration::from_secs(10));
    for name in WORKERS {
        spec = spec.child(
            ChildSpec::module(format!("go-{name}"), module, &name.to_string())
                .name(format!("worker-{name}"))
                .spawn_options(SpawnOptions::new().args(["go-worker", name])),
        );
    }
    let sup = Supervisor::start_link(spec).unwrap_or_else(|e| fail("start supervisor", e));
    println!("go-supervised: supervisor {} started", sup.pid());

    for name in WORKERS {
        let n = 7;
        println!(
            "go-supervised: worker {name} squares {n}: {}",
            square(name, n)
        );
    }

    for i in 1..=crashes {
        let old = worker("a").pid();
        let watch = monitor(old);
        worker("a")
            .send(Job::Crash(format!("crash {i} of {crashes}, on purpose")))
            .unwrap_or_else(|e| fail("send", e));
        let reason = receive_down_from(watch, Some(TIMEOUT)).unwrap_or_else(|e| fail("down", e));
        let new = wait_for_restart("a", old);
        println!("go-supervised: worker a {old} ended ({reason}); restarted as {new}");
        let n = 10 + u64::from(i);
        println!("go-supervised: worker a squares {n}: {}", square("a", n));
    }

    let (a, b) = (stats("a"), stats("b"));
    println!(
        "go-supervised: stats: a {} did {} job(s), b {} did {} job(s)",
        a.pid, a.jobs, b.pid, b.jobs
    );
    for child in sup
        .which_children()
        .unwrap_or_else(|e| fail("which_children", e))
    {
        println!(
            "go-supervised: child {}: {}, {} restart(s)",
            child.id,
            child.pid.map_or("not running".into(), |p| p.to_string()),
            child.restarts
        );
    }

    let b_pid = worker("b").pid();
    let watch = monitor(b_pid);
    sup.stop(ExitReason::Normal, TIMEOUT)
        .unwrap_or_else(|e| fail("stop", e));
    let reason = receive_down_from(watch, Some(TIMEOUT)).unwrap_or_else(|e| fail("down", e));
    println!("go-supervised: supervisor stopped; worker b {b_pid} ended ({reason})");
    println!("go-supervised: OK");
}
