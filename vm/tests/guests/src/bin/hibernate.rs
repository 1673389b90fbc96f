//! Hibernation (`troupe::hibernate`), one case per run (the first argument).
//! Each check prints `ok: <what>` or `FAIL: <what>`; vm/tests/all/processes.rs
//! asserts on the lines.
use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe::{
    hibernate, link, monitor, receive_down_from, receive_matching, self_pid, send_after, spawn,
    this_process, trap_exit, Event, ExitReason, Mailbox, Pid, Process, Reply,
};
use troupe_test_guests::check;

const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Serialize, Deserialize)]
enum Cmd {
    /// Add a word (its count goes up) and grow the heap by `grow` bytes.
    Add {
        word: String,
        grow: usize,
    },
    /// Report the state: (words counted, checksum of the heap data, pid).
    Report(Reply<(u64, u64, Pid)>),
    Crash,
    Stop,
}

/// State kept across hibernations, all of it on the heap.
struct Counter {
    words: HashMap<String, u64>,
    data: Vec<u8>,
}

fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Handles one message, then hibernates until the next.
fn counter(mut state: Counter, mailbox: Mailbox<Cmd>) {
    match mailbox.receive() {
        Cmd::Add { word, grow } => {
            *state.words.entry(word).or_default() += 1;
            let start = state.data.len();
            state
                .data
                .extend((start..start + grow).map(|i| (i * 7 + 3) as u8));
        }
        Cmd::Report(reply) => {
            let total = state.words.values().sum();
            let _ = reply.send((total, checksum(&state.data), self_pid()));
        }
        Cmd::Crash => panic!("crashing after a wake"),
        Cmd::Stop => return,
    }
    hibernate(state, counter)
}

fn start_counter(_: (), _: Mailbox<Cmd>) {
    let state = Counter {
        words: HashMap::new(),
        data: Vec::new(),
    };
    hibernate(state, counter)
}

fn report(p: Process<Cmd>) -> Option<(u64, u64, Pid)> {
    p.request_timeout(Cmd::Report, WAIT).ok()
}

/// Heap state (a map, a vector grown past the initial memory) survives many
/// hibernations intact.
fn state() {
    let c = spawn((), start_counter).unwrap();
    let mut expected = Vec::new();
    for i in 0..200usize {
        // 1.1 MB in all: the memory grows well past its initial size.
        let grow = 5_000 + i * 5;
        let start = expected.len();
        expected.extend((start..start + grow).map(|i| (i * 7 + 3) as u8));
        c.send(Cmd::Add {
            word: format!("w{}", i % 17),
            grow,
        })
        .unwrap();
    }
    let got = report(c);
    check(
        got.map(|(n, _, _)| n) == Some(200),
        "200 messages, each handled after a wake, all counted",
    );
    check(
        got.map(|(_, sum, _)| sum) == Some(checksum(&expected)),
        "a 1 MB heap vector is intact after 200 hibernations",
    );
    check(
        got.map(|(_, _, pid)| pid) == Some(c.pid()),
        "the woken process keeps its pid",
    );
    let m = monitor(c.pid());
    c.send(Cmd::Stop).unwrap();
    check(
        matches!(receive_down_from(m, Some(WAIT)), Ok(ExitReason::Normal)),
        "returning from the woken function ends the process normally",
    );
}

/// Many more hibernated processes than the pool has slots, all answering.
fn many(n: usize) {
    let counters: Vec<Process<Cmd>> = (0..n).map(|_| spawn((), start_counter).unwrap()).collect();
    for (i, c) in counters.iter().enumerate() {
        for _ in 0..=i % 3 {
            c.send(Cmd::Add {
                word: "x".into(),
                grow: 10,
            })
            .unwrap();
        }
    }
    let right = counters
        .iter()
        .enumerate()
        .filter(|(i, c)| report(**c).map(|(n, _, _)| n) == Some((i % 3 + 1) as u64))
        .count();
    println!("{right} of {n} answered right");
    check(right == n, "every hibernated process wakes and answers");
}

/// Signals reach a hibernated process: a kill, a linked crash, a trapped
/// exit, a DOWN, a timer; a panic after a wake is reported as a trap.
fn signals() {
    // Killed while hibernated.
    let c = spawn((), start_counter).unwrap();
    let m = monitor(c.pid());
    troupe::kill(c.pid()).unwrap();
    check(
        matches!(receive_down_from(m, Some(WAIT)), Ok(ExitReason::Killed)),
        "a hibernated process can be killed",
    );

    // A panic after a wake: the panic hook of the spawn still works.
    let c = spawn((), start_counter).unwrap();
    let m = monitor(c.pid());
    c.send(Cmd::Crash).unwrap();
    let reason = receive_down_from(m, Some(WAIT));
    check(
        matches!(&reason, Ok(ExitReason::Trap(t)) if t.contains("crashing after a wake")),
        "a panic after a wake ends the process with the panic's message",
    );

    // A linked crash kills a hibernated partner that does not trap exits.
    let inbox = Mailbox::<Pid>::this();
    let c = spawn((), start_counter).unwrap();
    let m = monitor(c.pid());
    let crasher = spawn(
        (c.pid(), inbox.process()),
        |(partner, root): (Pid, Process<Pid>), mb: Mailbox<()>| {
            link(partner).unwrap();
            root.send(self_pid()).unwrap();
            mb.receive();
            panic!("linked crash");
        },
    )
    .unwrap();
    inbox.receive_timeout(WAIT).unwrap();
    crasher.send(()).unwrap();
    let reason = receive_down_from(m, Some(WAIT));
    check(
        matches!(&reason, Ok(ExitReason::Trap(t)) if t.contains("linked crash")),
        "a linked crash takes a hibernated process down with its reason",
    );

    // Trapping exits: the EXIT message wakes it; a DOWN and a timer too.
    let events = Mailbox::<String>::this();
    let watcher = spawn(events.process(), |root: Process<String>, _: Mailbox<()>| {
        trap_exit(true);
        let short = spawn((), |_: (), mb: Mailbox<()>| mb.receive()).unwrap();
        link(short.pid()).unwrap();
        monitor(short.pid());
        send_after(&this_process::<()>(), &(), Duration::from_millis(50));
        root.send("ready".into()).unwrap();
        hibernate((root, short, 0), watch)
    })
    .unwrap();
    check(
        events.receive_timeout(WAIT).ok().as_deref() == Some("ready"),
        "the watcher is ready",
    );
    let _ = watcher;
    let mut seen: Vec<String> = (0..3)
        .filter_map(|_| events.receive_timeout(WAIT).ok())
        .collect();
    seen.sort();
    check(
        seen == ["down normal", "exit normal", "timer"],
        &format!("an EXIT, a DOWN and a timer each wake it: {seen:?}"),
    );
}

