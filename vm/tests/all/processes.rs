//! Processes through the library API: spawning at scale, preemption,
//! isolation of bad pointers, messaging semantics, errors and limits.

use crate::common::{self, pool, run, run_case, run_with_dirs};
use troupe_vm::{ExitReason, VmConfig};

fn assert_normal(r: &common::Run) {
    assert_eq!(
        r.reason,
        ExitReason::Normal,
        "stdout:\n{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
}

#[test]
fn ten_thousand_processes_spawn_report_and_all_exit() {
    let r = run(pool(20_000), "spawn_many", &["10000"]);
    assert_normal(&r);
    assert!(
        r.stdout
            .contains("spawned 10000, reported 10000, still alive 0"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_spawn_loop_is_slowed_to_its_exiting_children_by_a_full_pool_not_failed() {
    // 20,000 short-lived children through a pool of 100 slots, on one thread:
    // the parent outruns its children, finds the pool full, and waits while
    // they end instead of failing.
    let r = run(
        VmConfig::new().threads(1).max_processes(100),
        "spawn_many",
        &["20000"],
    );
    assert_normal(&r);
    assert!(
        r.stdout
            .contains("spawned 20000, reported 20000, still alive 0"),
        "{}",
        r.stdout
    );
}

#[test]
fn an_infinite_loop_does_not_starve_other_processes_on_one_thread() {
    let r = run(VmConfig::new().threads(1), "busy_loop", &["3"]);
    assert_normal(&r);
    assert!(
        r.stdout
            .contains("worker finished next to 3 spinning processes"),
        "{}",
        r.stdout
    );
}

#[test]
fn out_of_bounds_pointers_trap_only_the_offending_process() {
    let r = run(VmConfig::new(), "bad_pointers", &[]);
    assert_normal(&r);
    assert!(
        r.stdout.contains("bad pointers: all cases contained"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("returned instead of trapping"),
        "{}",
        r.stdout
    );
}

#[test]
fn selective_receive_fifo_timeouts_dead_targets_and_large_messages() {
    let r = run(VmConfig::new(), "messaging", &[]);
    assert_normal(&r);
    for line in [
        "selective receive: ok",
        "timeouts: ok",
        "fifo: ok (40000 messages from 2 producers)",
        "send to a dead process: NoProcess",
        "large message: ok (3000000 bytes)",
    ] {
        assert!(r.stdout.contains(line), "missing {line:?} in\n{}", r.stdout);
    }
}

#[test]
fn spawn_and_load_errors_reach_the_guest_with_their_reason() {
    let r = run(VmConfig::new(), "spawn_errors", &[]);
    assert_normal(&r);
    for line in [
        "missing export: spawn failed: no such export: module has no export \"no_such_function\"",
        "bad module: module load failed: invalid module: the module is not a valid WebAssembly module",
        "bad handle: spawn failed: no such module: no module has handle 987654",
        "entry \"__troupe_entry\" takes 2 parameters, 1 given",
        "wider preopens: spawn failed: permission denied",
        "unknown import: module load failed: invalid module: the module cannot be linked: unknown import: `env::zap`",
    ] {
        assert!(r.stdout.contains(line), "missing {line:?} in\n{}", r.stdout);
    }
}

#[test]
fn a_full_process_pool_is_a_spawn_error_not_an_abort() {
    let r = run(VmConfig::new().max_processes(100), "pool_limit", &[]);
    assert_normal(&r);
    assert!(
        r.stdout.contains("spawned 99 then: spawn failed: resource limit reached: the VM already holds its maximum of 100 processes"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("after one exit a spawn succeeded"),
        "{}",
        r.stdout
    );
}

#[test]
fn the_rust_sdk_selftest_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file.txt"), "x").unwrap();
    let r = run_with_dirs(VmConfig::new(), "selftest", &[], &[(dir.path(), "/data")]);
    assert_normal(&r);
    let last = r.stdout.lines().last().unwrap_or_default().to_owned();
    assert!(
        last.starts_with("selftest: ") && last.ends_with(" passed, 0 failed"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_guest_loads_another_module_from_a_file_and_spawns_its_start() {
    let mods = common::guest("hello").parent().unwrap().to_owned();
    let r = run_with_dirs(VmConfig::new(), "spawn_module", &[], &[(&mods, "/mods")]);
    assert_normal(&r);
    assert!(r.stdout.contains("ran and exited"), "{}", r.stdout);
    // The child printed to the shared stdout with the argv and env it was given.
    assert!(r.stdout.contains("Hello from Troupe!"), "{}", r.stdout);
    assert!(r.stdout.contains("arg[1] = from-parent"), "{}", r.stdout);
    assert!(r.stdout.contains("ROLE=worker"), "{}", r.stdout);
}

/// Runs `case` of the `hibernate` guest and checks every `ok:` line.
fn hibernate_case(config: VmConfig, args: &[&str], expected: &[&str]) {
    run_case(config, "hibernate", args, expected);
}

#[test]
fn a_hibernating_process_keeps_its_heap_and_pid_across_many_wakes() {
    hibernate_case(
        VmConfig::new(),
        &["state"],
        &[
            "200 messages, each handled after a wake, all counted",
            "a 1 MB heap vector is intact after 200 hibernations",
            "the woken process keeps its pid",
            "returning from the woken function ends the process normally",
        ],
    );
}

#[test]
fn a_hibernating_process_keeps_its_fuel_budget_across_wakes() {
    hibernate_case(
        VmConfig::new().fuel(1 << 50),
        &["fuel"],
        &[
            "a hibernating process runs out of its fuel budget (Ok(Limit(Fuel)))",
            "it died before handling 100 messages' worth of work",
        ],
    );
}

#[test]
fn a_file_opened_before_hibernating_is_written_after_each_wake() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_with_dirs(
        VmConfig::new(),
        "hibernate",
        &["files"],
        &[(dir.path(), "/data")],
    );
    assert_normal(&r);
    let context = format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("FAIL"), "{context}");
    assert!(
        r.stdout.contains(
            "ok: a file opened before hibernating is written after each wake: \"one two three\""
        ),
        "{context}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("hibernate.txt")).unwrap(),
        "one two three"
    );
}

#[test]
fn hibernated_processes_hold_no_slot_so_a_pool_of_20_serves_2000() {
    // Live (non-hibernated) processes are bounded by the pool; hibernated
    // ones are not. Without hibernation the 21st spawn fails.
    hibernate_case(
        VmConfig::new().max_processes(20),
        &["many", "2000"],
        &["every hibernated process wakes and answers"],
    );
}

#[test]
fn signals_timers_and_stashed_messages_reach_a_hibernated_process() {
    hibernate_case(
        VmConfig::new(),
        &["signals"],
        &[
            "a hibernated process can be killed",
            "a panic after a wake ends the process with the panic's message",
            "a linked crash takes a hibernated process down with its reason",
            "an EXIT, a DOWN and a timer each wake it: [\"down normal\", \"exit normal\", \"timer\"]",
        ],
    );
    hibernate_case(
        VmConfig::new(),
        &["stash"],
        &["a stashed message wakes a hibernating process at once"],
    );
}
