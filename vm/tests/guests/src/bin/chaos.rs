//! The chaos run: `chaos WAVES PER_WAVE` spawns WAVES x PER_WAVE processes
//! that each do one kind of harm (trap, bad pointer, memory bomb, mailbox
//! flood, infinite loop, stack overflow, waiting to be killed, hibernation,
//! a socket storm, a timer storm, or nothing), while a workload of
//! request/reply traffic runs beside them and must give the exact answer.
//!
//! It prints `warm` (after a first wave of the same chaos, so that the
//! pool's slots and the allocators are at their high-water marks) and
//! `quiet` (after the other waves), each followed by a pause in which
//! vm/tests/all/chaos.rs reads the VM's RSS, then a tally of the faults and the
//! reasons their processes ended with, and `ok:`/`FAIL:` lines.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use troupe::net::TcpListener;
use troupe::{
    hibernate, kill, monitor, receive_down_from, self_pid, send_after, send_tagged, spawn,
    ExitReason, Mailbox, MonitorRef, Process, Reply, SendError, SpawnOptions,
};
use troupe_test_guests::check;

const FAULTS: [&str; 11] = [
    "trap",
    "bad pointer",
    "memory bomb",
    "mailbox flood",
    "infinite loop",
    "stack overflow",
    "killed while waiting",
    "hibernation",
    "socket storm",
    "timer storm",
    "nothing",
];
const WAIT: Duration = Duration::from_secs(60);

#[link(wasm_import_module = "troupe_message")]
extern "C" {
    fn send(pid: i64, tag: i64, ptr: i32, len: i32) -> i32;
}

/// Recurses until the stack runs out (the bound is never reached).
fn recurse(n: u64) -> u64 {
    let frame = [n; 16];
    std::hint::black_box(&frame);
    if n == u64::MAX {
        return 0;
    }
    recurse(n + 1) + frame[3]
}

fn wake(_: (), mailbox: Mailbox<u32>) {
    mailbox.receive();
}

fn worker(fault: usize, mailbox: Mailbox<u32>) {
    match FAULTS[fault] {
        "trap" => panic!("chaos: a trap"),
        // SAFETY: the pointer is out of bounds on purpose: the VM traps.
        "bad pointer" => unsafe {
            send(1, 0, -16, 64);
        },
        "memory bomb" => {
            let mut hoard = Vec::new();
            loop {
                hoard.push(vec![1u8; 256 << 10]);
                std::hint::black_box(&hoard);
            }
        }
        "mailbox flood" => {
            let block = vec![0u8; 64 << 10];
            while !matches!(
                send_tagged(self_pid(), 9, &block),
                Err(SendError::MailboxFull(_))
            ) {}
        }
        "infinite loop" => loop {
            std::hint::black_box(0);
        },
        "stack overflow" => {
            std::hint::black_box(recurse(0));
        }
        "killed while waiting" => {
            mailbox.receive();
        }
        "hibernation" => hibernate((), wake),
        "socket storm" => {
            let mut held = Vec::new();
            for _ in 0..8 {
                match TcpListener::bind("127.0.0.1:0") {
                    Ok(l) => held.push(l),
                    Err(_) => break,
                }
            }
            std::hint::black_box(&held);
        }
        "timer storm" => {
            let me = mailbox.process();
            for i in 0..1000 {
                send_after(&me, &i, Duration::from_secs(3600));
            }
        }
        _ => {}
    }
}

/// Dirties every page of its shadow stack (the first MiB of its memory,
/// which a freed slot keeps resident for the next process, as a stack
/// overflow leaves it), then waits to be told to end: a wave of these
/// brings every slot the chaos uses to the most it keeps resident.
fn dirty(_: (), mailbox: Mailbox<()>) {
    let here = 0u8;
    let top = std::ptr::addr_of!(here) as usize;
    for page in (4096..top.saturating_sub(4096)).step_by(4096) {
        // SAFETY: unused stack below this frame, in this process's own
        // linear memory (the stack grows down from 1 MiB).
        unsafe { std::ptr::write_volatile(page as *mut u8, 0) };
    }
    mailbox.receive();
}

#[derive(Serialize, Deserialize)]
enum Counter {
    Add(u64),
    Get(Reply<u64>),
}

fn counter(_: (), mailbox: Mailbox<Counter>) {
    let mut total = 0u64;
    loop {
        match mailbox.receive() {
            Counter::Add(n) => total += n,
            Counter::Get(reply) => {
                let _ = reply.send(total);
            }
        }
    }
}

