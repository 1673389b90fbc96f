//! A client of `examples/kv-server`, itself a Troupe program: each client is
//! a process with its own connection. It is the second service of the
//! compose stack (`examples/compose`), where it reaches the server by its
//! service name.
//!
//! ```sh
//! troupe run --allow-net=kv:7000 kv-client.wasm kv:7000 [CLIENTS] [--wait SECS]
//! ```
//!
//! 1. waits (up to `--wait` seconds, default 30) until the server accepts;
//! 2. starts `CLIENTS` processes (default 4), each with its own connection,
//!    which set and read back 100 keys of their own and check every reply;
//! 3. opens one connection that sends `CRASH`: its handler on the server
//!    panics, so that connection alone is lost (the client reads its end),
//!    while a connection opened before it keeps working;
//! 4. prints `kv-client: OK ...` and exits 0, or says what failed and exits 1.

use std::io::{self, BufRead, BufReader, Write};
use std::process::exit;
use std::time::{Duration, Instant};

use troupe::net::TcpStream;
use troupe::{monitor, receive_down_from, spawn, ExitReason, Mailbox};

const TIMEOUT: Duration = Duration::from_secs(10);

/// One connection, line by line.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: &str) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        Ok(Conn {
            reader: BufReader::new(stream),
        })
    }

    /// Sends `line`; the server's answer, or `None` at the end of the
    /// stream.
    fn ask(&mut self, line: &str) -> io::Result<Option<String>> {
        // `&TcpStream` is `Write`: write past the reader's buffer.
        let mut stream = self.reader.get_ref();
        writeln!(stream, "{line}")?;
        let mut answer = String::new();
        match self.reader.read_line(&mut answer)? {
            0 => Ok(None),
            _ => Ok(Some(answer.trim_end().to_owned())),
        }
    }

    fn expect(&mut self, line: &str, want: &str) -> Result<(), String> {
        match self.ask(line) {
            Ok(Some(got)) if got == want => Ok(()),
            Ok(Some(got)) => Err(format!("{line:?}: expected {want:?}, got {got:?}")),
            Ok(None) => Err(format!("{line:?}: the server closed the connection")),
            Err(e) => Err(format!("{line:?}: {e}")),
        }
    }
}

fn fail(what: &str) -> ! {
    eprintln!("kv-client: {what}");
    exit(1)
}

/// A client process: 100 keys of its own, set and read back.
fn client((addr, id): (String, u32), _: Mailbox<()>) {
    let mut conn = Conn::open(&addr).unwrap_or_else(|e| fail(&format!("client {id}: {e}")));
    for k in 0..100 {
        let (key, value) = (format!("c{id}-k{k}"), format!("value {k} of client {id}"));
        let checked = conn
            .expect(&format!("SET {key} {value}"), "OK")
            .and_then(|()| conn.expect(&format!("GET {key}"), &format!("VALUE {value}")));
        if let Err(e) = checked {
            fail(&format!("client {id}: {e}"));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    let clients: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);
    let wait = match args.iter().position(|a| a == "--wait") {
        Some(i) => args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(30),
        None => 30,
    };

    // 1. The server may still be starting (compose starts both at once).
    let deadline = Instant::now() + Duration::from_secs(wait);
    let mut probe = loop {
        match Conn::open(&addr) {
            Ok(mut c) => match c.expect("PING", "PONG") {
                Ok(()) => break c,
                Err(e) => fail(&format!("the server does not answer PING: {e}")),
            },
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => fail(&e.to_string()),
            Err(e) if Instant::now() > deadline => {
                fail(&format!("no server at {addr} after {wait} s: {e}"))
            }
            Err(_) => troupe::sleep(Duration::from_millis(200)),
        }
    };
    println!("kv-client: connected to {addr}");

    // 2. Clients in parallel, each its own process and connection.
    let watches: Vec<_> = (0..clients)
        .map(|id| {
            let p = spawn((addr.clone(), id), client).unwrap_or_else(|e| fail(&e.to_string()));
            monitor(p.pid())
        })
        .collect();
    for watch in watches {
        match receive_down_from(watch, Some(Duration::from_secs(60))) {
            Ok(ExitReason::Normal) => {}
            Ok(reason) => fail(&format!("a client ended with {reason}")),
            Err(e) => fail(&format!("a client: {e}")),
        }
    }
    if let Err(e) = probe.expect("COUNT", &format!("COUNT {}", 100 * clients)) {
        fail(&e);
    }
    println!(
        "kv-client: {clients} clients set and read back {} keys",
        100 * clients
    );

    // 3. A crashing request handler loses its own connection only.
    let mut doomed = Conn::open(&addr).unwrap_or_else(|e| fail(&e.to_string()));
    match doomed.ask("CRASH") {
        Ok(None) | Err(_) => println!("kv-client: CRASH closed that connection only"),
        Ok(Some(got)) => fail(&format!("CRASH answered {got:?}")),
    }
    if let Err(e) = probe.expect("PING", "PONG") {
        fail(&format!("after the crash, the other connection: {e}"));
    }
    if let Err(e) = probe.expect("GET c0-k0", "VALUE value 0 of client 0") {
        fail(&format!("after the crash: {e}"));
    }
    println!("kv-client: OK (the store kept its {} keys)", 100 * clients);
}
