//! Processes: the state each process's `Store` holds, its WASI permissions,
//! and how it ends.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use atomic_waker::AtomicWaker;

use troupe_abi::{err, val};
pub use troupe_host_api::{ExitReason, Limit};
use troupe_host_api::{
    GuestExit, HostError, LimitExceeded, Message, NetPolicy, ProcessCtx, SendError, Sockets,
    SpawnConfig, SpawnRequest, TagSet,
};
use wasmtime::{Memory, ResourceLimiter};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::budget::{Budget, Charge};
use crate::config::Output;
use crate::lock;
use crate::mailbox::Mailbox;
use crate::module_cache::LoadedModule;
use crate::vm::{NewProcess, VmInner};

/// The part of a process other processes can reach: its mailbox, its links
/// and monitors, and the slot through which it is killed.
pub struct ProcessShared {
    pub pid: u64,
    /// What it may make the machine hold: its linear memory, its queued
    /// messages and what else the host keeps for it.
    pub(crate) budget: Arc<Budget>,
    pub mailbox: Mailbox,
    /// The sockets it holds (closed when it ends).
    pub sockets: Arc<Sockets>,
    signals: Mutex<Signals>,
    kill: Mutex<Option<ExitReason>>,
    /// Set (after `kill`) when the process has been killed; its task checks
    /// it each time it is polled, and `kill_waker` wakes a waiting task.
    killed: AtomicBool,
    kill_waker: AtomicWaker,
    /// The preemption tick in which the process last got a worker thread
    /// (see `VmInner::ticks`); read by the epoch-deadline callback.
    pub(crate) slice_start: AtomicU64,
}

/// What exit signals need to know about a process.
pub(crate) struct Signals {
    pub alive: bool,
    pub trap_exit: bool,
    pub links: Vec<u64>,
    /// `(monitor ref, watcher pid)` of the monitors on this process.
    pub monitors: Vec<(u64, u64)>,
    pub names: Vec<String>,
    /// References of the monitors this process holds on others (some may
    /// have fired: see `vm::hold`), removed when it ends.
    pub watching: Vec<u64>,
    /// References of its pending timers (some may have fired), cancelled
    /// when it ends.
    pub timers: Vec<u64>,
}

impl ProcessShared {
    pub(crate) fn new(pid: u64, budget: Arc<Budget>) -> Self {
        ProcessShared {
            pid,
            mailbox: Mailbox::new(budget.clone()),
            budget,
            sockets: Arc::default(),
            signals: Mutex::new(Signals {
                alive: true,
                trap_exit: false,
                links: Vec::new(),
                monitors: Vec::new(),
                names: Vec::new(),
                watching: Vec::new(),
                timers: Vec::new(),
            }),
            kill: Mutex::new(None),
            killed: AtomicBool::new(false),
            kill_waker: AtomicWaker::new(),
            slice_start: AtomicU64::new(0),
        }
    }

    pub(crate) fn signals(&self) -> MutexGuard<'_, Signals> {
        lock(&self.signals)
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
        let sig = self.signals();
        if !sig.alive {
            return;
        }
        if sig.trap_exit {
            drop(sig);
            let mut data = from.to_le_bytes().to_vec();
            reason.encode_into(&mut data);
            self.mailbox.push_signal(Message {
                tag: troupe_abi::tag::EXIT,
                sender: from,
                data,
            });
        } else if !reason.is_normal() {
            drop(sig);
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

/// Limits a process runs under, inherited and only ever narrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum linear memory, bytes.
    pub max_memory: u64,
    /// Fuel budget, when the VM meters fuel.
    pub fuel: Option<u64>,
    pub can_spawn: bool,
}

/// A preopened directory a process holds: the directory itself, opened once
/// when the root process was made, and the path the guest sees it as.
///
/// Children share the parent's open directory (an `Arc` of one descriptor)
/// and never look the host path up again: a guest that replaced a directory
/// on the host by a symlink (through another preopen that contains it) must
/// not send its children through that link.
#[derive(Clone, Debug)]
pub struct Preopen {
    /// The host path it was opened from (for messages only: never reopened).
    pub host: PathBuf,
    pub guest: String,
    dir: Arc<std::os::fd::OwnedFd>,
}

impl Preopen {
    /// Opens the host directory `host` (following symlinks, as `--dir`
    /// does), to be seen as `guest`.
    pub fn open(host: PathBuf, guest: String) -> std::io::Result<Preopen> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_PATH | libc::O_CLOEXEC)
            .open(&host)?;
        Ok(Preopen {
            host,
            guest,
            dir: Arc::new(file.into()),
        })
    }

    /// A path that names this very directory, whatever has become of its
    /// host path since: its descriptor's entry in `/proc/self/fd`, which the
    /// kernel resolves to the open directory without a path lookup.
    fn handle_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
    }
}

