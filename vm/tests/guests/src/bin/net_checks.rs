//! Networking from inside the VM (the SDK's `troupe::net`), one case per
//! run (the first argument). Each check prints `ok: <what>` or
//! `FAIL: <what>` (with what happened); vm/tests/all/net.rs asserts on the
//! lines and on the final `done`.
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use troupe::abi::err;
use troupe::net::{self, error_code, TcpListener, TcpStream, UdpSocket};
use troupe::{
    monitor, receive_down_from, register, send_named, spawn, sys, ExitReason, Mailbox, Process,
    Reply, SpawnOptions,
};
use troupe_test_guests::check;

const WAIT: Duration = Duration::from_secs(30);

/// Checks that `result` failed with `kind` (and, if given, the ABI `code`);
/// prints the error.
fn check_err<T>(result: io::Result<T>, kind: io::ErrorKind, code: Option<i32>, what: &str) {
    match result {
        Ok(_) => println!("FAIL: {what} (it succeeded)"),
        Err(e) => {
            println!("  {what}: {:?}: {e}", e.kind());
            let code_ok = code.is_none() || error_code(&e) == code;
            if e.kind() == kind && code_ok {
                println!("ok: {what}");
            } else {
                println!(
                    "FAIL: {what} (got {:?}, code {:?}: {e})",
                    e.kind(),
                    error_code(&e)
                );
            }
        }
    }
}

fn bad_handle<T>(result: io::Result<T>, what: &str) {
    check_err(
        result,
        io::ErrorKind::InvalidInput,
        Some(err::BAD_HANDLE),
        what,
    );
}

