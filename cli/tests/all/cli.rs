//! The `troupe` binary, as a user runs it: plain WASI programs behave as
//! under wasmtime's CLI, errors are clear and never panics, and the examples
//! do what their READMEs say.

use crate::common::{guest, text, troupe, troupe_with_stdin};

#[test]
fn hello_gets_args_env_dirs_stdin_and_exit_code_like_wasmtime() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("greeting.txt"), "hi").unwrap();
    let hello = guest("hello");
    let mapping = format!("{}::/data", dir.path().display());
    let out = troupe_with_stdin(
        &[
            "run",
            "--dir",
            &mapping,
            "--env",
            "COLOR=blue",
            hello.to_str().unwrap(),
            "one",
            "two words",
            "--stdin",
            "--exit",
            "7",
        ],
        b"12345",
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("Hello from Troupe!"), "{stdout}");
    assert!(stdout.contains("arg[1] = one"), "{stdout}");
    assert!(stdout.contains("arg[2] = two words"), "{stdout}");
    assert!(stdout.contains("COLOR=blue"), "{stdout}");
    assert!(stdout.contains("greeting.txt"), "{stdout}");
    assert!(stdout.contains("stdin: 5 bytes"), "{stdout}");
}

#[test]
fn a_plain_program_exits_zero_by_default() {
    let out = troupe(&["run", guest("hello").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_trap_in_the_root_prints_the_trap_and_pid_and_exits_134() {
    let dir = tempfile::tempdir().unwrap();
    let wat = dir.path().join("trap.wat");
    std::fs::write(
        &wat,
        r#"(module (memory (export "memory") 1)
             (func $deep unreachable)
             (func (export "_start") call $deep))"#,
    )
    .unwrap();
    let out = troupe(&["run", wat.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(134), "{stderr}");
    assert!(stderr.contains("process 1 trapped"), "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
}

#[test]
fn hibernate_refuses_what_it_cannot_restore_with_an_error_code_and_traps_on_bad_pointers() {
    // `_start` hibernates (to wake in export `$entry`) and exits with the
    // code it gets back; `$globals` more mutable globals than the stack
    // pointer make the module one the VM cannot restore.
    let module = |globals: usize, entry_ptr: i32| {
        format!(
            r#"(module
                 (import "troupe_process" "hibernate" (func $h (param i32 i32 i32 i32) (result i32)))
                 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                 (memory (export "memory") 1)
                 {}
                 (data (i32.const 16) "wake")
                 (data (i32.const 32) "nope")
                 (func (export "wake"))
                 (func (export "_start")
                   (call $exit (call $h (i32.const {entry_ptr}) (i32.const 4) (i32.const 0) (i32.const 0)))))"#,
            "(global (mut i32) (i32.const 0))\n".repeat(globals),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    for (name, wat, code, says) in [
        ("globals", module(2, 16), 22, ""),
        ("missing", module(1, 32), 7, ""),
        (
            "pointer",
            module(1, 0x7fff_fff0),
            134,
            "troupe_process::hibernate",
        ),
    ] {
        let path = dir.path().join(format!("{name}.wat"));
        std::fs::write(&path, wat).unwrap();
        let out = troupe(&["run", path.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
    }
}

#[test]
fn bad_input_gives_a_clear_error_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("notes.wasm");
    std::fs::write(&not_wasm, "this is text").unwrap();
    let no_start = dir.path().join("lib.wat");
    std::fs::write(&no_start, r#"(module (func (export "work")))"#).unwrap();
    let bad_import = dir.path().join("imports.wat");
    std::fs::write(
        &bad_import,
        r#"(module (import "env" "zap" (func)) (func (export "_start")))"#,
    )
    .unwrap();
    let missing = dir.path().join("missing.wasm");
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (vec![missing.display().to_string()], 1, "cannot read module"),
        (
            vec![not_wasm.display().to_string()],
            1,
            "is not a valid WebAssembly module",
        ),
        (
            vec![no_start.display().to_string()],
            1,
            "has no `_start` function",
        ),
        (
            vec![bad_import.display().to_string()],
            1,
            "unknown import: `env::zap`",
        ),
        (
            vec![
                "--dir".into(),
                "/no/such/dir".into(),
                guest("hello").display().to_string(),
            ],
            1,
            "is not a directory",
        ),
        (
            vec![
                "--max-memory".into(),
                "4G".into(),
                "--max-processes".into(),
                "40000".into(),
                guest("hello").display().to_string(),
            ],
            1,
            "would reserve 156 TiB of address space for linear memories, more than the 80 TiB",
        ),
        (
            vec!["--bogus".into(), "x.wasm".into()],
            2,
            "unexpected argument '--bogus'",
        ),
        (
            vec!["--max-memory".into(), "12Q".into(), "x.wasm".into()],
            2,
            "expected a size",
        ),
    ];
    for (args, code, message) in cases {
        let mut argv = vec!["run"];
        argv.extend(args.iter().map(String::as_str));
        let out = troupe(&argv);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: expected {message:?} in {stderr}"
        );
    }
}

#[test]
fn asking_for_more_processes_than_the_kernel_allows_says_how_to_raise_it() {
    let max = troupe_vm::limits::max_map_count().expect("Linux exposes vm.max_map_count");
    let too_many = (max / troupe_vm::limits::MAPS_PER_PROCESS + 1_000).min(u32::MAX as u64);
    let out = troupe(&[
        "run",
        "--max-processes",
        &too_many.to_string(),
        guest("hello").to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("sysctl -w vm.max_map_count="), "{stderr}");
}

#[test]
fn ping_pong_example_exchanges_messages_and_reports_its_rate() {
    let out = troupe(&["run", guest("ping-pong").to_str().unwrap(), "20000"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("20000 round trips"), "{stdout}");
    assert!(stdout.contains("round trips/s"), "{stdout}");
}

#[test]
fn workers_example_gathers_the_right_total() {
    let out = troupe(&["run", guest("workers").to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("workers: OK"), "{stdout}");
}

#[test]
fn sessions_example_keeps_forty_times_more_hibernated_sessions_than_pool_slots() {
    // 2,000 session servers in a pool of 50 slots: each must hibernate
    // (HIBERNATE_AFTER) for the next one to start, and wake for each visit.
    let out = troupe(&[
        "run",
        "--max-processes",
        "50",
        guest("sessions").to_str().unwrap(),
        "2000",
        "6000",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("2000 sessions started"), "{stdout}");
    assert!(stdout.contains("sessions: OK"), "{stdout}");
}

#[test]
fn crash_example_loses_only_the_crashed_processes() {
    let out = troupe(&["run", guest("crash").to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stderr.matches("trapped").count(), 2, "{stderr}");
    assert!(stdout.contains("survivors"), "{stdout}");
}

#[test]
fn sigterm_stops_every_process_and_exits_143_and_sigint_130() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args(["run", guest("sleeper").to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "sleeper: ready");
        // SAFETY: signalling the child we started, by its pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        let t = std::time::Instant::now();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        assert!(
            text(&out.stderr).contains("stopped by signal"),
            "{}",
            text(&out.stderr)
        );
    }
}

// The OTP example (the OTP tests are in vm/tests/all/otp.rs).

#[test]
fn the_supervision_example_heals_its_crashes() {
    let out = troupe(&["run", guest("supervision").to_str().unwrap()]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for line in [
        "kv: the worker crashed on a bad request and was restarted (restarts: 1)",
        "kv: the data survived the crash",
        "the store is healthy after",
    ] {
        assert!(
            stdout.contains(line),
            "missing {line:?} in\n{stdout}\n{stderr}"
        );
    }
}