/// What a process's WASI context is made of. Shared (`Arc`) between a parent
/// and the children that inherit it unchanged, so spawning copies nothing.
#[derive(Clone, Debug)]
pub struct Perms {
    pub args: Arc<[String]>,
    pub envs: Arc<[(String, String)]>,
    pub preopens: Arc<[Preopen]>,
    pub stdout: Output,
    pub stderr: Output,
    /// Where it may listen and connect (no network by default).
    pub net: Arc<NetPolicy>,
    pub limits: Limits,
}

impl Perms {
    /// The permissions of a child spawned with `config`: data (args, env) as
    /// the parent chose, directories only from the parent's own.
    pub fn narrowed(&self, config: &SpawnConfig) -> Result<Perms, HostError> {
        let mut child = self.clone();
        if let Some(args) = &config.args {
            child.args = args.clone().into();
        }
        if let Some(envs) = &config.envs {
            child.envs = envs.clone().into();
        }
        if let Some(keep) = &config.preopens {
            let mut preopens = Vec::with_capacity(keep.len());
            for guest in keep {
                let p = self
                    .preopens
                    .iter()
                    .find(|p| &p.guest == guest)
                    .ok_or_else(|| {
                        HostError::new(
                            err::PERMISSION_DENIED,
                            format!("directory {guest:?} is not preopened in the parent"),
                        )
                    })?;
                preopens.push(p.clone());
            }
            child.preopens = preopens.into();
        }
        if let Some(m) = config.max_memory {
            child.limits.max_memory = m.min(self.limits.max_memory);
        }
        if let Some(f) = config.fuel {
            child.limits.fuel = Some(self.limits.fuel.map_or(f, |mine| f.min(mine)));
        }
        if let Some(can) = config.can_spawn {
            child.limits.can_spawn = can && self.limits.can_spawn;
        }
        if let Some(net) = &config.net {
            // `config_set_net` checked that the parent holds every rule.
            if let Some(rule) = self.net.uncovered(net) {
                return Err(HostError::new(
                    err::PERMISSION_DENIED,
                    format!("network rule {rule} is not allowed to the parent"),
                ));
            }
            child.net = Arc::new(net.clone());
        }
        Ok(child)
    }

    /// Builds the WASI preview 1 context. Only the root reads stdin.
    pub fn build_wasi(&self, stdin: bool) -> Result<WasiP1Ctx, HostError> {
        let mut b = WasiCtxBuilder::new();
        match &self.stdout {
            Output::Inherit => b.inherit_stdout(),
            Output::Pipe(p) => b.stdout(p.clone()),
        };
        match &self.stderr {
            Output::Inherit => b.inherit_stderr(),
            Output::Pipe(p) => b.stderr(p.clone()),
        };
        if stdin {
            b.inherit_stdin();
        }
        b.args(&self.args);
        b.envs(&self.envs);
        for p in self.preopens.iter() {
            b.preopened_dir(p.handle_path(), &p.guest, FsPerms::ReadWrite)
                .map_err(|e| {
                    HostError::new(
                        err::RESOURCE_LIMIT,
                        format!(
                            "cannot open directory {:?} again through /proc/self/fd (is /proc \
                             mounted?): {e:#}",
                            p.host
                        ),
                    )
                })?;
        }
        let mut ctx = b.build_p1();
        // Each open file or directory holds a host descriptor: bounded.
        wasmtime_wasi::WasiView::ctx(&mut ctx)
            .table
            .set_max_capacity(troupe_abi::limit::WASI_HANDLES as usize);
        Ok(ctx)
    }
}

