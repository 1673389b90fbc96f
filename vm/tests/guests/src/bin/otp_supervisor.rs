//! Supervisors, one case per run (the first argument), mirroring
//! Erlang/OTP's `supervisor`. Each check prints `ok: <what>` or
//! `FAIL: <what>`; vm/tests/all/otp.rs asserts on the lines.
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use troupe::{
    exit, monitor, receive_down_from, receive_exit_from, self_pid, send_named, trap_exit,
    CallResult, Caller, ChildKind, ChildSpec, ExitReason, Mailbox, Pid, Process, Reply, Restart,
    Server, ServerRef, Shutdown, Strategy, Supervisor, SupervisorError, SupervisorRef,
    SupervisorSpec,
};
use troupe_test_guests::check;

const WAIT: Duration = Duration::from_secs(10);
/// The root registers itself under this name; children report to it.
const ROOT: &str = "otp-root";

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// What children tell the root.
#[derive(Debug, Serialize, Deserialize)]
enum Note {
    /// A child runs (its first act), at this wall-clock time (µs).
    Up { id: String, pid: Pid, at: u64 },
    /// A child is about to crash, at this wall-clock time (µs).
    Crashing { at: u64 },
    /// A server child's `terminate` ran.
    Stopped { id: String },
}

fn note(n: Note) {
    let _ = send_named(ROOT, &n);
}

/// What the root tells worker children.
#[derive(Serialize, Deserialize)]
enum Cmd {
    Crash,
    Exit(ExitReason),
    Ping(Reply<Pid>),
}

/// A worker child: reports that it runs, then obeys.
fn worker(id: String, mailbox: Mailbox<Cmd>) {
    note(Note::Up {
        id,
        pid: self_pid(),
        at: now_us(),
    });
    loop {
        match mailbox.receive() {
            Cmd::Crash => {
                note(Note::Crashing { at: now_us() });
                panic!("crashing on purpose");
            }
            Cmd::Exit(reason) => exit(reason),
            Cmd::Ping(reply) => {
                let _ = reply.send(self_pid());
            }
        }
    }
}

/// A worker that ignores the shutdown signal (it traps exits).
fn stubborn(id: String, mailbox: Mailbox<Cmd>) {
    trap_exit(true);
    note(Note::Up {
        id,
        pid: self_pid(),
        at: now_us(),
    });
    loop {
        let _ = mailbox.receive_event();
    }
}

/// A server child that reports its start and its `terminate`.
struct Noisy {
    id: String,
}

impl Server for Noisy {
    type Arg = (String, bool);
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();

    fn init((id, fail): (String, bool)) -> Result<Self, ExitReason> {
        if fail {
            return Err(ExitReason::Custom(b"init refused".to_vec()));
        }
        trap_exit(true); // so that `terminate` runs on shutdown
        note(Note::Up {
            id: id.clone(),
            pid: self_pid(),
            at: now_us(),
        });
        Ok(Noisy { id })
    }

    fn handle_call(&mut self, _: (), _: Caller<()>) -> CallResult<()> {
        CallResult::Reply(())
    }

    fn terminate(&mut self, _reason: &ExitReason) {
        note(Note::Stopped {
            id: self.id.clone(),
        });
    }
}

/// A server child that reports its start and crashes when cast to (a
/// server's start is synchronous, so the order of starts is known).
struct Member;

impl Server for Member {
    type Arg = String;
    type Call = ();
    type Reply = Pid;
    type Cast = ();
    type Info = ();

    fn init(id: String) -> Result<Self, ExitReason> {
        note(Note::Up {
            id,
            pid: self_pid(),
            at: now_us(),
        });
        Ok(Member)
    }

    fn handle_call(&mut self, _: (), _: Caller<Pid>) -> CallResult<Pid> {
        CallResult::Reply(self_pid())
    }

    fn handle_cast(&mut self, _: ()) -> troupe::Next {
        note(Note::Crashing { at: now_us() });
        panic!("member crashing on purpose");
    }
}

