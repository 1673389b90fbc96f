//! Spawns until the VM's process pool is full: the spawn that does not fit
//! fails with RESOURCE_LIMIT and a message, and the VM goes on.
use troupe::{abi::err, spawn, Mailbox};

fn park(_: (), mailbox: Mailbox<()>) {
    mailbox.receive();
}

fn main() {
    let mut live = Vec::new();
    let e = loop {
        match spawn((), park) {
            Ok(p) => live.push(p),
            Err(e) => break e,
        }
        assert!(live.len() < 1_000_000);
    };
    assert_eq!(e.code, err::RESOURCE_LIMIT);
    println!("spawned {} then: {e}", live.len());
    // Free one slot and spawn again.
    live.pop().unwrap().send(()).unwrap();
    let mut again = None;
    for _ in 0..1000 {
        if let Ok(p) = spawn((), park) {
            again = Some(p);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(again.is_some(), "a freed slot can be used again");
    println!("after one exit a spawn succeeded");
}