fn read_line(stream: &TcpStream) -> String {
    // One byte at a time, so that nothing after the line is consumed.
    let mut line = Vec::new();
    let mut byte = [0u8];
    loop {
        match (&*stream).read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {
                line.push(byte[0]);
                if byte[0] == b'\n' {
                    break;
                }
            }
            Err(e) => return format!("<error: {e}>"),
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// Writes `line` and reads the answer.
fn ask(stream: &TcpStream, line: &str) -> String {
    if let Err(e) = (&*stream).write_all(line.as_bytes()) {
        return format!("<write error: {e}>");
    }
    read_line(stream)
}

/// A connected pair on loopback: (client end, server end, listener).
fn pair() -> (TcpStream, TcpStream, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    let client = TcpStream::connect(&addr).expect("connect");
    let (server, _) = listener.accept_timeout(WAIT).expect("accept");
    client.set_read_timeout(Some(WAIT)).unwrap();
    server.set_read_timeout(Some(WAIT)).unwrap();
    (client, server, listener)
}

// --- permission ------------------------------------------------------------

/// Run without --allow-net: everything is refused, with a clear message.
fn denied() {
    let says_how = |r: &io::Result<()>| match r {
        Err(e) => e.to_string().contains("--allow-net"),
        Ok(()) => false,
    };
    let r = TcpListener::bind("127.0.0.1:0").map(drop);
    check(
        says_how(&r),
        "the message of a refused bind names --allow-net",
    );
    check_err(
        r,
        io::ErrorKind::PermissionDenied,
        Some(err::PERMISSION_DENIED),
        "tcp listen is denied",
    );
    let r = TcpStream::connect("127.0.0.1:9").map(drop);
    check(
        matches!(&r, Err(e) if e.to_string().contains("127.0.0.1:9")),
        "the message of a refused connect names the address",
    );
    check_err(
        r,
        io::ErrorKind::PermissionDenied,
        Some(err::PERMISSION_DENIED),
        "tcp connect is denied",
    );
    check_err(
        UdpSocket::bind("127.0.0.1:0"),
        io::ErrorKind::PermissionDenied,
        Some(err::PERMISSION_DENIED),
        "udp bind is denied",
    );
    check_err(
        net::resolve("localhost"),
        io::ErrorKind::PermissionDenied,
        Some(err::PERMISSION_DENIED),
        "resolve is denied",
    );
    // A child cannot be given what the parent does not have.
    let e = SpawnOptions::new()
        .net(["127.0.0.1:80"])
        .spawn((), |(), _: Mailbox<()>| {});
    check(
        matches!(&e, Err(e) if e.code == err::PERMISSION_DENIED),
        "a child cannot be given network its parent lacks",
    );
    if let Err(e) = e {
        println!("  {e}");
    }
}

/// Run with --allow-net=127.0.0.1:PORT where the test listens on PORT and
/// OTHER (args: PORT OTHER).
fn port_rule(port: u16, other: u16) {
    match TcpStream::connect_timeout(&format!("127.0.0.1:{port}"), WAIT) {
        Ok(mut s) => {
            check(true, "connect to the allowed address");
            check(
                s.write_all(b"hello from the guest\n").is_ok(),
                "write to the test",
            );
            check(
                s.peer_addr().ok() == Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
                "peer_addr is the test's listener",
            );
            s.set_read_timeout(Some(WAIT)).unwrap();
            check(
                read_line(&s) == "hello from the test\n",
                "read the test's answer",
            );
        }
        Err(e) => println!("FAIL: connect to the allowed address: {e}"),
    }
    let r = TcpStream::connect_timeout(&format!("127.0.0.1:{other}"), WAIT);
    check(
        matches!(&r, Err(e) if e.to_string().contains(&format!("127.0.0.1:{other}"))),
        "the refusal names the address",
    );
    check_err(
        r,
        io::ErrorKind::PermissionDenied,
        Some(err::PERMISSION_DENIED),
        "connect to another port is denied",
    );
    check_err(
        TcpListener::bind("127.0.0.1:0"),
        io::ErrorKind::PermissionDenied,
        Some(err::PERMISSION_DENIED),
        "listen on another port is denied",
    );
    check_err(
        UdpSocket::bind("127.0.0.1:0"),
        io::ErrorKind::PermissionDenied,
        Some(err::PERMISSION_DENIED),
        "udp bind on another port is denied",
    );
    check(
        net::resolve("127.0.0.1").is_ok(),
        "resolve is allowed by any rule",
    );
}

/// Tries `connect` to each port, reporting to `to`.
fn try_connect((ports, to): (Vec<u16>, Process<Vec<String>>), _: Mailbox<()>) {
    let results = ports
        .iter()
        .map(|p| match TcpStream::connect(&format!("127.0.0.1:{p}")) {
            Ok(_) => "connected".to_string(),
            Err(e) => format!("{:?}", e.kind()),
        })
        .collect();
    to.send(results).unwrap();
}

/// Run with --allow-net=127.0.0.1: children narrowed with SpawnOptions::net.
fn narrow() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let (pa, pb) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    let inbox = Mailbox::<Vec<String>>::this();
    let run = |options: SpawnOptions| -> Vec<String> {
        options
            .spawn((vec![pa, pb], inbox.process()), try_connect)
            .expect("spawn");
        inbox.receive_timeout(WAIT).expect("the child's report")
    };
    let r = run(SpawnOptions::new());
    check(
        r == ["connected", "connected"],
        "a child inherits its parent's permission",
    );
    let r = run(SpawnOptions::new().net([format!("127.0.0.1:{pa}")]));
    println!("  narrowed to port {pa}: {r:?}");
    check(
        r == ["connected", "PermissionDenied"],
        "a child narrowed to one port may use that port only",
    );
    let r = run(SpawnOptions::new().no_net());
    check(
        r == ["PermissionDenied", "PermissionDenied"],
        "a child given an empty list has no network",
    );
    let e = SpawnOptions::new()
        .net(["10.1.2.3:80"])
        .spawn((), |(), _: Mailbox<()>| {});
    check(
        matches!(&e, Err(e) if e.code == err::PERMISSION_DENIED && e.message.contains("10.1.2.3")),
        "a rule the parent does not hold fails the spawn, naming it",
    );
    if let Err(e) = e {
        println!("  {e}");
    }
    let e = SpawnOptions::new()
        .net(["127.0.0.1:notaport"])
        .spawn((), |(), _: Mailbox<()>| {});
    check(
        matches!(&e, Err(e) if e.code == err::INVALID_ARGUMENT),
        "a malformed rule fails the spawn with INVALID_ARGUMENT",
    );
    if let Err(e) = e {
        println!("  {e}");
    }
}

// --- TCP inside the VM -------------------------------------------------------

#[derive(Serialize, Deserialize)]
enum Accepted {
    Peer(SocketAddr),
}

/// Accepts one connection, reports its peer, then answers lines with
/// `got <line>` until the end of the stream, and says `bye`.
fn server_once((listener, to): (TcpListener, Process<Accepted>), _: Mailbox<()>) {
    let (stream, peer) = listener.accept().expect("accept");
    to.send(Accepted::Peer(peer)).unwrap();
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        (&stream)
            .write_all(format!("got {line}").as_bytes())
            .unwrap();
        line.clear();
    }
    (&stream).write_all(b"bye\n").unwrap();
}

