//! Networking (`troupe_net`, the Rust SDK's `troupe::net`) through the
//! `troupe` binary, as a user runs it: `troupe run --allow-net[=RULES]`.
//!
//! Two guests: `net_echo` (vm/tests/guests/src/bin/net_echo.rs), a line echo
//! server with one process per connection that this test drives with
//! `std::net` clients; and `net_checks`, whose cases print `ok: <check>` or
//! `FAIL: <check>` per check, asserted here. Every address is picked with
//! port 0 and passed on by an argument or a stdout line, so the tests can run
//! in parallel.

use crate::common::{guest, text, troupe};

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long anything may take on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(60);

/// Runs `troupe run FLAGS net_checks ARGS` and checks that it ended with 0,
/// printed `ok: <line>` for every line of `expected`, no `FAIL` and no trap,
/// and `done` last. Returns its stdout.
fn checks(flags: &[&str], args: &[&str], expected: &[&str]) -> String {
    guest_checks("net_checks", flags, args, expected)
}

/// [`checks`] with another guest of the same kind.
fn guest_checks(name: &str, flags: &[&str], args: &[&str], expected: &[&str]) -> String {
    let path = guest(name);
    let mut argv = vec!["run"];
    argv.extend_from_slice(flags);
    argv.push(path.to_str().unwrap());
    argv.extend_from_slice(args);
    let out = troupe(&argv);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let context = format!("troupe {argv:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(out.status.success(), "{context}");
    assert!(!stdout.contains("FAIL"), "{context}");
    assert!(!stderr.contains("trapped"), "{context}");
    for line in expected {
        assert!(
            stdout.contains(&format!("ok: {line}\n")),
            "missing `ok: {line}` in {context}"
        );
    }
    assert!(stdout.ends_with("done\n"), "{context}");
    stdout
}

/// A `troupe run` in the background, whose stdout lines the test can wait
/// for.
pub(crate) struct Running {
    child: Child,
    lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Drop for Running {
    /// A VM the test did not finish is killed (it is this test's child).
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Running {
    fn start(flags: &[&str], name: &str, args: &[&str]) -> Running {
        Running::start_module(flags, &guest(name), args)
    }

    /// `troupe run FLAGS MODULE ARGS`.
    pub(crate) fn start_module(flags: &[&str], module: &std::path::Path, args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_troupe"))
            .arg("run")
            .args(flags)
            .arg(module)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start troupe");
        let (tx, lines) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        let out = BufReader::new(child.stdout.take().unwrap());
        let log = stdout.clone();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Running {
            child,
            lines,
            stdout,
            stderr: Some(stderr),
        }
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest.
    pub(crate) fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "no line {prefix:?} from the VM\nstdout:\n{}",
                        self.stdout.lock().unwrap()
                    );
                }
            }
        }
    }

    /// Waits for the VM to end (killing it after `WAIT`); its status, stdout
    /// and stderr.
    pub(crate) fn finish(mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the VM did not end within {WAIT:?}\nstdout:\n{}",
                    self.stdout.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.take().unwrap().join().unwrap();
        // The stdout thread ends at the end of the pipe, just after exit.
        while self.lines.recv_timeout(WAIT).is_ok() {}
        let stdout = self.stdout.lock().unwrap().clone();
        for thread in [
            "'main' panicked",
            "'troupe-sched' panicked",
            "'troupe-epoch' panicked",
        ] {
            assert!(!stderr.contains(thread), "the VM panicked: {stderr}");
        }
        (status, stdout, stderr)
    }
}

/// A client of the echo server, with generous time-outs.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect_timeout(&addr.parse().unwrap(), WAIT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap_or_else(|e| panic!("send {line:?}: {e}"));
    }

    fn receive(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("read: {e}"));
        line
    }

    fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.receive()
    }
}

// --- The echo server, driven from outside the VM. -----------------------

