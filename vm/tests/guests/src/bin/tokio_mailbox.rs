//! A tokio runtime in a Troupe process: a line echo server on a Troupe
//! listener (tokio::net), one task per connection, while the main task
//! awaits the mailbox (troupe::AsyncMailbox). A client line `send TEXT`
//! makes its connection's task send TEXT to this process; another process
//! sends `from child` after 100 ms. The main task prints `got TEXT` for
//! each message, and ends on `stop` (`done`).
//!
//! `troupe run --allow-net=127.0.0.1 tokio_mailbox.wasm 127.0.0.1:0`
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use troupe::{spawn, this_process, AsyncMailbox, Mailbox, Process};

fn child(to: Process<String>, _: Mailbox<()>) {
    troupe::sleep(Duration::from_millis(100));
    let _ = to.send("from child".to_string());
}

async fn echo(stream: tokio::net::TcpStream) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = match line.strip_prefix("send ") {
            Some(text) => match this_process::<String>().send(text.to_string()) {
                Ok(()) => format!("sent {text}\n"),
                Err(e) => format!("error {e}\n"),
            },
            None => format!("{line}\n"),
        };
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let listener = troupe::net::TcpListener::bind(&addr).expect("bind");
        let local = listener.local_addr().expect("local_addr");
        let listener = listener.into_std().expect("into_std");
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("from_std");
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(echo(stream));
                    }
                    Err(e) => eprintln!("accept: {e}"),
                }
            }
        });
        let mailbox = AsyncMailbox::new(Mailbox::<String>::this()).expect("the mailbox");
        println!("listening {local}");
        spawn(this_process::<String>(), child).expect("spawn");
        loop {
            match mailbox.receive().await {
                Ok(text) if text == "stop" => break,
                Ok(text) => println!("got {text}"),
                Err(e) => println!("error {e}"),
            }
        }
    });
    println!("done");
}
