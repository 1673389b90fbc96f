//! [`RunError`]: why a VM could not be made or could not run its root.

use troupe_host_api::HostError;

use crate::module_cache::LoadError;

/// Why a VM could not run a module.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read module {path:?}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path:?} {source}")]
    Load {
        path: std::path::PathBuf,
        source: LoadError,
    },
    #[error(
        "{path:?} has no `_start` function: it is not a WASI command module \
         (build a binary crate for wasm32-wasip1, or GOOS=wasip1 GOARCH=wasm)"
    )]
    NoStart { path: std::path::PathBuf },
    #[error("cannot open directory {path:?}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the root process: {0}")]
    Start(HostError),
    #[error("cannot create the VM: {0}")]
    Engine(String),
}