#[test]
fn a_thousand_concurrent_connections_are_each_served_by_their_own_process() {
    const N: usize = 1000;
    let mut vm = Running::start(
        &["--allow-net=127.0.0.1"],
        "net_echo",
        &["127.0.0.1:0", &N.to_string()],
    );
    let addr = vm.wait_line("listening ");
    // All of them open at once: a thousand handler processes, each blocked
    // in its own read.
    let mut clients: Vec<Client> = (0..N).map(|_| Client::connect(&addr)).collect();
    for round in ["hello", "again"] {
        for (i, c) in clients.iter_mut().enumerate() {
            c.send(&format!("{round} {i}"));
        }
        for (i, c) in clients.iter_mut().enumerate() {
            assert_eq!(c.receive(), format!("{round} {i}\n"), "connection {i}");
        }
    }
    drop(clients);
    let (status, stdout, stderr) = vm.finish();
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("served {N}\n")),
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("ended:"), "a handler failed: {stdout}");
}

#[test]
fn a_killed_handler_closes_its_socket_and_nothing_else() {
    let mut vm = Running::start(
        &["--allow-net=127.0.0.1"],
        "net_echo",
        &["127.0.0.1:0", "4"],
    );
    let addr = vm.wait_line("listening ");
    let mut a = Client::connect(&addr);
    let mut b = Client::connect(&addr);
    let mut c = Client::connect(&addr);
    let pid = a.ask("whoami");
    let pid = pid
        .strip_prefix("pid ")
        .unwrap_or_else(|| panic!("{pid:?}"))
        .trim()
        .to_string();
    assert_eq!(b.ask(&format!("kill {pid}")), format!("killed {pid}\n"));
    // The killed handler's connection is closed: the end of the stream, or
    // a reset.
    let mut rest = String::new();
    match a.reader.read_line(&mut rest) {
        Ok(0) => {}
        Ok(_) => panic!("the killed handler's peer read {rest:?}"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ),
            "the killed handler's peer got {e}"
        ),
    }
    // Everything else works on.
    assert_eq!(b.ask("b is still served"), "b is still served\n");
    assert_eq!(c.ask("so is c"), "so is c\n");
    let mut d = Client::connect(&addr);
    assert_eq!(d.ask("and a new one"), "and a new one\n");
    drop((a, b, c, d));
    let (status, stdout, stderr) = vm.finish();
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("handler {pid} ended: killed\n")),
        "{stdout}"
    );
    assert!(stdout.contains("served 4\n"), "{stdout}\n{stderr}");
}

// --- Permission. ----------------------------------------------------------

#[test]
fn networking_is_denied_without_the_flag() {
    let stdout = checks(
        &[],
        &["denied"],
        &[
            "tcp listen is denied",
            "the message of a refused bind names --allow-net",
            "tcp connect is denied",
            "the message of a refused connect names the address",
            "udp bind is denied",
            "resolve is denied",
            "a child cannot be given network its parent lacks",
        ],
    );
    assert!(stdout.contains("PermissionDenied"), "{stdout}");
}

#[test]
fn allow_net_with_a_port_allows_that_port_and_refuses_another() {
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = allowed.local_addr().unwrap().port();
    let other_port = other.local_addr().unwrap().port();
    // The test's end of the allowed connection.
    let server = std::thread::spawn(move || {
        let (stream, _) = allowed.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        (&stream).write_all(b"hello from the test\n").unwrap();
        line
    });
    let rule = format!("--allow-net=127.0.0.1:{port}");
    checks(
        &[&rule],
        &["port_rule", &port.to_string(), &other_port.to_string()],
        &[
            "connect to the allowed address",
            "write to the test",
            "peer_addr is the test's listener",
            "read the test's answer",
            "connect to another port is denied",
            "the refusal names the address",
            "listen on another port is denied",
            "udp bind on another port is denied",
            "resolve is allowed by any rule",
        ],
    );
    assert_eq!(server.join().unwrap(), "hello from the guest\n");
    other.set_nonblocking(true).unwrap();
    assert_eq!(
        other.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "the refused port was never connected to"
    );
}

