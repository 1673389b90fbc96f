//! Processes fail alone: the root spawns five workers; one panics and one
//! executes `unreachable`, both in the middle of their work. The VM prints
//! each trap (with the pid) to stderr and carries on: the three survivors
//! finish and report, and the root exits 0.
//!
//! `troupe run crash.wasm`

use std::process::exit;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use troupe::{self_pid, sleep, spawn, Mailbox, Pid, Process, SendError};

/// How a worker ends.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
enum Fate {
    Finish,
    Panic,
    Trap,
}

/// A worker's orders.
#[derive(Serialize, Deserialize)]
struct Task {
    id: u32,
    fate: Fate,
    /// Sum the Collatz sequence lengths of 1..=n.
    n: u64,
    boss: Process<Report>,
}

/// A survivor's result.
#[derive(Serialize, Deserialize)]
struct Report {
    id: u32,
    pid: Pid,
    total_steps: u64,
}

fn collatz_len(mut x: u64) -> u64 {
    let mut steps = 0;
    while x != 1 {
        x = if x.is_multiple_of(2) {
            x / 2
        } else {
            3 * x + 1
        };
        steps += 1;
    }
    steps
}

fn worker(task: Task, _mailbox: Mailbox<()>) {
    println!(
        "crash: worker {} {} started ({:?})",
        task.id,
        self_pid(),
        task.fate
    );
    let mut total_steps = 0;
    for x in 1..=task.n {
        if x == task.n / 2 {
            match task.fate {
                Fate::Finish => {}
                Fate::Panic => panic!("worker {} gives up halfway, on purpose", task.id),
                Fate::Trap => {
                    eprintln!(
                        "crash: worker {} {} executes `unreachable`",
                        task.id,
                        self_pid()
                    );
                    #[cfg(target_arch = "wasm32")]
                    core::arch::wasm32::unreachable();
                }
            }
        }
        total_steps += collatz_len(x);
    }
    let report = Report {
        id: task.id,
        pid: self_pid(),
        total_steps,
    };
    if task.boss.send(report).is_err() {
        eprintln!("crash: worker {}: the root is gone", task.id);
    }
}

fn main() {
    let fates = [
        Fate::Finish,
        Fate::Finish,
        Fate::Panic,
        Fate::Finish,
        Fate::Trap,
    ];
    let n = 300_000;
    let mailbox = Mailbox::<Report>::this();
    println!("crash: root {} spawns {} workers", self_pid(), fates.len());

    let mut crashers: Vec<(u32, Process<()>)> = Vec::new();
    let mut survivors = 0;
    for (id, &fate) in (0u32..).zip(fates.iter()) {
        let task = Task {
            id,
            fate,
            n,
            boss: mailbox.process(),
        };
        let w = spawn(task, worker).unwrap_or_else(|e| {
            eprintln!("crash: {e}");
            exit(1)
        });
        if fate == Fate::Finish {
            survivors += 1;
        } else {
            crashers.push((id, w));
        }
    }

    let expected: u64 = (1..=n).map(collatz_len).sum();
    for _ in 0..survivors {
        match mailbox.receive_timeout(Duration::from_secs(60)) {
            Ok(r) if r.total_steps == expected => {
                println!(
                    "crash: worker {} {} finished: {} Collatz steps",
                    r.id, r.pid, r.total_steps
                )
            }
            Ok(r) => {
                eprintln!(
                    "crash: worker {} reported {} steps, expected {expected}",
                    r.id, r.total_steps
                );
                exit(1)
            }
            Err(e) => {
                eprintln!("crash: waiting for survivors: {e}");
                exit(1)
            }
        }
    }
    println!("crash: all {survivors} survivors finished");

    // The crashed processes are gone: sending to them fails.
    for (id, w) in crashers {
        let start = Instant::now();
        loop {
            match w.send(()) {
                Err(SendError::NoProcess(pid)) => {
                    println!("crash: worker {id} {pid} is gone (send: no such process)");
                    break;
                }
                Ok(()) if start.elapsed() < Duration::from_secs(10) => {
                    sleep(Duration::from_millis(10))
                }
                Ok(()) => {
                    eprintln!(
                        "crash: worker {id} {} should have crashed but is alive",
                        w.pid()
                    );
                    exit(1)
                }
                Err(e) => {
                    eprintln!("crash: {e}");
                    exit(1)
                }
            }
        }
    }
    println!("crash: the root is fine and exits 0");
}
