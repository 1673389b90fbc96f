//! The Troupe VM: Erlang-style processes on WebAssembly.
//!
//! Every process is its own Wasm instance (own linear memory, own WASI
//! context, own mailbox) driven by a tokio task; processes talk only by
//! messages. The guest ABI is specified in `host-api/SPEC.md` and implemented
//! by `troupe-host-api`; this crate holds the runtime core. Its public API is
//! small: a [`Vm`] made with a [`VmConfig`] runs a module as its root process
//! ([`RootOptions`]) and returns its [`ExitReason`], or a [`RunError`].
//!
//! Inside (`ARCHITECTURE.md` has the map): the VM's shared state (`vm`),
//! the engine (`engine`), the scheduler and preemption ticker
//! (`scheduler`), a process's life (`lifecycle`, `hibernation`), the slot
//! pool (`pool`), links and monitors (`links`), names (`registry`), timers
//! (`timers`), processes (`process`), mailboxes (`mailbox`), memory budgets
//! (`budget`), the module cache (`module_cache`), kernel limits ([`limits`]),
//! the configuration (`config`), and [`Exit`]: how a run ends for the
//! program that ran it (exit code and report), shared by the `troupe` CLI
//! and the containerd shim.
//!
//! The `troupe` binary (crate `troupe-cli`, folder `cli/`) runs a module as
//! the root process.

pub(crate) mod budget;
pub(crate) mod config;
pub(crate) mod engine;
pub(crate) mod error;
mod exit;
pub(crate) mod hibernation;
pub(crate) mod lifecycle;
pub mod limits;
pub(crate) mod links;
pub(crate) mod mailbox;
pub(crate) mod module_cache;
pub(crate) mod pool;
pub(crate) mod process;
pub(crate) mod registry;
pub(crate) mod scheduler;
pub(crate) mod timers;
pub(crate) mod vm;

/// Locks `m`, ignoring poisoning: every critical section in the VM leaves its
/// data consistent, so a panic elsewhere (there should be none) must not make
/// the data unusable.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub use config::{
    parse_size, DirMapping, Output, RootOptions, VmConfig, DEFAULT_MAX_MEMORY,
    DEFAULT_MAX_PROCESSES, HOST_STACK_HEADROOM, MIN_WASM_STACK,
};
pub use error::RunError;
pub use exit::Exit;
pub use module_cache::LoadError;
pub use troupe_host_api::{ExitReason, Limit, NetPolicy};
pub use vm::Vm;

/// What the benchmarks need of the VM's insides, and nothing else uses:
/// `benches/wasmtime-floor` runs bare wasmtime with exactly the VM's engine
/// and scheduler. Not part of the API.
#[doc(hidden)]
pub mod bench {
    pub use crate::engine::engine_config;
    pub use crate::scheduler::scheduler_builder;
}