/// Run with --allow-net=127.0.0.1: a client and a server in the VM.
fn client() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    check(
        addr.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST) && addr.port() != 0,
        "port 0 picks a free port (local_addr)",
    );
    check_err(
        TcpListener::bind(&addr.to_string()),
        io::ErrorKind::AddrInUse,
        Some(err::ADDR_IN_USE),
        "listening twice on one address",
    );
    check_err(
        listener.accept_timeout(Duration::from_millis(50)),
        io::ErrorKind::TimedOut,
        Some(err::TIMEOUT),
        "accept times out",
    );
    let inbox = Mailbox::<Accepted>::this();
    spawn((listener, inbox.process()), server_once).unwrap();

    let mut stream = TcpStream::connect_timeout(&addr.to_string(), WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    check(
        stream.read_timeout().unwrap() == Some(WAIT),
        "read_timeout is kept",
    );
    check(
        stream.peer_addr().ok() == Some(addr),
        "peer_addr is the listener's address",
    );
    let Accepted::Peer(peer) = inbox.receive_timeout(WAIT).expect("the server's report");
    check(
        stream.local_addr().ok() == Some(peer),
        "accept gives the client's address",
    );
    check(
        ask(&stream, "one\n") == "got one\n",
        "a request and its answer",
    );
    check(ask(&stream, "two\n") == "got two\n", "a second request");
    // A big write: the host writes all of it.
    let big = vec![b'x'; 300_000];
    let mut payload = big.clone();
    payload.push(b'\n');
    check(
        stream.write(&payload).ok() == Some(payload.len()),
        "write sends the whole buffer",
    );
    let mut answer = vec![0u8; 4 + payload.len()];
    check(
        stream.read_exact(&mut answer).is_ok() && answer[4..] == payload[..],
        "300 kB come back",
    );
    // Nothing to read: the read time-out.
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let started = Instant::now();
    check_err(
        stream.read(&mut [0u8; 16]),
        io::ErrorKind::TimedOut,
        Some(err::TIMEOUT),
        "read times out",
    );
    check(
        started.elapsed() >= Duration::from_millis(40),
        "after about its time-out",
    );
    stream.set_read_timeout(Some(WAIT)).unwrap();
    // Shutting the writing half: the server reads the end, says bye, ends.
    stream.shutdown(Shutdown::Write).unwrap();
    check(
        read_line(&stream) == "bye\n",
        "shutdown(Write): the peer reads the end",
    );
    check(
        stream.read(&mut [0u8; 16]).ok() == Some(0),
        "then we read the end",
    );
    check(stream.read(&mut [0u8; 16]).ok() == Some(0), "and again");

    // Addresses that do not fit the buffer: the length needed comes back.
    let mut small = [0u8; 4];
    let mut needed = 0u32;
    let rc = unsafe {
        sys::local_addr(
            stream.handle() as i64,
            sys::ptr_mut(small.as_mut_ptr()),
            small.len() as i32,
            sys::ptr_mut(&mut needed),
        )
    };
    check(
        rc == err::BUFFER_TOO_SMALL
            && needed as usize == stream.local_addr().unwrap().to_string().len(),
        "local_addr into a small buffer: BUFFER_TOO_SMALL and the length needed",
    );

    // A peer that does not read: a write waits, then times out.
    let stuck_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let stuck_addr = stuck_listener.local_addr().unwrap().to_string();
    let mut stuck = TcpStream::connect(&stuck_addr).unwrap();
    let (_not_reading, _) = stuck_listener.accept_timeout(WAIT).unwrap();
    stuck
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    check(
        stuck.write_timeout().unwrap() == Some(Duration::from_millis(200)),
        "write_timeout is kept",
    );
    let big = vec![7u8; 24 << 20];
    match stuck.write(&big) {
        Ok(n) => {
            println!("  {n} of {} bytes written before the time-out", big.len());
            check(
                n > 0 && n < big.len(),
                "a write that times out reports the part written",
            );
            check_err(
                stuck.write(&big[n..]),
                io::ErrorKind::TimedOut,
                Some(err::TIMEOUT),
                "the next write times out",
            );
        }
        Err(e) => println!("FAIL: a write that times out reports the part written: {e}"),
    }
    drop(big);

    // Nobody listens on a port just freed.
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let free_addr = free.local_addr().unwrap().to_string();
    drop(free);
    check_err(
        TcpStream::connect_timeout(&free_addr, WAIT),
        io::ErrorKind::ConnectionRefused,
        Some(err::CONNECTION_REFUSED),
        "connect to a closed port is refused",
    );
    check_err(
        TcpStream::connect("no port here"),
        io::ErrorKind::InvalidInput,
        Some(err::INVALID_ARGUMENT),
        "connect to a malformed address",
    );
    check_err(
        TcpListener::bind("127.0.0.1"),
        io::ErrorKind::InvalidInput,
        Some(err::INVALID_ARGUMENT),
        "listen on an address without a port",
    );
}

