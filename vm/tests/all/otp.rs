//! Fault tolerance as Erlang/OTP defines it: links, exit signals, monitors,
//! the registry, per-process limits, the gen_server-like `Server` and
//! supervisors of the Rust SDK. One test per behaviour, named after it; each
//! runs a case of a guest in vm/tests/guests/src/bin/otp_*.rs, which prints
//! `ok: <check>` or `FAIL: <check>` per check.

use crate::common::{self, run_case};
use troupe_vm::VmConfig;

fn links(case: &str, expected: &[&str]) -> common::Run {
    run_case(VmConfig::new(), "otp_links", &[case], expected)
}

fn supervisor(case: &str, expected: &[&str]) -> common::Run {
    run_case(VmConfig::new(), "otp_supervisor", &[case], expected)
}

fn server(case: &str, expected: &[&str]) -> common::Run {
    run_case(VmConfig::new(), "otp_server", &[case], expected)
}

/// The number printed after `label` and before ` us` in `stdout`.
fn micros(stdout: &str, label: &str) -> u64 {
    let at = stdout
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {stdout}"));
    stdout[at + label.len()..]
        .split(" us")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{label}: {e} in {stdout}"))
}

// Links, exit signals, monitors, names.

#[test]
fn a_linked_crash_kills_the_partner() {
    links(
        "linked_crash",
        &[
            "the crash is a trap with the panic message",
            "the linked process died with the same reason",
        ],
    );
}

#[test]
fn trapping_exits_turns_a_linked_crash_into_a_message() {
    links(
        "trap_exit",
        &[
            "the trapping process got an EXIT message with the partner's pid and trap",
            "the trapping process is still alive",
        ],
    );
}

#[test]
fn a_normal_exit_does_not_propagate() {
    links(
        "normal_exit",
        &[
            "the partner ended normally",
            "its linked process is still alive",
            "an exit signal `normal` is ignored",
            "a trapping process gets EXIT normal",
            "the trapping process is still alive",
        ],
    );
}

#[test]
fn kill_is_untrappable() {
    links(
        "kill",
        &[
            "send_exit(Killed) to a trapping process is trapped",
            "kill ended the trapping process with Killed",
            "its link received Killed and died of it",
            "a trapping link gets EXIT Killed",
        ],
    );
}

#[test]
fn monitoring_a_dead_process_gives_down_with_noproc() {
    links(
        "noproc",
        &[
            "the monitor of a short-lived process fires",
            "monitoring a dead process gives DOWN noproc at once",
            "monitoring a pid that never existed gives DOWN noproc",
            "demonitor of a live monitor",
            "no DOWN after demonitor",
            "demonitor after the DOWN was queued",
            "demonitor flushed the queued DOWN",
        ],
    );
}

#[test]
fn registry_names_are_freed_on_death() {
    links(
        "registry",
        &[
            "whereis finds it",
            "a taken name cannot be registered again",
            "send by name reaches it",
            "its name is free once it has ended",
            "send to the freed name fails",
            "the name can be registered again",
            "a crashed process's name is freed too",
            "link to a dead process is an error",
        ],
    );
}

// Per-process limits.

#[test]
fn a_process_that_exceeds_its_memory_limit_dies_with_that_reason_while_its_neighbours_run_on() {
    run_case(
        VmConfig::new(),
        "otp_limits",
        &["memory"],
        &[
            "memory: it died with Limit(Memory)",
            "memory: its three neighbours ran on",
            "memory: a supervisor restarts the limited child, then gives up (intensity 2)",
        ],
    );
}

#[test]
fn a_fuel_limited_infinite_loop_dies_with_that_reason() {
    run_case(
        VmConfig::new().fuel(1 << 50),
        "otp_limits",
        &["fuel"],
        &[
            "fuel: it died with Limit(Fuel)",
            "fuel: its three neighbours ran on",
        ],
    );
}

// Servers (gen_server).

#[test]
fn a_server_can_hibernate_between_messages_and_keeps_its_state() {
    server(
        "hibernate",
        &[
            "casts and an info handled after wakes, state kept",
            "a timer wakes a hibernated server",
            "a hibernated server stops when asked",
            "terminate runs with the state kept across hibernations",
        ],
    );
}

#[test]
fn a_server_answers_calls_casts_and_infos() {
    server(
        "basics",
        &[
            "call: put",
            "call: get",
            "cast: handled before a later call",
            "handle_info: timer messages (info_after) arrive",
            "handle_info: DOWN and EXIT events arrive",
            "a deferred reply reaches the caller",
        ],
    );
}

