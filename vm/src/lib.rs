//! The Troupe VM: Erlang-style processes on WebAssembly.
//!
//! Every process is its own Wasm instance (own linear memory, own WASI
//! context, own mailbox) driven by a tokio task; processes talk only by
//! messages. The guest ABI is specified in `host-api/SPEC.md` and implemented
//! by `troupe-host-api`; this crate holds the runtime core:
//!
//! - [`vm`]: the engine (a pooling allocator with copy-on-write memories,
//!   epoch preemption), the process table, spawning, the scheduler;
//! - [`mailbox`]: per-process FIFO queues with selective receive;
//! - [`hibernate`]: processes that wait without an instance;
//! - [`module_cache`]: modules compiled once and pre-linked;
//! - [`process`]: per-process state, permissions and exit reasons;
//! - [`limits`]: kernel limits (memory mappings, open files);
//! - [`config`]: [`VmConfig`] and [`RootOptions`];
//! - [`Exit`]: how a run ends for the program that ran it (exit code and
//!   report), shared by the `troupe` CLI and the containerd shim.
//!
//! The `troupe` binary (crate `troupe-cli`, folder `cli/`) runs a module as
//! the root process.

pub(crate) mod budget;
pub mod config;
mod exit;
pub mod hibernate;
pub mod limits;
pub mod mailbox;
pub mod module_cache;
pub mod process;
pub mod vm;

/// Locks `m`, ignoring poisoning: every critical section in the VM leaves its
/// data consistent, so a panic elsewhere (there should be none) must not make
/// the data unusable.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub use config::{parse_size, DirMapping, Output, RootOptions, VmConfig};
pub use exit::Exit;
pub use process::{ExitReason, Limit};
pub use troupe_host_api::NetPolicy;
pub use vm::{RunError, Vm};
