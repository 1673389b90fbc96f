//! [`RunError`]: why a VM could not be made or could not run its root.

use troupe_host_api::HostError;

use crate::module_cache::LoadError;

/// Why a VM could not run a module.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The module's file could not be read.
    #[error("cannot read module {path:?}: {source}")]
    Read {
        /// The module's path.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid module, or its imports cannot be linked.
    #[error("{path:?} {source}")]
    Load {
        /// The module's path.
        path: std::path::PathBuf,
        /// Why.
        source: LoadError,
    },
    /// The module is not a WASI command.
    #[error(
        "{path:?} has no `_start` function: it is not a WASI command module \
         (build a binary crate for wasm32-wasip1, or GOOS=wasip1 GOARCH=wasm)"
    )]
    NoStart {
        /// The module's path.
        path: std::path::PathBuf,
    },
    /// A directory to preopen could not be opened.
    #[error("cannot open directory {path:?}: {source}")]
    Dir {
        /// The directory on the host.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The root process could not be spawned (e.g. its entry's signature).
    #[error("cannot start the root process: {0}")]
    Start(HostError),
    /// The VM was stopped from outside (SIGTERM, SIGINT) before its root
    /// ended: every process was ended. The exit code is 128 + the signal.
    #[error("stopped by signal {signal}; every process ended")]
    Stopped {
        /// The signal's number.
        signal: i32,
    },
    /// The engine or the scheduler could not be made with this
    /// configuration (e.g. a pool larger than the address space allows).
    #[error("cannot create the VM: {0}")]
    Engine(String),
}
