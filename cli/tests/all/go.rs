//! Go guests: the Go examples and the Go SDK's selftest, built with the Go
//! toolchain (`GOOS=wasip1`) and run through the `troupe` binary, including
//! Go and Rust processes exchanging typed messages in both directions.
//!
//! Needs Go >= 1.21: `scripts/test.sh` installs Go 1.23; without it these
//! tests fail and say so.

use crate::common::{self, go_guest, guest, text, troupe, troupe_with_stdin};

fn run_ok(args: &[&str]) -> String {
    let out = troupe(args);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "troupe {args:?} exited with {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status.code(),
        text(&out.stderr)
    );
    stdout
}

#[test]
fn go_hello_gets_args_env_dirs_stdin_and_exit_code() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("file.txt"), "x").unwrap();
    std::fs::create_dir(data.path().join("sub")).unwrap();
    let dir = format!("{}::/data", data.path().display());
    let hello = go_guest("go-hello");
    let hello = hello.to_str().unwrap();
    let out = troupe(&[
        "run",
        "--env",
        "GREETING=hi",
        "--dir",
        &dir,
        hello,
        "a",
        "b c",
        "--exit",
        "3",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", text(&out.stderr));
    for line in [
        "Hello from Go on Troupe!",
        "runtime: wasip1/wasm go1.",
        &format!("arg[0] = {hello}"),
        "arg[1] = a",
        "arg[2] = b c",
        "env: 1 variable(s)",
        "env GREETING=hi",
        "/data: 2 entries",
        "/data/file.txt",
        "/data/sub/",
        "exiting with code 3",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }

    let out = troupe_with_stdin(&["run", hello, "--stdin"], b"hello");
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("stdin: 5 bytes"));

    // A Go panic is Go's exit(2), not a trap.
    let out = troupe(&["run", hello, "--panic"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("panic: go-hello was asked to panic"));
}

#[test]
fn go_ping_pong_bounces_every_ball() {
    let stdout = run_ok(&["run", go_guest("go-ping-pong").to_str().unwrap(), "20000"]);
    for line in [
        "go-ping-pong: root process <1>",
        "go-ping-pong: spawned pong <2>",
        "pong <2>: started, bouncing balls back to <1>",
        "go-ping-pong: <1> sent ball 2 to <2>, got 2 back",
        "go-ping-pong: pong saw 20003 balls",
        "pong <2>: stopping after 20003 balls",
        "go-ping-pong: 20000 round trips in",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
}

#[test]
fn go_workers_fan_out_and_gather_with_request_reply() {
    let stdout = run_ok(&[
        "run",
        go_guest("go-workers").to_str().unwrap(),
        "3",
        "300000",
        "12",
    ]);
    for line in [
        "go-workers: spawned <2> <3> <4>",
        "go-workers: worker 2 <4>: 4 jobs",
        "go-workers: total 25997 primes below 300000",
        "go-workers: OK",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
}

#[test]
fn go_sdk_selftest_passes_against_the_vm() {
    let data = tempfile::tempdir().unwrap();
    let dir = format!("{}::/data", data.path().display());
    let out = troupe(&[
        "run",
        "--threads",
        "1",
        "--dir",
        &dir,
        go_guest("selftest").to_str().unwrap(),
        "one",
        "two",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("selftest: all ok"),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
    // The child that panicked on purpose printed its panic; nobody else died.
    assert!(text(&out.stderr).contains("this child panics on purpose"));
}

/// The Go SDK's Server and Supervisor (examples/otpcheck): gen_server's
/// calls, casts, infos, stop and terminate; the three restart strategies,
/// restart policies, intensity, reverse-order shutdown, dynamic children
/// and a supervision tree, on one scheduler thread and on two.
#[test]
fn go_servers_and_supervisors_behave_as_otps() {
    for threads in ["1", "2"] {
        let out = troupe(&[
            "run",
            "--threads",
            threads,
            go_guest("otpcheck").to_str().unwrap(),
        ]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("otpcheck: all ok"),
            "--threads {threads}\nstdout:\n{stdout}\nstderr:\n{}",
            text(&out.stderr)
        );
        assert!(!stdout.contains("FAILED"), "{stdout}");
        // 21 checks, each one line.
        assert_eq!(stdout.matches(": ok\n").count(), 21, "{stdout}");
        // The supervisor that gave up said why.
        assert!(text(&out.stderr).contains("more than 2 restarts"));
    }
}

/// The Go SDK's unit tests compiled for wasm and run as Troupe processes:
/// the bincode codec (with its reflection and interface writes) and the
/// checks against the Rust ABI, SPEC.md and the shared vectors, on the
/// target they are for. They read the repository through a preopen.
#[test]
fn go_sdk_unit_tests_pass_on_wasm_in_the_vm() {
    let repo = common::repo().to_str().unwrap().to_owned();
    for (name, dir) in [
        ("sdk-tests-troupe", ""),
        ("sdk-tests-bincode", "/bincode"),
        ("sdk-tests-abi", "/abi"),
    ] {
        let preopen = format!("{repo}::{repo}");
        let pwd = format!("PWD={repo}/guest-sdk/go{dir}");
        let stdout = run_ok(&[
            "run",
            "--dir",
            &preopen,
            "--env",
            &pwd,
            go_guest(name).to_str().unwrap(),
            "-test.v",
        ]);
        assert!(
            stdout.contains("--- PASS") && stdout.ends_with("PASS\n"),
            "{name}:\n{stdout}"
        );
        assert!(!stdout.contains("--- FAIL"), "{name}:\n{stdout}");
    }
}

/// Runs the mixed example with `leader` as the root, which loads `follower`
/// from the preopened directory `/modules`.
fn mixed(leader: &std::path::Path, follower: &std::path::Path) -> String {
    let dir = format!("{}::/modules", follower.parent().unwrap().display());
    let module = format!(
        "/modules/{}",
        follower.file_name().unwrap().to_str().unwrap()
    );
    run_ok(&["run", "--dir", &dir, leader.to_str().unwrap(), &module])
}

#[test]
fn mixed_go_leader_and_rust_follower_exchange_typed_messages() {
    let stdout = mixed(&go_guest("mixed"), &guest("mixed-rust"));
    for line in [
        "leader (go) <1>: spawned /modules/mixed-rust.wasm as <2>",
        "follower (rust) <2>: hello from the go leader <1>",
        "follower (rust): pricing order 7 for Zoë (2 items, note Some(\"fragile ✓\"), express true)",
        "leader (go): quote for order 7 from the rust follower: 2 lines, total 16.00",
        "follower (rust): the leader echoed \"hi from rust <2> / echoed by go\"",
        "mixed: OK (go leader, rust follower)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
}

#[test]
fn mixed_rust_leader_and_go_follower_exchange_typed_messages() {
    let stdout = mixed(&guest("mixed-rust"), &go_guest("mixed"));
    for line in [
        "leader (rust) <1>: spawned /modules/mixed.wasm as <2>",
        "follower (go) <2>: hello from the rust leader <1>",
        "follower (go): pricing order 7 for Zoë (2 items, note Some(fragile ✓), express true)",
        "leader (rust): quote for order 7 from the go follower: 2 lines, total 16.00",
        "follower (go): the leader echoed \"hi from go <2> / echoed by rust\"",
        "mixed: OK (rust leader, go follower)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
}

/// A Rust supervisor whose children are Go programs (`ChildSpec::module`):
/// a Go worker that panics is restarted as a fresh Go process under the same
/// name, its sibling keeps running with its state, and stopping the
/// supervisor stops the Go children.
#[test]
fn rust_supervisor_restarts_crashed_go_workers() {
    let worker = go_guest("go-worker");
    let dir = format!("{}::/modules", worker.parent().unwrap().display());
    let out = troupe(&[
        "run",
        "--dir",
        &dir,
        guest("go-supervised").to_str().unwrap(),
        "/modules/go-worker.wasm",
        "3",
    ]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status.code()
    );
    for line in [
        "go-supervised: supervisor <2> started",
        "go worker a <3>: started",
        "go worker b <4>: started",
        "go-supervised: worker a squares 7: 49",
        "go-supervised: worker b squares 7: 49",
        "go-supervised: worker a <3> ended (exit code 2); restarted as <5>",
        "go-supervised: worker a squares 11: 121",
        "go-supervised: worker a <6> ended (exit code 2); restarted as <7>",
        "go-supervised: worker a squares 13: 169",
        // The restarted worker starts afresh; its sibling kept its state.
        "go-supervised: stats: a 7 did 1 job(s), b 4 did 1 job(s)",
        "go-supervised: child go-a: <7>, 3 restart(s)",
        "go-supervised: child go-b: <4>, 0 restart(s)",
        "go-supervised: supervisor stopped; worker b <4> ended (shutdown)",
        "go-supervised: OK",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    // Each crash is a real Go panic, reported by the Go runtime.
    for i in 1..=3 {
        assert!(
            stderr.contains(&format!("crash {i} of 3, on purpose")),
            "{stderr}"
        );
    }
}

/// The Go SDK's networking against the VM: TCP, UDP, deadlines, sockets
/// moved in messages and spawn arguments, `WithNet`, `LookupHost`; and
/// everything refused with `os.ErrPermission` without `--allow-net`.
#[test]
fn go_networking_works_with_allow_net_and_is_denied_without() {
    let netcheck = go_guest("netcheck");
    let netcheck = netcheck.to_str().unwrap();
    let stdout = run_ok(&["run", "--allow-net=127.0.0.1,localhost", netcheck]);
    assert!(stdout.contains("netcheck: all ok"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    let stdout = run_ok(&["run", netcheck, "--denied"]);
    assert!(stdout.contains("netcheck: all ok"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
}

/// `examples/go-echo`: a Go listener hands each connection to a Go handler
/// process, which echoes lines; with `--once 2` the VM exits after two.
#[test]
fn go_echo_serves_each_connection_in_its_own_process() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let mut vm = Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["run", "--allow-net=127.0.0.1"])
        .arg(go_guest("go-echo"))
        .args(["127.0.0.1:0", "--once", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(vm.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("go-echo: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let mut clients: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        writeln!(c, "hello {i}").unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mut echoed = String::new();
        BufReader::new(&*c).read_line(&mut echoed).unwrap();
        assert_eq!(echoed, format!("hello {i}\n"));
        c.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let status = vm.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success(), "exit {status:?}; stdout: {rest}");
    assert!(rest.contains("go-echo: served 2 connections"), "{rest}");
}
