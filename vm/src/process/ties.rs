//! [`Ties`]: what ties a process to the rest of the VM, under one lock.

use troupe_abi::err;
use troupe_host_api::HostError;

/// A process's ties to the rest of the VM, under one lock (in
/// [`ProcessShared`](super::ProcessShared)): whether it is alive (nothing
/// is tied to a process that has ended), how it takes exit signals, its
/// links and the monitors on it, and what it holds in the VM's tables (its
/// names, its monitors of others, its timers), all undone when it ends.
pub(crate) struct Ties {
    pub(crate) alive: bool,
    pub(crate) trap_exit: bool,
    pub(crate) links: Vec<u64>,
    /// `(monitor ref, watcher pid)` of the monitors on this process.
    pub(crate) monitors: Vec<(u64, u64)>,
    /// Its names in the registry.
    pub(crate) names: Vec<String>,
    /// References of the monitors this process holds on others (some may
    /// have fired: see [`hold`]), removed when it ends.
    pub(crate) watching: Vec<u64>,
    /// References of its pending timers (some may have fired), cancelled
    /// when it ends.
    pub(crate) timers: Vec<u64>,
}

impl Ties {
    /// The ties of a new process: alive, tied to nothing.
    pub(super) fn new() -> Ties {
        Ties {
            alive: true,
            trap_exit: false,
            links: Vec::new(),
            monitors: Vec::new(),
            names: Vec::new(),
            watching: Vec::new(),
            timers: Vec::new(),
        }
    }
}

/// Adds `item` to a process's list of what it holds, unless it already
/// holds `cap`: first the entries `live` no longer knows (fired, removed)
/// are dropped, so the list is as long as what is really held.
pub(crate) fn hold(list: &mut Vec<u64>, item: u64, cap: u32, live: impl Fn(&u64) -> bool) -> bool {
    if list.len() >= cap as usize {
        list.retain(live);
        if list.len() >= cap as usize {
            return false;
        }
    }
    list.push(item);
    true
}

/// The error for a process that already holds `cap` of `what`.
pub(crate) fn over_limit(what: &str, cap: u32) -> HostError {
    HostError::new(
        err::RESOURCE_LIMIT,
        format!("this process already holds {cap} {what}, the most one process may hold"),
    )
}