#[test]
fn a_call_times_out_and_the_late_reply_is_dropped() {
    server(
        "timeout",
        &[
            "the call timed out",
            "after its time-out, not the server's time",
            "the server answers the next call (after the slow one)",
            "messages queued during calls are kept, in order",
            "the late reply was dropped",
        ],
    );
}

#[test]
fn a_call_to_a_dying_server_returns_its_exit_reason() {
    server(
        "dying",
        &[
            "the caller gets the server's exit reason",
            "at once, not at the time-out",
            "a call to a dead server: noproc",
            "a process cannot call itself",
        ],
    );
}

#[test]
fn servers_register_names_fail_init_stop_and_terminate() {
    server(
        "names",
        &[
            "start_named registers the server",
            "a second server with the name is refused: already started",
            "call by name",
            "an init that fails fails the start with its reason",
            "stop calls terminate with the reason",
            "the name is freed",
            "an exit signal from the parent runs terminate",
            "and ends the server with its reason",
            "an exit signal from another process goes to handle_info",
        ],
    );
}

// Supervisors.

#[test]
fn a_supervisor_restarts_a_crashed_child_within_milliseconds() {
    let r = supervisor(
        "restart",
        &[
            "the crashed child was replaced by a new process",
            "the replacement ran within 2 s",
            "the replacement answers",
            "which_children shows the new pid and one restart",
        ],
    );
    let us = micros(&r.stdout, "crash to replacement running:");
    assert!(us < 2_000_000, "{}", r.stdout);
}

#[test]
fn a_child_that_crashes_too_often_takes_the_supervisor_down() {
    supervisor(
        "intensity",
        &[
            "after 4 crashes (intensity 3) the supervisor exits with shutdown",
            "the child was not restarted a fourth time",
        ],
    );
}

#[test]
fn one_for_all_restarts_every_child() {
    supervisor(
        "one_for_all",
        &[
            "one_for_all: all three restarted, in start order",
            "one_for_all: three new processes",
            "one_for_all: the old ones are gone",
        ],
    );
}

#[test]
fn rest_for_one_restarts_the_children_started_after() {
    supervisor(
        "rest_for_one",
        &[
            "rest_for_one: b and c restarted, in order",
            "rest_for_one: a kept running untouched",
            "rest_for_one: c was stopped and replaced",
            "one_for_one: only b restarted",
            "one_for_one: a and c untouched",
        ],
    );
}

#[test]
fn restart_policies_permanent_transient_temporary() {
    supervisor(
        "policies",
        &[
            "permanent: restarted after a normal exit",
            "transient: not restarted after a normal exit",
            "transient: kept as a stopped child",
            "restart_child starts it again",
            "transient: not restarted after shutdown",
            "transient: restarted after a crash",
            "temporary: not restarted after a crash",
            "temporary: removed from the supervisor",
        ],
    );
}

#[test]
fn children_start_in_order_and_stop_in_reverse_order_with_a_shutdown_timeout() {
    supervisor(
        "order",
        &[
            "children start in order",
            "children stop in reverse order",
            "a child that ignores shutdown is killed after its timeout",
            "the shutdown timeout was waited (300 ms), not more than needed",
            "nothing is left running",
        ],
    );
}

#[test]
fn dynamic_children_can_be_added_and_removed() {
    supervisor(
        "dynamic",
        &[
            "start_child starts a child at run time",
            "a second child with the same id is refused (already started)",
            "count_children counts workers and supervisors",
            "which_children lists them in order",
            "a running child cannot be deleted",
            "terminate_child stops it with shutdown",
            "its spec stays, not running",
            "start_child of a stopped id is refused (already present)",
            "restart_child starts it again",
            "delete_child removes it",
            "a child that fails to start is reported with its reason",
            "and is not added",
            "unknown ids are reported",
        ],
    );
}

#[test]
fn supervisors_nest_and_a_failing_subtree_is_restarted_by_its_supervisor() {
    supervisor(
        "nested",
        &[
            "one crash: the subtree's supervisor restarts the leaf itself",
            "two crashes (intensity 1): the subtree's supervisor gives up with shutdown",
            "its supervisor saw it end and restarted the subtree",
            "the new subtree runs a new leaf",
            "the sibling was not touched",
        ],
    );
}

/// The closing-note measurement: 1,000 crashes of a supervised child, each
/// timed from the child's last act before its panic to the replacement's
/// first act (wall clock, read in both processes). Printed with
/// `--nocapture`; asserts only a loose bound.
#[test]
fn restart_latency_over_1000_crashes() {
    let r = supervisor("latency", &["the supervisor counted 1000 restarts"]);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("crash to replacement running over"))
        .unwrap();
    println!("{line}");
    let worst = micros(&r.stdout, "worst");
    assert!(worst < 2_000_000, "{}", r.stdout);
}
