//! The name registry: a process may register names (at most
//! `troupe_abi::limit::NAMES`), each recorded in the VM's table and in the
//! process's ties, and freed when it ends.

use troupe_abi::err;
use troupe_host_api::HostError;

use crate::vm::VmInner;

impl VmInner {
    pub(crate) fn register(&self, name: String, pid: u64) -> Result<(), HostError> {
        let target = self.process(pid).ok_or_else(|| Self::no_process(pid))?;
        let mut ties = target.ties();
        if !ties.alive {
            return Err(Self::no_process(pid));
        }
        match self.registry.entry(name) {
            dashmap::Entry::Occupied(e) => Err(HostError::new(
                err::ALREADY_REGISTERED,
                format!("{:?} is already registered to process {}", e.key(), e.get()),
            )),
            dashmap::Entry::Vacant(_) if ties.names.len() >= troupe_abi::limit::NAMES as usize => {
                Err(HostError::new(
                    err::RESOURCE_LIMIT,
                    format!(
                        "process {pid} already has {} names, the most one process may have",
                        troupe_abi::limit::NAMES
                    ),
                ))
            }
            dashmap::Entry::Vacant(e) => {
                ties.names.push(e.key().clone());
                e.insert(pid);
                Ok(())
            }
        }
    }

    /// Frees `name`. The entry is removed while its process's ties are
    /// locked, as `register` adds it: otherwise a `register` of the same
    /// name for the same process between the two steps lost its record in
    /// the process's names, and the name outlived the process.
    pub(crate) fn unregister(&self, name: &str) -> Result<(), HostError> {
        loop {
            let pid = self.whereis(name).ok_or_else(|| {
                HostError::new(
                    err::NOT_FOUND,
                    format!("no process is registered as {name:?}"),
                )
            })?;
            let owner = self.process(pid);
            let mut ties = owner.as_ref().map(|p| p.ties());
            if self.registry.remove_if(name, |_, p| *p == pid).is_some() {
                if let Some(ties) = ties.as_mut() {
                    if let Some(at) = ties.names.iter().position(|n| n == name) {
                        ties.names.swap_remove(at);
                    }
                }
                return Ok(());
            }
            // Freed and registered again meanwhile: look again.
        }
    }

    pub(crate) fn whereis(&self, name: &str) -> Option<u64> {
        self.registry.get(name).map(|p| *p)
    }
}
