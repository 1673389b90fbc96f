//! The sandbox against hostile guests: each test is a way out that a guest
//! once had (issue "A sandbox that holds against hostile guests"), tried
//! again. A guest may harm itself only: never the host, the VM or another
//! process.

use crate::common::{self, run_with_dirs, Run};
use troupe_vm::{ExitReason, VmConfig};

fn context(r: &Run) -> String {
    format!(
        "reason: {:?}\nstdout:\n{}\nstderr:\n{}",
        r.reason, r.stdout, r.stderr
    )
}

#[test]
fn a_child_gets_its_parents_open_directories_not_a_new_lookup_of_their_host_paths() {
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    std::fs::create_dir_all(h.join("a/b")).unwrap();
    std::fs::write(h.join("secret.txt"), "the host's secret").unwrap();
    let r = run_with_dirs(
        VmConfig::new(),
        "hostile",
        &["fs_escape"],
        &[(&h.join("a"), "/a"), (&h.join("a/b"), "/b")],
    );
    let context = context(&r);
    assert_eq!(r.reason, ExitReason::Normal, "{context}");
    // The attack's first half works (the guest may change its own /a) ...
    assert!(r.stdout.contains("symlink planted: true"), "{context}");
    assert!(
        std::fs::symlink_metadata(h.join("a/b"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "{context}"
    );
    // ... and leads nowhere: the child's /b is the directory the parent held.
    assert!(
        !h.join("pwned").exists(),
        "the child wrote outside: {context}"
    );
    assert!(r.stdout.contains("child read: no:"), "{context}");
    assert_eq!(
        std::fs::read_to_string(h.join("a/b-old/pwned")).unwrap(),
        "child was here",
        "{context}"
    );
    assert!(!r.stdout.contains("FAIL"), "{context}");
    assert!(r.stdout.ends_with("done\n"), "{context}");
}

#[test]
fn a_name_never_outlives_its_process_whatever_the_interleaving() {
    common::run_case(
        VmConfig::new().threads(2),
        "hostile",
        &["registry_race"],
        &["no name outlives its process"],
    );
}

#[test]
fn a_process_woken_on_a_full_pool_waits_for_a_slot_instead_of_dying() {
    common::run_case(
        VmConfig::new().max_processes(4),
        "hostile",
        &["wake_full_pool"],
        &["a process woken on a full pool waits for a slot and answers"],
    );
}

#[test]
fn timers_belong_to_their_creator() {
    common::run_case(
        VmConfig::new(),
        "hostile",
        &["timers"],
        &[
            "another process cannot cancel this process's timer",
            "the timer fires as set",
            "a process's pending timers are cancelled when it ends",
        ],
    );
}

#[test]
fn queued_messages_and_timers_count_against_the_processs_memory_budget() {
    common::run_case(
        VmConfig::new(),
        "hostile",
        &["memory_budget"],
        &[
            "sends to a process over its budget are refused",
            "receiving gives the budget back",
            "growing past what the queue leaves ends the process with the memory limit",
            "timers' payloads count against their setter's budget",
        ],
    );
}

#[test]
fn the_vms_memory_budget_ends_the_processes_that_grow_past_it() {
    common::run_case(
        VmConfig::new().max_vm_memory(256 << 20),
        "hostile",
        &["vm_budget"],
        &["the VM's budget ends the processes that grow past it, and only those"],
    );
}

#[test]
fn a_process_that_opens_files_without_end_is_stopped_at_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), "x").unwrap();
    let r = common::run_with_dirs(
        VmConfig::new(),
        "hostile",
        &["open_files"],
        &[(dir.path(), "/data")],
    );
    let context = context(&r);
    assert_eq!(r.reason, ExitReason::Normal, "{context}");
    for line in [
        "a process opening files without end is stopped at its limit",
        "the others still open files",
    ] {
        assert!(r.stdout.contains(&format!("ok: {line}\n")), "{context}");
    }
}
