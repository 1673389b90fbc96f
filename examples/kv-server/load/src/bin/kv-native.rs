//! `kv-native`: the kv-server protocol served by plain tokio, the native
//! baseline of `benches/kv.sh`.
//!
//! It is built like the Troupe version: one task per connection (a Troupe
//! process there), and the store is one task owning a `HashMap` (the
//! `kv-store` server there), reached through an unbounded channel (a
//! mailbox) with a oneshot channel for each reply (a `call`). A `CRASH`
//! panics the connection's task: tokio catches the panic, and that
//! connection alone is lost.
//!
//! ```text
//! kv-native [--addr 0.0.0.0:7000] [--threads N]
//! ```

use std::collections::HashMap;

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

// The protocol and the store's operations, the very code of the Troupe
// server (the kv-protocol crate, `examples/kv-server/protocol`).
use kv_protocol::{self as protocol, parse, Command, Reply, Request};

#[derive(Parser, Debug)]
#[command(
    name = "kv-native",
    about = "The kv-server line protocol in plain tokio (the native baseline)"
)]
struct Args {
    /// Address to listen on (port 0: any free port; the real address is printed).
    #[arg(long, default_value = "0.0.0.0:7000")]
    addr: String,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

type Store = mpsc::UnboundedSender<(Request, oneshot::Sender<Reply>)>;

/// The store: one task owning the map, answering requests in order.
async fn store(mut requests: mpsc::UnboundedReceiver<(Request, oneshot::Sender<Reply>)>) {
    let mut data: HashMap<String, String> = HashMap::new();
    while let Some((request, reply)) = requests.recv().await {
        let answer = protocol::apply(&mut data, request);
        let _ = reply.send(answer); // the connection may have gone
    }
}

/// The reply line (with its `\n`) to one request line.
async fn respond(line: &str, store: &Store) -> String {
    let request = match parse(line) {
        Some(Command::Store(request)) => request,
        Some(Command::Ping) => return "PONG\n".to_string(),
        Some(Command::Crash) => panic!("CRASH requested by the client"),
        None => return protocol::UNKNOWN.to_string(),
    };
    let (tx, rx) = oneshot::channel();
    if store.send((request, tx)).is_err() {
        return "ERR store unavailable\n".to_string();
    }
    match rx.await {
        Ok(reply) => reply.line(),
        Err(_) => "ERR store unavailable\n".to_string(),
    }
}

/// Serves one connection until the client closes it.
async fn handle_connection(stream: TcpStream, store: Store) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let reply = respond(line.trim_end_matches(['\n', '\r']), &store).await;
        w.write_all(reply.as_bytes()).await?;
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    rt.enable_all().build()?.block_on(async {
        let listener = match TcpListener::bind(&args.addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("kv-native: cannot listen on {}: {e}", args.addr);
                std::process::exit(1);
            }
        };
        println!("kv-native: listening on {}", listener.local_addr()?);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(store(rx));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let store = tx.clone();
                    tokio::spawn(async move {
                        let _ = handle_connection(stream, store).await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors, for example: wait a little.
                    eprintln!("kv-native: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    })
}
