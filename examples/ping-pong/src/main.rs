//! Two processes bounce a ball back and forth N times and report the rate.
//!
//! `troupe run ping-pong.wasm [N]` (N defaults to 100000).

use std::process::exit;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use troupe::{self_pid, spawn, Mailbox, Process, Reply};

/// What pong's mailbox takes.
#[derive(Serialize, Deserialize)]
enum Pong {
    /// Send this number back.
    Ball(u64),
    /// How many balls have you seen?
    Count(Reply<u64>),
    /// Say goodbye, answer, and end.
    Stop(Reply<()>),
}

/// The pong process: returns every ball to `ping` (the root's mailbox of
/// numbers) until told to stop.
fn pong(ping: Process<u64>, mailbox: Mailbox<Pong>) {
    println!(
        "pong {}: started, bouncing balls back to {}",
        self_pid(),
        ping.pid()
    );
    let mut seen = 0u64;
    loop {
        match mailbox.receive() {
            Pong::Ball(n) => {
                seen += 1;
                if ping.send(n).is_err() {
                    return; // ping is gone: nothing left to do
                }
            }
            Pong::Count(reply) => {
                let _ = reply.send(seen);
            }
            Pong::Stop(reply) => {
                println!("pong {}: stopping after {seen} balls", self_pid());
                let _ = reply.send(());
                return;
            }
        }
    }
}

fn fail(what: &str, error: impl std::fmt::Display) -> ! {
    eprintln!("ping-pong: {what}: {error}");
    exit(1)
}

fn main() {
    let rounds: u64 = match std::env::args().nth(1) {
        None => 100_000,
        Some(arg) => arg.parse().unwrap_or_else(|_| {
            eprintln!("usage: ping-pong [ROUND_TRIPS]  (got {arg:?})");
            exit(2)
        }),
    };

    let mailbox = Mailbox::<u64>::this();
    println!("ping-pong: root process {}", self_pid());
    let pong = spawn(mailbox.process(), pong).unwrap_or_else(|e| fail("spawn", e));
    println!("ping-pong: spawned pong {}", pong.pid());

    // A few round trips to show, then the timed ones.
    let shown = 3;
    for ball in 0..shown {
        let start = Instant::now();
        pong.send(Pong::Ball(ball))
            .unwrap_or_else(|e| fail("send", e));
        let back = mailbox.receive();
        println!(
            "ping-pong: {} sent ball {ball} to {}, got {back} back in {} us",
            self_pid(),
            pong.pid(),
            start.elapsed().as_micros()
        );
    }

    let start = Instant::now();
    for ball in 0..rounds {
        pong.send(Pong::Ball(ball))
            .unwrap_or_else(|e| fail("send", e));
        let back = mailbox.receive();
        if back != ball {
            fail("wrong ball", format!("sent {ball}, got {back} back"));
        }
    }
    let secs = start.elapsed().as_secs_f64();

    let timeout = Duration::from_secs(10);
    let seen = pong
        .request_timeout(Pong::Count, timeout)
        .unwrap_or_else(|e| fail("count request", e));
    if seen != shown + rounds {
        fail(
            "count",
            format!("pong saw {seen} balls, expected {}", shown + rounds),
        );
    }
    println!("ping-pong: pong saw {seen} balls");
    pong.request_timeout(Pong::Stop, timeout)
        .unwrap_or_else(|e| fail("stop request", e));

    let rate = rounds as f64 / secs.max(f64::MIN_POSITIVE);
    println!("ping-pong: {rounds} round trips in {secs:.3} s = {rate:.0} round trips/s");
}