fn member_alive(pid: Pid) -> bool {
    ServerRef::<Member>::from_pid(pid)
        .call((), Duration::from_secs(5))
        .is_ok()
}

fn inbox() -> Mailbox<Note> {
    Mailbox::this()
}

/// Waits for the next note, which must be `Up` of `id`: its pid.
fn wait_up(id: &str) -> Pid {
    match inbox().receive_timeout(WAIT) {
        Ok(Note::Up { id: got, pid, .. }) if got == id => pid,
        other => panic!("expected {id} up, got {other:?}"),
    }
}

/// Waits for `Up` notes of all `ids`, in any order (function children run
/// as soon as spawned, so their first acts may interleave): their pids, in
/// the order of `ids`.
fn wait_ups(ids: &[&str]) -> Vec<Pid> {
    let mut pids = vec![None; ids.len()];
    for _ in ids {
        match inbox().receive_timeout(WAIT) {
            Ok(Note::Up { id, pid, .. }) => match ids.iter().position(|x| *x == id) {
                Some(i) if pids[i].is_none() => pids[i] = Some(pid),
                _ => panic!("unexpected {id} up"),
            },
            other => panic!("expected one of {ids:?} up, got {other:?}"),
        }
    }
    pids.into_iter().map(Option::unwrap).collect()
}

/// The ids of the next `n` notes (`Up` or `Stopped`), in order.
fn next_ids(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| match inbox().receive_timeout(WAIT) {
            Ok(Note::Up { id, .. }) | Ok(Note::Stopped { id }) => id,
            other => panic!("expected a note, got {other:?}"),
        })
        .collect()
}

fn cmd(pid: Pid) -> Process<Cmd> {
    Process::from_pid(pid)
}

fn alive(pid: Pid) -> bool {
    cmd(pid)
        .request_timeout(Cmd::Ping, Duration::from_secs(5))
        .is_ok()
}

fn setup() {
    troupe::register(ROOT, self_pid()).unwrap();
}

fn workers(strategy: Strategy, ids: &[&str]) -> SupervisorSpec {
    let mut spec = SupervisorSpec::new(strategy).intensity(10, Duration::from_secs(10));
    for id in ids {
        spec = spec.child(ChildSpec::worker(*id, id.to_string(), worker));
    }
    spec
}

fn pid_of(sup: &SupervisorRef, id: &str) -> Option<Pid> {
    sup.which_children()
        .unwrap()
        .into_iter()
        .find(|c| c.id == id)
        .and_then(|c| c.pid)
}

fn a_supervisor_restarts_a_crashed_child_within_milliseconds() {
    let sup = Supervisor::start_link(workers(Strategy::OneForOne, &["w"])).unwrap();
    let first = wait_up("w");
    let t = Instant::now();
    cmd(first).send(Cmd::Crash).unwrap();
    let Ok(Note::Crashing { at: crashed_at }) = inbox().receive_timeout(WAIT) else {
        panic!("no crash note")
    };
    let Ok(Note::Up {
        id,
        pid: second,
        at: up_at,
    }) = inbox().receive_timeout(WAIT)
    else {
        panic!("no restart")
    };
    let took = t.elapsed();
    println!(
        "crash to replacement running: {} us (round trip seen by the root: {} us)",
        up_at.saturating_sub(crashed_at),
        took.as_micros()
    );
    check(
        id == "w" && second != first,
        "the crashed child was replaced by a new process",
    );
    check(
        took < Duration::from_secs(2),
        "the replacement ran within 2 s",
    );
    check(alive(second), "the replacement answers");
    let children = sup.which_children().unwrap();
    check(
        children.len() == 1 && children[0].pid == Some(second) && children[0].restarts == 1,
        "which_children shows the new pid and one restart",
    );
}

