//! The VM-wide name registry: [`register`], [`whereis`], [`unregister`] and
//! sending by name. A process's names are freed when it ends.

use serde::Serialize;
use troupe_abi::{err, tag};

use crate::error::{last_error_message, unexpected};
use crate::message::encode;
use crate::{host, Pid, Process};

/// A registry call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryError {
    /// The name is taken (by the given process).
    AlreadyRegistered(String),
    /// The process does not exist.
    NoProcess(Pid),
    /// No process is registered under the name.
    NotFound(String),
    /// The VM refused: a name longer than `troupe_abi::limit::NAME_LEN`, a
    /// process with `troupe_abi::limit::NAMES` names already, or (sending
    /// by name) a full mailbox. The VM's sentence says which.
    Refused(String),
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryError::AlreadyRegistered(m) => write!(f, "already registered: {m}"),
            RegistryError::NoProcess(p) => write!(f, "no such process {p}"),
            RegistryError::NotFound(name) => write!(f, "no process is registered as {name:?}"),
            RegistryError::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

impl std::error::Error for RegistryError {}

/// Registers `name` for `pid`; fails if the name is taken.
pub fn register(name: &str, pid: Pid) -> Result<(), RegistryError> {
    let rc = host::register(name, pid.0);
    match rc {
        err::OK => Ok(()),
        err::ALREADY_REGISTERED => Err(RegistryError::AlreadyRegistered(last_error_message())),
        err::NO_PROCESS => Err(RegistryError::NoProcess(pid)),
        err::RESOURCE_LIMIT | err::INVALID_ARGUMENT => {
            Err(RegistryError::Refused(last_error_message()))
        }
        code => unexpected("register", code),
    }
}

/// Frees `name`.
pub fn unregister(name: &str) -> Result<(), RegistryError> {
    match host::unregister(name) {
        err::OK => Ok(()),
        // A name too long to be registered is not registered.
        err::NOT_FOUND | err::INVALID_ARGUMENT => Err(RegistryError::NotFound(name.to_owned())),
        code => unexpected("unregister", code),
    }
}

/// The process registered under `name`, if any.
pub fn whereis(name: &str) -> Option<Pid> {
    let mut pid = 0u64;
    let rc = host::whereis(name, &mut pid);
    match rc {
        err::OK => Some(Pid(pid)),
        err::NOT_FOUND | err::INVALID_ARGUMENT => None,
        code => unexpected("whereis", code),
    }
}

/// Sends `msg` to the process registered under `name` (one host call).
pub fn send_named<M: Serialize>(name: &str, msg: &M) -> Result<(), RegistryError> {
    let data = encode(msg);
    let rc = host::send_named(name, tag::DATA, &data);
    match rc {
        err::OK => Ok(()),
        err::NOT_FOUND | err::NO_PROCESS => Err(RegistryError::NotFound(name.to_owned())),
        err::RESOURCE_LIMIT | err::INVALID_ARGUMENT => {
            Err(RegistryError::Refused(last_error_message()))
        }
        code => unexpected("registry send", code),
    }
}

impl<M> Process<M> {
    /// The process registered under `name`, as a typed handle.
    pub fn whereis(name: &str) -> Option<Process<M>> {
        whereis(name).map(Process::from_pid)
    }

    /// Registers this process under `name`.
    pub fn register(&self, name: &str) -> Result<(), RegistryError> {
        register(name, self.pid())
    }
}
