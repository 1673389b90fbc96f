//! A hostile guest: each case (the first argument) tries one way out of the
//! sandbox and prints what it managed; vm/tests/all/sandbox.rs checks the host
//! side (files, the VM's health) and the printed lines.
use std::time::Duration;

use troupe::{
    cancel_timer, hibernate, kill, monitor, receive_down_from, receive_tagged, register, self_pid,
    send_after, send_tagged, spawn, unregister, whereis, ExitReason, Limit, Mailbox, Process,
    Reply, SendError, TimerRef,
};
use troupe_test_guests::check;

const WAIT: Duration = Duration::from_secs(20);

/// What a child found when it used its `/b`.
fn child_uses_b(_: (), mailbox: Mailbox<Reply<(String, String)>>) {
    let reply = mailbox.receive();
    let read = match std::fs::read_to_string("/b/secret.txt") {
        Ok(text) => format!("read {text:?}"),
        Err(e) => format!("no: {e}"),
    };
    let wrote = match std::fs::write("/b/pwned", "child was here") {
        Ok(()) => "wrote".to_string(),
        Err(e) => format!("no: {e}"),
    };
    let _ = reply.send((read, wrote));
}

/// Nested preopens `/a` (host H/a) and `/b` (host H/a/b): through `/a` the
/// guest (whose first preopen, descriptor 3, is `/a`) moves `b` away and puts a symlink climbing out of H/a in its place,
/// then spawns a child, which must get the parent's `/b` (the directory
/// now called H/a/b-old), not a new look-up of H/a/b.
fn fs_escape() {
    std::fs::rename("/a/b", "/a/b-old").expect("rename /a/b");
    let linked = symlink("..", 3, "b") == 0;
    println!("symlink planted: {linked}");
    let child = spawn((), child_uses_b).expect("spawn");
    let (read, wrote) = child.request_timeout(|r| r, WAIT).expect("child answers");
    println!("child read: {read}");
    println!("child write: {wrote}");
    check(
        !read.starts_with("read"),
        "the child cannot read outside /a",
    );
    check(
        wrote == "wrote",
        "the child writes into the directory its parent held as /b",
    );
}

/// Registers and frees `name` for itself, forever.
fn churn(name: String, _: Mailbox<()>) {
    let me = self_pid();
    loop {
        let _ = register(&name, me);
        let _ = unregister(&name);
    }
}

/// A process registers and frees a name for itself while another does the
/// same for it, and then it is killed: its name must go with it (a race
/// between `unregister` and `register` once left it bound to the dead pid).
fn registry_race() {
    let mut stale = 0;
    for round in 0..300 {
        let name = format!("race-{round}");
        let churner = spawn(name.clone(), churn).expect("spawn");
        let pid = churner.pid();
        let down = monitor(pid);
        for _ in 0..100 {
            let _ = register(&name, pid);
            let _ = unregister(&name);
        }
        kill(pid).expect("kill");
        receive_down_from(down, Some(WAIT)).expect("DOWN");
        if whereis(&name).is_some() {
            stale += 1;
        }
    }
    println!("stale names: {stale}");
    check(stale == 0, "no name outlives its process");
}

fn hold_a_slot(_: (), _: Mailbox<()>) {
    troupe::sleep(Duration::from_millis(300));
}

fn hibernating(_: (), _: Mailbox<Reply<u32>>) {
    hibernate((), answer_once)
}

fn answer_once(_: (), mailbox: Mailbox<Reply<u32>>) {
    let _ = mailbox.receive().send(7);
}

/// Run with a pool of 4: a hibernated process is sent a request while the
/// root and three busy processes hold every slot for 300 ms, longer than a
/// spawn waits. It must wait for a slot and answer (it used to die).
fn wake_full_pool() {
    let sleeper = spawn((), hibernating).expect("spawn");
    troupe::sleep(Duration::from_millis(50));
    for _ in 0..3 {
        spawn((), hold_a_slot).expect("spawn a slot holder");
    }
    let answer = sleeper.request_timeout(|r| r, WAIT);
    check(
        answer == Ok(7),
        "a process woken on a full pool waits for a slot and answers",
    );
}

