//! The sandbox against hostile guests, the tests that run the `troupe`
//! binary (the others are in `vm/tests/all/sandbox.rs`): each test is a way out
//! that a guest once had (issue "A sandbox that holds against hostile
//! guests"), tried again. A guest may harm itself only: never the host, the
//! VM or another process.

use crate::common;

/// Writes `wat` to a temporary `.wat` file and runs it with the `troupe`
/// binary and `flags`.
fn troupe_wat(flags: &[&str], wat: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guest.wat");
    std::fs::write(&path, wat).unwrap();
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.push(path.to_str().unwrap());
    let out = common::troupe(&args);
    (
        out.status.code(),
        common::text(&out.stdout),
        common::text(&out.stderr),
    )
}

#[test]
fn a_module_with_a_start_function_cannot_hibernate_and_the_vm_stays_whole() {
    // The start function writes memory and sends to itself: run again in
    // a woken instance, it used the old store's memory and the VM panicked.
    let wat = r#"(module
      (import "troupe_process" "hibernate" (func $h (param i32 i32 i32 i32) (result i32)))
      (import "troupe_process" "self_pid" (func $self (result i64)))
      (import "troupe_message" "send" (func $send (param i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "wake")
      (func $init
        (i32.store (i32.const 64) (i32.add (i32.load (i32.const 64)) (i32.const 1)))
        (drop (call $send (call $self) (i64.const 0) (i32.const 64) (i32.const 4))))
      (start $init)
      (func (export "wake") (call $exit (i32.const 99)))
      (func (export "_start")
        (call $exit (call $h (i32.const 16) (i32.const 4) (i32.const 0) (i32.const 0)))))"#;
    let (code, _, stderr) = troupe_wat(&[], wat);
    // UNSUPPORTED (22), returned by `hibernate`: the process carries on.
    assert_eq!(code, Some(22), "{stderr}");
}

#[test]
fn a_start_function_runs_as_the_child_so_kill_stops_it_and_the_spawn_fails() {
    // The child's module has a start function that loops forever. A helper
    // process spawns it, so the helper's `spawn` is where that start
    // function runs. The root kills the child (pid 3: pids are given in
    // order) while it loops, and the helper's `spawn` returns SPAWN_FAILED
    // (11), which it sends to the root, which exits with it.
    let child = wat::parse_str(
        r#"(module (func $forever (loop $l (br $l))) (start $forever) (func (export "_start")))"#,
    )
    .unwrap();
    let bytes: String = child.iter().map(|b| format!("\\{b:02x}")).collect();
    let wat = format!(
        r#"(module
      (import "troupe_process" "spawn"
        (func $spawn (param i64 i64 i32 i32 i32 i32 i32 i32 i32) (result i32)))
      (import "troupe_process" "module_load" (func $load (param i32 i32 i32) (result i32)))
      (import "troupe_process" "kill" (func $kill (param i64) (result i32)))
      (import "troupe_message" "send" (func $send (param i64 i64 i32 i32) (result i32)))
      (import "troupe_message" "receive" (func $recv (param i32 i32 i64 i32 i32 i32) (result i32)))
      (import "troupe_timer" "sleep" (func $sleep (param i64)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "helper")
      (data (i32.const 32) "_start")
      (data (i32.const 1024) "{bytes}")
      (func (export "helper")
        (drop (call $load (i32.const 1024) (i32.const {len}) (i32.const 200)))
        (i32.store (i32.const 300)
          (call $spawn (i64.load (i32.const 200)) (i64.const 0) (i32.const 32) (i32.const 6)
            (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 208)))
        (drop (call $send (i64.const 1) (i64.const 0) (i32.const 300) (i32.const 4))))
      (func (export "_start")
        (drop (call $spawn (i64.const 0) (i64.const 0) (i32.const 16) (i32.const 6)
          (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 128)))
        (call $sleep (i64.const 100000000))
        (if (i32.ne (call $kill (i64.const 3)) (i32.const 0)) (then (call $exit (i32.const 50))))
        (if (i32.ne (call $recv (i32.const 0) (i32.const 0) (i64.const 5000000000)
                      (i32.const 400) (i32.const 4) (i32.const 416)) (i32.const 0))
          (then (call $exit (i32.const 51))))
        (call $exit (i32.load (i32.const 400)))))"#,
        len = child.len()
    );
    let (code, _, stderr) = troupe_wat(&["--threads", "1"], &wat);
    assert_eq!(code, Some(11), "{stderr}");
}

/// A guest that recurses one frame deeper at each round and, at the bottom,
/// makes host calls (a WASI write, a spawn, a receive, a sleep), until Wasm's
/// own stack limit traps it.
const DEEP_HOST_CALLS: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "troupe_process" "spawn"
    (func $spawn (param i64 i64 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "troupe_message" "receive" (func $recv (param i32 i32 i64 i32 i32 i32) (result i32)))
  (import "troupe_timer" "sleep" (func $sleep (param i64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "child")
  (func (export "child"))
  (func $calls
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 64)))
    (drop (call $spawn (i64.const 0) (i64.const 0) (i32.const 16) (i32.const 5)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 72)))
    (drop (call $recv (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 128) (i32.const 64)
      (i32.const 256)))
    (call $sleep (i64.const 0)))
  (func $down (param $n i32)
    (if (i32.eqz (local.get $n)) (then (call $calls) (return)))
    (call $down (i32.sub (local.get $n) (i32.const 1))))
  (func (export "_start")
    (local $d i32)
    (loop $l
      (call $down (local.get $d))
      (local.set $d (i32.add (local.get $d) (i32.const 1)))
      (br $l))))"#;

