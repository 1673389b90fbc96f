//! Links, monitors and exit signals between processes (Erlang's rules: see
//! SPEC.md). A link is recorded in both processes' ties; a monitor in the
//! VM's table of monitors, in the target's ties and in the watcher's.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use troupe_abi::err;
use troupe_host_api::{HostError, Message};

use crate::process::{hold, over_limit, ProcessShared};
use crate::vm::VmInner;
use crate::ExitReason;

/// The DOWN message for monitor `reference` on `pid`.
pub(crate) fn down_message(reference: u64, pid: u64, reason: &ExitReason) -> Message {
    let mut data = reference.to_le_bytes().to_vec();
    data.extend_from_slice(&pid.to_le_bytes());
    reason.encode_into(&mut data);
    Message {
        tag: troupe_abi::tag::DOWN,
        sender: pid,
        data,
    }
}

impl VmInner {
    pub(crate) fn link(&self, me: &Arc<ProcessShared>, pid: u64) -> Result<(), HostError> {
        if pid == me.pid {
            return Ok(());
        }
        let other = self.process(pid).ok_or_else(|| Self::no_process(pid))?;
        // Lock in pid order: two processes may link to each other at once.
        let (first, second) = if me.pid < pid {
            (me, &other)
        } else {
            (&other, me)
        };
        let mut a = first.ties();
        let mut b = second.ties();
        if !a.alive || !b.alive {
            return Err(Self::no_process(pid));
        }
        if !a.links.contains(&second.pid) {
            let cap = troupe_abi::limit::LINKS as usize;
            if a.links.len() >= cap || b.links.len() >= cap {
                return Err(over_limit("links", troupe_abi::limit::LINKS));
            }
            a.links.push(second.pid);
            b.links.push(first.pid);
        }
        Ok(())
    }

    pub(crate) fn unlink(&self, me: &ProcessShared, pid: u64) {
        me.ties().links.retain(|l| *l != pid);
        if let Some(other) = self.process(pid) {
            other.ties().links.retain(|l| *l != me.pid);
        }
    }

    pub(crate) fn monitor(&self, me: &ProcessShared, pid: u64) -> Result<u64, HostError> {
        let reference = self.next_ref.fetch_add(1, Ordering::Relaxed);
        let held = hold(
            &mut me.ties().watching,
            reference,
            troupe_abi::limit::MONITORS,
            |r| self.monitors.contains_key(r),
        );
        if !held {
            return Err(over_limit("monitors", troupe_abi::limit::MONITORS));
        }
        if let Some(target) = self.process(pid) {
            let mut ties = target.ties();
            if ties.alive {
                self.monitors.insert(reference, (me.pid, pid));
                ties.monitors.push((reference, me.pid));
                return Ok(reference);
            }
        }
        me.mailbox
            .push_signal(down_message(reference, pid, &ExitReason::NoProc));
        Ok(reference)
    }

    pub(crate) fn demonitor(&self, me: &ProcessShared, reference: u64) -> Result<(), HostError> {
        let held = self
            .monitors
            .remove_if(&reference, |_, (w, _)| *w == me.pid);
        if let Some((_, (_, target))) = &held {
            if let Some(t) = self.process(*target) {
                t.ties().monitors.retain(|(r, _)| *r != reference);
            }
        }
        let flushed = me.mailbox.remove_first(|m| {
            m.tag == troupe_abi::tag::DOWN && m.data.get(..8) == Some(&reference.to_le_bytes())
        });
        if held.is_some() || flushed {
            Ok(())
        } else {
            Err(HostError::new(
                err::NOT_FOUND,
                format!("this process holds no monitor {reference}"),
            ))
        }
    }

    pub(crate) fn exit_signal(
        &self,
        from: u64,
        to: u64,
        reason: &ExitReason,
        untrappable: bool,
    ) -> Result<(), HostError> {
        let target = self.process(to).ok_or_else(|| Self::no_process(to))?;
        target.exit_signal(from, reason, untrappable);
        Ok(())
    }
}
