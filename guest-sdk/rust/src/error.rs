//! The error types of the SDK.

use std::fmt;
use std::path::PathBuf;

use troupe_abi::err;

use crate::{host, Pid};

/// The explanation of the calling process's most recent host error, as
/// `troupe_process::error_message` gives it (empty if there is none).
pub(crate) fn last_error_message() -> String {
    let mut buf = vec![0u8; 256];
    loop {
        let full = host::error_message(&mut buf);
        let full = usize::try_from(full).unwrap_or(0);
        if full <= buf.len() {
            buf.truncate(full);
            return String::from_utf8_lossy(&buf).into_owned();
        }
        buf.resize(full, 0);
    }
}

/// Panics for a host error code that the SDK never expects from this call
/// (the host broke its own contract, or the SDK has a bug).
pub(crate) fn unexpected(function: &str, code: i32) -> ! {
    panic!(
        "troupe: {function} returned unexpected error {code} ({}): {}",
        err::name(code),
        last_error_message()
    )
}

/// Sending a message failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The target process does not exist (it exited, or never did). The
    /// message was dropped.
    NoProcess(Pid),
    /// The target's mailbox is full: the message would take it past its
    /// memory budget (its maximum memory counts its queued messages), or
    /// the VM past its own. The message was dropped.
    MailboxFull(Pid),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NoProcess(pid) => write!(f, "send failed: no such process {pid}"),
            SendError::MailboxFull(pid) => write!(f, "send failed: the mailbox of {pid} is full"),
        }
    }
}

impl std::error::Error for SendError {}

/// Receiving a message failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiveError {
    /// No matching message arrived in time (for a non-blocking receive: no
    /// matching message was waiting).
    Timeout,
    /// A message arrived but its payload does not decode as the expected
    /// type. The message has been taken out of the mailbox.
    Malformed {
        /// The sender of the message.
        from: Pid,
        /// What the decoder said.
        error: String,
    },
}

impl fmt::Display for ReceiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiveError::Timeout => write!(f, "receive timed out"),
            ReceiveError::Malformed { from, error } => {
                write!(f, "malformed message from {from}: {error}")
            }
        }
    }
}

impl std::error::Error for ReceiveError {}

/// A request (see [`Process::request`](crate::Process::request)) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// No reply arrived in time.
    Timeout,
    /// The server does not exist (it exited, or never did): the request was
    /// not delivered.
    NoProcess(Pid),
    /// The server's mailbox is full: the request was not delivered.
    MailboxFull(Pid),
    /// A reply arrived but does not decode as the expected type.
    Malformed {
        /// The sender of the reply.
        from: Pid,
        /// What the decoder said.
        error: String,
    },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Timeout => write!(f, "request timed out"),
            RequestError::NoProcess(pid) => write!(f, "request failed: no such process {pid}"),
            RequestError::MailboxFull(pid) => {
                write!(f, "request failed: the mailbox of {pid} is full")
            }
            RequestError::Malformed { from, error } => {
                write!(f, "malformed reply from {from}: {error}")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// Spawning a process failed. Carries the host's error code (one of
/// [`troupe_abi::err`]) and its explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnError {
    /// The error code, one of [`troupe_abi::err`].
    pub code: i32,
    /// The host's explanation (`troupe_process::error_message`), or the
    /// SDK's when it refused the request itself.
    pub message: String,
}

impl SpawnError {
    /// The error `code` the host just returned, with its explanation.
    pub(crate) fn from_host(code: i32) -> Self {
        SpawnError {
            code,
            message: last_error_message(),
        }
    }

    /// An `INVALID_ARGUMENT` error detected by the SDK itself.
    pub(crate) fn invalid(message: String) -> Self {
        SpawnError {
            code: err::INVALID_ARGUMENT,
            message,
        }
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spawn failed: {}: {}",
            err::name(self.code),
            self.message
        )
    }
}

impl std::error::Error for SpawnError {}

/// Loading a module failed.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read (through WASI: the process must be able
    /// to see it in one of its preopened directories).
    Io {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The VM refused the bytes (code [`err::INVALID_MODULE`]: not Wasm,
    /// invalid, or importing what the VM does not provide).
    Module {
        /// The error code, one of [`troupe_abi::err`].
        code: i32,
        /// The host's explanation.
        message: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, error } => {
                write!(f, "cannot read module {}: {error}", path.display())
            }
            LoadError::Module { code, message } => {
                write!(f, "module load failed: {}: {message}", err::name(*code))
            }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { error, .. } => Some(error),
            LoadError::Module { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_error_display_names_code_and_message() {
        let e = SpawnError {
            code: err::NO_SUCH_EXPORT,
            message: "module has no export \"x\"".into(),
        };
        assert_eq!(
            e.to_string(),
            "spawn failed: no such export: module has no export \"x\""
        );
    }
}
