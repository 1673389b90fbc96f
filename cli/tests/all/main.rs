//! The tests that run the `troupe` binary as a user does: its flags and
//! exit codes, the examples, networking, Go guests, the sandbox through the
//! binary, the chaos run. One test binary (as `vm/tests/all`); cargo gives
//! `CARGO_BIN_EXE_troupe` to this package's tests only.
//!
//! cargo runs the tests of one binary side by side on threads, so nothing
//! here may change the process for the others: no environment variables, no
//! current directory, no signal handlers of its own.

mod chaos;
mod cli;
mod go;
mod net;
mod sandbox;
mod services;

/// The helpers of `troupe-test-support`, and running the binary.
mod common {
    use std::process::{Command, Output};

    pub use troupe_test_support::*;

    /// Runs the `troupe` binary.
    pub fn troupe(args: &[&str]) -> Output {
        troupe_with_stdin(args, b"")
    }

    /// Runs the `troupe` binary with `stdin` as its standard input.
    pub fn troupe_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start troupe");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        // A guest's own Rust panic prints "thread '<unnamed>' panicked": that is
        // a guest trap. A panic of the VM is on one of its named threads.
        let stderr = String::from_utf8_lossy(&out.stderr);
        for thread in [
            "'main' panicked",
            "'troupe-sched' panicked",
            "'troupe-epoch' panicked",
        ] {
            assert!(!stderr.contains(thread), "the VM panicked: {stderr}");
        }
        out
    }
}
