//! A process's life: spawned (a slot, a budget, its record in the table,
//! an instance), run (its entry call on a task of its own), ended (its exit
//! delivered to its links and monitors, what it held freed). Hibernation,
//! between running and ending, is in `hibernation`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use troupe_abi::err;
use troupe_host_api::{Hibernate, HostError, Message};
use wasmtime::{Func, Store, UpdateDeadline, Val, ValType};

use crate::budget::Budget;
use crate::links::down_message;
use crate::mailbox::PushError;
use crate::module_cache::LoadedModule;
use crate::pool::LiveSlot;
use crate::process::{exit_reason, Perms, ProcessShared, ProcessState};
use crate::vm::VmInner;
use crate::ExitReason;

/// What a new process is made of.
pub(crate) struct NewProcess<'a> {
    pub(crate) module: Arc<LoadedModule>,
    pub(crate) perms: Perms,
    /// Whether it reads the VM's stdin (the root only).
    pub(crate) stdin: bool,
    /// The exported function it runs, and its parameters.
    pub(crate) entry: &'a str,
    pub(crate) params: &'a [i64],
    /// Its first message (the spawn argument), if any.
    pub(crate) arg: Option<Message>,
    /// The process it is linked to before it runs, if any.
    pub(crate) link_to: Option<&'a Arc<ProcessShared>>,
    /// Sockets it owns from the start (moved with its spawn argument).
    pub(crate) sockets: Vec<(u64, troupe_host_api::SocketRef)>,
}

/// A process just started.
pub(crate) struct Spawned {
    pub(crate) pid: u64,
    /// Gets the process's exit reason when it ends.
    pub(crate) done: tokio::sync::oneshot::Receiver<ExitReason>,
}

/// Where a process's exit reason goes when it ends.
pub(crate) type Done = tokio::sync::oneshot::Sender<ExitReason>;

impl VmInner {
    /// Creates a process running `entry(params)` of `module` and starts it.
    pub(crate) async fn spawn(self: &Arc<Self>, new: NewProcess<'_>) -> Result<Spawned, HostError> {
        let NewProcess {
            module,
            perms,
            stdin,
            entry,
            params,
            arg,
            link_to,
            sockets,
        } = new;
        let types = module
            .entry_params(entry, params.len())
            .map_err(|e| HostError::new(err::NO_SUCH_EXPORT, e.to_string()))?;

        let slot = self.reserve_slot().await?;
        self.warn_map_limit(self.live.load(Ordering::Relaxed));

        // Without preopens the context cannot fail to build: it is built on
        // the process's first WASI call (see `ProcessState::wasi_ctx`).
        let wasi = if perms.preopens.is_empty() {
            None
        } else {
            Some(perms.build_wasi(stdin)?)
        };
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let budget = Arc::new(Budget::new(perms.limits.max_memory, self.budget.clone()));
        let shared = Arc::new(ProcessShared::new(pid, budget));
        if let Some(arg) = arg {
            if let Err(PushError::Full(over)) = shared.mailbox.push(arg) {
                return Err(HostError::new(
                    err::RESOURCE_LIMIT,
                    format!("the spawn argument does not fit the new process: {over}"),
                ));
            }
        }
        if !sockets.is_empty() {
            shared.sockets.receive(sockets);
        }
        let fuel = perms.limits.fuel;
        let state = ProcessState::new(
            wasi,
            stdin,
            self.clone(),
            shared.clone(),
            module.clone(),
            perms,
        );
        let mut store = self.new_store(state, fuel);
        // In the table before it is instantiated: a module's start function
        // runs during instantiation, as the child (its fuel, its preemption),
        // and the child can be killed there like anywhere else.
        self.processes.insert(pid, shared.clone());
        let instantiated = shared
            .run_killable(
                &self.ticks,
                self.instantiate(&mut store, &module, entry, params, types),
            )
            .await;
        let (func, params) = match instantiated {
            Ok(Ok(instance)) => instance,
            Ok(Err(e)) => {
                self.process_ended(&shared, &ExitReason::Trap(e.message.clone()));
                return Err(e);
            }
            Err(reason) => {
                self.process_ended(&shared, &reason);
                return Err(HostError::new(
                    err::SPAWN_FAILED,
                    format!("the new process ended in its start function: {reason}"),
                ));
            }
        };

        if let Some(parent) = link_to {
            // Before the child runs its entry: spawn-and-link is atomic.
            parent.ties().links.push(pid);
            shared.ties().links.push(parent.pid);
        }
        let (done, exited) = tokio::sync::oneshot::channel();
        tokio::spawn(self.clone().run(shared, store, func, params, slot, done));
        Ok(Spawned { pid, done: exited })
    }