fn a_child_that_crashes_too_often_takes_the_supervisor_down() {
    trap_exit(true);
    let spec = workers(Strategy::OneForOne, &["w"]).intensity(3, Duration::from_secs(10));
    let sup = Supervisor::start_link(spec).unwrap();
    let mut pid = wait_up("w");
    for n in 1..=4 {
        cmd(pid).send(Cmd::Crash).unwrap();
        let _crashing = inbox().receive_timeout(WAIT).unwrap();
        if n <= 3 {
            pid = wait_up("w");
            println!("restart {n}: {pid}");
        }
    }
    let reason = receive_exit_from(sup.pid(), Some(WAIT)).unwrap();
    println!("the supervisor exited: {reason}");
    check(
        reason == ExitReason::Shutdown,
        "after 4 crashes (intensity 3) the supervisor exits with shutdown",
    );
    check(
        inbox().receive_timeout(Duration::from_millis(300)).is_err(),
        "the child was not restarted a fourth time",
    );
}

/// Crashes child `crash` of a supervisor with children a, b, c and reports
/// which were replaced.
fn crash_one_of_three(
    strategy: Strategy,
    crash: &str,
    expected: usize,
) -> (Vec<String>, [Pid; 3], [Pid; 3]) {
    let mut spec = SupervisorSpec::new(strategy).intensity(10, Duration::from_secs(10));
    for id in ["a", "b", "c"] {
        spec = spec.child(ChildSpec::server::<Member>(id, id.to_string()));
    }
    let sup = Supervisor::start_link(spec).unwrap();
    let before = [wait_up("a"), wait_up("b"), wait_up("c")];
    let index = ["a", "b", "c"].iter().position(|x| *x == crash).unwrap();
    ServerRef::<Member>::from_pid(before[index])
        .cast(())
        .unwrap();
    let _crashing = inbox().receive_timeout(WAIT).unwrap();
    let mut restarted = Vec::new();
    // The restarted children report, in start order; then nothing else.
    let mut wait = WAIT;
    while let Ok(note) = inbox().receive_timeout(wait) {
        match note {
            Note::Up { id, .. } => restarted.push(id),
            other => panic!("unexpected {other:?}"),
        }
        if restarted.len() == expected {
            wait = Duration::from_millis(300); // any more would be wrong
        }
    }
    let after = [
        pid_of(&sup, "a").unwrap(),
        pid_of(&sup, "b").unwrap(),
        pid_of(&sup, "c").unwrap(),
    ];
    println!("{strategy:?}: crashed {crash}, restarted {restarted:?}");
    (restarted, before, after)
}

fn one_for_all_restarts_every_child() {
    let (restarted, before, after) = crash_one_of_three(Strategy::OneForAll, "b", 3);
    check(
        restarted == ["a", "b", "c"],
        "one_for_all: all three restarted, in start order",
    );
    check(
        (0..3).all(|i| before[i] != after[i] && member_alive(after[i])),
        "one_for_all: three new processes",
    );
    check(
        before.iter().all(|p| !member_alive(*p)),
        "one_for_all: the old ones are gone",
    );
}

fn rest_for_one_restarts_the_children_started_after() {
    let (restarted, before, after) = crash_one_of_three(Strategy::RestForOne, "b", 2);
    check(
        restarted == ["b", "c"],
        "rest_for_one: b and c restarted, in order",
    );
    check(
        before[0] == after[0] && member_alive(after[0]),
        "rest_for_one: a kept running untouched",
    );
    check(
        before[1] != after[1] && before[2] != after[2] && !member_alive(before[2]),
        "rest_for_one: c was stopped and replaced",
    );
    let (restarted, before, after) = crash_one_of_three(Strategy::OneForOne, "b", 1);
    check(restarted == ["b"], "one_for_one: only b restarted");
    check(
        before[0] == after[0] && before[2] == after[2],
        "one_for_one: a and c untouched",
    );
}

