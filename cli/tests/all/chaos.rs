//! The chaos run (issue 15): 31,000 processes doing every kind of harm a
//! guest can do to itself, beside a workload that must give the exact
//! answer. Pass: the VM neither aborts nor panics, every process that ended
//! produced its DOWN, the workload is right, and the VM's RSS at the end is
//! within 10% of what it was two thirds of the way (the guest is
//! `vm/tests/guests/src/bin/chaos.rs`).
//!
//! Why not from the start: a slot of the process pool that a
//! process used keeps its touched pages for the next process (up to 1 MiB
//! of its fiber stack, and the first 1 MiB + 64 KiB of its linear memory,
//! zeroed in place: spawning is about 30% cheaper for it). So the RSS
//! climbs as processes of every kind pass through each slot, to at most
//! the slots used at once times about 2 MiB, and stays there. A leak would
//! keep it climbing. With a pool of 1,200 slots the plateau is reached in
//! about 15-20 waves of 1,000; the run has 30 after a first one, and
//! compares the end with wave 20.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn thirty_thousand_faulty_processes_leave_the_vm_and_a_workload_whole() {
    let _ = common::pool(1_200);
    let chaos = common::guest("chaos");
    let mut child = Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["run", "--max-processes", "1200", "--allow-net=127.0.0.1"])
        .arg(&chaos)
        .args(["30", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let vm_panics = std::thread::spawn(move || {
        let mut found = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Guests' own panics run on unnamed threads; the VM's are named.
            if line.contains("panicked") && line.contains("'troupe-") {
                found.push_str(&line);
                found.push('\n');
            }
        }
        found
    });
    let mut out = String::new();
    let mut curve = Vec::new();
    let (mut half, mut end) = (0, 0);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // The guest pauses after each of these (300 ms after a wave, 2 s
        // after `warm` and `quiet`): read the RSS within the pause.
        if line == "warm" || line == "quiet" || line.starts_with("wave ") {
            std::thread::sleep(Duration::from_millis(150));
            let rss = rss_kib(pid);
            curve.push(format!("{line}: {} MB", rss / 1024));
            match line.as_str() {
                "wave 20" => half = rss,
                "quiet" => end = rss,
                _ => {}
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    let status = child.wait().unwrap();
    let vm_panics = vm_panics.join().unwrap();
    println!("{out}RSS: {}", curve.join(", "));
    assert!(status.success(), "{status}\n{out}");
    assert!(vm_panics.is_empty(), "the VM panicked:\n{vm_panics}");
    assert!(!out.contains("FAIL"), "{out}");
    for check in [
        "every process that ended produced its DOWN",
        "the workload beside the chaos gave the exact answer",
    ] {
        assert!(out.contains(&format!("ok: {check}")), "{out}");
    }
    assert!(out.contains("chaos: 31000 processes"), "{out}");
    assert!(half > 0 && end > 0, "{out}");
    assert!(
        end * 10 <= half * 11,
        "RSS grew from {half} KiB at wave 20 to {end} KiB at the end: {}",
        curve.join(", ")
    );
}
