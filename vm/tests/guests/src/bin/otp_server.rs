//! The gen_server-like `Server`: calls, casts, infos (timers, EXIT, DOWN),
//! deferred replies, time-outs, a server dying during a call, names,
//! failing init, stop and terminate. Each check prints `ok: <what>` or
//! `FAIL: <what>`; vm/tests/all/otp.rs asserts on the lines.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use troupe::{
    call_named, monitor, receive_down_from, receive_matching, receive_tagged, self_pid, send_exit,
    send_named, spawn, spawn_link, this_process, trap_exit, CallError, CallResult, Caller, Event,
    ExitReason, Mailbox, Next, Pid, Server, ServerRef, StartError,
};
use troupe_test_guests::check;

const WAIT: Duration = Duration::from_secs(10);
const ROOT: &str = "otp-root";

struct Kv {
    map: BTreeMap<String, String>,
    ticks: u32,
    seen: Vec<String>,
    deferred: Option<Caller<KvReply>>,
}

#[derive(Serialize, Deserialize)]
enum KvCall {
    Get(String),
    Put(String, String),
    Ticks,
    Seen,
    Watch(Pid),
    LinkTo(Pid),
    Sleep(u64),
    Crash,
    Defer,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum KvReply {
    Value(Option<String>),
    Done,
    Ticks(u32),
    Seen(Vec<String>),
}

#[derive(Serialize, Deserialize)]
enum KvCast {
    Put(String, String),
    Release,
}

#[derive(Serialize, Deserialize)]
enum KvInfo {
    Tick,
}

impl Server for Kv {
    type Arg = Option<String>;
    type Call = KvCall;
    type Reply = KvReply;
    type Cast = KvCast;
    type Info = KvInfo;

    fn init(fail: Option<String>) -> Result<Self, ExitReason> {
        if let Some(why) = fail {
            return Err(ExitReason::Custom(why.into_bytes()));
        }
        trap_exit(true);
        ServerRef::<Kv>::this().info_after(KvInfo::Tick, Duration::from_millis(10));
        Ok(Kv {
            map: BTreeMap::new(),
            ticks: 0,
            seen: Vec::new(),
            deferred: None,
        })
    }

    fn handle_call(&mut self, request: KvCall, from: Caller<KvReply>) -> CallResult<KvReply> {
        CallResult::Reply(match request {
            KvCall::Get(k) => KvReply::Value(self.map.get(&k).cloned()),
            KvCall::Put(k, v) => {
                self.map.insert(k, v);
                KvReply::Done
            }
            KvCall::Ticks => KvReply::Ticks(self.ticks),
            KvCall::Seen => KvReply::Seen(self.seen.clone()),
            KvCall::Watch(pid) => {
                monitor(pid);
                KvReply::Done
            }
            KvCall::LinkTo(pid) => {
                let _ = troupe::link(pid);
                KvReply::Done
            }
            KvCall::Sleep(ms) => {
                troupe::sleep(Duration::from_millis(ms));
                KvReply::Done
            }
            KvCall::Crash => panic!("the server crashes during a call"),
            KvCall::Defer => {
                self.deferred = Some(from);
                return CallResult::NoReply;
            }
        })
    }

    fn handle_cast(&mut self, request: KvCast) -> Next {
        match request {
            KvCast::Put(k, v) => {
                self.map.insert(k, v);
            }
            KvCast::Release => {
                if let Some(from) = self.deferred.take() {
                    let _ = from.reply(KvReply::Value(Some("deferred".into())));
                }
            }
        }
        Next::Continue
    }

    fn handle_info(&mut self, info: Event<KvInfo>) -> Next {
        match info {
            Event::Message {
                msg: KvInfo::Tick, ..
            } => {
                self.ticks += 1;
                if self.ticks < 3 {
                    ServerRef::<Kv>::this().info_after(KvInfo::Tick, Duration::from_millis(10));
                }
            }
            Event::Exit { reason, .. } => self.seen.push(format!("EXIT {reason}")),
            Event::Down { reason, .. } => self.seen.push(format!("DOWN {reason}")),
        }
        Next::Continue
    }