// --- moving sockets ------------------------------------------------------------

#[derive(Serialize, Deserialize)]
enum Held {
    /// Keep this stream, echo one line on it, and tell the process.
    Take(TcpStream, Process<String>),
    /// Give the stream back.
    GiveBack(Reply<TcpStream>),
}

fn holder(_: (), mailbox: Mailbox<Held>) {
    let mut held: Option<TcpStream> = None;
    loop {
        match mailbox.receive() {
            Held::Take(stream, to) => {
                let line = read_line(&stream);
                let ok = (&stream).write_all(line.as_bytes()).is_ok();
                let _ = to.send(format!("echoed {line:?} ({ok})"));
                held = Some(stream);
            }
            Held::GiveBack(reply) => {
                let _ = reply.send(held.take().expect("a stream"));
            }
        }
    }
}

/// Accepts one connection on the listener it was given and greets it.
fn greeter(listener: TcpListener, _: Mailbox<()>) {
    let (stream, _) = listener.accept().expect("accept");
    (&stream).write_all(b"hello from the new owner\n").unwrap();
}

/// Leaks its stream (never closes it) and ends when told to.
fn leaker(stream: TcpStream, mailbox: Mailbox<()>) {
    let _ = stream.into_handle();
    mailbox.receive();
}

/// Run with --allow-net=127.0.0.1.
fn moved() {
    let (client, server, listener) = pair();
    let old = server.handle();
    let h = spawn((), holder).unwrap();
    let inbox = Mailbox::<String>::this();

    // Moved in a message: the holder uses it at once.
    (&client).write_all(b"ping\n").unwrap();
    check(
        h.send(Held::Take(server, inbox.process())).is_ok(),
        "send a stream in a message",
    );
    let said = inbox.receive_timeout(WAIT).expect("the holder's report");
    println!("  holder: {said}");
    check(
        read_line(&client) == "ping\n",
        "a socket moved in a message works for its new owner",
    );

    // The old owner lost it.
    let mut stale = TcpStream::from_handle(old);
    bad_handle(
        stale.write(b"x"),
        "the old owner cannot write with the old handle",
    );
    bad_handle(stale.read(&mut [0u8; 4]), "nor read");
    bad_handle(stale.peer_addr(), "nor ask its peer");
    check(
        matches!(stale.write(b"x"), Err(e) if e.to_string().contains("not a socket this process holds")),
        "the error says it is not a socket this process holds",
    );
    check(
        unsafe { sys::close(old as i64) } == err::BAD_HANDLE,
        "nor close it",
    );
    drop(stale); // its close fails quietly

    // Moved back in a reply.
    let back: TcpStream = h.request_timeout(Held::GiveBack, WAIT).expect("given back");
    check(
        back.handle() == old,
        "a socket keeps its handle when it moves",
    );
    (&back).write_all(b"back\n").unwrap();
    check(
        read_line(&client) == "back\n",
        "a socket moved back in a reply works again",
    );

    // Moved by name.
    register("net-holder", h.pid()).unwrap();
    let (client2, server2, _l2) = pair();
    (&client2).write_all(b"by name\n").unwrap();
    check(
        send_named("net-holder", &Held::Take(server2, inbox.process())).is_ok(),
        "send a stream by name",
    );
    let said = inbox.receive_timeout(WAIT).expect("the holder's report");
    println!("  holder: {said}");
    check(
        read_line(&client2) == "by name\n",
        "a socket sent by name works for the receiver",
    );

    // A listener moved as a spawn argument accepts for its new owner.
    let addr = listener.local_addr().unwrap().to_string();
    let lh = listener.handle();
    spawn(listener, greeter).unwrap();
    bad_handle(
        TcpListener::from_handle(lh).accept_timeout(Duration::ZERO),
        "the old owner cannot accept on a moved listener",
    );
    let mut greeted = TcpStream::connect(&addr).unwrap();
    greeted.set_read_timeout(Some(WAIT)).unwrap();
    check(
        read_line(&greeted) == "hello from the new owner\n",
        "a listener moved as a spawn argument accepts for its new owner",
    );
    check(
        greeted.read(&mut [0u8; 4]).ok() == Some(0),
        "the stream is closed when its owner ends",
    );

    // A lost message closes the sockets it carried.
    let (mut client3, server3, _l3) = pair();
    let h3 = server3.handle();
    let dead = spawn((), |(), _: Mailbox<Held>| {}).unwrap();
    let m = monitor(dead.pid());
    receive_down_from(m, Some(WAIT)).unwrap();
    let sent = dead.send(Held::Take(server3, inbox.process()));
    check(sent.is_err(), "a send to a dead process fails");
    check(
        client3.read(&mut [0u8; 4]).ok() == Some(0),
        "the socket of a lost message is closed (the peer reads the end)",
    );
    let s3 = TcpStream::from_handle(h3);
    bad_handle(s3.peer_addr(), "and the sender does not hold it");
    let _ = s3.into_handle();

    // A process that ends closes its sockets, even leaked ones.
    let (mut client4, server4, _l4) = pair();
    let p = spawn(server4, leaker).unwrap();
    let m = monitor(p.pid());
    p.send(()).unwrap();
    check(
        receive_down_from(m, Some(WAIT)).ok() == Some(ExitReason::Normal),
        "the leaking process ended",
    );
    check(
        client4.read(&mut [0u8; 4]).ok() == Some(0),
        "a leaked socket is closed when its process ends",
    );
}

