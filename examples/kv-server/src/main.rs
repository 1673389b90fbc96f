//! A key-value service over TCP, one process per connection.
//!
//! ```text
//! root (main): starts the tree, then waits; if the tree gives up, exits 1
//! └── supervisor (one_for_one, at most 3 restarts in 5 s)
//!     ├── store      a server registered as "kv-store": owns the data
//!     └── acceptor   a worker: binds the address, accepts connections
//!                    and spawns one handler process per connection
//!                    (not linked: a crashing handler takes down nothing else)
//! ```
//!
//! The protocol is text lines:
//!
//! ```text
//! SET key value   -> OK
//! GET key         -> VALUE value | NOT_FOUND
//! DEL key         -> DELETED | NOT_FOUND
//! COUNT           -> COUNT n
//! PING            -> PONG
//! CRASH           -> the connection's handler panics (on purpose)
//! anything else   -> ERR unknown command
//! ```
//!
//! `troupe run --allow-net=0.0.0.0:7000 kv-server.wasm [ADDR]` (default
//! `0.0.0.0:7000`; port 0 picks a free port, printed on start).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe::net::{TcpListener, TcpStream};
use troupe::{
    call_named, receive_exit_from, trap_exit, CallResult, Caller, ChildSpec, ExitReason, Mailbox,
    Server, Strategy, Supervisor, SupervisorSpec,
};

/// The name the store is registered under.
const STORE: &str = "kv-store";

/// How long a handler waits for the store.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// The store: a server holding the data, in its own process.

struct Store {
    data: HashMap<String, String>,
}

/// A request to the store (sent with `call`).
#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Set(String, String),
    Get(String),
    Del(String),
    Count,
}

/// The store's answer.
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Ok,
    Value(Option<String>),
    Deleted(bool),
    Count(u64),
}

impl Server for Store {
    type Arg = ();
    type Call = Request;
    type Reply = Reply;
    type Cast = ();
    type Info = ();

    fn init((): ()) -> Result<Self, ExitReason> {
        Ok(Store {
            data: HashMap::new(),
        })
    }

    fn handle_call(&mut self, request: Request, _: Caller<Reply>) -> CallResult<Reply> {
        CallResult::Reply(match request {
            Request::Set(key, value) => {
                self.data.insert(key, value);
                Reply::Ok
            }
            Request::Get(key) => Reply::Value(self.data.get(&key).cloned()),
            Request::Del(key) => Reply::Deleted(self.data.remove(&key).is_some()),
            Request::Count => Reply::Count(self.data.len() as u64),
        })
    }
}

// ---------------------------------------------------------------------------
// The protocol.

/// What one line asks for.
enum Command {
    Store(Request),
    Ping,
    Crash,
}

/// Parses one line (without its `\n`): `None` if it is not a command with
/// the right arguments. Command words are case-insensitive; a key is one
/// word; a value is the rest of the line, spaces included.
fn parse(line: &str) -> Option<Command> {
    let (word, rest) = match line.split_once(' ') {
        Some((word, rest)) => (word, Some(rest)),
        None => (line, None),
    };
    let is_key = |k: &str| !k.is_empty() && !k.contains(' ');
    Some(match (word.to_ascii_uppercase().as_str(), rest) {
        ("SET", Some(rest)) => {
            let (key, value) = rest.split_once(' ')?;
            if !is_key(key) {
                return None;
            }
            Command::Store(Request::Set(key.to_string(), value.to_string()))
        }
        ("GET", Some(key)) if is_key(key) => Command::Store(Request::Get(key.to_string())),
        ("DEL", Some(key)) if is_key(key) => Command::Store(Request::Del(key.to_string())),
        ("COUNT", None) => Command::Store(Request::Count),
        ("PING", None) => Command::Ping,
        ("CRASH", None) => Command::Crash,
        _ => return None,
    })
}

