//! Hibernation: a process that waits for a message without an instance.
//!
//! A process that calls `troupe_process::hibernate(entry, params)` gives up
//! its call stack. The VM keeps only what a fresh instance of its module
//! would not recreate, the pages of its linear memory that differ from the
//! module's initial memory ([`InitialMemory`]), compressed, and frees the instance: its linear
//! memory slot, its fiber stack, its `Store`. When a message arrives it
//! instantiates the module again, puts those pages back and calls
//! `entry(params)`.
//!
//! That is all of a process's state only for modules whose other state is
//! recreated as it was: exactly one (defined, not shared) memory, no
//! imported memory, table or mutable global, no passive data, no start
//! function, and at most
//! one mutable global, which must be an `i32` (the shadow-stack pointer:
//! with the frames gone it is reset to its initial value, which is what a
//! fresh instance has). Rust's `wasm32-wasip1` programs are such modules
//! (checked by [`Layout::of`], in `layout`, when the module is loaded).
//! Tables are not saved: compilers for Rust and C never change a table at
//! run time.
//!
//! A stack-first layout (the stack below the data, as Rust links by
//! default) lets the shadow stack itself be skipped: once the frames are
//! gone nothing below the stack pointer's initial value is live.
//!
//! The saved pages are a [`Snapshot`] (`snapshot`); this module also holds
//! the two steps of the VM's side: [`VmInner::hibernate`] (save, free the
//! instance) and [`VmInner::wake_on_message`] (wait, then run again).

mod layout;
mod snapshot;

use std::sync::Arc;

use troupe_host_api::Hibernate;
use wasmtime::Store;

pub(crate) use layout::{InitialMemory, Layout};
pub(crate) use snapshot::Snapshot;

use crate::budget::Charge;
use crate::lifecycle::Done;
use crate::pool::LiveSlot;
use crate::process::{ProcessShared, ProcessState};
use crate::vm::VmInner;
use crate::ExitReason;

/// The granularity at which memory is compared and saved.
const PAGE: usize = 4096;

/// What a hibernated process keeps.
struct Sleeper {
    state: Box<ProcessState>,
    snapshot: Snapshot,
    /// The snapshot's charge to the process's budget.
    charge: Charge,
    fuel: Option<u64>,
    hibernate: Hibernate,
}

/// Puts a hibernated process's memory back into its fresh instance.
fn restore_memory(store: &mut Store<ProcessState>, snapshot: &Snapshot) -> Result<(), String> {
    let memory = store
        .data()
        .memory
        .ok_or("the module exports no memory named \"memory\"")?;
    let grow = snapshot.size().saturating_sub(memory.data_size(&*store)) as u64 / 65536;
    if grow > 0 {
        memory
            .grow(&mut *store, grow)
            .map_err(|e| format!("cannot grow the memory back: {e:#}"))?;
    }
    snapshot.restore(memory.data_mut(&mut *store))
}

impl VmInner {
    /// Keeps a process's memory and state, frees its instance, memory slot
    /// and stack, and waits for its next message on a task of its own.
    pub(crate) fn hibernate(
        self: &Arc<Self>,
        shared: Arc<ProcessShared>,
        store: Store<ProcessState>,
        slot: LiveSlot,
        hibernate: Hibernate,
        done: Done,
    ) {
        let state = store.data();
        let initial = state
            .module
            .layout
            .initial_memory()
            .expect("checked by `hibernate`");
        let snapshot = match state.memory {
            Some(memory) => Snapshot::take(memory.data(&store), initial),
            None => Snapshot::take(&[], initial),
        };
        let fuel = store.get_fuel().ok();
        let mut state = Box::new(store.into_data());
        // The handle belongs to the store being dropped: the fresh instance
        // sets its own (a host call made with this one would panic inside
        // wasmtime).
        state.memory = None;
        state.release_linear();
        drop(slot);
        // The saved pages replace the linear memory in the budget.
        let charge = match Charge::new(&shared.budget, snapshot.packed_len() as u64) {
            Ok(charge) => charge,
            Err(_) => {
                let reason = ExitReason::Limit(crate::Limit::Memory);
                return self.end(&shared, reason, true, state, done);
            }
        };
        tracing::trace!(
            pid = shared.pid,
            bytes = snapshot.packed_len(),
            "process hibernated"
        );
        let sleeper = Sleeper {
            state,
            snapshot,
            charge,
            fuel,
            hibernate,
        };
        tokio::spawn(self.clone().wake_on_message(shared, sleeper, done));
    }

    /// A hibernated process: waits for a message (or its end), then wakes in
    /// a fresh instance with its memory back.
    async fn wake_on_message(
        self: Arc<Self>,
        shared: Arc<ProcessShared>,
        sleeper: Sleeper,
        done: Done,
    ) {
        let woken = shared
            .run_killable(&self.ticks, shared.mailbox.wait_nonempty())
            .await;
        if let Err(reason) = woken {
            return self.end(&shared, reason, false, sleeper, done);
        }
        let Sleeper {
            state,
            snapshot,
            charge,
            fuel,
            hibernate,
        } = sleeper;
        // A full pool is no reason to die: wait (killable) for a slot.
        let slot = match shared.run_killable(&self.ticks, self.wait_for_slot()).await {
            Ok(slot) => slot,
            Err(reason) => return self.end(&shared, reason, false, state, done),
        };
        let mut store = self.new_store(*state, fuel);
        let module = store.data().module.clone();
        let types = module
            .entry_params(&hibernate.entry, hibernate.params.len())
            .expect("checked by `hibernate`");
        // Boxed: this task's future would otherwise be as large as wasmtime's
        // instantiation future for as long as the process sleeps.
        let instance = Box::pin(self.instantiate(
            &mut store,
            &module,
            &hibernate.entry,
            &hibernate.params,
            types,
        ))
        .await;
        match instance.map_err(|e| e.to_string()).and_then(|instance| {
            restore_memory(&mut store, &snapshot)?;
            Ok(instance)
        }) {
            // Right away, on this task, as a process woken in a receive
            // (without holding on to the saved memory).
            Ok((func, params)) => {
                drop((snapshot, charge, hibernate));
                Box::pin(self.run(shared, store, func, params, slot, done)).await
            }
            Err(e) => {
                let reason = ExitReason::Trap(format!("cannot wake from hibernation: {e}"));
                self.end(&shared, reason, true, (store, slot), done)
            }
        }
    }
}