// --- bad handles ------------------------------------------------------------------

/// Run with --allow-net=127.0.0.1: handles that are not this process's
/// sockets are errors, never traps.
fn handles() {
    let (client, server, listener) = pair();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();

    for (handle, name) in [
        (0u64, "handle 0"),
        (0x1234_5678_9abc, "a random handle"),
        (u64::MAX, "handle -1"),
    ] {
        let mut s = TcpStream::from_handle(handle);
        bad_handle(s.read(&mut [0u8; 4]), &format!("read with {name}"));
        bad_handle(s.write(b"x"), &format!("write with {name}"));
        bad_handle(s.shutdown(Shutdown::Both), &format!("shutdown with {name}"));
        bad_handle(s.local_addr(), &format!("local_addr with {name}"));
        bad_handle(s.peer_addr(), &format!("peer_addr with {name}"));
        let _ = s.into_handle();
        let l = TcpListener::from_handle(handle);
        bad_handle(
            l.accept_timeout(Duration::ZERO),
            &format!("accept with {name}"),
        );
        let _ = l.into_handle();
        check(
            unsafe { sys::close(handle as i64) } == err::BAD_HANDLE,
            &format!("close with {name}"),
        );
        check(
            unsafe { sys::attach(handle as i64) } == err::BAD_HANDLE,
            &format!("attach with {name}"),
        );
    }

    // The wrong kind of socket.
    let mut as_stream = TcpStream::from_handle(listener.handle());
    bad_handle(as_stream.read(&mut [0u8; 4]), "a listener given to read");
    bad_handle(as_stream.write(b"x"), "a listener given to write");
    bad_handle(as_stream.peer_addr(), "a listener given to peer_addr");
    let _ = as_stream.into_handle();
    let as_listener = TcpListener::from_handle(server.handle());
    bad_handle(
        as_listener.accept_timeout(Duration::ZERO),
        "a stream given to accept",
    );
    let _ = as_listener.into_handle();
    let as_udp = UdpSocket::from_handle(server.handle());
    bad_handle(
        as_udp.recv_from(&mut [0u8; 4]),
        "a stream given to recv_from",
    );
    bad_handle(
        as_udp.send_to(b"x", "127.0.0.1:9"),
        "a stream given to send_to",
    );
    let _ = as_udp.into_handle();
    let mut udp_as_stream = TcpStream::from_handle(udp.handle());
    bad_handle(
        udp_as_stream.read(&mut [0u8; 4]),
        "a udp socket given to read",
    );
    let _ = udp_as_stream.into_handle();
    check_err(
        listener.accept_timeout(Duration::ZERO),
        io::ErrorKind::TimedOut,
        Some(err::TIMEOUT),
        "the listener still works (nothing to accept)",
    );

    // Bad arguments with a good handle.
    check(
        unsafe { sys::shutdown(server.handle() as i64, 7) } == err::INVALID_ARGUMENT,
        "shutdown with how = 7 is INVALID_ARGUMENT",
    );
    let not_utf8 = [0xffu8, 0xfe, b':', b'1'];
    let mut out = 0u64;
    check(
        unsafe {
            sys::tcp_listen(
                sys::ptr(not_utf8.as_ptr()),
                not_utf8.len() as i32,
                sys::ptr_mut(&mut out),
            )
        } == err::INVALID_ARGUMENT,
        "an address that is not UTF-8 is INVALID_ARGUMENT",
    );

    // A closed socket.
    let (mut c2, s2, _l2) = pair();
    let closed = s2.handle();
    drop(s2);
    let mut s = TcpStream::from_handle(closed);
    bad_handle(s.read(&mut [0u8; 4]), "read on a closed socket");
    bad_handle(s.write(b"x"), "write on a closed socket");
    let _ = s.into_handle();
    check(
        unsafe { sys::close(closed as i64) } == err::BAD_HANDLE,
        "closing twice is BAD_HANDLE",
    );
    c2.set_read_timeout(Some(WAIT)).unwrap();
    check(
        c2.read(&mut [0u8; 4]).ok() == Some(0),
        "the peer of a closed socket reads the end",
    );

    // The connection that was there all along still works.
    (&server).write_all(b"still fine\n").unwrap();
    check(
        read_line(&client) == "still fine\n",
        "the good connection still works",
    );
}