/// Classifies the result of a process's entry call.
pub fn exit_reason(result: wasmtime::Result<()>) -> ExitReason {
    let Err(e) = result else {
        return ExitReason::Normal;
    };
    if let Some(wasmtime_wasi::I32Exit(code)) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return match code {
            0 => ExitReason::Normal,
            c => ExitReason::ExitCode(*c),
        };
    }
    if let Some(GuestExit(reason)) = e.downcast_ref::<GuestExit>() {
        return reason.clone();
    }
    if let Some(LimitExceeded(limit)) = e.downcast_ref::<LimitExceeded>() {
        return ExitReason::Limit(*limit);
    }
    if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel) {
        return ExitReason::Limit(Limit::Fuel);
    }
    // The cause first (it is what one-line displays show), then the whole
    // error with its Wasm backtrace, cut: it is copied into every EXIT and
    // DOWN of the process, and a deep recursion's backtrace is long.
    let mut text = format!("{}\n{e:?}", e.root_cause());
    truncate(&mut text, troupe_abi::limit::REASON_LEN as usize);
    ExitReason::Trap(text)
}

/// Cuts `text` to at most `max` bytes (at a character boundary), marking
/// the cut.
pub(crate) fn truncate(text: &mut String, max: usize) {
    const MARK: &str = " [...]";
    if text.len() <= max {
        return;
    }
    let mut end = max - MARK.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
}

/// The data of each process's `Store`.
pub struct ProcessState {
    /// Built on the first WASI call (see [`ProcessState::wasi`]). Boxed: most
    /// processes never build one, and a `WasiP1Ctx` is large.
    wasi: Option<Box<WasiP1Ctx>>,
    /// Whether it reads the VM's stdin (the root only).
    stdin: bool,
    pub(crate) vm: Arc<VmInner>,
    pub(crate) shared: Arc<ProcessShared>,
    pub(crate) module: Arc<LoadedModule>,
    pub(crate) perms: Perms,
    pub(crate) memory: Option<Memory>,
    /// Bytes of linear memory charged to the budget (given back when the
    /// instance goes: at the end, or when it hibernates).
    linear: u64,
    /// The last growth charged, given back if wasmtime then fails it.
    growing: u64,
    held: Option<Message>,
    attachments: Vec<u64>,
    last_error: String,
    /// Each with its charge to the budget (its lists' bytes).
    configs: Vec<(u64, SpawnConfig, Option<Charge>)>,
    next_config: u64,
}

impl Drop for ProcessState {
    fn drop(&mut self) {
        self.release_linear();
    }
}

impl ProcessState {
    pub(crate) fn new(
        wasi: Option<WasiP1Ctx>,
        stdin: bool,
        vm: Arc<VmInner>,
        shared: Arc<ProcessShared>,
        module: Arc<LoadedModule>,
        perms: Perms,
    ) -> Self {
        ProcessState {
            wasi: wasi.map(Box::new),
            stdin,
            vm,
            shared,
            module,
            perms,
            memory: None,
            linear: 0,
            growing: 0,
            held: None,
            attachments: Vec::new(),
            last_error: String::new(),
            configs: Vec::new(),
            next_config: 0,
        }
    }
}

impl ProcessState {
    /// Gives back the linear memory's charge (its instance is gone).
    pub(crate) fn release_linear(&mut self) {
        self.shared.budget.release(std::mem::take(&mut self.linear));
    }

    /// The WASI context, built on first use. Many processes never make a
    /// WASI call (a function spawned by the SDK that only sends and
    /// receives), so they never pay for one. A context with preopened
    /// directories is built at spawn instead, where opening a directory can
    /// fail and be reported; without them building cannot fail.
    pub(crate) fn wasi(&mut self) -> &mut WasiP1Ctx {
        let (perms, stdin) = (&self.perms, self.stdin);
        self.wasi.get_or_insert_with(|| {
            Box::new(
                perms
                    .build_wasi(stdin)
                    .expect("a WASI context without preopened directories always builds"),
            )
        })
    }
}

