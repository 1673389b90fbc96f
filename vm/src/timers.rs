//! Timers: a message sent after a delay (`send_after`), charged to its
//! owner until it fires, cancelled by its owner or when the owner ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use troupe_abi::err;
use troupe_host_api::{HostError, Message};

use crate::budget::Charge;
use crate::process::{hold, over_limit, ProcessShared};
use crate::vm::VmInner;

/// A pending timer: only its owner may cancel it, and it is cancelled when
/// its owner ends.
pub(crate) struct Timer {
    pub(crate) owner: u64,
    pub(crate) task: Option<tokio::task::AbortHandle>,
}

/// What a pending timer costs its owner besides its payload: its task, its
/// entry in the timer wheel and in the VM's table (measured: a million
/// pending timers hold about 500 MB).
const TIMER_OVERHEAD: u64 = 512;

impl VmInner {
    /// Sends `msg` (from `owner`) to `to` after `delay`; the timer's
    /// reference. The owner holds at most [`troupe_abi::limit::TIMERS`]
    /// pending timers, and they are cancelled when it ends.
    pub(crate) fn send_after(
        self: &Arc<Self>,
        owner: &ProcessShared,
        to: u64,
        msg: Message,
        delay: std::time::Duration,
    ) -> Result<u64, HostError> {
        let reference = self.next_ref.fetch_add(1, Ordering::Relaxed);
        // The payload is the owner's until the timer fires or is cancelled.
        let charge =
            Charge::new(&owner.budget, msg.data.len() as u64 + TIMER_OVERHEAD).map_err(|over| {
                HostError::new(err::RESOURCE_LIMIT, format!("the timer's message: {over}"))
            })?;
        {
            let mut ties = owner.ties();
            if !ties.alive {
                return Err(Self::no_process(owner.pid));
            }
            let held = hold(
                &mut ties.timers,
                reference,
                troupe_abi::limit::TIMERS,
                |r| self.timers.contains_key(r),
            );
            if !held {
                return Err(over_limit("pending timers", troupe_abi::limit::TIMERS));
            }
            // Registered before the task exists, so a zero delay cannot fire
            // before it is known; and while the owner's ties are locked,
            // so an owner ending now cancels it.
            self.timers.insert(
                reference,
                Timer {
                    owner: owner.pid,
                    task: None,
                },
            );
        }
        let vm = self.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if vm.timers.remove(&reference).is_some() {
                drop(charge);
                // Into the receiver's budget now, or dropped (as a send).
                let _ = vm.send(msg, to);
            }
        });
        if let Some(mut timer) = self.timers.get_mut(&reference) {
            timer.task = Some(task.abort_handle());
        }
        Ok(reference)
    }

    /// Cancels `owner`'s timer `reference`; whether it was pending. A timer
    /// of another process is not `owner`'s to cancel (as if unknown).
    pub(crate) fn cancel_timer(&self, owner: &ProcessShared, reference: u64) -> bool {
        match self
            .timers
            .remove_if(&reference, |_, t| t.owner == owner.pid)
        {
            Some((_, timer)) => {
                if let Some(task) = timer.task {
                    task.abort();
                }
                let mut ties = owner.ties();
                if let Some(at) = ties.timers.iter().position(|r| *r == reference) {
                    ties.timers.swap_remove(at);
                }
                true
            }
            None => false,
        }
    }
}
