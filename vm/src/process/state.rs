//! [`ProcessState`]: the data of each process's `Store`, and the VM's side
//! of the host API ([`ProcessCtx`]) and of wasmtime's memory limits
//! ([`ResourceLimiter`]) for it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use troupe_abi::{err, val};
use troupe_host_api::{
    HostError, LimitExceeded, Message, NetPolicy, ProcessCtx, SendError, Sockets, SpawnConfig,
    SpawnRequest, TagSet,
};
use wasmtime::{Memory, ResourceLimiter};
use wasmtime_wasi::p1::WasiP1Ctx;

use super::{truncate, Perms, ProcessShared};
use crate::budget::Charge;
use crate::lifecycle::NewProcess;
use crate::module_cache::LoadedModule;
use crate::vm::VmInner;
use crate::{ExitReason, Limit};

/// The data of each process's `Store`.
pub(crate) struct ProcessState {
    /// Built on the first WASI call (see [`ProcessState::wasi_ctx`]). Boxed: most
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
    pub(crate) fn wasi_ctx(&mut self) -> &mut WasiP1Ctx {
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

    fn mailbox_arrivals(&self) -> u64 {
        self.shared.mailbox.arrivals()
    }

    fn mailbox_arrival(&self, after: u64) -> impl Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        async move { std::future::poll_fn(|cx| shared.mailbox.poll_arrival(after, cx)).await }
    }

    fn wasi(&mut self) -> &mut WasiP1Ctx {
        self.wasi_ctx()
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
        self.perms.preopens.iter().any(|p| p.guest() == guest_path)
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
        self.module.layout.initial_memory().map_err(|why| {
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
        std::mem::replace(&mut self.shared.ties().trap_exit, enable)
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