    fn terminate(&mut self, reason: &ExitReason) {
        let _ = send_named(ROOT, &format!("terminate: {reason}"));
    }
}

fn helper_crash(_: (), mailbox: Mailbox<()>) {
    mailbox.receive();
    panic!("helper crash");
}

/// Calls `request()` until `done` holds of the reply (at most 10 s).
fn poll(
    server: &ServerRef<Kv>,
    request: fn() -> KvCall,
    done: impl Fn(&KvReply) -> bool,
) -> KvReply {
    let t = Instant::now();
    loop {
        let reply = server.call(request(), WAIT).unwrap();
        if done(&reply) || t.elapsed() > WAIT {
            return reply;
        }
        troupe::sleep(Duration::from_millis(10));
    }
}

fn releaser(server: ServerRef<Kv>, _: Mailbox<()>) {
    troupe::sleep(Duration::from_millis(50));
    server.cast(KvCast::Release).unwrap();
}

fn get(server: &ServerRef<Kv>, key: &str) -> Option<String> {
    match server.call(KvCall::Get(key.into()), WAIT) {
        Ok(KvReply::Value(v)) => v,
        other => panic!("get: {other:?}"),
    }
}

fn a_server_answers_calls_casts_and_infos() {
    let kv = Kv::start_link(None).unwrap();
    check(
        kv.call(KvCall::Put("a".into(), "1".into()), WAIT) == Ok(KvReply::Done),
        "call: put",
    );
    check(get(&kv, "a").as_deref() == Some("1"), "call: get");
    kv.cast(KvCast::Put("b".into(), "2".into())).unwrap();
    check(
        get(&kv, "b").as_deref() == Some("2"),
        "cast: handled before a later call",
    );
    check(
        poll(&kv, || KvCall::Ticks, |r| *r == KvReply::Ticks(3)) == KvReply::Ticks(3),
        "handle_info: timer messages (info_after) arrive",
    );
    // DOWN and EXIT events reach handle_info.
    let quick = spawn((), |(), _: Mailbox<()>| {}).unwrap();
    kv.call(KvCall::Watch(quick.pid()), WAIT).unwrap();
    let crasher = spawn((), helper_crash).unwrap();
    kv.call(KvCall::LinkTo(crasher.pid()), WAIT).unwrap();
    crasher.send(()).unwrap();
    let seen = poll(
        &kv,
        || KvCall::Seen,
        |r| matches!(r, KvReply::Seen(s) if s.len() >= 2),
    );
    println!("handle_info saw {seen:?}");
    check(
        matches!(&seen, KvReply::Seen(s) if s.len() == 2
            && s.iter().any(|e| e == "DOWN normal" || e == "DOWN noproc")
            && s.iter().any(|e| e.starts_with("EXIT trap") && e.contains("helper crash"))),
        "handle_info: DOWN and EXIT events arrive",
    );
    // A deferred reply (NoReply now, Caller::reply later).
    spawn(kv, releaser).unwrap();
    check(
        kv.call(KvCall::Defer, WAIT) == Ok(KvReply::Value(Some("deferred".into()))),
        "a deferred reply reaches the caller",
    );
}

fn a_call_times_out_and_the_late_reply_is_dropped() {
    let kv = Kv::start_link(None).unwrap();
    let me: troupe::Process<u32> = this_process();
    for n in 1..=3 {
        me.send(n).unwrap();
    }
    let t = Instant::now();
    let r = kv.call(KvCall::Sleep(1500), Duration::from_millis(50));
    let took = t.elapsed();
    check(r == Err(CallError::Timeout), "the call timed out");
    check(
        took >= Duration::from_millis(50) && took < Duration::from_millis(1400),
        "after its time-out, not the server's time",
    );
    // The server answers the slow call (late) before this one.
    check(
        get(&kv, "x").is_none(),
        "the server answers the next call (after the slow one)",
    );
    let _ = receive_matching(Some(Duration::ZERO), Err::<(), _>);
    let inbox = Mailbox::<u32>::this();
    let got: Vec<u32> = (0..3)
        .map(|_| inbox.receive_timeout(WAIT).unwrap())
        .collect();
    check(
        got == [1, 2, 3],
        "messages queued during calls are kept, in order",
    );
    check(
        receive_tagged(&[], Some(Duration::ZERO)).is_err(),
        "the late reply was dropped",
    );
}

fn a_call_to_a_dying_server_returns_its_exit_reason() {
    let kv = Kv::start(None).unwrap(); // unlinked: its crash must not kill us
    let t = Instant::now();
    let r = kv.call(KvCall::Crash, WAIT);
    println!("call to a server that crashes: {r:?}");
    check(
        matches!(&r, Err(CallError::Exit(ExitReason::Trap(t))) if t.contains("crashes during a call")),
        "the caller gets the server's exit reason",
    );
    check(
        t.elapsed() < Duration::from_secs(2),
        "at once, not at the time-out",
    );
    check(
        kv.call(KvCall::Ticks, WAIT) == Err(CallError::NoProc),
        "a call to a dead server: noproc",
    );
    check(
        ServerRef::<Kv>::from_pid(self_pid()).call(KvCall::Ticks, WAIT)
            == Err(CallError::CallingSelf),
        "a process cannot call itself",
    );
}

fn names_init_failure_stop_and_terminate() {
    let inbox = Mailbox::<String>::this();
    let kv = Kv::start_named("kv", None).unwrap();
    check(
        ServerRef::<Kv>::whereis("kv") == Some(kv),
        "start_named registers the server",
    );
    check(
        Kv::start_named("kv", None).err() == Some(StartError::AlreadyStarted(kv.pid())),
        "a second server with the name is refused: already started",
    );
    check(
        call_named::<Kv>("kv", KvCall::Ticks, WAIT).is_ok(),
        "call by name",
    );
    // Linked: the failed server ends normally, so this process lives on.
    let failed = Kv::start_link(Some("no config".into()));
    if let Err(e) = &failed {
        println!("init failure: {e}");
    }
    check(
        failed.err() == Some(StartError::Exit(ExitReason::Custom(b"no config".to_vec()))),
        "an init that fails fails the start with its reason",
    );
    // stop: terminate runs with the reason.
    kv.stop(ExitReason::Custom(b"bye".to_vec()), WAIT).unwrap();
    check(
        inbox.receive_timeout(WAIT).as_deref() == Ok("terminate: \"bye\""),
        "stop calls terminate with the reason",
    );
    check(
        ServerRef::<Kv>::whereis("kv").is_none(),
        "the name is freed",
    );
    // An exit signal from the parent (this process) stops a trapping server
    // through terminate.
    let kv = Kv::start(None).unwrap();
    let m = monitor(kv.pid());
    send_exit(kv.pid(), &ExitReason::Shutdown).unwrap();
    check(
        inbox.receive_timeout(WAIT).as_deref() == Ok("terminate: shutdown"),
        "an exit signal from the parent runs terminate",
    );
    check(
        receive_down_from(m, Some(WAIT)) == Ok(ExitReason::Shutdown),
        "and ends the server with its reason",
    );
    // An exit signal from another process is only an info.
    let kv = Kv::start(None).unwrap();
    let other = spawn_link(kv, |kv: ServerRef<Kv>, _: Mailbox<()>| {
        send_exit(kv.pid(), &ExitReason::Shutdown).unwrap();
    })
    .unwrap();
    let _ = other;
    let seen = poll(&kv, || KvCall::Seen, |r| *r != KvReply::Seen(vec![]));
    check(
        seen == KvReply::Seen(vec!["EXIT shutdown".into()]),
        "an exit signal from another process goes to handle_info",
    );
}

/// A server that hibernates after every message: its state lives on across
/// wakes, and calls, casts, infos and stop all work.
struct Sleepy {
    casts: u64,
    infos: u64,
}

impl Server for Sleepy {
    type Arg = ();
    type Call = ();
    type Reply = (u64, u64);
    type Cast = u64;
    type Info = ();