#[test]
fn host_calls_from_the_deepest_wasm_frame_never_overflow_the_native_stack() {
    for size in ["64K", "256K", "512K"] {
        let (code, _, stderr) = troupe_wat(&["--stack-size", size], DEEP_HOST_CALLS);
        // Wasm's limit traps the guest (134, with the trap printed); a host
        // frame past the stack's end would abort the VM (SIGSEGV, no line).
        assert_eq!(code, Some(134), "--stack-size {size}: {stderr}");
        assert!(
            stderr.contains("process 1 trapped") && stderr.contains("call stack exhausted"),
            "--stack-size {size}: {stderr}"
        );
    }
}

#[test]
fn a_childs_fuel_comes_out_of_what_its_parent_has_left() {
    // The root asks for all the fuel there is for its child (which returns
    // at once). Given out of the root's own budget, that leaves the root
    // none, and it ends with the fuel limit at its next instructions; a
    // budget refilled for each child would let a process tree run forever.
    let wat = r#"(module
      (import "troupe_process" "spawn"
        (func $spawn (param i64 i64 i32 i32 i32 i32 i32 i32 i32) (result i32)))
      (import "troupe_process" "config_new" (func $new (result i64)))
      (import "troupe_process" "config_set_fuel" (func $fuel (param i64 i64) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "child")
      (func (export "child"))
      (func (export "_start")
        (local $cfg i64) (local $i i32)
        (local.set $cfg (call $new))
        (if (call $fuel (local.get $cfg) (i64.const 9223372036854775807)) (then (call $exit (i32.const 50))))
        (if (call $spawn (i64.const 0) (local.get $cfg) (i32.const 16) (i32.const 5)
              (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 128))
          (then (call $exit (i32.const 51))))
        (loop $l
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 100000))))
        (call $exit (i32.const 0))))"#;
    let (code, _, stderr) = troupe_wat(&["--fuel", "10000000"], wat);
    assert_eq!(code, Some(134), "{stderr}");
    assert!(
        stderr.contains("process 1 ended") && stderr.contains("fuel"),
        "{stderr}"
    );
}

#[test]
fn the_module_cache_forgets_modules_no_process_runs_and_keeps_those_in_use() {
    // One module, in variants that differ in one data byte: the root loads
    // variant 0 and variant 1, runs variant 1 (it sleeps), then loads 40
    // more. Variant 0, which nothing runs, is forgotten (spawning it gives
    // NO_SUCH_MODULE, 6); variant 1 is kept (0). Exit code: 10 * first +
    // second.
    let template = wat::parse_str(
        r#"(module
          (import "troupe_timer" "sleep" (func $s (param i64)))
          (memory (export "memory") 1)
          (data (i32.const 0) "\00")
          (func (export "_start") (call $s (i64.const 2000000000))))"#,
    )
    .unwrap();
    // The data segment's byte is the last 0 before the name section, if
    // any; find it as the byte after the segment's header `41 00 0b 01`.
    let at = template
        .windows(4)
        .position(|w| w == [0x41, 0x00, 0x0b, 0x01])
        .expect("the data segment")
        + 4;
    let bytes: String = template.iter().map(|b| format!("\\{b:02x}")).collect();
    let wat = format!(
        r#"(module
      (import "troupe_process" "module_load" (func $load (param i32 i32 i32) (result i32)))
      (import "troupe_process" "spawn"
        (func $spawn (param i64 i64 i32 i32 i32 i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "_start")
      (data (i32.const 4096) "{bytes}")
      (func $variant (param $n i32) (result i64)
        (i32.store8 (i32.const {byte}) (local.get $n))
        (if (call $load (i32.const 4096) (i32.const {len}) (i32.const 64))
          (then (call $exit (i32.const 99))))
        (i64.load (i32.const 64)))
      (func $run (param $m i64) (result i32)
        (call $spawn (local.get $m) (i64.const 0) (i32.const 16) (i32.const 6)
          (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 72)))
      (func (export "_start")
        (local $first i64) (local $second i64) (local $i i32)
        (local.set $first (call $variant (i32.const 0)))
        (local.set $second (call $variant (i32.const 1)))
        (if (call $run (local.get $second)) (then (call $exit (i32.const 98))))
        (local.set $i (i32.const 2))
        (loop $l
          (drop (call $variant (local.get $i)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 42))))
        (call $exit (i32.add
          (i32.mul (call $run (local.get $first)) (i32.const 10))
          (call $run (local.get $second))))))"#,
        byte = 4096 + at,
        len = template.len()
    );
    let (code, _, stderr) = troupe_wat(&[], &wat);
    assert_eq!(code, Some(60), "{stderr}");
}
