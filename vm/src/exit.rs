//! How a run of the VM ends for the program that ran it (the `troupe` CLI,
//! the containerd shim): one exit code and one report, the same for both.
//!
//! | how it ended | code | report (stderr) |
//! |---|---|---|
//! | the root returned or called `proc_exit(0)` | 0 | none |
//! | the root called `proc_exit(n)` | n | none |
//! | the root trapped or passed a limit | 134 | `troupe: the root process (pid 1) trapped; exiting with 134` |
//! | the root was killed | 137 | none |
//! | the VM was stopped by SIGTERM / SIGINT (`RunError::Stopped`) | 143 / 130 | `troupe: stopped by signal 15; every process ended` |
//! | the module could not be read, loaded or started | 1 | `troupe: <the error>` |
//! | the VM panicked (the shim catches it) | 134 | `troupe: the VM panicked; exiting with 134` |

use std::io::Write as _;

use crate::{ExitReason, RunError};

/// How a run of the VM ended: the root process's [`ExitReason`], a
/// [`RunError`] before the root could run, or a panic of the VM.
///
/// ```no_run
/// use troupe_vm::{Exit, RootOptions, Vm, VmConfig};
/// let run = Vm::new(VmConfig::new())
///     .and_then(|vm| vm.run_file("app.wasm".as_ref(), RootOptions::default()));
/// std::process::exit(Exit::from(run).finish());
/// ```
#[derive(Debug)]
pub enum Exit {
    /// The root process ended this way.
    Root(ExitReason),
    /// The VM could not be made, or the root could not be loaded or started.
    Error(RunError),
    /// The VM panicked.
    Panic,
}

impl From<Result<ExitReason, RunError>> for Exit {
    fn from(run: Result<ExitReason, RunError>) -> Self {
        match run {
            Ok(reason) => Exit::Root(reason),
            Err(e) => Exit::Error(e),
        }
    }
}

impl Exit {
    /// The exit code the program gives: the root's
    /// ([`ExitReason::exit_code`]), 1 when the module could not be run, 134
    /// (`troupe_abi::exit::TRAP`) for a panic.
    pub fn code(&self) -> i32 {
        match self {
            Exit::Root(reason) => reason.exit_code(),
            Exit::Error(RunError::Stopped { signal }) => 128 + signal,
            Exit::Error(RunError::Start(_) | RunError::Engine(_)) => 1,
            Exit::Error(_) => troupe_abi::exit::LOAD_ERROR,
            Exit::Panic => troupe_abi::exit::TRAP,
        }
    }

    /// What to tell the user on stderr, if anything (a root that ends
    /// normally or with its own code says what it has to say itself).
    pub fn report(&self) -> Option<String> {
        match self {
            Exit::Root(ExitReason::Trap(_)) => Some(format!(
                "troupe: the root process (pid 1) trapped; exiting with {}",
                self.code()
            )),
            Exit::Root(_) => None,
            Exit::Error(e) => Some(format!("troupe: {e}")),
            Exit::Panic => Some(format!(
                "troupe: the VM panicked; exiting with {}",
                self.code()
            )),
        }
    }

    /// Prints the report to stderr, flushes stdout and stderr, and returns
    /// the exit code.
    pub fn finish(&self) -> i32 {
        if let Some(report) = self.report() {
            eprintln!("{report}");
        }
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        self.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limit;

    #[test]
    fn codes_and_reports_are_the_clis_and_the_shims() {
        let root = |r| Exit::Root(r);
        assert_eq!(root(ExitReason::Normal).code(), 0);
        assert_eq!(root(ExitReason::Normal).report(), None);
        assert_eq!(root(ExitReason::ExitCode(3)).code(), 3);
        assert_eq!(root(ExitReason::ExitCode(3)).report(), None);
        assert_eq!(root(ExitReason::Killed).code(), 137);
        assert_eq!(root(ExitReason::Limit(Limit::Memory)).code(), 134);
        let trap = root(ExitReason::Trap("unreachable".into()));
        assert_eq!(trap.code(), 134);
        assert_eq!(
            trap.report().unwrap(),
            "troupe: the root process (pid 1) trapped; exiting with 134"
        );
        let stopped = Exit::Error(RunError::Stopped { signal: 15 });
        assert_eq!(stopped.code(), 143);
        assert_eq!(
            stopped.report().unwrap(),
            "troupe: stopped by signal 15; every process ended"
        );
        let e = Exit::Error(RunError::Engine("no memory".into()));
        assert_eq!(e.code(), 1);
        assert_eq!(
            e.report().unwrap(),
            "troupe: cannot create the VM: no memory"
        );
        let e = Exit::from(Err(RunError::NoStart {
            path: "a.wasm".into(),
        }));
        assert_eq!(e.code(), 1);
        assert!(e.report().unwrap().contains("has no `_start` function"));
        assert_eq!(Exit::Panic.code(), 134);
        assert_eq!(
            Exit::Panic.report().unwrap(),
            "troupe: the VM panicked; exiting with 134"
        );
    }
}