impl ProcessCtx for ProcessState {
    fn pid(&self) -> u64 {
        self.shared.pid
    }

    fn memory(&self) -> Option<Memory> {
        self.memory
    }

    fn record_error(&mut self, error: HostError) -> i32 {
        self.last_error = error.message;
        // A message may quote guest data (escaped, so longer than it).
        truncate(&mut self.last_error, troupe_abi::limit::REASON_LEN as usize);
        error.code
    }

    fn last_error(&self) -> &str {
        &self.last_error
    }

    fn send(&self, to: u64, tag: u64, data: Vec<u8>) -> Result<(), SendError> {
        self.vm.send(
            Message {
                tag,
                sender: self.shared.pid,
                data,
            },
            to,
        )
    }

    fn receive(
        &mut self,
        tags: TagSet,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Option<Message>> + Send + '_ {
        self.shared.mailbox.receive(tags, timeout)
    }

    fn held_message(&mut self) -> &mut Option<Message> {
        &mut self.held
    }

    async fn module_load(&mut self, bytes: Vec<u8>) -> Result<u64, HostError> {
        self.vm.load_module_off_thread(bytes).await.map(|m| m.id)
    }

    fn module_self(&self) -> u64 {
        self.module.id
    }

    fn config_new(&mut self) -> Option<u64> {
        if self.configs.len() >= troupe_abi::limit::CONFIGS as usize {
            return None;
        }
        self.next_config += 1;
        self.configs
            .push((self.next_config, SpawnConfig::default(), None));
        Some(self.next_config)
    }

    fn config_drop(&mut self, handle: u64) -> bool {
        let before = self.configs.len();
        self.configs.retain(|(h, _, _)| *h != handle);
        self.configs.len() != before
    }

    fn config_mut(&mut self, handle: u64) -> Option<&mut SpawnConfig> {
        self.configs
            .iter_mut()
            .find(|(h, _, _)| *h == handle)
            .map(|(_, c, _)| c)
    }

    fn config_charge(&mut self, handle: u64) -> Result<(), HostError> {
        let budget = self.shared.budget.clone();
        let Some((_, config, charge)) = self.configs.iter_mut().find(|(h, _, _)| *h == handle)
        else {
            return Ok(());
        };
        let bytes = config.host_bytes();
        // The old charge goes first, so a smaller list always fits.
        *charge = None;
        *charge = Some(Charge::new(&budget, bytes).map_err(|over| {
            HostError::new(
                err::RESOURCE_LIMIT,
                format!("the spawn configuration: {over}"),
            )
        })?);
        Ok(())
    }

    fn holds_preopen(&self, guest_path: &str) -> bool {
        self.perms.preopens.iter().any(|p| p.guest == guest_path)
    }

    async fn spawn(&mut self, request: SpawnRequest) -> Result<u64, HostError> {
        if !self.perms.limits.can_spawn {
            return Err(HostError::new(
                err::PERMISSION_DENIED,
                "this process was started without permission to spawn",
            ));
        }
        let module = if request.module == val::MODULE_SELF {
            self.module.clone()
        } else {
            self.vm.modules.get(request.module).ok_or_else(|| {
                HostError::new(
                    err::NO_SUCH_MODULE,
                    format!(
                        "no module has handle {} (never loaded, or unloaded: the VM keeps at \
                         most {} modules that no process runs; load it again)",
                        request.module,
                        crate::module_cache::MAX_IDLE_MODULES
                    ),
                )
            })?
        };
        let perms = self.perms.narrowed(&request.config)?;
        let arg = Message {
            tag: troupe_abi::tag::SPAWN_ARG,
            sender: self.shared.pid,
            data: request.arg,
        };
        let child = self
            .vm
            .spawn(NewProcess {
                module,
                perms,
                stdin: false,
                entry: &request.entry,
                params: &request.params,
                arg: Some(arg),
                link_to: request.config.link.then_some(&self.shared),
                sockets: request.sockets,
            })
            .await?;
        Ok(child.pid)
    }

