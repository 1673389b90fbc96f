//! One process spins forever; another does real work next to it and must
//! finish. Run with `--threads 1` this shows preemption.
use std::time::{Duration, Instant};
use troupe::{spawn, Mailbox, Process};

fn spin(_: (), _: Mailbox<()>) {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn work(parent: Process<u64>, _: Mailbox<()>) {
    let mut sum = 0u64;
    for i in 0..2_000_000u64 {
        sum = sum.wrapping_add(std::hint::black_box(i) % 7);
    }
    parent.send(sum).unwrap();
}

fn main() {
    let spinners: usize = std::env::args().nth(1).map_or(1, |s| s.parse().unwrap());
    for _ in 0..spinners {
        spawn((), spin).unwrap();
    }
    std::thread::sleep(Duration::from_millis(20)); // let the spinners run
    let t = Instant::now();
    spawn(troupe::this_process::<u64>(), work).unwrap();
    let sum = Mailbox::<u64>::this()
        .receive_timeout(Duration::from_secs(20))
        .expect("the worker finished next to the spinners");
    let expected: u64 = (0..2_000_000u64).map(|i| i % 7).sum();
    assert_eq!(sum, expected);
    println!(
        "worker finished next to {spinners} spinning processes in {} ms",
        t.elapsed().as_millis()
    );
}
