//! Links, exit signals, monitors and the registry, one case per run (the
//! first argument), mirroring Erlang/OTP's semantics. Each check prints
//! `ok: <what>` or `FAIL: <what>`; vm/tests/all/otp.rs asserts on the lines.
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe::{
    demonitor, kill, link, monitor, receive_down_from, register, self_pid, send_exit, send_named,
    spawn, spawn_link, trap_exit, whereis, Event, ExitReason, Mailbox, Pid, Process, Reply,
};
use troupe_test_guests::check;

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

/// What test processes are told.
#[derive(Debug, Serialize, Deserialize)]
enum Cmd {
    /// Answer (proves the process is alive).
    Ping(Reply<Pid>),
    /// Panic.
    Crash,
    /// Return from the process function (a normal exit).
    Return,
    /// Report the next event this process receives to the root.
    ReportNextEvent(Process<String>),
}

/// Serves commands until told to crash or return; `trap` turns exit
/// trapping on first.
fn serve(trap: bool, mailbox: Mailbox<Cmd>) {
    trap_exit(trap);
    loop {
        // Events it is not asked to report are ignored.
        if let Event::Message { msg, .. } = mailbox.receive_event() {
            match msg {
                Cmd::Ping(reply) => {
                    let _ = reply.send(self_pid());
                }
                Cmd::Crash => panic!("crashing on purpose"),
                Cmd::Return => return,
                Cmd::ReportNextEvent(to) => {
                    let event = mailbox.receive_event();
                    let _ = to.send(format!("{event:?}"));
                }
            }
        }
    }
}

/// Spawns a `serve(trap)` linked to itself, tells `to` its pid, and serves.
/// Exits are trapped before the pid is told: once `pair` returns, a signal
/// sent to the first process finds it trapping (set later, a kill of the
/// partner could arrive first and end it).
fn linked_pair((trap, to): (bool, Process<Pid>), mailbox: Mailbox<Cmd>) {
    trap_exit(trap);
    let partner = spawn_link(false, serve).unwrap();
    to.send(partner.pid()).unwrap();
    serve(trap, mailbox)
}

fn alive(p: Process<Cmd>) -> bool {
    p.request_timeout(Cmd::Ping, Duration::from_secs(5)).is_ok()
}

/// Starts `linked_pair(trap)`: the pair's first process and its partner.
fn pair(trap: bool) -> (Process<Cmd>, Process<Cmd>) {
    let inbox = Mailbox::<Pid>::this();
    let first = spawn((trap, inbox.process()), linked_pair).unwrap();
    let partner = Process::from_pid(inbox.receive_timeout(Duration::from_secs(10)).unwrap());
    (first, partner)
}

fn a_linked_crash_kills_the_partner() {
    let (first, partner) = pair(false);
    let m_first = monitor(first.pid());
    let m_partner = monitor(partner.pid());
    partner.send(Cmd::Crash).unwrap();
    let crashed = receive_down_from(m_partner, WAIT).unwrap();
    let died = receive_down_from(m_first, WAIT).unwrap();
    println!("the partner crashed: {crashed}");
    println!("the linked process ended: {died}");
    check(
        matches!(&crashed, ExitReason::Trap(t) if t.contains("crashing on purpose")),
        "the crash is a trap with the panic message",
    );
    check(
        died == crashed,
        "the linked process died with the same reason",
    );
}

fn trapping_exits_turns_a_linked_crash_into_a_message() {
    let (first, partner) = pair(true);
    let inbox = Mailbox::<String>::this();
    first.send(Cmd::ReportNextEvent(inbox.process())).unwrap();
    partner.send(Cmd::Crash).unwrap();
    let event = inbox.receive_timeout(Duration::from_secs(10)).unwrap();
    println!("the trapping process received: {event}");
    check(
        event.starts_with(&format!("Exit {{ from: Pid({})", partner.pid().0))
            && event.contains("crashing on purpose"),
        "the trapping process got an EXIT message with the partner's pid and trap",
    );
    check(alive(first), "the trapping process is still alive");
}

fn a_normal_exit_does_not_propagate() {
    // Not trapping: the partner returns, the first lives on.
    let (first, partner) = pair(false);
    let m = monitor(partner.pid());
    partner.send(Cmd::Return).unwrap();
    let reason = receive_down_from(m, WAIT).unwrap();
    check(reason == ExitReason::Normal, "the partner ended normally");
    check(alive(first), "its linked process is still alive");
    // An exit signal `normal` is ignored by a process that does not trap.
    send_exit(first.pid(), &ExitReason::Normal).unwrap();
    check(alive(first), "an exit signal `normal` is ignored");
    // Trapping: the normal exit arrives as a message, and nothing dies.
    let (first, partner) = pair(true);
    let inbox = Mailbox::<String>::this();
    first.send(Cmd::ReportNextEvent(inbox.process())).unwrap();
    partner.send(Cmd::Return).unwrap();
    let event = inbox.receive_timeout(Duration::from_secs(10)).unwrap();
    println!("the trapping process received: {event}");
    check(
        event.ends_with("reason: Normal }"),
        "a trapping process gets EXIT normal",
    );
    check(alive(first), "the trapping process is still alive");
}

