//! [`ExitReason`]: why a process ended, as the host and the guests see it,
//! and its encoding across the ABI (see `SPEC.md`, "Exit reasons"): a `u32`
//! kind then its data, which is also bincode 1.3's layout of this enum (so
//! the Rust SDK, with the `serde` feature, decodes it as part of its
//! messages).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::reason as kind;

/// Which per-process limit a process exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Limit {
    /// Its linear memory (with what the host holds for it) grew past its
    /// maximum.
    Memory,
    /// It ran out of fuel (instructions).
    Fuel,
}

/// Why a process ended. Keep the variants in this order: it is the ABI's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ExitReason {
    /// It returned from its entry (or `main`), or exited with code 0.
    Normal,
    /// It trapped (a panic, `unreachable`, a bad pointer...): the trap's
    /// message with its Wasm backtrace.
    Trap(String),
    /// It was killed (`kill`, untrappable).
    Killed,
    /// It exceeded a limit set at spawn.
    Limit(Limit),
    /// It called `proc_exit` (`std::process::exit`) with this non-zero code.
    ExitCode(i32),
    /// It exited with a reason of its own (`exit`, `send_exit`).
    Custom(Vec<u8>),
    /// The monitored process did not exist (DOWN and EXIT messages only).
    NoProc,
    /// It was asked to shut down (by a supervisor). Not an error, but it
    /// still ends linked processes that do not trap exits.
    Shutdown,
}

impl ExitReason {
    /// `Normal`: the only reason that does not end linked processes.
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal)
    }

    /// Whether OTP would call this an abnormal end (anything but `Normal`
    /// and `Shutdown`): what transient children are restarted for.
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, ExitReason::Normal | ExitReason::Shutdown)
    }

    /// The exit code a VM gives when its root process ends this way.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExitReason::Normal | ExitReason::Shutdown => 0,
            ExitReason::ExitCode(code) => *code,
            ExitReason::Trap(_) | ExitReason::Limit(_) => crate::exit::TRAP,
            ExitReason::Killed => crate::exit::KILLED,
            ExitReason::Custom(_) | ExitReason::NoProc => crate::exit::LOAD_ERROR,
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
            ExitReason::Killed => out.extend_from_slice(&kind::KILLED.to_le_bytes()),
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
                    .map_err(|_| String::from("a trap message is not UTF-8"))?,
            ),
            kind::KILLED => ExitReason::Killed,
            kind::LIMIT => ExitReason::Limit(match r.u32()? {
                kind::LIMIT_MEMORY => Limit::Memory,
                kind::LIMIT_FUEL => Limit::Fuel,
                other => return Err(alloc::format!("unknown limit {other}")),
            }),
            kind::EXIT_CODE => ExitReason::ExitCode(r.u32()? as i32),
            kind::CUSTOM => ExitReason::Custom(r.bytes()?.to_vec()),
            kind::NOPROC => ExitReason::NoProc,
            kind::SHUTDOWN => ExitReason::Shutdown,
            other => return Err(alloc::format!("unknown exit reason kind {other}")),
        };
        if !r.0.is_empty() {
            return Err(alloc::format!("{} bytes after the exit reason", r.0.len()));
        }
        Ok(reason)
    }
}

#[cfg(feature = "serde")]
impl ExitReason {
    /// A custom reason carrying `value` (in the SDK's payload codec).
    pub fn custom<T: serde::Serialize>(value: &T) -> Self {
        use bincode::Options;
        ExitReason::Custom(
            crate::payload_codec()
                .serialize(value)
                .expect("a value that serde can encode"),
        )
    }

    /// Decodes a [`ExitReason::Custom`] value; `None` for other reasons or
    /// a value of another type.
    pub fn decode_custom<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        use bincode::Options;
        match self {
            ExitReason::Custom(data) => crate::payload_codec().deserialize(data).ok(),
            _ => None,
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => write!(f, "normal"),
            ExitReason::Trap(t) => write!(f, "trap: {}", t.lines().next().unwrap_or("")),
            ExitReason::Killed => write!(f, "killed"),
            ExitReason::Limit(Limit::Memory) => write!(f, "memory limit exceeded"),
            ExitReason::Limit(Limit::Fuel) => write!(f, "fuel limit exceeded"),
            ExitReason::ExitCode(c) => write!(f, "exit code {c}"),
            ExitReason::Custom(d) => match core::str::from_utf8(d) {
                Ok(s) if !s.is_empty() => write!(f, "{s:?}"),
                _ => write!(f, "custom reason ({} bytes)", d.len()),
            },
            ExitReason::NoProc => write!(f, "noproc"),
            ExitReason::Shutdown => write!(f, "shutdown"),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(String::from("the exit reason is truncated"));
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
        self.take(usize::try_from(n).map_err(|_| String::from("length too large"))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn all() -> [ExitReason; 9] {
        [
            ExitReason::Normal,
            ExitReason::Trap("boom".into()),
            ExitReason::Killed,
            ExitReason::Limit(Limit::Memory),
            ExitReason::Limit(Limit::Fuel),
            ExitReason::ExitCode(-3),
            ExitReason::Custom(vec![1, 2, 3]),
            ExitReason::NoProc,
            ExitReason::Shutdown,
        ]
    }

    #[test]
    fn every_reason_round_trips_and_matches_the_spec_layout() {
        for r in all() {
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
    }

    #[cfg(feature = "serde")]
    #[test]
    fn the_encoding_is_bincodes_layout_of_the_enum() {
        use bincode::Options;
        for r in all() {
            assert_eq!(
                crate::payload_codec().serialize(&r).unwrap(),
                r.encode(),
                "{r:?}"
            );
            let back: ExitReason = crate::payload_codec().deserialize(&r.encode()).unwrap();
            assert_eq!(back, r);
        }
        let custom = ExitReason::custom(&(7u32, "why"));
        assert_eq!(
            custom.decode_custom::<(u32, String)>(),
            Some((7, "why".into()))
        );
        assert_eq!(ExitReason::Normal.decode_custom::<u32>(), None);
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
