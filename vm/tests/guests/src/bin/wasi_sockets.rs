//! Troupe's sockets and mailbox as WASI descriptors (SPEC.md, "WASI
//! descriptors"), used as the standard library and pollers use them: one case
//! per run (the first argument), each check printing `ok: <what>` or
//! `FAIL: <what>`, then `done`. The peer of every socket is another process
//! of the same VM, written with the SDK's own `troupe::net`.
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use troupe::abi::val;
use troupe::net::{TcpListener, TcpStream};
use troupe::{spawn, this_process, Mailbox, Process};
use troupe_test_guests::check;

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    #[link_name = "poll_oneoff"]
    fn wasi_poll_oneoff(subs: i32, events: i32, n: i32, nevents: i32) -> i32;
}

const FD_READ: u8 = 1;
const FD_WRITE: u8 = 2;
const CLOCK: u8 = 0;

/// What one `poll_oneoff` reported: (userdata, type, error, flags) per event.
type Events = Vec<(u64, u8, u16, u16)>;

/// `poll_oneoff` on `fds` (descriptor, `FD_READ` or `FD_WRITE`; userdata =
/// its index) and a relative clock of `timeout` (userdata 99).
fn poll(fds: &[(u32, u8)], timeout: Duration) -> Events {
    let mut subs = vec![0u8; 48 * (fds.len() + 1)];
    for (i, (fd, kind)) in fds.iter().enumerate() {
        let s = &mut subs[48 * i..48 * (i + 1)];
        s[0..8].copy_from_slice(&(i as u64).to_le_bytes());
        s[8] = *kind;
        s[16..20].copy_from_slice(&fd.to_le_bytes());
    }
    let c = &mut subs[48 * fds.len()..];
    c[0..8].copy_from_slice(&99u64.to_le_bytes());
    c[8] = CLOCK;
    c[16..20].copy_from_slice(&1u32.to_le_bytes()); // monotonic
    c[24..32].copy_from_slice(&(timeout.as_nanos() as u64).to_le_bytes());
    let mut events = vec![0u8; 32 * (fds.len() + 1)];
    let mut n = 0u32;
    // SAFETY: the buffers are live and as large as the counts given.
    let rc = unsafe {
        wasi_poll_oneoff(
            subs.as_ptr() as i32,
            events.as_mut_ptr() as i32,
            (fds.len() + 1) as i32,
            &mut n as *mut u32 as i32,
        )
    };
    assert_eq!(rc, 0, "poll_oneoff failed: errno {rc}");
    events
        .chunks_exact(32)
        .take(n as usize)
        .map(|e| {
            (
                u64::from_le_bytes(e[0..8].try_into().unwrap()),
                e[10],
                u16::from_le_bytes([e[8], e[9]]),
                u16::from_le_bytes([e[24], e[25]]),
            )
        })
        .collect()
}

/// A listener on a free loopback port, and its address.
fn listen() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = l.local_addr().expect("local_addr").to_string();
    (l, addr)
}

/// A client process: connects to `addr`, writes `send`, then reads until
/// the end of the stream and reports what it read to `report`.
fn client((addr, send, report): (String, String, Process<String>), _: Mailbox<()>) {
    let mut stream = TcpStream::connect(&addr).expect("connect");
    (&stream).write_all(send.as_bytes()).expect("write");
    let mut got = String::new();
    let _ = stream.read_to_string(&mut got);
    let _ = report.send(got);
}

