//! The VM's integration tests: one test binary, as wasmtime's `tests/all`
//! (one link of the VM instead of one per file, and the guests built once).
//! Each module is what was a test file; `common` holds their helpers.
//!
//! cargo runs the tests of one binary side by side on threads, so nothing
//! here may change the process for the others: no environment variables, no
//! current directory, no signal handlers of its own. The fuzzer of the ABI,
//! which installs a panic hook and wants the machine to itself, is the other
//! test binary, `tests/fuzz_abi.rs`; the tests that run the `troupe` binary
//! are `troupe-cli`'s (`cli/tests/all`).

/// The helpers, shared with `troupe-cli`'s tests.
mod common {
    pub(crate) use troupe_test_support::*;
}

mod otp;
mod processes;
mod sandbox;
