//! A long-running actor app, for containers: the root spawns a few worker
//! processes and, every interval, asks each of them for its beat count with
//! request/reply and prints one line. It runs until it is stopped (SIGTERM:
//! `docker stop`, `ctr task kill`), or for a given number of ticks.
//!
//! `troupe run heartbeat.wasm [WORKERS] [INTERVAL_MS] [TICKS]`
//! (defaults: 3, 1000, 0 = forever).

use std::process::exit;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe::{self_pid, sleep, spawn, Mailbox, Reply};

#[derive(Serialize, Deserialize)]
enum Beat {
    /// Count one beat and answer with the total.
    Beat(Reply<u64>),
}

fn worker(id: usize, mailbox: Mailbox<Beat>) {
    println!("heartbeat: worker {id} is {}", self_pid());
    let mut beats = 0;
    loop {
        match mailbox.receive() {
            Beat::Beat(reply) => {
                beats += 1;
                let _ = reply.send(beats);
            }
        }
    }
}

fn arg(i: usize, default: u64) -> u64 {
    match std::env::args().nth(i) {
        None => default,
        Some(a) => a.parse().unwrap_or_else(|_| {
            eprintln!("heartbeat: argument {i} ({a:?}) is not a number");
            exit(2)
        }),
    }
}

fn main() {
    let workers = arg(1, 3) as usize;
    let interval = Duration::from_millis(arg(2, 1000));
    let ticks = arg(3, 0);
    let pool: Vec<_> = (0..workers)
        .map(|id| {
            spawn(id, worker).unwrap_or_else(|e| {
                eprintln!("heartbeat: cannot spawn worker {id}: {e}");
                exit(1)
            })
        })
        .collect();
    println!("heartbeat: {workers} workers up");
    let mut tick = 0u64;
    while ticks == 0 || tick < ticks {
        tick += 1;
        let answered: Vec<u64> = pool
            .iter()
            .filter_map(|w| w.request_timeout(Beat::Beat, Duration::from_secs(5)).ok())
            .collect();
        println!(
            "heartbeat: tick {tick}: {}/{workers} workers answered, beats {:?}",
            answered.len(),
            answered
        );
        if answered.len() != workers {
            exit(1);
        }
        sleep(interval);
    }
    println!("heartbeat: done after {ticks} ticks");
}
