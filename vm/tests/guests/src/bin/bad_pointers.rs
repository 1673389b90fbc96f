//! A process passes an out-of-bounds pointer to a host function: it must trap
//! alone, while a sibling keeps serving requests.
use std::time::Duration;
use troupe::{spawn, sys, Mailbox, Process, Reply, RequestError, SendError};

#[derive(serde::Serialize, serde::Deserialize)]
enum Echo {
    Ping(u32, Reply<u32>),
}

fn echo(_: (), mailbox: Mailbox<Echo>) {
    loop {
        match mailbox.receive() {
            Echo::Ping(n, reply) => {
                let _ = reply.send(n + 1);
            }
        }
    }
}

const BAD: i32 = -16; // 0xfffffff0: beyond any 32-bit memory

fn abuse(which: String, _: Mailbox<()>) {
    let mut out = [0u8; 64];
    let o = sys::ptr_mut(out.as_mut_ptr());
    // SAFETY: deliberately passing bad pointers: the host must trap us.
    unsafe {
        match which.as_str() {
            "send" => {
                sys::send(1, 0, BAD, 100);
            }
            "receive-info" => {
                sys::receive(0, 0, 0, o, 8, BAD);
            }
            "receive-tags" => {
                sys::receive(BAD, 4, 0, o, 8, o);
            }
            "spawn-entry" => {
                sys::spawn(0, 0, BAD, 10, 0, 0, 0, 0, o);
            }
            "error-message" => {
                sys::error_message(BAD, 64);
            }
            "module-load" => {
                sys::module_load(BAD, 1 << 20, o);
            }
            "read" => {
                sys::read(BAD, 8);
            }
            "huge-length" => {
                sys::send(1, 0, o, i32::MAX);
            }
            other => panic!("unknown case {other}"),
        }
    }
    println!("{which}: host call returned instead of trapping");
}

fn main() {
    let server = spawn((), echo).unwrap();
    for case in [
        "send",
        "receive-info",
        "receive-tags",
        "spawn-entry",
        "error-message",
        "module-load",
        "read",
        "huge-length",
    ] {
        let victim = spawn(case.to_string(), abuse).unwrap();
        // The victim dies: soon a send to it fails.
        let mut dead = false;
        for _ in 0..2000 {
            if let Err(SendError::NoProcess(_)) = victim.send(()) {
                dead = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(dead, "{case}: the process passing a bad pointer died");
        let r: Result<u32, RequestError> =
            server.request_timeout(|reply| Echo::Ping(41, reply), Duration::from_secs(5));
        assert_eq!(r.unwrap(), 42, "{case}: the sibling still serves");
        println!("{case}: offender died, sibling answered");
    }
    let _: Process<Echo> = server;
    println!("bad pointers: all cases contained");
}