fn restart_policies_permanent_transient_temporary() {
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(10))
        .child(ChildSpec::worker("perm", "perm".to_string(), worker))
        .child(ChildSpec::worker("trans", "trans".to_string(), worker).restart(Restart::Transient))
        .child(ChildSpec::worker("temp", "temp".to_string(), worker).restart(Restart::Temporary));
    let sup = Supervisor::start_link(spec).unwrap();
    let [perm, trans, temp] = wait_ups(&["perm", "trans", "temp"])[..] else {
        unreachable!()
    };
    let quiet = |what: &str| {
        check(
            inbox().receive_timeout(Duration::from_millis(300)).is_err(),
            what,
        )
    };

    cmd(perm).send(Cmd::Exit(ExitReason::Normal)).unwrap();
    let perm2 = wait_up("perm");
    check(perm2 != perm, "permanent: restarted after a normal exit");

    let m = monitor(trans);
    cmd(trans).send(Cmd::Exit(ExitReason::Normal)).unwrap();
    let _ = receive_down_from(m, Some(WAIT));
    quiet("transient: not restarted after a normal exit");
    check(
        pid_of(&sup, "trans").is_none(),
        "transient: kept as a stopped child",
    );
    let trans = sup.restart_child("trans").unwrap();
    check(wait_up("trans") == trans, "restart_child starts it again");
    let m = monitor(trans);
    cmd(trans).send(Cmd::Exit(ExitReason::Shutdown)).unwrap();
    let _ = receive_down_from(m, Some(WAIT));
    quiet("transient: not restarted after shutdown");
    let trans = sup.restart_child("trans").unwrap();
    let _ = wait_up("trans");
    cmd(trans).send(Cmd::Crash).unwrap();
    let _crashing = inbox().receive_timeout(WAIT).unwrap();
    check(
        wait_up("trans") != trans,
        "transient: restarted after a crash",
    );

    cmd(temp).send(Cmd::Crash).unwrap();
    let _crashing = inbox().receive_timeout(WAIT).unwrap();
    quiet("temporary: not restarted after a crash");
    let ids: Vec<String> = sup
        .which_children()
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    check(
        ids == ["perm", "trans"],
        "temporary: removed from the supervisor",
    );
}

fn children_start_in_order_and_stop_in_reverse_order() {
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::server::<Noisy>("a", ("a".into(), false)))
        .child(ChildSpec::server::<Noisy>("b", ("b".into(), false)))
        .child(ChildSpec::server::<Noisy>("c", ("c".into(), false)))
        .child(
            ChildSpec::worker("stubborn", "stubborn".to_string(), stubborn)
                .shutdown(Shutdown::Timeout(Duration::from_millis(300))),
        );
    let sup = Supervisor::start_link(spec).unwrap();
    let started = next_ids(4);
    println!("start order: {}", started.join(" "));
    check(
        started == ["a", "b", "c", "stubborn"],
        "children start in order",
    );
    let stubborn_pid = pid_of(&sup, "stubborn").unwrap();
    let m = monitor(stubborn_pid);
    let t = Instant::now();
    sup.stop(ExitReason::Normal, WAIT).unwrap();
    let took = t.elapsed();
    let stubborn_reason = receive_down_from(m, Some(WAIT)).unwrap();
    let stopped = next_ids(3);
    println!("stop order: stubborn {}", stopped.join(" "));
    println!("stopping took {} ms", took.as_millis());
    check(stopped == ["c", "b", "a"], "children stop in reverse order");
    check(
        stubborn_reason == ExitReason::Killed,
        "a child that ignores shutdown is killed after its timeout",
    );
    check(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "the shutdown timeout was waited (300 ms), not more than needed",
    );
    check(
        !alive(stubborn_pid) && troupe::whereis("a").is_none(),
        "nothing is left running",
    );
}