fn kill_is_untrappable() {
    let (first, partner) = pair(true);
    // The partner (not trapping) is linked to `first`, which traps exits.
    let m_first = monitor(first.pid());
    let m_partner = monitor(partner.pid());
    // A trappable signal with reason `Killed` is only a message...
    send_exit(first.pid(), &ExitReason::Killed).unwrap();
    check(
        alive(first),
        "send_exit(Killed) to a trapping process is trapped",
    );
    // ...but kill cannot be trapped.
    kill(first.pid()).unwrap();
    let reason = receive_down_from(m_first, WAIT).unwrap();
    check(
        reason == ExitReason::Killed,
        "kill ended the trapping process with Killed",
    );
    let partner_reason = receive_down_from(m_partner, WAIT).unwrap();
    check(
        partner_reason == ExitReason::Killed,
        "its link received Killed and died of it",
    );
    // A process that traps exits sees its killed link's reason as `Killed`.
    let (first, partner) = pair(true);
    let inbox = Mailbox::<String>::this();
    first.send(Cmd::ReportNextEvent(inbox.process())).unwrap();
    kill(partner.pid()).unwrap();
    let event = inbox.receive_timeout(Duration::from_secs(10)).unwrap();
    check(
        event.ends_with("reason: Killed }"),
        "a trapping link gets EXIT Killed",
    );
}

fn monitoring_a_dead_process_gives_down_with_noproc() {
    let quick = spawn((), |(), _: Mailbox<()>| {}).unwrap();
    let m = monitor(quick.pid());
    let first = receive_down_from(m, WAIT).unwrap();
    check(
        first == ExitReason::Normal || first == ExitReason::NoProc,
        "the monitor of a short-lived process fires",
    );
    let m = monitor(quick.pid());
    let reason = receive_down_from(m, Some(Duration::ZERO));
    check(
        reason == Ok(ExitReason::NoProc),
        "monitoring a dead process gives DOWN noproc at once",
    );
    let m = monitor(Pid(u64::MAX / 2));
    check(
        receive_down_from(m, Some(Duration::ZERO)) == Ok(ExitReason::NoProc),
        "monitoring a pid that never existed gives DOWN noproc",
    );
    // A monitor is one-way and demonitor flushes a queued DOWN.
    let (first, _partner) = pair(false);
    let m = monitor(first.pid());
    check(demonitor(m), "demonitor of a live monitor");
    kill(first.pid()).unwrap();
    check(
        receive_down_from(m, Some(Duration::from_millis(200))).is_err(),
        "no DOWN after demonitor",
    );
    let quick = spawn((), |(), _: Mailbox<()>| {}).unwrap();
    let m = monitor(quick.pid());
    troupe::sleep(Duration::from_millis(50));
    check(demonitor(m), "demonitor after the DOWN was queued");
    check(
        receive_down_from(m, Some(Duration::ZERO)).is_err(),
        "demonitor flushed the queued DOWN",
    );
}

fn registry_names_are_freed_on_death() {
    let p = spawn(false, serve).unwrap();
    register("otp-links-server", p.pid()).unwrap();
    check(
        whereis("otp-links-server") == Some(p.pid()),
        "whereis finds it",
    );
    check(
        register("otp-links-server", self_pid()).is_err(),
        "a taken name cannot be registered again",
    );
    check(
        send_named("otp-links-server", &Cmd::Return).is_ok(),
        "send by name reaches it",
    );
    let m = monitor(p.pid());
    let reason = receive_down_from(m, WAIT).unwrap();
    check(reason == ExitReason::Normal, "it ended (told by name)");
    check(
        whereis("otp-links-server").is_none(),
        "its name is free once it has ended",
    );
    check(
        send_named("otp-links-server", &Cmd::Return).is_err(),
        "send to the freed name fails",
    );
    let q = spawn(false, serve).unwrap();
    check(
        register("otp-links-server", q.pid()).is_ok(),
        "the name can be registered again",
    );
    let m = monitor(q.pid());
    q.send(Cmd::Crash).unwrap();
    let _ = receive_down_from(m, WAIT);
    check(
        whereis("otp-links-server").is_none(),
        "a crashed process's name is freed too",
    );
    // link to a dead process: Troupe returns an error (Erlang: noproc exit).
    check(link(q.pid()).is_err(), "link to a dead process is an error");
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    match case.as_str() {
        "linked_crash" => a_linked_crash_kills_the_partner(),
        "trap_exit" => trapping_exits_turns_a_linked_crash_into_a_message(),
        "normal_exit" => a_normal_exit_does_not_propagate(),
        "kill" => kill_is_untrappable(),
        "noproc" => monitoring_a_dead_process_gives_down_with_noproc(),
        "registry" => registry_names_are_freed_on_death(),
        other => panic!("unknown case {other:?}"),
    }
    println!("done");
}
