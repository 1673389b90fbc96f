//! Memory budgets: what a process may make the machine hold, and what the
//! whole VM may.
//!
//! One model, in the spirit of Erlang's `max_heap_size` (which counts the
//! message queue): a process's budget is its `max_memory`, and it covers its
//! linear memory **and** what the host holds for it: its queued messages,
//! its pending timers' payloads, its spawn configurations, its hibernated
//! snapshot. The VM's budget (`--max-vm-memory`) covers the same for every
//! process together. What would go over a budget is refused where it is
//! asked for: a memory growth ends the process with `Limit(Memory)`, a send
//! to a full mailbox fails with `RESOURCE_LIMIT` for the sender, a timer or
//! a configuration too large fails its call. Nothing is refused by the
//! allocator: the VM never aborts for lack of memory a guest asked for.
//!
//! The VM-wide count is kept in granules of [`GRANULE`] bytes per process,
//! so that a message's charge touches only its receiver's counter, not one
//! shared by every thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A process's share of the VM's budget is taken and given back in units
/// of this many bytes.
const GRANULE: u64 = 1 << 20;

/// What one queued message costs besides its payload (its `Message`, its
/// slot in the queue).
pub(crate) const MESSAGE_OVERHEAD: u64 = 64;

/// The VM's budget: what all processes together may hold.
#[derive(Debug)]
pub(crate) struct VmBudget {
    max: u64,
    /// Granules taken by processes.
    used: AtomicU64,
}

impl VmBudget {
    pub(crate) fn new(max: u64) -> Arc<VmBudget> {
        Arc::new(VmBudget {
            max,
            used: AtomicU64::new(0),
        })
    }

