//! End-to-end test of the SDK against a running Troupe VM: every public
//! function, checked, one line per check, and a closing
//! `selftest: N passed, M failed` (exit 1 if any failed).
//!
//! ```sh
//! cd guest-sdk/rust
//! cargo build --release --target wasm32-wasip1 --example selftest
//! troupe run target/wasm32-wasip1/release/examples/selftest.wasm
//! ```
//!
//! Give the root a preopened `/data` to also check that a child can be
//! spawned without it.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use troupe::abi::{err, tag};
use troupe::net::{TcpListener, TcpStream};
use troupe::{
    receive_tagged, self_pid, send_tagged, sleep, spawn, spawn_arg, this_process, LoadError,
    Mailbox, Module, Pid, Process, ReceiveError, Reply, RequestError, SendError, SpawnOptions,
};

type Check = Result<(), String>;
type CheckFn = fn() -> Check;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

const WAIT: Duration = Duration::from_secs(10);

/// Echoes every payload back to the sender given at spawn.
fn echo(back: Process<Vec<u8>>, mailbox: Mailbox<Vec<u8>>) {
    loop {
        let data = mailbox.receive();
        if data.is_empty() || back.send(data).is_err() {
            return;
        }
    }
}

#[derive(Serialize, Deserialize)]
enum Counter {
    Add(u64),
    Get(Reply<u64>),
    Ignore(Reply<u64>),
    Stop,
}

fn counter(start: u64, mailbox: Mailbox<Counter>) {
    let mut total = start;
    loop {
        match mailbox.receive() {
            Counter::Add(n) => total += n,
            Counter::Get(reply) => {
                let _ = reply.send(total);
            }
            Counter::Ignore(_) => {}
            Counter::Stop => return,
        }
    }
}

fn returns_at_once(_: (), _: Mailbox<()>) {}

/// Reports the sender of its spawn argument and its own pid.
fn who(parent: Process<(Pid, Pid)>, _: Mailbox<()>) {
    let _ = parent.send((self_pid(), parent.pid()));
}

/// Reports whether it sees /data.
fn sees_data(parent: Process<bool>, _: Mailbox<()>) {
    let _ = parent.send(std::fs::read_dir("/data").is_ok());
}

/// What a `_start` child spawned with `--child-start` reports.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct StartReport {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    arg: u32,
}

fn child_start_main() {
    let (parent, arg): (Process<StartReport>, u32) = spawn_arg().expect("spawn argument");
    let mut envs: Vec<(String, String)> = std::env::vars().collect();
    envs.sort();
    let _ = parent.send(StartReport {
        args: std::env::args().collect(),
        envs,
        arg,
    });
}

fn typed_round_trip() -> Check {
    let mailbox = Mailbox::<Vec<u8>>::this();
    let e = spawn(mailbox.process(), echo).map_err(|e| e.to_string())?;
    e.send(b"hello".to_vec()).map_err(|e| e.to_string())?;
    let env = mailbox
        .receive_envelope_timeout(Some(WAIT))
        .map_err(|e| e.to_string())?;
    ensure!(env.msg == b"hello", "got {:?}", env.msg);
    ensure!(env.from == e.pid(), "from {} not {}", env.from, e.pid());
    let _ = e.send(Vec::new());
    Ok(())
}

fn large_messages() -> Check {
    let mailbox = Mailbox::<Vec<u8>>::this();
    let e = spawn(mailbox.process(), echo).map_err(|e| e.to_string())?;
    for size in [1000, 1024, 5000, 300_000, 3_000_000, 10] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        e.send(data.clone()).map_err(|e| e.to_string())?;
        let back = mailbox.receive_timeout(WAIT).map_err(|e| e.to_string())?;
        ensure!(back == data, "{size} bytes came back different");
    }
    let _ = e.send(Vec::new());
    Ok(())
}