fn dynamic_children_can_be_added_and_removed() {
    let sup = Supervisor::start_link(SupervisorSpec::new(Strategy::OneForOne)).unwrap();
    let d1 = sup
        .start_child(ChildSpec::worker("d1", "d1".to_string(), worker))
        .unwrap();
    check(
        wait_up("d1") == d1,
        "start_child starts a child at run time",
    );
    check(
        sup.start_child(ChildSpec::worker("d1", "d1".to_string(), worker))
            == Err(SupervisorError::AlreadyStarted(d1)),
        "a second child with the same id is refused (already started)",
    );
    let sub = sup
        .start_child(ChildSpec::supervisor(
            "sub",
            workers(Strategy::OneForOne, &["leaf"]),
        ))
        .unwrap();
    let _leaf = wait_up("leaf");
    let counts = sup.count_children().unwrap();
    println!("count_children: {counts:?}");
    check(
        counts.specs == 2 && counts.active == 2 && counts.workers == 1 && counts.supervisors == 1,
        "count_children counts workers and supervisors",
    );
    let children = sup.which_children().unwrap();
    check(
        children.len() == 2
            && children[1].kind == ChildKind::Supervisor
            && children[1].pid == Some(sub),
        "which_children lists them in order",
    );
    check(
        sup.delete_child("d1") == Err(SupervisorError::Running),
        "a running child cannot be deleted",
    );
    let m = monitor(d1);
    sup.terminate_child("d1").unwrap();
    check(
        receive_down_from(m, Some(WAIT)) == Ok(ExitReason::Shutdown),
        "terminate_child stops it with shutdown",
    );
    check(pid_of(&sup, "d1").is_none(), "its spec stays, not running");
    check(
        sup.start_child(ChildSpec::worker("d1", "d1".to_string(), worker))
            == Err(SupervisorError::AlreadyPresent),
        "start_child of a stopped id is refused (already present)",
    );
    let d1 = sup.restart_child("d1").unwrap();
    check(wait_up("d1") == d1, "restart_child starts it again");
    sup.terminate_child("d1").unwrap();
    sup.delete_child("d1").unwrap();
    check(
        sup.which_children().unwrap().len() == 1,
        "delete_child removes it",
    );
    let failed = sup.start_child(ChildSpec::server::<Noisy>("bad", ("bad".into(), true)));
    if let Err(e) = &failed {
        println!("a child whose init fails: {e}");
    }
    check(
        matches!(failed, Err(SupervisorError::StartFailed(ExitReason::Custom(ref r))) if r == b"init refused"),
        "a child that fails to start is reported with its reason",
    );
    check(sup.count_children().unwrap().specs == 1, "and is not added");
    check(
        sup.terminate_child("nope") == Err(SupervisorError::NotFound),
        "unknown ids are reported",
    );
}

fn supervisors_nest_and_a_failing_subtree_is_restarted_by_its_supervisor() {
    let sub = workers(Strategy::OneForOne, &["leaf"]).intensity(1, Duration::from_secs(10));
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(10))
        .child(ChildSpec::supervisor("sub", sub))
        .child(ChildSpec::worker("sibling", "sibling".to_string(), worker));
    let top = Supervisor::start_link(spec).unwrap();
    let [leaf, sibling] = wait_ups(&["leaf", "sibling"])[..] else {
        unreachable!()
    };
    let sub1 = pid_of(&top, "sub").unwrap();
    let m = monitor(sub1);
    cmd(leaf).send(Cmd::Crash).unwrap();
    let _crashing = inbox().receive_timeout(WAIT).unwrap();
    let leaf2 = wait_up("leaf");
    check(
        pid_of(&top, "sub") == Some(sub1),
        "one crash: the subtree's supervisor restarts the leaf itself",
    );
    cmd(leaf2).send(Cmd::Crash).unwrap();
    let _crashing = inbox().receive_timeout(WAIT).unwrap();
    let reason = receive_down_from(m, Some(WAIT)).unwrap();
    println!("the subtree supervisor ended: {reason}");
    check(
        reason == ExitReason::Shutdown,
        "two crashes (intensity 1): the subtree's supervisor gives up with shutdown",
    );
    let leaf3 = wait_up("leaf");
    let children = top.which_children().unwrap();
    for c in &children {
        println!(
            "top child {} {:?} pid {:?} restarts {}",
            c.id, c.kind, c.pid, c.restarts
        );
    }
    let sub2 = children[0].pid.unwrap();
    check(
        sub2 != sub1 && children[0].restarts == 1,
        "its supervisor saw it end and restarted the subtree",
    );
    check(alive(leaf3), "the new subtree runs a new leaf");
    check(
        children[1].pid == Some(sibling) && children[1].restarts == 0,
        "the sibling was not touched",
    );
}

