//! Exit reasons and their encoding across the ABI (see `SPEC.md`, "Exit
//! reasons"): a `u32` kind then its data, bincode 1.3's layout of the Rust
//! SDK's `ExitReason`.

use troupe_abi::reason as kind;

/// Which per-process limit was exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Memory,
    Fuel,
}

/// Why a process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// Its entry returned, or it called `proc_exit(0)`.
    Normal,
    /// It trapped; the text is the trap with its Wasm backtrace.
    Trap(String),
    /// It was killed (untrappable).
    Killed,
    /// It exceeded a limit set at spawn.
    Limit(Limit),
    /// It called `proc_exit` with this non-zero code.
    ExitCode(i32),
    /// It exited with a reason of its own (`exit`, `send_exit`).
    Custom(Vec<u8>),
    /// (DOWN messages) the monitored process did not exist.
    NoProc,
    /// It was asked to shut down.
    Shutdown,
    /// The whole VM was stopped from outside (a signal); the code is the
    /// VM's exit code (128 + the signal's number). Crosses the ABI as
    /// `KILLED`.
    Stopped(i32),
}

impl ExitReason {
    /// Whether linked processes that do not trap exits survive it.
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal)
    }

    /// The exit code a root process ending this way gives the VM.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExitReason::Normal | ExitReason::Shutdown => 0,
            ExitReason::ExitCode(code) | ExitReason::Stopped(code) => *code,
            ExitReason::Trap(_) | ExitReason::Limit(_) => troupe_abi::exit::TRAP,
            ExitReason::Killed => troupe_abi::exit::KILLED,
            ExitReason::Custom(_) | ExitReason::NoProc => troupe_abi::exit::LOAD_ERROR,
        }
    }

    /// Appends the ABI encoding.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let bytes = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        };
        match self {
            ExitReason::Normal => out.extend_from_slice(&kind::NORMAL.to_le_bytes()),
            ExitReason::Trap(msg) => {
                out.extend_from_slice(&kind::TRAP.to_le_bytes());
                bytes(out, msg.as_bytes());
            }
            ExitReason::Killed | ExitReason::Stopped(_) => {
                out.extend_from_slice(&kind::KILLED.to_le_bytes())
            }
            ExitReason::Limit(limit) => {
                out.extend_from_slice(&kind::LIMIT.to_le_bytes());
                let l = match limit {
                    Limit::Memory => kind::LIMIT_MEMORY,
                    Limit::Fuel => kind::LIMIT_FUEL,
                };
                out.extend_from_slice(&l.to_le_bytes());
            }
            ExitReason::ExitCode(code) => {
                out.extend_from_slice(&kind::EXIT_CODE.to_le_bytes());
                out.extend_from_slice(&code.to_le_bytes());
            }
            ExitReason::Custom(data) => {
                out.extend_from_slice(&kind::CUSTOM.to_le_bytes());
                bytes(out, data);
            }
            ExitReason::NoProc => out.extend_from_slice(&kind::NOPROC.to_le_bytes()),
            ExitReason::Shutdown => out.extend_from_slice(&kind::SHUTDOWN.to_le_bytes()),
        }
    }

    /// The ABI encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes a whole buffer (trailing bytes are an error).
    pub fn decode(data: &[u8]) -> Result<ExitReason, String> {
        let mut r = Reader(data);
        let reason = match r.u32()? {
            kind::NORMAL => ExitReason::Normal,
            kind::TRAP => ExitReason::Trap(
                String::from_utf8(r.bytes()?.to_vec())
                    .map_err(|_| "a trap message is not UTF-8".to_string())?,
            ),
            kind::KILLED => ExitReason::Killed,
            kind::LIMIT => ExitReason::Limit(match r.u32()? {
                kind::LIMIT_MEMORY => Limit::Memory,
                kind::LIMIT_FUEL => Limit::Fuel,
                other => return Err(format!("unknown limit {other}")),
            }),
            kind::EXIT_CODE => ExitReason::ExitCode(r.u32()? as i32),
            kind::CUSTOM => ExitReason::Custom(r.bytes()?.to_vec()),
            kind::NOPROC => ExitReason::NoProc,
            kind::SHUTDOWN => ExitReason::Shutdown,
            other => return Err(format!("unknown exit reason kind {other}")),
        };
        if !r.0.is_empty() {
            return Err(format!("{} bytes after the exit reason", r.0.len()));
        }
        Ok(reason)
    }
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitReason::Normal => write!(f, "normal"),
            ExitReason::Trap(t) => write!(f, "trap: {}", t.lines().next().unwrap_or("")),
            ExitReason::Killed => write!(f, "killed"),
            ExitReason::Limit(Limit::Memory) => write!(f, "memory limit exceeded"),
            ExitReason::Limit(Limit::Fuel) => write!(f, "fuel limit exceeded"),
            ExitReason::ExitCode(c) => write!(f, "exit code {c}"),
            ExitReason::Custom(d) => write!(f, "custom reason ({} bytes)", d.len()),
            ExitReason::NoProc => write!(f, "noproc"),
            ExitReason::Shutdown => write!(f, "shutdown"),
            ExitReason::Stopped(c) => write!(f, "stopped by signal {}", c - 128),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("the exit reason is truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = u64::from_le_bytes(self.take(8)?.try_into().unwrap());
        self.take(usize::try_from(n).map_err(|_| "length too large")?)
    }
}