// --- UDP and names ------------------------------------------------------------------

/// Answers one datagram with `pong <what it got>` to its sender.
fn udp_ponger((socket, to): (UdpSocket, Process<SocketAddr>), _: Mailbox<()>) {
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = socket.recv_from(&mut buf).expect("recv_from");
    to.send(from).unwrap();
    let mut answer = b"pong ".to_vec();
    answer.extend_from_slice(&buf[..n]);
    socket.send_to(&answer, &from.to_string()).unwrap();
}

/// Run with --allow-net=127.0.0.1 (and localhost).
fn udp() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    check(
        a_addr.port() != 0 && a_addr != b_addr,
        "udp bind on port 0 picks a port",
    );
    let inbox = Mailbox::<SocketAddr>::this();
    spawn((a, inbox.process()), udp_ponger).unwrap();
    b.set_read_timeout(Some(WAIT)).unwrap();
    check(
        b.send_to(b"ping", &a_addr.to_string()).ok() == Some(4),
        "send_to returns the count sent",
    );
    let seen = inbox.receive_timeout(WAIT).expect("the ponger's report");
    check(seen == b_addr, "recv_from gives the sender's address");
    let mut buf = [0u8; 64];
    match b.recv_from(&mut buf) {
        Ok((n, from)) => {
            check(&buf[..n] == b"pong ping", "the answer came back");
            check(from == a_addr, "from the socket moved to the ponger");
        }
        Err(e) => println!("FAIL: the answer came back: {e}"),
    }
    // A datagram longer than the buffer: the rest is lost.
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.send_to(b"0123456789", &b_addr.to_string()).unwrap();
    let mut small = [0u8; 4];
    let r = b.recv_from(&mut small);
    check(
        matches!(r, Ok((4, _))) && &small == b"0123",
        "a long datagram is cut to the buffer",
    );
    b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    check_err(
        b.recv_from(&mut buf),
        io::ErrorKind::TimedOut,
        Some(err::TIMEOUT),
        "recv_from times out",
    );
}