/// The reply line (with its `\n`) to one request line.
fn respond(line: &str) -> String {
    let request = match parse(line) {
        Some(Command::Store(request)) => request,
        Some(Command::Ping) => return "PONG\n".to_string(),
        // Let it crash: this process dies, and its socket is closed with it.
        Some(Command::Crash) => panic!("CRASH requested by the client"),
        None => return "ERR unknown command\n".to_string(),
    };
    // The store's pid is looked up by name at each call: if the store was
    // restarted, the call goes to the new one.
    match call_named::<Store>(STORE, request, CALL_TIMEOUT) {
        Ok(Reply::Ok) => "OK\n".to_string(),
        Ok(Reply::Value(Some(value))) => format!("VALUE {value}\n"),
        Ok(Reply::Value(None) | Reply::Deleted(false)) => "NOT_FOUND\n".to_string(),
        Ok(Reply::Deleted(true)) => "DELETED\n".to_string(),
        Ok(Reply::Count(n)) => format!("COUNT {n}\n"),
        Err(e) => format!("ERR store unavailable: {e}\n"),
    }
}

// ---------------------------------------------------------------------------
// The processes.

/// One connection's process: reads request lines and answers each one,
/// until the client closes the connection.
fn handle_connection(stream: TcpStream, _: Mailbox<()>) {
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return, // the client closed the connection
            Ok(_) => {}
            Err(e) => {
                eprintln!("kv-server: read failed: {e}");
                return;
            }
        }
        let reply = respond(line.trim_end_matches(['\n', '\r']));
        if (&stream).write_all(reply.as_bytes()).is_err() {
            return; // the client is gone
        }
    }
} // the process ends here, and its socket is closed

/// The acceptor: binds `addr` and spawns a handler for each connection.
/// The stream is the handler's spawn argument: sending it moves the socket
/// to the new process.
fn acceptor(addr: String, _: Mailbox<()>) {
    let listener = TcpListener::bind(&addr).unwrap_or_else(|e| {
        // e says "cannot listen on ADDR: why".
        eprintln!("kv-server: {e}");
        // An abnormal exit: the supervisor restarts the acceptor, and gives
        // up (ending the program) if it keeps failing.
        std::process::exit(1)
    });
    match listener.local_addr() {
        Ok(local) => println!("kv-server: listening on {local}"),
        Err(_) => println!("kv-server: listening on {addr}"),
    }
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(e) = troupe::spawn(stream, handle_connection) {
                    // The connection went with the failed spawn: it is closed.
                    eprintln!("kv-server: cannot start a handler: {e}");
                }
            }
            Err(e) => {
                // Out of file descriptors, for example: wait a little.
                eprintln!("kv-server: accept failed: {e}");
                troupe::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0.0.0.0:7000".to_string());

    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(5))
        .child(ChildSpec::server::<Store>("store", ()).name(STORE))
        .child(ChildSpec::worker("acceptor", addr, acceptor));

    // The root traps exits: when the supervisor gives up, the root gets an
    // EXIT message instead of dying with it, and says so.
    trap_exit(true);
    let supervisor = match Supervisor::start_link(spec) {
        Ok(supervisor) => supervisor,
        Err(e) => {
            eprintln!("kv-server: cannot start: {e}");
            std::process::exit(1);
        }
    };
    if let Ok(reason) = receive_exit_from(supervisor.pid(), None) {
        eprintln!("kv-server: the supervisor stopped ({reason}), exiting");
    }
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> bool {
        parse(line).is_some()
    }

    #[test]
    fn the_grammar() {
        assert!(ok("SET k some value with spaces"));
        assert!(ok("SET k "));
        assert!(ok("set k v"));
        assert!(!ok("SET k"));
        assert!(!ok("SET  v"));
        assert!(ok("GET k"));
        assert!(!ok("GET"));
        assert!(!ok("GET a b"));
        assert!(ok("DEL k"));
        assert!(ok("COUNT"));
        assert!(!ok("COUNT x"));
        assert!(ok("PING"));
        assert!(ok("CRASH"));
        assert!(!ok(""));
        assert!(!ok("FLY away"));
    }
}
