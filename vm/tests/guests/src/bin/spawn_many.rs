//! Spawns N processes that each report to the root and exit, then checks
//! that every one of them is gone.
use std::time::Duration;
use troupe::{self_pid, spawn, Mailbox, Pid, Process, SendError};

fn child(parent: Process<u64>, _: Mailbox<()>) {
    parent.send(self_pid().0).unwrap();
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(10_000, |s| s.parse().unwrap());
    let me: Process<u64> = troupe::this_process();
    let mailbox = Mailbox::<u64>::this();
    let mut pids = Vec::with_capacity(n);
    for _ in 0..n {
        pids.push(spawn(me, child).expect("spawn").pid());
    }
    let mut reported = std::collections::HashSet::new();
    for _ in 0..n {
        reported.insert(
            mailbox
                .receive_timeout(Duration::from_secs(30))
                .expect("report"),
        );
    }
    assert_eq!(reported.len(), n, "every child reported once");
    let distinct: std::collections::HashSet<Pid> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), n, "pids are unique");
    // Every child has returned from its function: sends to it must fail.
    let mut alive = 0;
    for pid in &pids {
        let mut tries = 0;
        loop {
            match Process::<()>::from_pid(*pid).send(()) {
                Err(SendError::NoProcess(_)) => break,
                Err(e) => panic!("send: {e}"),
                Ok(()) if tries < 1000 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(()) => {
                    alive += 1;
                    break;
                }
            }
        }
    }
    println!(
        "spawned {n}, reported {}, still alive {alive}",
        reported.len()
    );
    assert_eq!(alive, 0);
}