#[test]
fn spawn_options_narrow_a_childs_network() {
    checks(
        &["--allow-net=127.0.0.1"],
        &["narrow"],
        &[
            "a child inherits its parent's permission",
            "a child narrowed to one port may use that port only",
            "a child given an empty list has no network",
            "a rule the parent does not hold fails the spawn, naming it",
            "a malformed rule fails the spawn with INVALID_ARGUMENT",
        ],
    );
}

// --- Inside the VM. ---------------------------------------------------------

#[test]
fn a_client_and_a_server_in_the_vm_talk_tcp() {
    checks(
        &["--allow-net=127.0.0.1"],
        &["client"],
        &[
            "port 0 picks a free port (local_addr)",
            "listening twice on one address",
            "accept times out",
            "read_timeout is kept",
            "peer_addr is the listener's address",
            "accept gives the client's address",
            "a request and its answer",
            "a second request",
            "write sends the whole buffer",
            "300 kB come back",
            "read times out",
            "after about its time-out",
            "shutdown(Write): the peer reads the end",
            "then we read the end",
            "and again",
            "local_addr into a small buffer: BUFFER_TOO_SMALL and the length needed",
            "write_timeout is kept",
            "a write that times out reports the part written",
            "the next write times out",
            "connect to a closed port is refused",
            "connect to a malformed address",
            "listen on an address without a port",
        ],
    );
}

#[test]
fn a_socket_moved_in_a_message_keeps_working_and_the_old_owner_loses_it() {
    checks(
        &["--allow-net=127.0.0.1"],
        &["moved"],
        &[
            "send a stream in a message",
            "a socket moved in a message works for its new owner",
            "the old owner cannot write with the old handle",
            "nor read",
            "nor ask its peer",
            "the error says it is not a socket this process holds",
            "nor close it",
            "a socket keeps its handle when it moves",
            "a socket moved back in a reply works again",
            "send a stream by name",
            "a socket sent by name works for the receiver",
            "the old owner cannot accept on a moved listener",
            "a listener moved as a spawn argument accepts for its new owner",
            "the stream is closed when its owner ends",
            "a send to a dead process fails",
            "the socket of a lost message is closed (the peer reads the end)",
            "and the sender does not hold it",
            "the leaking process ended",
            "a leaked socket is closed when its process ends",
        ],
    );
}

#[test]
fn malformed_handles_are_errors_not_traps() {
    let mut expected = vec![];
    for name in ["handle 0", "a random handle", "handle -1"] {
        for call in [
            "read",
            "write",
            "shutdown",
            "local_addr",
            "peer_addr",
            "accept",
            "close",
            "attach",
        ] {
            expected.push(format!("{call} with {name}"));
        }
    }
    expected.extend(
        [
            "a listener given to read",
            "a listener given to write",
            "a listener given to peer_addr",
            "a stream given to accept",
            "a stream given to recv_from",
            "a stream given to send_to",
            "a udp socket given to read",
            "the listener still works (nothing to accept)",
            "shutdown with how = 7 is INVALID_ARGUMENT",
            "an address that is not UTF-8 is INVALID_ARGUMENT",
            "read on a closed socket",
            "write on a closed socket",
            "closing twice is BAD_HANDLE",
            "the peer of a closed socket reads the end",
            "the good connection still works",
        ]
        .map(String::from),
    );
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    checks(&["--allow-net=127.0.0.1"], &["handles"], &expected);
}

#[test]
fn udp_datagrams_make_a_round_trip() {
    checks(
        &["--allow-net=127.0.0.1"],
        &["udp"],
        &[
            "udp bind on port 0 picks a port",
            "send_to returns the count sent",
            "recv_from gives the sender's address",
            "the answer came back",
            "from the socket moved to the ponger",
            "a long datagram is cut to the buffer",
            "recv_from times out",
        ],
    );
}

