//! One process per user session, hibernated between requests: a VM holds
//! far more sessions than its process pool has slots, each costing a few KB
//! while it waits.
//!
//! The root starts SESSIONS session servers (a `Server` that hibernates
//! whenever its mailbox is empty: `HIBERNATE_AFTER`), sends VISITS
//! page visits to sessions picked at random, asks every session for its
//! count and checks each against what it sent. It prints how long that
//! took and, if the VM's `/proc` is visible (`--dir /proc::/proc`), the
//! memory per session, then `sessions: OK`, or exits 1 on a mismatch.
//!
//! `troupe run sessions.wasm [SESSIONS] [VISITS]` (defaults: 100000, 200000).

use std::process::exit;
use std::time::{Duration, Instant};

use troupe::{
    start_with, CallResult, Caller, ExitReason, Next, Server, ServerRef, SpawnOptions, StartOptions,
};

/// A user's session: everything it keeps lives on the heap, and survives
/// hibernation (the VM keeps the pages the process changed).
struct Session {
    user: u32,
    visits: u64,
    /// The last few pages visited.
    recent: Vec<String>,
}

impl Server for Session {
    type Arg = u32;
    /// "How many visits?"
    type Call = ();
    type Reply = (u32, u64, Option<String>);
    /// A page visit.
    type Cast = String;
    type Info = ();

    /// Hibernate from the start, and whenever no request is waiting.
    const HIBERNATE_AFTER: Option<Duration> = Some(Duration::ZERO);

    fn init(user: u32) -> Result<Self, ExitReason> {
        Ok(Session {
            user,
            visits: 0,
            recent: Vec::new(),
        })
    }

    fn handle_call(&mut self, _: (), _: Caller<Self::Reply>) -> CallResult<Self::Reply> {
        let last = self.recent.last().cloned();
        CallResult::Reply((self.user, self.visits, last))
    }

    fn handle_cast(&mut self, page: String) -> Next {
        self.visits += 1;
        if self.recent.len() == 4 {
            self.recent.remove(0);
        }
        self.recent.push(page);
        Next::Continue
    }
}

/// The VM's resident memory, if its `/proc` is visible.
fn vm_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    kb.split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let (sessions, visits) = match (args.next(), args.next()) {
        (None, _) => (100_000, 200_000),
        (Some(Ok(s)), None) if s > 0 => (s, 2 * s),
        (Some(Ok(s)), Some(Ok(v))) if s > 0 => (s, v),
        _ => {
            eprintln!("usage: sessions.wasm [SESSIONS] [VISITS]");
            exit(2)
        }
    };

    // Sessions need no directory: without the root's preopens (`/proc`)
    // they hold no file descriptor each.
    let options =
        StartOptions::new().spawn_options(SpawnOptions::new().preopens(Vec::<String>::new()));
    let before = vm_rss();
    let t0 = Instant::now();
    let all: Vec<ServerRef<Session>> = (0..sessions as u32)
        .map(|user| {
            start_with::<Session>(user, options.clone()).unwrap_or_else(|e| {
                eprintln!("sessions: cannot start session {user}: {e}");
                exit(1)
            })
        })
        .collect();
    let started = t0.elapsed();
    // A session is hibernated once it has answered its start; give the last
    // ones a moment before reading the memory.
    troupe::sleep(Duration::from_millis(50));
    let per_session = before
        .zip(vm_rss())
        .map(|(b, a)| a.saturating_sub(b) / sessions);

    // Page visits to random sessions (a xorshift generator: reproducible).
    let mut expected = vec![0u64; sessions as usize];
    let mut x = 0x2545_f491u32;
    let t1 = Instant::now();
    for i in 0..visits {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let user = (x as u64 % sessions) as usize;
        expected[user] += 1;
        all[user].cast(format!("/page/{i}")).unwrap();
    }
    let mut wrong = 0;
    for (user, s) in all.iter().enumerate() {
        match s.call((), Duration::from_secs(30)) {
            Ok((u, n, _)) if u == user as u32 && n == expected[user] => {}
            other => {
                wrong += 1;
                if wrong <= 5 {
                    eprintln!(
                        "session {user}: expected {} visits, got {other:?}",
                        expected[user]
                    );
                }
            }
        }
    }
    let served = t1.elapsed();

    println!(
        "{sessions} sessions started in {:.2} s ({:.1} µs each)",
        started.as_secs_f64(),
        started.as_secs_f64() * 1e6 / sessions as f64
    );
    if let Some(bytes) = per_session {
        println!("memory: {bytes} bytes per hibernated session (VM RSS)");
    }
    println!(
        "{visits} visits and {sessions} calls, each waking a session, in {:.2} s ({:.1} µs each)",
        served.as_secs_f64(),
        served.as_secs_f64() * 1e6 / (visits + sessions) as f64
    );
    if wrong > 0 {
        println!("sessions: {wrong} sessions FAILED");
        exit(1);
    }
    println!("sessions: OK");
}
