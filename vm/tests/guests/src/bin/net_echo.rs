//! A line echo server, one process per connection, driven from outside the
//! VM by vm/tests/all/net.rs.
//!
//! `net_echo ADDR COUNT`: listens on ADDR (port 0: any free port), prints
//! `listening IP:PORT`, and ends (printing `served COUNT` then `done`) once
//! COUNT connection handlers have ended, whatever their reason.
//!
//! - The root moves the listener to an acceptor process (the spawn argument)
//!   and waits; the acceptor moves each accepted stream to a fresh handler
//!   process (the spawn argument too).
//! - Each handler tells the root it started and waits until the root
//!   monitors it (so a killed handler is counted too, with its reason); it
//!   then serves lines: `whoami` answers
//!   `pid N`; `kill N` kills process N and answers `killed N`; any other
//!   line comes back as it is. It ends at the end of the stream.
use std::io::{BufRead, BufReader, Write};

use serde::{Deserialize, Serialize};
use troupe::net::{TcpListener, TcpStream};
use troupe::{kill, monitor, self_pid, spawn, Event, ExitReason, Mailbox, Pid, Process};

#[derive(Debug, Serialize, Deserialize)]
enum Note {
    /// A handler started.
    Started(Pid),
    /// The acceptor's accept failed.
    AcceptFailed(String),
}

fn acceptor((listener, root): (TcpListener, Process<Note>), _: Mailbox<()>) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(e) = spawn((stream, root), handler) {
                    eprintln!("net_echo: spawn of a handler failed: {e}");
                }
            }
            Err(e) => {
                let _ = root.send(Note::AcceptFailed(e.to_string()));
                return;
            }
        }
    }
}

fn handler((stream, root): (TcpStream, Process<Note>), mailbox: Mailbox<()>) {
    // Serve once the root monitors this process, so that it sees how it
    // ends whatever happens next.
    let _ = root.send(Note::Started(self_pid()));
    mailbox.receive();
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return, // the end of the stream, or a reset
            Ok(_) => {}
        }
        let answer = match line.trim_end() {
            "whoami" => format!("pid {}\n", self_pid().0),
            cmd if cmd.starts_with("kill ") => {
                let pid = Pid(cmd[5..].parse().expect("kill PID"));
                match kill(pid) {
                    Ok(()) => format!("killed {}\n", pid.0),
                    Err(e) => format!("kill failed: {e}\n"),
                }
            }
            _ => line.clone(),
        };
        if (&stream).write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().expect("ADDR");
    let count: usize = args.next().expect("COUNT").parse().expect("COUNT");
    let listener = TcpListener::bind(&addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    println!("listening {}", listener.local_addr().unwrap());
    let _ = std::io::stdout().flush();

    let inbox = Mailbox::<Note>::this();
    spawn((listener, inbox.process()), acceptor).expect("spawn the acceptor");
    let mut ended = 0;
    while ended < count {
        match inbox.receive_event() {
            Event::Message {
                msg: Note::Started(pid),
                ..
            } => {
                monitor(pid);
                let _ = Process::<()>::from_pid(pid).send(());
            }
            Event::Message {
                msg: Note::AcceptFailed(e),
                ..
            } => panic!("accept failed: {e}"),
            Event::Down { pid, reason, .. } => {
                ended += 1;
                if reason != ExitReason::Normal {
                    println!("handler {} ended: {reason}", pid.0);
                    let _ = std::io::stdout().flush();
                }
            }
            Event::Exit { .. } => {}
        }
    }
    println!("served {count}");
    println!("done");
}