fn restart_latency_over_many_crashes(n: usize, exit_mode: bool) {
    let spec = workers(Strategy::OneForOne, &["w"]).intensity(u32::MAX, Duration::from_secs(1));
    let sup = Supervisor::start_link(spec).unwrap();
    let mut pid = wait_up("w");
    let mut latencies = Vec::with_capacity(n);
    let mut round_trips = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        if exit_mode {
            cmd(pid)
                .send(Cmd::Exit(ExitReason::Custom(b"boom".to_vec())))
                .unwrap();
        } else {
            cmd(pid).send(Cmd::Crash).unwrap();
        }
        let crashed_at = match inbox().receive_timeout(WAIT) {
            Ok(Note::Crashing { at }) => Some(at),
            Ok(Note::Up { pid: p, .. }) => {
                // exit mode: no crash note, the replacement is up.
                pid = p;
                None
            }
            other => panic!("unexpected {other:?}"),
        };
        if let Some(crashed_at) = crashed_at {
            match inbox().receive_timeout(WAIT) {
                Ok(Note::Up { pid: p, at, .. }) => {
                    pid = p;
                    latencies.push(at.saturating_sub(crashed_at));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        round_trips.push(t.elapsed().as_micros() as u64);
    }
    let stats = |v: &mut Vec<u64>| {
        v.sort_unstable();
        let sum: u64 = v.iter().sum();
        (
            v[v.len() / 2],
            v[v.len() * 99 / 100],
            v[v.len() - 1],
            sum / v.len() as u64,
        )
    };
    if !exit_mode {
        let (med, p99, worst, mean) = stats(&mut latencies);
        println!(
            "crash to replacement running over {n} crashes: median {med} us, p99 {p99} us, \
             worst {worst} us, mean {mean} us"
        );
    }
    let (med, p99, worst, mean) = stats(&mut round_trips);
    println!(
        "crash command to replacement's first message (root's clock) over {n}: median {med} us, \
         p99 {p99} us, worst {worst} us, mean {mean} us"
    );
    let counts = sup.count_children().unwrap();
    check(
        counts.restarts == n as u64,
        &format!("the supervisor counted {n} restarts"),
    );
    check(worst_ok(&round_trips), "every restart took less than 2 s");
}

fn worst_ok(v: &[u64]) -> bool {
    v.iter().all(|&us| us < 2_000_000)
}

fn main() {
    setup();
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map(String::as_str).unwrap_or("");
    match case {
        "restart" => a_supervisor_restarts_a_crashed_child_within_milliseconds(),
        "intensity" => a_child_that_crashes_too_often_takes_the_supervisor_down(),
        "one_for_all" => one_for_all_restarts_every_child(),
        "rest_for_one" => rest_for_one_restarts_the_children_started_after(),
        "policies" => restart_policies_permanent_transient_temporary(),
        "order" => children_start_in_order_and_stop_in_reverse_order(),
        "dynamic" => dynamic_children_can_be_added_and_removed(),
        "nested" => supervisors_nest_and_a_failing_subtree_is_restarted_by_its_supervisor(),
        "latency" => {
            let n = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
            let exit_mode = args.get(3).is_some_and(|m| m == "exit");
            restart_latency_over_many_crashes(n, exit_mode)
        }
        other => panic!("unknown case {other:?}"),
    }
    println!("done");
}