fn selective_receive() -> Check {
    let me = self_pid();
    let mailbox = Mailbox::<u32>::this();
    this_process::<u32>().send(1).map_err(|e| e.to_string())?;
    send_tagged(me, 77, b"seventy-seven").map_err(|e| e.to_string())?;
    this_process::<u32>().send(2).map_err(|e| e.to_string())?;
    send_tagged(me, 78, b"78").map_err(|e| e.to_string())?;
    let m = receive_tagged(&[78, 77], Some(WAIT)).map_err(|e| e.to_string())?;
    ensure!(
        m.tag == 77 && m.data == b"seventy-seven" && m.from == me,
        "{m:?}"
    );
    ensure!(mailbox.receive() == 1, "DATA order");
    let m = receive_tagged(&[], Some(WAIT)).map_err(|e| e.to_string())?;
    ensure!(
        m.tag == tag::DATA,
        "any-tag receive took tag {} first",
        m.tag
    );
    ensure!(troupe::decode::<u32>(&m.data) == Ok(2), "{m:?}");
    let m = receive_tagged(&[78], Some(Duration::ZERO)).map_err(|e| e.to_string())?;
    ensure!(m.data == b"78", "{m:?}");
    Ok(())
}

fn empty_mailbox() -> Check {
    let mailbox = Mailbox::<u32>::this();
    ensure!(
        mailbox.try_receive() == Err(ReceiveError::Timeout),
        "try_receive"
    );
    ensure!(mailbox.poll().is_none(), "poll");
    let start = Instant::now();
    let r = mailbox.receive_timeout(Duration::from_millis(100));
    let waited = start.elapsed();
    ensure!(r == Err(ReceiveError::Timeout), "{r:?}");
    ensure!(
        waited >= Duration::from_millis(90) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
    ensure!(
        receive_tagged(&[12345], Some(Duration::ZERO)) == Err(ReceiveError::Timeout),
        "receive_tagged poll"
    );
    Ok(())
}

fn malformed() -> Check {
    let me = self_pid();
    send_tagged(me, tag::DATA, &[1, 2, 3]).map_err(|e| e.to_string())?;
    match Mailbox::<String>::this().receive_timeout(WAIT) {
        Err(ReceiveError::Malformed { from, .. }) if from == me => {}
        other => return Err(format!("{other:?}")),
    }
    // Trailing bytes are malformed too.
    send_tagged(me, tag::DATA, &[1, 0, 0, 0, 9]).map_err(|e| e.to_string())?;
    let r = Mailbox::<u32>::this().receive_timeout(WAIT);
    ensure!(matches!(r, Err(ReceiveError::Malformed { .. })), "{r:?}");
    Ok(())
}

fn request_reply() -> Check {
    let c = spawn(10u64, counter).map_err(|e| e.to_string())?;
    for n in 1..=4 {
        c.send(Counter::Add(n)).map_err(|e| e.to_string())?;
    }
    let total: u64 = c.request(Counter::Get).map_err(|e| e.to_string())?;
    ensure!(total == 20, "total {total}");
    // An unanswered request times out; other DATA messages stay queued.
    this_process::<u32>().send(5).map_err(|e| e.to_string())?;
    let r = c.request_timeout(Counter::Ignore, Duration::from_millis(50));
    ensure!(r == Err(RequestError::Timeout), "{r:?}");
    ensure!(Mailbox::<u32>::this().poll() == Some(5), "DATA lost");
    let total: u64 = c
        .request_timeout(Counter::Get, WAIT)
        .map_err(|e| e.to_string())?;
    ensure!(total == 20, "total {total}");
    c.send(Counter::Stop).map_err(|e| e.to_string())?;
    wait_gone(c.pid())?;
    let r = c.request_timeout(Counter::Get, WAIT);
    ensure!(r == Err(RequestError::NoProcess(c.pid())), "{r:?}");
    Ok(())
}

/// Waits until `pid` has exited (a send fails).
fn wait_gone(pid: Pid) -> Check {
    let start = Instant::now();
    loop {
        match send_tagged(pid, 999, b"") {
            Err(SendError::NoProcess(p)) if p == pid => return Ok(()),
            Ok(()) if start.elapsed() < WAIT => sleep(Duration::from_millis(5)),
            other => return Err(format!("process {pid} still there: {other:?}")),
        }
    }
}

fn dead_process() -> Check {
    let p = spawn((), returns_at_once).map_err(|e| e.to_string())?;
    wait_gone(p.pid())?;
    ensure!(
        p.send(()) == Err(SendError::NoProcess(p.pid())),
        "send to dead"
    );
    Ok(())
}

fn spawn_arg_sender_and_pids() -> Check {
    let mailbox = Mailbox::<(Pid, Pid)>::this();
    let w = spawn(mailbox.process(), who).map_err(|e| e.to_string())?;
    let env = mailbox
        .receive_envelope_timeout(Some(WAIT))
        .map_err(|e| e.to_string())?;
    ensure!(env.msg.0 == w.pid() && env.from == w.pid(), "{env:?}");
    ensure!(env.msg.1 == self_pid(), "{env:?}");
    Ok(())
}

fn many_processes() -> Check {
    let mailbox = Mailbox::<(Pid, Pid)>::this();
    let mut pids = Vec::new();
    for _ in 0..50 {
        pids.push(
            spawn(mailbox.process(), who)
                .map_err(|e| e.to_string())?
                .pid(),
        );
    }
    let mut got: Vec<Pid> = Vec::new();
    for _ in 0..50 {
        got.push(mailbox.receive_timeout(WAIT).map_err(|e| e.to_string())?.0);
    }
    got.sort();
    pids.sort();
    ensure!(got == pids, "answers from {got:?}, spawned {pids:?}");
    Ok(())
}

fn spawn_errors() -> Check {
    let e = Module::this()
        .spawn_export("no_such_function", &[], &SpawnOptions::new(), &[])
        .unwrap_err();
    ensure!(e.code == err::NO_SUCH_EXPORT, "{e:?}");
    ensure!(
        e.to_string().starts_with("spawn failed: no such export: ")
            && e.message.contains("no_such_function"),
        "{e}"
    );
    let e = SpawnOptions::new()
        .env("A=B", "c")
        .spawn((), returns_at_once)
        .unwrap_err();
    ensure!(e.code == err::INVALID_ARGUMENT, "{e:?}");
    match Module::load(b"not wasm") {
        Err(LoadError::Module { code, message }) => {
            ensure!(code == err::INVALID_MODULE, "{code}: {message}");
            ensure!(!message.is_empty(), "empty message");
        }
        other => return Err(format!("{other:?}")),
    }
    match Module::from_file("/no/such/file.wasm") {
        Err(LoadError::Io { .. }) => {}
        other => return Err(format!("{other:?}")),
    }
    Ok(())
}

fn spawn_start_with_config() -> Check {
    let mailbox = Mailbox::<StartReport>::this();
    let options = SpawnOptions::new()
        .args(["child", "--child-start", "two words"])
        .env("TROUPE_B", "2")
        .env("TROUPE_A", "x=1");
    let module = Module::this();
    ensure!(module == Module::this(), "module handle is stable");
    let pid = module
        .spawn_start(&options, &(mailbox.process(), 42u32))
        .map_err(|e| e.to_string())?;
    let env = mailbox
        .receive_envelope_timeout(Some(WAIT))
        .map_err(|e| e.to_string())?;
    ensure!(env.from == pid, "from {}", env.from);
    let expected = StartReport {
        args: vec!["child".into(), "--child-start".into(), "two words".into()],
        envs: vec![
            ("TROUPE_A".into(), "x=1".into()),
            ("TROUPE_B".into(), "2".into()),
        ],
        arg: 42,
    };
    ensure!(env.msg == expected, "{:?}", env.msg);
    Ok(())
}

fn preopens_narrowed() -> Check {
    if std::fs::read_dir("/data").is_err() {
        println!("  (root has no /data: only checking that an empty list is accepted)");
    }
    let mailbox = Mailbox::<bool>::this();
    SpawnOptions::new()
        .preopens(Vec::<String>::new())
        .spawn(mailbox.process(), sees_data)
        .map_err(|e| e.to_string())?;
    let seen = mailbox.receive_timeout(WAIT).map_err(|e| e.to_string())?;
    ensure!(!seen, "child with no preopens sees /data");
    if std::fs::read_dir("/data").is_ok() {
        spawn(mailbox.process(), sees_data).map_err(|e| e.to_string())?;
        let seen = mailbox.receive_timeout(WAIT).map_err(|e| e.to_string())?;
        ensure!(seen, "child inheriting does not see /data");
        let e = SpawnOptions::new()
            .preopens(["/not-mine"])
            .spawn(mailbox.process(), sees_data)
            .unwrap_err();
        ensure!(e.code == err::PERMISSION_DENIED, "{e:?}");
    }
    Ok(())
}

/// Reads three bytes from its stream and writes them back.
fn echo_three(stream: TcpStream, _: Mailbox<()>) {
    let mut buf = [0u8; 3];
    if (&stream).read_exact(&mut buf).is_ok() {
        let _ = (&stream).write_all(&buf);
    }
}

/// Without network permission (the VM's default), every call is refused;
/// with `--allow-net=127.0.0.1` (or wider), a loopback round trip whose
/// server end moves to a child as its spawn argument.
fn network() -> Check {
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            ensure!(e.to_string().contains("--allow-net"), "{e}");
            let e = TcpStream::connect("127.0.0.1:9").map(drop).unwrap_err();
            ensure!(e.kind() == io::ErrorKind::PermissionDenied, "{e}");
            let e = SpawnOptions::new()
                .net(["127.0.0.1"])
                .spawn((), returns_at_once)
                .unwrap_err();
            ensure!(e.code == err::PERMISSION_DENIED, "{e:?}");
            println!("  (no network permission: only checking the refusals)");
            return Ok(());
        }
        r => r.map_err(|e| format!("bind: {e}"))?,
    };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut client = TcpStream::connect(&addr.to_string()).map_err(|e| e.to_string())?;
    client
        .set_read_timeout(Some(WAIT))
        .map_err(|e| e.to_string())?;
    let (server, _) = listener.accept_timeout(WAIT).map_err(|e| e.to_string())?;
    spawn(server, echo_three).map_err(|e| e.to_string())?;
    client.write_all(b"hi\n").map_err(|e| e.to_string())?;
    let mut back = [0u8; 3];
    client.read_exact(&mut back).map_err(|e| e.to_string())?;
    ensure!(&back == b"hi\n", "echoed {back:?}");
    let mut rest = [0u8; 1];
    let n = client.read(&mut rest).map_err(|e| e.to_string())?;
    ensure!(n == 0, "no end of stream after the child ended");
    Ok(())
}

fn main() {
    if std::env::args().any(|a| a == "--child-start") {
        return child_start_main();
    }
    let checks: &[(&str, CheckFn)] = &[
        ("typed round trip and envelope", typed_round_trip),
        (
            "large messages (read after BUFFER_TOO_SMALL)",
            large_messages,
        ),
        ("selective receive on tags", selective_receive),
        ("empty mailbox: try_receive, poll, timeout", empty_mailbox),
        ("malformed payloads", malformed),
        ("request/reply", request_reply),
        ("send to a dead process", dead_process),
        ("spawn argument sender and pids", spawn_arg_sender_and_pids),
        ("50 processes", many_processes),
        ("spawn and load errors", spawn_errors),
        ("spawn _start with args and env", spawn_start_with_config),
        ("preopens narrowed", preopens_narrowed),
        ("network (refused, or a loopback round trip)", network),
    ];
    println!("selftest: root {}", self_pid());
    let (mut passed, mut failed) = (0, 0);
    for (name, check) in checks {
        match check() {
            Ok(()) => {
                passed += 1;
                println!("ok - {name}");
            }
            Err(e) => {
                failed += 1;
                println!("FAIL - {name}: {e}");
            }
        }
    }
    println!("selftest: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
