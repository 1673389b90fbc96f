//! [`ProcessShared`]: the record of a process that the VM and other
//! processes reach (its pid, budget, mailbox, sockets, ties and kill
//! switch), and how it is killed and takes exit signals.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use atomic_waker::AtomicWaker;
use troupe_host_api::{Message, Sockets};

use super::Ties;
use crate::budget::Budget;
use crate::lock;
use crate::mailbox::Mailbox;
use crate::ExitReason;

/// The part of a process other processes can reach: its mailbox, its ties
/// (links, monitors, names, timers), and the slot through which it is killed.
pub(crate) struct ProcessShared {
    pub(crate) pid: u64,
    /// What it may make the machine hold: its linear memory, its queued
    /// messages and what else the host keeps for it.
    pub(crate) budget: Arc<Budget>,
    pub(crate) mailbox: Mailbox,
    /// The sockets it holds (closed when it ends).
    pub(crate) sockets: Arc<Sockets>,
    ties: Mutex<Ties>,
    kill: Mutex<Option<ExitReason>>,
    /// Set (after `kill`) when the process has been killed; its task checks
    /// it each time it is polled, and `kill_waker` wakes a waiting task.
    killed: AtomicBool,
    kill_waker: AtomicWaker,
    /// The preemption tick in which the process last got a worker thread
    /// (see `VmInner::ticks`); read by the epoch-deadline callback.
    pub(crate) slice_start: AtomicU64,
}

impl ProcessShared {
    pub(crate) fn new(pid: u64, budget: Arc<Budget>) -> Self {
        ProcessShared {
            pid,
            mailbox: Mailbox::new(budget.clone()),
            budget,
            sockets: Arc::default(),
            ties: Mutex::new(Ties::new()),
            kill: Mutex::new(None),
            killed: AtomicBool::new(false),
            kill_waker: AtomicWaker::new(),
            slice_start: AtomicU64::new(0),
        }
    }

    /// Its ties to the rest of the VM, locked.
    pub(crate) fn ties(&self) -> MutexGuard<'_, Ties> {
        lock(&self.ties)
    }

    /// Ends the process with `reason` (the first reason given wins).
    pub(crate) fn kill_with(&self, reason: ExitReason) {
        let mut slot = lock(&self.kill);
        if slot.is_none() {
            *slot = Some(reason);
            self.killed.store(true, Ordering::Release);
            self.kill_waker.wake();
        }
    }

    /// Runs a process's call until it returns or the process is killed:
    /// `Ok(output)`, or `Err(reason)` if it was killed first. Each poll (each
    /// time the process gets a worker thread) also records the preemption
    /// tick it started in (`slice_start`).
    ///
    /// The kill check is an atomic load, and the waker is registered in an
    /// `AtomicWaker` only when it changes, so a process pays no lock per
    /// resume for being killable.
    pub(crate) async fn run_killable<F: Future>(
        &self,
        ticks: &AtomicU64,
        call: F,
    ) -> Result<F::Output, ExitReason> {
        let mut call = std::pin::pin!(call);
        let mut registered: Option<std::task::Waker> = None;
        std::future::poll_fn(|cx| {
            // A task's waker rarely changes: register it only when it does.
            if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                self.kill_waker.register(cx.waker());
                registered = Some(cx.waker().clone());
            }
            if self.killed.load(Ordering::Acquire) {
                let reason = lock(&self.kill).clone().expect("set before `killed`");
                return Poll::Ready(Err(reason));
            }
            self.slice_start
                .store(ticks.load(Ordering::Relaxed), Ordering::Relaxed);
            // A panic in the VM's code for this process (a host call, say)
            // ends this process alone, with a reason and all its clean-up,
            // instead of unwinding out of its task and leaving it half
            // alive (in the process table, with its names and sockets).
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.as_mut().poll(cx)))
            {
                Ok(poll) => poll.map(Ok),
                Err(panic) => {
                    let what = panic_text(&*panic);
                    eprintln!("[troupe] process {} ended: the VM failed: {what}", self.pid);
                    Poll::Ready(Err(ExitReason::Trap(format!("the VM failed: {what}"))))
                }
            }
        })
        .await
    }

    /// An exit signal from `from` arrives (Erlang's rules: see SPEC.md).
    pub(crate) fn exit_signal(&self, from: u64, reason: &ExitReason, untrappable: bool) {
        if untrappable {
            self.kill_with(ExitReason::Killed);
            return;
        }
        let ties = self.ties();
        if !ties.alive {
            return;
        }
        if ties.trap_exit {
            drop(ties);
            let mut data = from.to_le_bytes().to_vec();
            reason.encode_into(&mut data);
            self.mailbox.push_signal(Message {
                tag: troupe_abi::tag::EXIT,
                sender: from,
                data,
            });
        } else if !reason.is_normal() {
            drop(ties);
            self.kill_with(reason.clone());
        }
    }
}

/// The text of a panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}