/// Reports the events it wakes for; the first one stops `short`.
fn watch((root, short, n): (Process<String>, Process<()>, u32), mailbox: Mailbox<()>) {
    let text = match mailbox.receive_event() {
        Event::Message { .. } => {
            // The timer: now let `short` end normally.
            short.send(()).unwrap();
            "timer".to_string()
        }
        Event::Exit { reason, .. } => format!("exit {reason:?}").to_lowercase(),
        Event::Down { reason, .. } => format!("down {reason:?}").to_lowercase(),
    };
    root.send(text).unwrap();
    if n < 2 {
        hibernate((root, short, n + 1), watch)
    }
}

/// A message the process set aside in its stash (which the VM does not
/// see) wakes it at once.
fn stash() {
    let got = Mailbox::<u32>::this();
    let p = spawn(got.process(), |root: Process<u32>, _: Mailbox<u32>| {
        // Wait for 2 while 1 (sent first) goes to the stash.
        let two = receive_matching(Some(WAIT), |m| {
            if matches!(troupe::decode::<u32>(&m.data), Ok(2)) {
                Ok(2u32)
            } else {
                Err(m)
            }
        })
        .unwrap();
        root.send(two).unwrap();
        hibernate(root, |root: Process<u32>, mb: Mailbox<u32>| {
            root.send(mb.receive()).unwrap()
        })
    })
    .unwrap();
    p.send(1).unwrap();
    p.send(2).unwrap();
    let a = got.receive_timeout(WAIT);
    let b = got.receive_timeout(WAIT);
    check(
        matches!((a, b), (Ok(2), Ok(1))),
        "a stashed message wakes a hibernating process at once",
    );
}

/// Burns some fuel for each message, hibernating in between.
fn burner(rounds: u64, mailbox: Mailbox<u64>) {
    let work = mailbox.receive();
    let mut x = rounds;
    for i in 0..work {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
    }
    std::hint::black_box(x);
    hibernate(rounds + 1, burner)
}

/// A fuel budget is kept across hibernations, not refilled at each wake:
/// a process burning a tenth of its budget per message dies of it.
fn fuel() {
    let p = troupe::SpawnOptions::new()
        .fuel(20_000_000)
        .spawn(0u64, burner)
        .unwrap();
    let m = monitor(p.pid());
    let mut sent = 0;
    for _ in 0..100 {
        if p.send(400_000).is_err() {
            break;
        }
        sent += 1;
        troupe::sleep(Duration::from_millis(2));
    }
    let reason = receive_down_from(m, Some(WAIT));
    check(
        matches!(reason, Ok(ExitReason::Limit(troupe::Limit::Fuel))),
        &format!("a hibernating process runs out of its fuel budget ({reason:?})"),
    );
    check(
        sent < 100,
        "it died before handling 100 messages' worth of work",
    );
}

/// Appends each message to a file it opened before hibernating: the open
/// file (a WASI descriptor, in the VM, and wasi-libc's table of it, in the
/// memory) works after each wake.
fn writer(mut file: std::fs::File, mailbox: Mailbox<String>) {
    use std::io::Write;
    let line = mailbox.receive();
    if line == "stop" {
        return;
    }
    file.write_all(line.as_bytes()).unwrap();
    hibernate(file, writer)
}

fn files() {
    let path = "/data/hibernate.txt";
    // The child opens the file (in its own WASI context), then hibernates.
    let p = spawn(path.to_string(), |path: String, _: Mailbox<String>| {
        hibernate(std::fs::File::create(path).unwrap(), writer)
    })
    .unwrap();
    let m = monitor(p.pid());
    for word in ["one ", "two ", "three"] {
        p.send(word.to_string()).unwrap();
        troupe::sleep(Duration::from_millis(5));
    }
    p.send("stop".to_string()).unwrap();
    let ended = receive_down_from(m, Some(WAIT));
    check(
        matches!(ended, Ok(ExitReason::Normal)),
        "the writer ends normally",
    );
    let text = std::fs::read_to_string(path).unwrap_or_default();
    check(
        text == "one two three",
        &format!("a file opened before hibernating is written after each wake: {text:?}"),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("state") => state(),
        Some("many") => many(args[2].parse().unwrap()),
        Some("signals") => signals(),
        Some("stash") => stash(),
        Some("fuel") => fuel(),
        Some("files") => files(),
        other => panic!("unknown case {other:?}"),
    }
    println!("done");
}