/// The workload: adds 1..=N, checking the running total now and then.
fn workload((n, report): (u64, Process<(u64, u64)>), _: Mailbox<()>) {
    let c = spawn((), counter).expect("spawn the counter");
    let mut checked = 0;
    for i in 1..=n {
        c.send(Counter::Add(i)).expect("add");
        if i % 1000 == 0 {
            let total: u64 = c.request_timeout(Counter::Get, WAIT).expect("get");
            assert_eq!(total, i * (i + 1) / 2);
            checked += 1;
        }
    }
    let total: u64 = c.request_timeout(Counter::Get, WAIT).expect("get");
    let _ = report.send((total, checked));
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("WAVES PER_WAVE"))
        .collect();
    let (waves, per_wave) = (args[0], args[1] as usize);
    // A third argument runs that fault only (to find which one costs what).
    let only = args.get(2).map(|f| *f as usize);
    let small = SpawnOptions::new().max_memory(3 << 20);

    let results = Mailbox::<(u64, u64)>::this();
    let n = 200_000u64;
    spawn((n, results.process()), workload).expect("spawn the workload");

    let started = Instant::now();
    let mut spawned = vec![0u64; FAULTS.len()];
    let mut ends: HashMap<(usize, String), u64> = HashMap::new();
    let mut missing = 0u64;
    // Wave 0 warms up, and a wave of `dirty` processes after it: the pool's
    // slots (each keeps up to 1 MiB resident for the next process), the
    // allocator's and the timer wheel's high-water marks are reached once;
    // then `warm` is printed and the RSS read. The waves after it must not
    // add to it.
    for wave in 0..=waves {
        if wave == 1 {
            let mut dirtied = Vec::new();
            for _ in 0..per_wave {
                let p = small.spawn((), dirty).expect("spawn");
                dirtied.push((p, monitor(p.pid())));
            }
            for (p, _) in &dirtied {
                let _ = p.send(());
            }
            for (_, down) in dirtied {
                let _ = receive_down_from(down, Some(WAIT));
            }
            println!("warm");
            troupe::sleep(Duration::from_secs(2));
        }
        if wave > 1 {
            // A checkpoint: vm/tests/all/chaos.rs reads the RSS here.
            println!("wave {wave}");
            troupe::sleep(Duration::from_millis(300));
        }
        let mut live: Vec<(usize, Process<u32>, MonitorRef)> = Vec::new();
        for i in 0..per_wave {
            let fault = only.unwrap_or((i * 7 + wave as usize * 3) % FAULTS.len());
            let p = small.spawn(fault, worker).expect("spawn a worker");
            live.push((fault, p, monitor(p.pid())));
            spawned[fault] += 1;
        }
        troupe::sleep(Duration::from_millis(50));
        for (fault, p, _) in &live {
            match FAULTS[*fault] {
                "infinite loop" | "killed while waiting" => {
                    let _ = kill(p.pid());
                }
                "hibernation" => {
                    let _ = p.send(1);
                }
                _ => {}
            }
        }
        for (fault, _, down) in live {
            match receive_down_from(down, Some(WAIT)) {
                Ok(reason) => {
                    let kind = match reason {
                        ExitReason::Trap(_) => "trap".to_string(),
                        other => format!("{other:?}"),
                    };
                    *ends.entry((fault, kind)).or_default() += 1;
                }
                Err(_) => missing += 1,
            }
        }
    }
    let (total, checked) = results
        .receive_timeout(WAIT)
        .expect("the workload's result");
    println!(
        "chaos: {} processes in {} waves of {per_wave}, {:.1?}",
        spawned.iter().sum::<u64>(),
        waves + 1,
        started.elapsed()
    );
    for (fault, name) in FAULTS.iter().enumerate() {
        let mut how: Vec<String> = ends
            .iter()
            .filter(|((f, _), _)| *f == fault)
            .map(|((_, kind), count)| format!("{kind} {count}"))
            .collect();
        how.sort();
        println!(
            "  {name}: {} spawned, ended: {}",
            spawned[fault],
            how.join(", ")
        );
    }
    check(missing == 0, "every process that ended produced its DOWN");
    check(
        total == n * (n + 1) / 2 && checked == n / 1000,
        "the workload beside the chaos gave the exact answer",
    );
    println!("quiet");
    troupe::sleep(Duration::from_secs(2));
    println!("done");
}