    fn can_hibernate(&self, entry: &str, params: usize) -> Result<(), HostError> {
        self.module.layout.image().map_err(|why| {
            HostError::new(
                err::UNSUPPORTED,
                format!("this process's module cannot hibernate: {why}"),
            )
        })?;
        self.module
            .entry_params(entry, params)
            .map_err(|e| HostError::new(err::NO_SUCH_EXPORT, e.to_string()))?;
        Ok(())
    }

    fn fuel_metering(&self) -> bool {
        self.vm.fuel_metering()
    }

    fn link(&mut self, pid: u64) -> Result<(), HostError> {
        self.vm.link(&self.shared, pid)
    }

    fn unlink(&mut self, pid: u64) {
        self.vm.unlink(&self.shared, pid)
    }

    fn monitor(&mut self, pid: u64) -> Result<u64, HostError> {
        self.vm.monitor(&self.shared, pid)
    }

    fn demonitor(&mut self, reference: u64) -> Result<(), HostError> {
        self.vm.demonitor(&self.shared, reference)
    }

    fn trap_exit(&mut self, enable: bool) -> bool {
        std::mem::replace(&mut self.shared.signals().trap_exit, enable)
    }

    fn kill(&mut self, pid: u64) -> Result<(), HostError> {
        self.vm
            .exit_signal(self.shared.pid, pid, &ExitReason::Killed, true)
    }

    fn send_exit(&mut self, pid: u64, reason: ExitReason) -> Result<(), HostError> {
        self.vm.exit_signal(self.shared.pid, pid, &reason, false)
    }

    fn register(&mut self, name: String, pid: u64) -> Result<(), HostError> {
        self.vm.register(name, pid)
    }

    fn unregister(&mut self, name: &str) -> Result<(), HostError> {
        self.vm.unregister(name)
    }

    fn whereis(&self, name: &str) -> Option<u64> {
        self.vm.whereis(name)
    }

    fn sleep(&mut self, duration: Duration) -> impl Future<Output = ()> + Send + '_ {
        tokio::time::sleep(duration)
    }

    fn send_after(
        &mut self,
        to: u64,
        tag: u64,
        data: Vec<u8>,
        delay: Duration,
    ) -> Result<u64, HostError> {
        let msg = Message {
            tag,
            sender: self.shared.pid,
            data,
        };
        self.vm.send_after(&self.shared, to, msg, delay)
    }

    fn cancel_timer(&mut self, reference: u64) -> bool {
        self.vm.cancel_timer(&self.shared, reference)
    }

    fn net_policy(&self) -> &NetPolicy {
        &self.perms.net
    }

    fn sockets(&self) -> &Sockets {
        &self.shared.sockets
    }

    fn attachments(&mut self) -> &mut Vec<u64> {
        &mut self.attachments
    }

    fn sockets_of(&self, pid: u64) -> Option<Arc<Sockets>> {
        self.vm.process(pid).map(|p| p.sockets.clone())
    }
}

impl ResourceLimiter for ProcessState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.growing = 0;
        if desired as u64 > self.perms.limits.max_memory {
            return Err(wasmtime::Error::new(LimitExceeded(Limit::Memory)));
        }
        // What the host holds for the process counts too, and so does the
        // VM's budget (see `crate::budget`).
        let more = (desired as u64).saturating_sub(self.linear);
        if self.shared.budget.charge(more, true).is_err() {
            return Err(wasmtime::Error::new(LimitExceeded(Limit::Memory)));
        }
        self.linear += more;
        self.growing = more;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // Allowed here, refused by the pool or the kernel: not held after all.
        let failed = std::mem::take(&mut self.growing);
        self.linear -= failed;
        self.shared.budget.release(failed);
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables are bounded by the pool's slot size.
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trap_of(wat: &str) -> ExitReason {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, wat).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let f = instance.get_typed_func::<(), ()>(&mut store, "f").unwrap();
        exit_reason(f.call(&mut store, ()))
    }

    #[test]
    fn a_trap_reason_starts_with_its_cause_then_the_backtrace() {
        let ExitReason::Trap(text) = trap_of(r#"(module (func (export "f") unreachable))"#) else {
            panic!("not a trap");
        };
        let first = text.lines().next().unwrap();
        assert!(first.contains("unreachable"), "{text}");
        assert!(text.contains("wasm backtrace"), "{text}");
    }
}