    /// A process's store: its limiter, fuel and preemption.
    pub(crate) fn new_store(&self, state: ProcessState, fuel: Option<u64>) -> Store<ProcessState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s);
        if self.fuel.is_some() {
            store
                .set_fuel(fuel.unwrap_or(u64::MAX))
                .expect("the engine meters fuel");
        }
        // Preemption: a store's deadline is the next tick, and at the deadline
        // the process yields its thread, unless it got the thread during the
        // current tick. A process that waited (for a message, a timer, a
        // socket) past its deadline gets a fresh slice when it runs again,
        // as in Erlang, instead of yielding at once: that extra trip through
        // tokio's queue made a ring hop with 10,000 processes 30% slower.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|s| {
            let state = s.data();
            let now = state.vm.ticks.load(Ordering::Relaxed);
            if state.shared.slice_start.load(Ordering::Relaxed) >= now {
                return Ok(UpdateDeadline::Continue(1));
            }
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        store
    }

    /// Instantiates `module` in `store` and finds its `entry` (checked to
    /// take `types`), with `params` converted to them.
    pub(crate) async fn instantiate(
        &self,
        store: &mut Store<ProcessState>,
        module: &LoadedModule,
        entry: &str,
        params: &[i64],
        types: Vec<ValType>,
    ) -> Result<(Func, Vec<Val>), HostError> {
        let instance = module
            .pre
            .instantiate_async(&mut *store)
            .await
            .map_err(|e| self.instantiate_error(e))?;
        let memory = instance.get_memory(&mut *store, "memory");
        store.data_mut().memory = memory;
        let func = instance
            .get_func(&mut *store, entry)
            .expect("entry was checked against the module's exports");
        let params = params
            .iter()
            .zip(types)
            .map(|(v, t)| match t {
                ValType::I32 => Val::I32(*v as i32),
                _ => Val::I64(*v),
            })
            .collect();
        Ok((func, params))
    }

    /// Runs a process's entry call (or the call it wakes in) until the
    /// process ends or hibernates. A spawned process runs it on a task of
    /// its own, whose future holds wasmtime's call future inline (it is
    /// polled at every resume: boxing it cost 4% of ping-pong's rate). A
    /// hibernated process sleeps on another, small task
    /// ([`VmInner::wake_on_message`]) and runs the call it wakes in there, boxed,
    /// so that it does not sleep 1.7 KB larger.
    pub(crate) async fn run(
        self: Arc<Self>,
        shared: Arc<ProcessShared>,
        mut store: Store<ProcessState>,
        func: Func,
        params: Vec<Val>,
        slot: LiveSlot,
        done: Done,
    ) {
        let mut results = vec![Val::I32(0); func.ty(&store).results().len()];
        let call = func.call_async(&mut store, &params, &mut results);
        let result = match shared.run_killable(&self.ticks, call).await {
            Ok(result) => result,
            Err(reason) => return self.end(&shared, reason, false, (store, slot), done),
        };
        match result {
            Err(e) if e.is::<Hibernate>() => {
                let hibernate = e.downcast::<Hibernate>().expect("checked");
                self.hibernate(shared, store, slot, hibernate, done)
            }
            other => self.end(&shared, exit_reason(other), true, (store, slot), done),
        }
    }

    /// A process ends: its exit is delivered, then what it `held` (its
    /// store and slot, or its hibernated state) is freed, and its reason is
    /// reported (`own`: its own doing, not an exit signal from another
    /// process) and sent to whoever waits for it.
    pub(crate) fn end<H>(
        &self,
        shared: &ProcessShared,
        reason: ExitReason,
        own: bool,
        held: H,
        done: Done,
    ) {
        self.process_ended(shared, &reason);
        drop(held);
        let pid = shared.pid;
        match &reason {
            ExitReason::Trap(trap) if own => eprintln!("[troupe] process {pid} trapped: {trap}"),
            ExitReason::Limit(_) if own => eprintln!("[troupe] process {pid} ended: {reason}"),
            _ => {}
        }
        tracing::debug!(pid, %reason, "process ended");
        let _ = done.send(reason);
    }

    /// Removes an ended process and delivers its exit: signals to its links,
    /// DOWN messages to its monitors; frees its names.
    fn process_ended(&self, shared: &ProcessShared, reason: &ExitReason) {
        let pid = shared.pid;
        self.processes.remove(&pid);
        let (links, monitors, names, watching, timers) = {
            let mut ties = shared.ties();
            ties.alive = false;
            (
                std::mem::take(&mut ties.links),
                std::mem::take(&mut ties.monitors),
                std::mem::take(&mut ties.names),
                std::mem::take(&mut ties.watching),
                std::mem::take(&mut ties.timers),
            )
        };
        shared.mailbox.close();
        shared.sockets.close_all();
        // What it held on others: its monitors of other processes and its
        // pending timers go with it.
        for reference in watching {
            if let Some((_, (_, target))) = self.monitors.remove(&reference) {
                if let Some(t) = self.process(target) {
                    t.ties().monitors.retain(|(r, _)| *r != reference);
                }
            }
        }
        for reference in timers {
            if let Some((_, timer)) = self.timers.remove(&reference) {
                if let Some(task) = timer.task {
                    task.abort();
                }
            }
        }
        for name in names {
            self.registry.remove_if(&name, |_, p| *p == pid);
        }
        for other in links {
            if let Some(p) = self.process(other) {
                p.ties().links.retain(|l| *l != pid);
                p.exit_signal(pid, reason, false);
            }
        }
        for (reference, watcher) in monitors {
            // Queue the DOWN while holding the monitor's entry, so that a
            // concurrent `demonitor` sees either the monitor (and then no
            // DOWN is ever sent) or the queued DOWN (which it flushes).
            self.monitors.remove_if(&reference, |_, _| {
                if let Some(w) = self.process(watcher) {
                    w.mailbox.push_signal(down_message(reference, pid, reason));
                }
                true
            });
        }
    }
}