/// The error a host function returns to end the calling process with a
/// reason of its own (`exit`); the VM turns it into that exit reason.
#[derive(Debug)]
pub struct GuestExit(pub ExitReason);

impl std::fmt::Display for GuestExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the process exited with reason {}", self.0)
    }
}

impl std::error::Error for GuestExit {}

/// The error `hibernate` returns to unwind the calling process's stack; the
/// VM then keeps its memory, frees its instance, and calls `entry(params)`
/// in a fresh instance when a message arrives.
#[derive(Debug)]
pub struct Hibernate {
    /// The export to call when the process wakes.
    pub entry: String,
    /// Its parameters.
    pub params: Vec<i64>,
}

impl std::fmt::Display for Hibernate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the process hibernated (to wake in {:?})", self.entry)
    }
}

impl std::error::Error for Hibernate {}

/// The error a process's resource limiter returns when a limit is passed.
#[derive(Debug)]
pub struct LimitExceeded(pub Limit);

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", ExitReason::Limit(self.0))
    }
}

impl std::error::Error for LimitExceeded {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_and_matches_the_spec_layout() {
        let all = [
            ExitReason::Normal,
            ExitReason::Trap("boom".into()),
            ExitReason::Killed,
            ExitReason::Limit(Limit::Memory),
            ExitReason::Limit(Limit::Fuel),
            ExitReason::ExitCode(-3),
            ExitReason::Custom(vec![1, 2, 3]),
            ExitReason::NoProc,
            ExitReason::Shutdown,
        ];
        for r in all {
            assert_eq!(ExitReason::decode(&r.encode()).unwrap(), r);
        }
        assert_eq!(
            ExitReason::Trap("ab".into()).encode(),
            [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b']
        );
        assert_eq!(
            ExitReason::Limit(Limit::Fuel).encode(),
            [3, 0, 0, 0, 1, 0, 0, 0]
        );
        assert_eq!(
            ExitReason::Stopped(143).encode(),
            ExitReason::Killed.encode()
        );
    }

    #[test]
    fn malformed_reasons_are_errors() {
        assert!(ExitReason::decode(&[]).is_err());
        assert!(ExitReason::decode(&[99, 0, 0, 0])
            .unwrap_err()
            .contains("unknown"));
        assert!(
            ExitReason::decode(&[1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, b'a'])
                .unwrap_err()
                .contains("truncated")
        );
        assert!(ExitReason::decode(&[0, 0, 0, 0, 7])
            .unwrap_err()
            .contains("after"));
    }
}
