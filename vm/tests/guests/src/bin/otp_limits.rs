//! Per-process limits: a process that grows its memory past its limit, or
//! loops forever on a fuel budget, dies with that reason while its
//! neighbours run on; under a supervisor it is restarted. One case per run
//! (the first argument). Each check prints `ok: <what>` or `FAIL: <what>`.
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use troupe::{
    monitor, receive_down_from, self_pid, spawn, ChildSpec, ExitReason, Limit, Mailbox, Pid,
    Process, Reply, SpawnOptions, Strategy, Supervisor, SupervisorSpec,
};
use troupe_test_guests::check;

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

#[derive(Serialize, Deserialize)]
enum Ask {
    /// How much work have you done?
    Progress(Reply<u64>),
}

/// A neighbour: works (counts) and answers how far it got.
fn neighbour(_: (), mailbox: Mailbox<Ask>) {
    let mut work = 0u64;
    loop {
        for _ in 0..10_000 {
            work = std::hint::black_box(work + 1);
        }
        if let Some(Ask::Progress(reply)) = mailbox.poll() {
            let _ = reply.send(work);
        }
        troupe::sleep(Duration::from_micros(200));
    }
}

fn progress(p: Process<Ask>) -> Option<u64> {
    p.request_timeout(Ask::Progress, Duration::from_secs(10))
        .ok()
}

/// Allocates 1 MiB at a time and keeps it, forever.
fn hog(_: (), _: Mailbox<()>) {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        chunk[0] = kept.len() as u8;
        kept.push(std::hint::black_box(chunk));
    }
}

/// Loops forever without allocating or receiving.
fn spin(_: (), _: Mailbox<()>) {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Starts three neighbours, runs `victim` with `options`, and checks its
/// reason and that the neighbours ran on.
fn victim_dies_neighbours_run_on(
    victim: fn((), Mailbox<()>),
    options: SpawnOptions,
    expected: ExitReason,
    what: &str,
) {
    let neighbours: Vec<Process<Ask>> = (0..3).map(|_| spawn((), neighbour).unwrap()).collect();
    let before: Vec<u64> = neighbours.iter().map(|n| progress(*n).unwrap()).collect();
    let t = Instant::now();
    let pid = options.spawn((), victim).unwrap().pid();
    let m = monitor(pid);
    let reason = receive_down_from(m, WAIT).unwrap();
    println!(
        "{what}: the process ended after {} ms: {reason}",
        t.elapsed().as_millis()
    );
    check(
        reason == expected,
        &format!("{what}: it died with {expected:?}"),
    );
    let after: Vec<Option<u64>> = neighbours.iter().map(|n| progress(*n)).collect();
    check(
        after
            .iter()
            .zip(&before)
            .all(|(a, b)| a.is_some_and(|a| a > *b)),
        &format!("{what}: its three neighbours ran on"),
    );
}

fn a_process_that_exceeds_its_memory_limit_dies_with_that_reason() {
    victim_dies_neighbours_run_on(
        hog,
        SpawnOptions::new().max_memory(8 << 20),
        ExitReason::Limit(Limit::Memory),
        "memory",
    );
    // Under a supervisor, the limited child is restarted like any crash.
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(2, Duration::from_secs(60))
        .child(
            ChildSpec::worker("hog", (), hog)
                .spawn_options(SpawnOptions::new().max_memory(8 << 20)),
        );
    troupe::trap_exit(true);
    let sup = Supervisor::start_link(spec).unwrap();
    let reason = troupe::receive_exit_from(sup.pid(), WAIT).unwrap();
    check(
        reason == ExitReason::Shutdown,
        "memory: a supervisor restarts the limited child, then gives up (intensity 2)",
    );
}

fn a_fuel_limited_infinite_loop_dies_with_that_reason() {
    victim_dies_neighbours_run_on(
        spin,
        SpawnOptions::new().fuel(20_000_000),
        ExitReason::Limit(Limit::Fuel),
        "fuel",
    );
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    let _: Pid = self_pid();
    match case.as_str() {
        "memory" => a_process_that_exceeds_its_memory_limit_dies_with_that_reason(),
        "fuel" => a_fuel_limited_infinite_loop_dies_with_that_reason(),
        other => panic!("unknown case {other:?}"),
    }
    println!("done");
}