/// Run with --allow-net.
fn resolve() {
    // The list does not fit: the length needed comes back.
    let name = "127.0.0.1";
    let mut small = [0u8; 2];
    let mut needed = 0u32;
    let rc = unsafe {
        sys::resolve(
            sys::ptr(name.as_ptr()),
            name.len() as i32,
            sys::ptr_mut(small.as_mut_ptr()),
            small.len() as i32,
            sys::ptr_mut(&mut needed),
        )
    };
    check(
        rc == err::BUFFER_TOO_SMALL && needed as usize == "127.0.0.1\n".len(),
        "resolve into a small buffer: BUFFER_TOO_SMALL and the length needed",
    );
    match net::resolve("localhost") {
        Ok(ips) => {
            println!("  localhost: {ips:?}");
            check(
                !ips.is_empty() && ips.iter().all(|ip| ip.is_loopback()),
                "localhost resolves to loopback addresses",
            );
        }
        Err(e) => println!("FAIL: localhost resolves to loopback addresses: {e}"),
    }
    check(
        net::resolve("127.0.0.1").ok() == Some(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]),
        "an IP address resolves to itself",
    );
    // No rule names it, so it is refused before any look-up: no DNS query
    // leaves the VM for it.
    check_err(
        net::resolve("no-such-host.invalid"),
        io::ErrorKind::PermissionDenied,
        Some(err::PERMISSION_DENIED),
        "a name no rule names is refused without a look-up",
    );
    // Connecting by name.
    let listener = TcpListener::bind("localhost:0");
    match listener {
        Ok(l) => {
            let port = l.local_addr().unwrap().port();
            check(
                TcpStream::connect(&format!("localhost:{port}")).is_ok(),
                "connect by host name",
            );
        }
        Err(e) => println!("FAIL: listen on localhost:0: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = |i: usize| -> u16 { args[i].parse().expect("a port") };
    match args.first().map(String::as_str).unwrap_or_default() {
        "denied" => denied(),
        "port_rule" => port_rule(port(1), port(2)),
        "narrow" => narrow(),
        "client" => client(),
        "moved" => moved(),
        "handles" => handles(),
        "udp" => udp(),
        "resolve" => resolve(),
        other => panic!("unknown case {other:?}"),
    }
    println!("done");
}