#[test]
fn names_resolve_with_permission() {
    checks(
        &["--allow-net=127.0.0.1,localhost"],
        &["resolve"],
        &[
            "resolve into a small buffer: BUFFER_TOO_SMALL and the length needed",
            "localhost resolves to loopback addresses",
            "an IP address resolves to itself",
            "a name no rule names is refused without a look-up",
            "connect by host name",
        ],
    );
}

/// `examples/kv-server` served to `examples/kv-client`, two VMs as in the
/// compose stack: 6 client processes each set and read back 100 keys on
/// their own connection; a `CRASH` request kills its handler, which loses
/// its connection only (the server's supervision tree and store go on); and
/// SIGTERM stops the server cleanly (exit 143).
#[test]
fn kv_server_serves_kv_client_and_a_crashing_handler_loses_only_its_connection() {
    let mut server = Running::start(&["--allow-net=127.0.0.1"], "kv-server", &["127.0.0.1:0"]);
    let addr = server.wait_line("kv-server: listening on ");
    let out = troupe(&[
        "run",
        &format!("--allow-net={addr}"),
        guest("kv-client").to_str().unwrap(),
        &addr,
        "6",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "kv-client: {:?}\n{stdout}{}",
        out.status,
        text(&out.stderr)
    );
    for line in [
        "kv-client: 6 clients set and read back 600 keys",
        "kv-client: CRASH closed that connection only",
        "kv-client: OK (the store kept its 600 keys)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    // The client may connect only where --allow-net says.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let out = troupe(&[
        "run",
        &format!("--allow-net={addr}"),
        guest("kv-client").to_str().unwrap(),
        &other.local_addr().unwrap().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not allowed to connect to"),
        "{}",
        text(&out.stderr)
    );

    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let (status, _, stderr) = server.finish();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("trapped: panicked at") && stderr.contains("CRASH"),
        "the handler's crash is reported: {stderr}"
    );
}

// Sockets and the mailbox as WASI descriptors (SPEC.md, "WASI descriptors"):
// the guest `wasi_sockets`, whose peers are processes of the same VM.

#[test]
fn std_net_works_on_a_troupe_socket_in_blocking_mode() {
    guest_checks(
        "wasi_sockets",
        &["--allow-net=127.0.0.1"],
        &["std_blocking"],
        &[
            "a socket's descriptor is at FD_BASE or above",
            "fd_read reads what the peer wrote",
            "fd_write and sock_shutdown reach the peer (it read to the end)",
            "after the peer closed, a read returns the end of the stream",
            "from_std gives the stream back, with its peer",
        ],
    );
}

#[test]
fn non_blocking_sockets_report_readiness_in_poll_oneoff_once_per_eagain() {
    guest_checks(
        "wasi_sockets",
        &["--allow-net=127.0.0.1"],
        &["nonblocking_poll"],
        &[
            "accept without a connection: EAGAIN",
            "no connection: only the clock fires",
            "a connection makes the listener ready to read",
            "a read with nothing to read: EAGAIN",
            "data makes the stream ready to read",
            "readiness is reported once until a read returns EAGAIN (edge-triggered)",
            "the rest of the data is there",
            "drained: EAGAIN",
            "after EAGAIN, new data is reported again",
            "a new stream is ready to write",
            "and not again while no write returned EAGAIN",
            "a listener is never ready to write",
            "the peer's close is reported (HANGUP, or the end of the stream)",
        ],
    );
}

#[test]
fn the_mailbox_descriptor_wakes_a_poll_when_a_message_arrives() {
    guest_checks(
        "wasi_sockets",
        &[],
        &["mailbox_fd"],
        &[
            "an empty mailbox is not ready",
            "a receive finds none",
            "a message makes the mailbox's descriptor ready to read (never to write)",
            "and it wakes the poll at once",
            "the message is then received with time-out 0",
            "reported once: disarmed until a receive finds none",
        ],
    );
}