/// A client that connects, then writes each string it is sent.
fn writer(addr: String, mailbox: Mailbox<String>) {
    let stream = TcpStream::connect(&addr).expect("connect");
    loop {
        let text = mailbox.receive();
        if (&stream).write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

/// Blocking mode, as `std::net` uses it: `sock_accept`, `fd_read`,
/// `fd_write` and `sock_shutdown` wait, suspending only this process.
fn std_blocking(mailbox: Mailbox<String>) {
    let (listener, addr) = listen();
    let fd = listener.descriptor().expect("descriptor");
    check(
        fd >= val::FD_BASE,
        "a socket's descriptor is at FD_BASE or above",
    );
    let listener = listener.into_std().expect("into_std");
    spawn(
        (addr, "ping\n".to_string(), this_process::<String>()),
        client,
    )
    .expect("spawn");
    let (mut conn, _) = listener.accept().expect("accept");
    let mut buf = [0u8; 5];
    conn.read_exact(&mut buf).expect("read");
    check(&buf == b"ping\n", "fd_read reads what the peer wrote");
    // The accepted connection is a Troupe stream again, with its peer's
    // address, and back.
    let troupe_conn = TcpStream::from_std(conn).expect("from_std");
    match troupe_conn.peer_addr() {
        Ok(_) => println!("ok: from_std gives the stream back, with its peer"),
        Err(e) => println!("FAIL: from_std gives the stream back, with its peer: {e:?}"),
    }
    let mut conn = troupe_conn.into_std().expect("into_std");
    conn.write_all(b"pong\n").expect("write");
    conn.shutdown(Shutdown::Write).expect("shutdown");
    let got = mailbox.receive();
    check(
        got == "pong\n",
        "fd_write and sock_shutdown reach the peer (it read to the end)",
    );
    conn.set_nonblocking(true).expect("set_nonblocking");
    let mut one = [0u8; 1];
    check(
        matches!(conn.read(&mut one), Ok(0)),
        "after the peer closed, a read returns the end of the stream",
    );
}

/// Non-blocking mode with `poll_oneoff`: `AGAIN`, readiness, and readiness
/// reported once per `AGAIN` (edge-triggered).
fn nonblocking_poll(_: Mailbox<String>) {
    let (listener, addr) = listen();
    let lfd = listener.descriptor().expect("descriptor");
    let listener = listener.into_std().expect("into_std");
    listener.set_nonblocking(true).expect("set_nonblocking");
    let e = listener.accept().map(|_| ()).unwrap_err();
    check(
        e.kind() == ErrorKind::WouldBlock,
        "accept without a connection: EAGAIN",
    );
    let quiet = poll(&[(lfd, FD_READ)], Duration::from_millis(50));
    check(
        quiet.len() == 1 && quiet[0].0 == 99,
        "no connection: only the clock fires",
    );

    let w = spawn(addr, writer).expect("spawn");
    let events = poll(&[(lfd, FD_READ)], Duration::from_secs(30));
    check(
        events
            .iter()
            .any(|e| e.0 == 0 && e.1 == FD_READ && e.2 == 0),
        "a connection makes the listener ready to read",
    );
    let (mut conn, _) = listener.accept().expect("accept after readiness");
    conn.set_nonblocking(true).expect("set_nonblocking");
    let cfd = std::os::fd::AsRawFd::as_raw_fd(&conn) as u32;
    let mut buf = [0u8; 16];
    let e = conn.read(&mut buf).map(|_| ()).unwrap_err();
    check(
        e.kind() == ErrorKind::WouldBlock,
        "a read with nothing to read: EAGAIN",
    );

    let _ = w.send("abc".to_string());
    let events = poll(&[(cfd, FD_READ)], Duration::from_secs(30));
    check(
        events.iter().any(|e| e.0 == 0 && e.1 == FD_READ),
        "data makes the stream ready to read",
    );
    let mut one = [0u8; 1];
    conn.read_exact(&mut one).expect("read one byte");
    // Not read to EAGAIN: the readiness is not reported again.
    let again = poll(&[(cfd, FD_READ)], Duration::from_millis(100));
    check(
        again.len() == 1 && again[0].0 == 99,
        "readiness is reported once until a read returns EAGAIN (edge-triggered)",
    );
    let n = conn.read(&mut buf).expect("the rest");
    check(&buf[..n] == b"bc", "the rest of the data is there");
    let e = conn.read(&mut buf).map(|_| ()).unwrap_err();
    check(e.kind() == ErrorKind::WouldBlock, "drained: EAGAIN");
    let _ = w.send("d".to_string());
    let events = poll(&[(cfd, FD_READ)], Duration::from_secs(30));
    check(
        events.iter().any(|e| e.0 == 0),
        "after EAGAIN, new data is reported again",
    );

    // Writable: reported once (armed from the start), then not until a
    // write returns EAGAIN.
    let events = poll(&[(cfd, FD_WRITE)], Duration::from_secs(30));
    check(
        events.iter().any(|e| e.0 == 0 && e.1 == FD_WRITE),
        "a new stream is ready to write",
    );
    let quiet = poll(&[(cfd, FD_WRITE)], Duration::from_millis(50));
    check(
        quiet.len() == 1 && quiet[0].0 == 99,
        "and not again while no write returned EAGAIN",
    );
    let lwrite = poll(&[(lfd, FD_WRITE)], Duration::from_millis(50));
    check(
        lwrite.len() == 1 && lwrite[0].0 == 99,
        "a listener is never ready to write",
    );

    // The peer's close: ready, with HANGUP.
    troupe::kill(w.pid()).expect("kill the writer");
    let mut drained = [0u8; 16];
    let _ = conn.read(&mut drained);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut hangup = false;
    while Instant::now() < deadline && !hangup {
        match conn.read(&mut drained) {
            Ok(0) => hangup = true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let events = poll(&[(cfd, FD_READ)], Duration::from_secs(30));
                hangup = events.iter().any(|e| e.0 == 0 && e.3 & 1 == 1);
            }
            Err(_) => hangup = true,
        }
    }
    check(
        hangup,
        "the peer's close is reported (HANGUP, or the end of the stream)",
    );
}

/// The mailbox's descriptor: ready once a message arrives after a receive
/// found none; disarmed when reported.
fn mailbox_fd(mailbox: Mailbox<String>) {
    let m = val::MAILBOX_FD;
    let quiet = poll(&[(m, FD_READ)], Duration::from_millis(50));
    check(
        quiet.len() == 1 && quiet[0].0 == 99,
        "an empty mailbox is not ready",
    );
    check(
        mailbox.receive_timeout(Duration::ZERO).is_err(),
        "a receive finds none",
    );
    fn later(to: Process<String>, _: Mailbox<()>) {
        troupe::sleep(Duration::from_millis(100));
        let _ = to.send("hello".to_string());
    }
    spawn(this_process::<String>(), later).expect("spawn");
    let started = Instant::now();
    let events = poll(&[(m, FD_READ), (m, FD_WRITE)], Duration::from_secs(30));
    check(
        events.len() == 1 && events[0].0 == 0 && events[0].1 == FD_READ,
        "a message makes the mailbox's descriptor ready to read (never to write)",
    );
    check(
        started.elapsed() < Duration::from_secs(20),
        "and it wakes the poll at once",
    );
    check(
        mailbox.receive_timeout(Duration::ZERO).ok().as_deref() == Some("hello"),
        "the message is then received with time-out 0",
    );
    let quiet = poll(&[(m, FD_READ)], Duration::from_millis(50));
    check(
        quiet.len() == 1 && quiet[0].0 == 99,
        "reported once: disarmed until a receive finds none",
    );
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    let mailbox = Mailbox::<String>::this();
    match case.as_str() {
        "std_blocking" => std_blocking(mailbox),
        "nonblocking_poll" => nonblocking_poll(mailbox),
        "mailbox_fd" => mailbox_fd(mailbox),
        other => panic!("no case {other:?}"),
    }
    println!("done");
}