/// Tries to cancel another process's timer and reports whether it could.
fn timer_thief((timer, report): (u64, Process<u32>), _: Mailbox<()>) {
    let _ = report.send(u32::from(cancel_timer(TimerRef(timer))));
}

/// Sets a timer to `to` and ends at once.
fn timer_then_exit(to: Process<u32>, _: Mailbox<()>) {
    send_after(&to, &42, Duration::from_millis(200));
}

/// Timers belong to their creator: another process cannot cancel one, and
/// a creator's pending timers go with it.
fn timers() {
    let inbox = Mailbox::<u32>::this();
    let timer = send_after(&inbox.process(), &1, Duration::from_millis(300));
    spawn((timer.0, inbox.process()), timer_thief).expect("spawn");
    let thief_cancelled = inbox.receive_timeout(WAIT).ok();
    check(
        thief_cancelled == Some(0),
        "another process cannot cancel this process's timer",
    );
    check(
        inbox.receive_timeout(WAIT).ok() == Some(1),
        "the timer fires as set",
    );
    spawn(inbox.process(), timer_then_exit).expect("spawn");
    check(
        inbox.receive_timeout(Duration::from_millis(600)).is_err(),
        "a process's pending timers are cancelled when it ends",
    );
}

const MIB: usize = 1 << 20;

/// Sends 16 MiB messages to itself (64 MiB budget) until refused.
fn flood_self() -> usize {
    let me = self_pid();
    let block = vec![7u8; 16 * MIB];
    let mut queued = 0;
    for _ in 0..64 {
        match send_tagged(me, 5, &block) {
            Ok(()) => queued += 1,
            Err(SendError::MailboxFull(_)) => break,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    queued
}

/// Queues messages to itself, then grows its heap past what is left.
fn queue_then_grow(_: (), _: Mailbox<()>) {
    let queued = flood_self();
    assert!(queued >= 1);
    let more = vec![1u8; 40 * MIB];
    std::hint::black_box(&more);
}

/// Sets timers with large payloads until its budget is used up.
fn timer_flood(_: (), _: Mailbox<u32>) {
    let me = troupe::this_process::<Vec<u8>>();
    let block = vec![3u8; 8 * MIB];
    for _ in 0..64 {
        send_after(&me, &block, Duration::from_secs(3600));
    }
}

/// Messages a process holds count against its memory budget (64 MiB).
fn memory_budget() {
    // Self-flood: refused with a full mailbox, long before 64 x 16 MiB.
    let queued = flood_self();
    println!("queued to itself: {queued} x 16 MiB");
    check(
        (1..4).contains(&queued),
        "sends to a process over its budget are refused",
    );
    let mut drained = 0;
    while receive_tagged(&[5], Some(Duration::ZERO)).is_ok() {
        drained += 1;
    }
    check(
        drained == queued && send_tagged(self_pid(), 5, &[0; 1024]).is_ok(),
        "receiving gives the budget back",
    );
    let _ = receive_tagged(&[5], Some(Duration::ZERO));
    // Queued messages and linear memory share one budget.
    let grower = spawn((), queue_then_grow).expect("spawn");
    let down = monitor(grower.pid());
    let reason = receive_down_from(down, Some(WAIT));
    println!("grower: {reason:?}");
    check(
        reason == Ok(ExitReason::Limit(Limit::Memory)),
        "growing past what the queue leaves ends the process with the memory limit",
    );
    // Timers' payloads are the setter's.
    let setter = spawn((), timer_flood).expect("spawn");
    let down = monitor(setter.pid());
    let reason = receive_down_from(down, Some(WAIT));
    println!("timer setter: {reason:?}");
    check(
        matches!(&reason, Ok(ExitReason::Trap(t)) if t.contains("memory budget")),
        "timers' payloads count against their setter's budget",
    );
}

/// Run with a VM budget of 256 MiB: eight processes each grow by 48 MiB.
/// Some are refused (they end with the memory limit), the VM and the rest
/// go on.
fn vm_budget() {
    fn grow(_: (), mailbox: Mailbox<()>) {
        // Grow only when all eight are spawned: a child that grew first
        // could leave too little of the budget for the next spawn's
        // argument (a RESOURCE_LIMIT spawn error, also correct, but not
        // what this case is about).
        mailbox.receive();
        let block = vec![9u8; 48 * MIB];
        std::hint::black_box(&block);
        mailbox.receive();
    }
    let mut children = Vec::new();
    for _ in 0..8 {
        let child = spawn((), grow).expect("spawn");
        children.push((child, monitor(child.pid())));
    }
    for (child, _) in &children {
        child.send(()).expect("a go message fits the budget");
    }
    troupe::sleep(Duration::from_millis(500));
    let mut limited = 0;
    for (child, down) in &children {
        let _ = child.send(());
        match receive_down_from(*down, Some(WAIT)) {
            Ok(ExitReason::Limit(Limit::Memory)) => limited += 1,
            Ok(ExitReason::Normal) => {}
            other => println!("unexpected end: {other:?}"),
        }
    }
    println!("ended at the VM's budget: {limited} of 8");
    check(
        (1..8).contains(&limited),
        "the VM's budget ends the processes that grow past it, and only those",
    );
}

/// Opens files and keeps them open until it cannot open another, telling
/// `report` how many it holds every 100.
fn hoard_files(report: Process<u32>, _: Mailbox<()>) {
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/data/f.txt") {
            Ok(f) => held.push(f),
            Err(e) => {
                println!("open failed after {}: {e}", held.len());
                return;
            }
        }
        if held.len() % 100 == 0 {
            let _ = report.send(held.len() as u32);
        }
    }
}

