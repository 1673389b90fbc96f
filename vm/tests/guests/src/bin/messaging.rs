//! Selective receive, FIFO order between two processes, time-outs, polling,
//! messages to dead processes, and large messages.
use std::time::{Duration, Instant};
use troupe::{
    receive_tagged, self_pid, send_tagged, spawn, Mailbox, Process, ReceiveError, SendError,
};

fn producer((to, id, n): (Process<(u32, u32)>, u32, u32), _: Mailbox<()>) {
    for seq in 0..n {
        to.send((id, seq)).unwrap();
    }
}

fn main() {
    let me = self_pid();
    // Selective receive: take tag 2 first, the rest stay in order.
    for (tag, byte) in [(1u64, 1u8), (2, 2), (1, 3), (3, 4), (2, 5)] {
        send_tagged(me, tag, &[byte]).unwrap();
    }
    let got = receive_tagged(&[2], Some(Duration::ZERO)).unwrap();
    assert_eq!(got.data, vec![2]);
    let got = receive_tagged(&[3, 2], Some(Duration::ZERO)).unwrap();
    assert_eq!(got.data, vec![4], "oldest of the accepted tags");
    let rest: Vec<u8> = (0..3)
        .map(|_| receive_tagged(&[1, 2], Some(Duration::ZERO)).unwrap().data[0])
        .collect();
    assert_eq!(rest, vec![1, 3, 5]);
    println!("selective receive: ok");

    // Time-outs: a poll returns at once, a time-out waits at least its time.
    let t = Instant::now();
    assert!(matches!(
        receive_tagged(&[9], Some(Duration::ZERO)),
        Err(ReceiveError::Timeout)
    ));
    assert!(t.elapsed() < Duration::from_millis(50));
    let t = Instant::now();
    let r = Mailbox::<u32>::this().receive_timeout(Duration::from_millis(80));
    assert!(matches!(r, Err(ReceiveError::Timeout)));
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(80), "{waited:?}");
    println!("timeouts: ok (waited {} ms for 80)", waited.as_millis());

    // FIFO between any two processes, with two producers interleaving.
    let n = 20_000;
    let inbox = Mailbox::<(u32, u32)>::this();
    spawn((inbox.process(), 1, n), producer).unwrap();
    spawn((inbox.process(), 2, n), producer).unwrap();
    let mut next = [0u32; 3];
    for _ in 0..2 * n {
        let (id, seq) = inbox.receive_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(seq, next[id as usize], "producer {id} out of order");
        next[id as usize] += 1;
    }
    println!("fifo: ok ({} messages from 2 producers)", 2 * n);

    // A message to a process that has ended is dropped with NoProcess.
    let quick = spawn((), |(), _: Mailbox<()>| {}).unwrap();
    let mut dropped = false;
    for _ in 0..1000 {
        if let Err(SendError::NoProcess(_)) = quick.send(()) {
            dropped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(dropped);
    println!("send to a dead process: NoProcess");

    // Large messages take the held-message path.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    send_tagged(me, 7, &big).unwrap();
    let got = receive_tagged(&[7], Some(Duration::ZERO)).unwrap();
    assert!(got.data == big);
    println!("large message: ok ({} bytes)", big.len());
}