    fn init(_: ()) -> Result<Self, ExitReason> {
        Ok(Sleepy { casts: 0, infos: 0 })
    }

    fn handle_call(&mut self, _: (), _: Caller<(u64, u64)>) -> CallResult<(u64, u64)> {
        CallResult::ReplyHibernate((self.casts, self.infos))
    }

    fn handle_cast(&mut self, n: u64) -> Next {
        self.casts += n;
        Next::Hibernate
    }

    fn handle_info(&mut self, _: Event<()>) -> Next {
        self.infos += 1;
        Next::Hibernate
    }

    fn terminate(&mut self, _: &ExitReason) {
        let _ = send_named(ROOT, &format!("sleepy ends after {} casts", self.casts));
    }
}

fn a_server_can_hibernate_between_messages() {
    let s = Sleepy::start(()).unwrap();
    for n in 1..=100 {
        s.cast(n).unwrap();
    }
    s.info_after((), Duration::from_millis(20));
    s.info(()).unwrap();
    check(
        s.call((), WAIT).ok() == Some((5050, 1)),
        "casts and an info handled after wakes, state kept",
    );
    troupe::sleep(Duration::from_millis(100));
    check(
        s.call((), WAIT).ok() == Some((5050, 2)),
        "a timer wakes a hibernated server",
    );
    check(
        s.stop(ExitReason::Normal, WAIT).is_ok(),
        "a hibernated server stops when asked",
    );
    let said = Mailbox::<String>::this().receive_timeout(WAIT);
    check(
        said.ok().as_deref() == Some("sleepy ends after 5050 casts"),
        "terminate runs with the state kept across hibernations",
    );
}

fn main() {
    troupe::register(ROOT, self_pid()).unwrap();
    let case = std::env::args().nth(1).unwrap_or_default();
    match case.as_str() {
        "basics" => a_server_answers_calls_casts_and_infos(),
        "timeout" => a_call_times_out_and_the_late_reply_is_dropped(),
        "dying" => a_call_to_a_dying_server_returns_its_exit_reason(),
        "names" => names_init_failure_stop_and_terminate(),
        "hibernate" => a_server_can_hibernate_between_messages(),
        other => panic!("unknown case {other:?}"),
    }
    println!("done");
}