/// Run with a preopen `/data` holding `f.txt`: a process that opens files
/// without end is stopped at its limit, and the others still open files.
fn open_files() {
    let inbox = Mailbox::<u32>::this();
    let hoarder = spawn(inbox.process(), hoard_files).expect("spawn");
    let down = monitor(hoarder.pid());
    let reason = receive_down_from(down, Some(WAIT));
    let mut most = 0;
    while let Ok(n) = inbox.receive_timeout(Duration::ZERO) {
        most = most.max(n);
    }
    println!("hoarder: held {most}+ files, ended: {reason:?}");
    check(
        reason.is_ok() && (500..=1024).contains(&most),
        "a process opening files without end is stopped at its limit",
    );
    check(
        std::fs::read_to_string("/data/f.txt").is_ok(),
        "the others still open files",
    );
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn path_symlink(old: *const u8, old_len: usize, fd: u32, new: *const u8, new_len: usize)
        -> u16;
}

/// WASI `path_symlink`: a link at `new` (in directory `fd`) to `old`; its
/// errno (std's `symlink_path` is unstable).
fn symlink(old: &str, fd: u32, new: &str) -> u16 {
    // SAFETY: both pointers and lengths describe live strings.
    unsafe { path_symlink(old.as_ptr(), old.len(), fd, new.as_ptr(), new.len()) }
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    match case.as_str() {
        "fs_escape" => fs_escape(),
        "registry_race" => registry_race(),
        "wake_full_pool" => wake_full_pool(),
        "timers" => timers(),
        "memory_budget" => memory_budget(),
        "vm_budget" => vm_budget(),
        "open_files" => open_files(),
        // For the container tests: a root that does the harm itself.
        "abort" => panic!("hostile: aborting on purpose"),
        "memory_bomb" => {
            let mut hoard = Vec::new();
            loop {
                hoard.push(vec![1u8; MIB]);
                std::hint::black_box(&hoard);
            }
        }
        "spin" => {
            println!("spinning");
            loop {
                std::hint::black_box(0);
            }
        }
        other => panic!("unknown case {other:?}"),
    }
    println!("done");
}