    /// Bytes taken, in granules.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self, n: u64, check: bool) -> bool {
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        if check && before + n > self.max {
            self.used.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn give(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Why a charge was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Over {
    /// The process's own budget.
    Process { max: u64, used: u64 },
    /// The VM's.
    Vm { max: u64 },
}

impl std::fmt::Display for Over {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Over::Process { max, used } => write!(
                f,
                "the process's memory budget of {} (its maximum memory, which counts its linear \
                 memory and what the host holds for it: queued messages, timers, \
                 configurations) would be exceeded; it holds {used} bytes",
                size(*max)
            ),
            Over::Vm { max } => write!(
                f,
                "the VM's memory budget of {} (--max-vm-memory, TROUPE_MAX_VM_MEMORY) would be \
                 exceeded",
                size(*max)
            ),
        }
    }
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// One process's budget: its linear memory and what the host holds for it.
#[derive(Debug)]
pub(crate) struct Budget {
    max: u64,
    /// Bytes held: linear memory plus host-held.
    used: AtomicU64,
    /// Granules of the VM's budget this process has taken.
    granted: AtomicU64,
    vm: Arc<VmBudget>,
}

impl Budget {
    pub(crate) fn new(max: u64, vm: Arc<VmBudget>) -> Budget {
        Budget {
            max,
            used: AtomicU64::new(0),
            granted: AtomicU64::new(0),
            vm,
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes, unless that exceeds the process's budget or the
    /// VM's. With `check` false it is taken anyway (messages the VM itself
    /// sends, EXIT and DOWN, are never refused: their number and size are
    /// bounded by the limits on links, monitors and reasons).
    pub(crate) fn charge(&self, n: u64, check: bool) -> Result<(), Over> {
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        let after = before + n;
        if check && after > self.max {
            self.used.fetch_sub(n, Ordering::Relaxed);
            return Err(Over::Process {
                max: self.max,
                used: before,
            });
        }
        if !self.grant(after, check) {
            self.used.fetch_sub(n, Ordering::Relaxed);
            return Err(Over::Vm { max: self.vm.max });
        }
        Ok(())
    }

    /// Gives `n` bytes back.
    pub(crate) fn release(&self, n: u64) {
        let after = self.used.fetch_sub(n, Ordering::Relaxed) - n;
        self.shrink(after);
    }

    /// Takes the granules that `used` bytes need from the VM.
    fn grant(&self, used: u64, check: bool) -> bool {
        let need = used.div_ceil(GRANULE);
        let mut have = self.granted.load(Ordering::Relaxed);
        while have < need {
            let more = need - have;
            if !self.vm.take(more * GRANULE, check) {
                return false;
            }
            match self
                .granted
                .compare_exchange(have, need, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => {
                    self.vm.give(more * GRANULE);
                    have = now;
                }
            }
        }
        true
    }

    /// Gives back granules `used` bytes no longer need (keeping one spare,
    /// so that a count going up and down across a granule's edge does not
    /// touch the VM's counter each time).
    fn shrink(&self, used: u64) {
        let keep = used.div_ceil(GRANULE) + 1;
        let mut have = self.granted.load(Ordering::Relaxed);
        while have > keep {
            match self
                .granted
                .compare_exchange(have, keep, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.vm.give((have - keep) * GRANULE);
                    return;
                }
                Err(now) => have = now,
            }
        }
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        // The process is gone: whatever it still had is given back.
        self.vm.give(*self.granted.get_mut() * GRANULE);
    }
}

/// A charge given back when dropped (a timer's payload, a configuration, a
/// snapshot).
pub(crate) struct Charge {
    budget: Arc<Budget>,
    n: u64,
}

impl Charge {
    pub(crate) fn new(budget: &Arc<Budget>, n: u64) -> Result<Charge, Over> {
        budget.charge(n, true)?;
        Ok(Charge {
            budget: budget.clone(),
            n,
        })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(self.n);
    }
}

/// The VM's default budget: 90% of the memory the machine or its container
/// (cgroup) gives it, whichever is less.
pub(crate) fn default_vm_budget() -> u64 {
    let total = meminfo_total().unwrap_or(u64::MAX);
    let cgroup = cgroup_limit().unwrap_or(u64::MAX);
    let available = total.min(cgroup);
    if available == u64::MAX {
        return u64::MAX;
    }
    available / 10 * 9
}

fn meminfo_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn cgroup_limit() -> Option<u64> {
    // cgroup v2, then v1; "max" (or v1's huge number) means none.
    for path in [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ] {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(n) = text.trim().parse::<u64>() {
                if n < 1 << 60 {
                    return Some(n);
                }
            }
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_refused_past_its_own_budget_and_the_vms() {
        let vm = VmBudget::new(4 * GRANULE);
        let a = Budget::new(3 * GRANULE, vm.clone());
        a.charge(2 * GRANULE, true).unwrap();
        assert!(matches!(
            a.charge(2 * GRANULE, true),
            Err(Over::Process { .. })
        ));
        let b = Budget::new(3 * GRANULE, vm.clone());
        b.charge(GRANULE, true).unwrap();
        // a holds 2 granules, b 1: the VM has 1 left, b may not take 2.
        assert_eq!(
            b.charge(2 * GRANULE, true),
            Err(Over::Vm { max: 4 * GRANULE })
        );
        // Unchecked charges go through (system messages).
        b.charge(2 * GRANULE, false).unwrap();
        b.release(2 * GRANULE);
        drop(b);
        a.release(2 * GRANULE);
        drop(a);
        assert_eq!(vm.used(), 0, "everything is given back");
    }

    #[test]
    fn small_charges_touch_the_vm_counter_once_per_granule() {
        let vm = VmBudget::new(u64::MAX);
        let a = Budget::new(u64::MAX, vm.clone());
        for _ in 0..10_000 {
            a.charge(100, true).unwrap();
            a.release(100);
        }
        assert_eq!(vm.used(), GRANULE, "one granule taken, kept as the spare");
        let c = Charge::new(&Arc::new(Budget::new(1000, vm.clone())), 1001);
        assert!(c.is_err());
    }
}
