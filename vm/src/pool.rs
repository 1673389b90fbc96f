//! The slot pool: a process holds one of the `--max-processes` slots (an
//! instance, a memory, a table, a stack of wasmtime's pooling allocator)
//! while it is alive and not hibernated. Taking a slot waits a little on a
//! full pool; a kernel that refuses memory is reported with advice.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use troupe_abi::err;
use troupe_host_api::HostError;
use wasmtime::PoolConcurrencyLimitError;

use crate::limits;
use crate::vm::VmInner;

/// Decrements the live count when a process slot is given back.
pub(crate) struct LiveSlot(Arc<VmInner>);

impl Drop for LiveSlot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
        self.0.exits.fetch_add(1, Ordering::Release);
        self.0.slot_freed.notify_one();
    }
}

/// How long `spawn` waits on a full pool during which no process ends, before
/// it gives up with `RESOURCE_LIMIT`.
const FULL_POOL_PATIENCE: std::time::Duration = std::time::Duration::from_millis(10);

impl VmInner {
    /// Takes one of the `--max-processes` slots. On a full pool, waits while
    /// processes keep ending: a parent spawning short-lived children in a
    /// loop can outrun them (tokio runs a preempted task again before the
    /// children that overflowed into its global queue), and should be slowed
    /// to their pace rather than fail. Gives up with `RESOURCE_LIMIT` once
    /// [`FULL_POOL_PATIENCE`] passes without any process ending.
    pub(crate) async fn reserve_slot(self: &Arc<Self>) -> Result<LiveSlot, HostError> {
        let mut exits = self.exits.load(Ordering::Acquire);
        let mut since: Option<std::time::Instant> = None;
        loop {
            if self.live.fetch_add(1, Ordering::AcqRel) < self.max_processes {
                return Ok(LiveSlot(self.clone()));
            }
            // Not a slot after all: give it back (not an exit).
            self.live.fetch_sub(1, Ordering::AcqRel);
            let now = std::time::Instant::now();
            let seen = self.exits.load(Ordering::Acquire);
            if seen != exits {
                exits = seen;
                since = Some(now);
            }
            if now.duration_since(*since.get_or_insert(now)) > FULL_POOL_PATIENCE {
                return Err(self.pool_full());
            }
            tokio::task::yield_now().await;
        }
    }

    /// Takes a slot, waiting for as long as it takes (a process waking from
    /// hibernation has nobody to return an error to).
    pub(crate) async fn wait_for_slot(self: &Arc<Self>) -> LiveSlot {
        loop {
            let freed = self.slot_freed.notified();
            let mut freed = std::pin::pin!(freed);
            // Registered before looking, so a slot freed in between is seen.
            freed.as_mut().enable();
            if self.live.fetch_add(1, Ordering::AcqRel) < self.max_processes {
                return LiveSlot(self.clone());
            }
            self.live.fetch_sub(1, Ordering::AcqRel);
            freed.await;
        }
    }

    fn pool_full(&self) -> HostError {
        HostError::new(
            err::RESOURCE_LIMIT,
            format!(
                "the VM already holds its maximum of {} processes (raise it with \
                 `--max-processes`, or TROUPE_MAX_PROCESSES for the containerd shim)",
                self.max_processes
            ),
        )
    }

    pub(crate) fn instantiate_error(&self, e: wasmtime::Error) -> HostError {
        if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
            return self.pool_full();
        }
        let text = format!("{e:#}");
        if text.contains("os error 12") || text.contains("Cannot allocate memory") {
            return HostError::new(
                err::RESOURCE_LIMIT,
                format!(
                    "the kernel refused memory for a new process ({text}); {}",
                    limits::map_count_advice(self.live.load(Ordering::Relaxed))
                ),
            );
        }
        HostError::new(err::SPAWN_FAILED, format!("instantiation failed: {text}"))
    }

    pub(crate) fn warn_map_limit(&self, live: u32) {
        if let Some(limit) = self.map_limit {
            if u64::from(live) * 10 >= limit * 9
                && !self.warned_map_limit.swap(true, Ordering::Relaxed)
            {
                eprintln!("[troupe] warning: {}", limits::map_count_advice(live));
            }
        }
    }
}
