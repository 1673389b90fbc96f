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

use troupe::net::{TcpListener, TcpStream};
use troupe::{
    call_named, receive_exit_from, trap_exit, CallResult, Caller, ChildSpec, ExitReason, Mailbox,
    Server, Strategy, Supervisor, SupervisorSpec,
};

use kv_protocol::{self as protocol, parse, Command, Reply, Request};

/// The name the store is registered under.
const STORE: &str = "kv-store";

/// How long a handler waits for the store.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// The store: a server holding the data, in its own process.

struct Store {
    data: HashMap<String, String>,
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
        CallResult::Reply(protocol::apply(&mut self.data, request))
    }
}

// ---------------------------------------------------------------------------
// The protocol.

/// The reply line (with its `\n`) to one request line.
fn respond(line: &str) -> String {
    let request = match parse(line) {
        Some(Command::Store(request)) => request,
        Some(Command::Ping) => return "PONG\n".to_string(),
        // Let it crash: this process dies, and its socket is closed with it.
        Some(Command::Crash) => panic!("CRASH requested by the client"),
        None => return protocol::UNKNOWN.to_string(),
    };
    // The store's pid is looked up by name at each call: if the store was
    // restarted, the call goes to the new one.
    match call_named::<Store>(STORE, request, CALL_TIMEOUT) {
        Ok(reply) => reply.line(),
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
