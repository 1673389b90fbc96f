//! A small fake of the VM's per-process state, and a harness that runs a
//! WAT guest against the real host functions with it: the ABI's decoding,
//! checks and error codes are tested without a VM.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use troupe_host_api::{
    abi::err, ExitReason, HostError, Message, NetPolicy, ProcessCtx, SendError, Sockets,
    SpawnConfig, SpawnRequest, TagSet,
};
use wasmtime::{Config, Engine, Instance, Linker, Module, Store};

/// What a process would see of the VM: a mailbox, a registry, spawn
/// configurations; what it asks of the VM is recorded for the test to read.
pub(crate) struct Fake {
    pub(crate) pid: u64,
    pub(crate) last_error: String,
    pub(crate) mailbox: VecDeque<Message>,
    pub(crate) held: Option<Message>,
    /// `send(to, tag, data)` calls, in order (`send` takes `&self`).
    pub(crate) sent: Mutex<Vec<(u64, u64, Vec<u8>)>>,
    pub(crate) names: HashMap<String, u64>,
    pub(crate) configs: HashMap<u64, SpawnConfig>,
    pub(crate) next_handle: u64,
    /// The requests `spawn` received; each gets pid 100, 101, ...
    pub(crate) spawned: Vec<SpawnRequest>,
    /// `send_exit(pid, reason)` calls.
    pub(crate) exits_sent: Vec<(u64, ExitReason)>,
    pub(crate) policy: NetPolicy,
    pub(crate) sockets: Sockets,
    pub(crate) attached: Vec<u64>,
    /// Messages delivered so far.
    pub(crate) arrivals: u64,
    pub(crate) wasi: Option<wasmtime_wasi::p1::WasiP1Ctx>,
}

impl Default for Fake {
    fn default() -> Self {
        Fake {
            pid: 1,
            last_error: String::new(),
            mailbox: VecDeque::new(),
            held: None,
            sent: Mutex::new(Vec::new()),
            names: HashMap::new(),
            configs: HashMap::new(),
            next_handle: 1,
            spawned: Vec::new(),
            exits_sent: Vec::new(),
            policy: NetPolicy::deny(),
            sockets: Sockets::default(),
            attached: Vec::new(),
            arrivals: 0,
            wasi: None,
        }
    }
}

impl Fake {
    /// A message from `sender` waiting in the mailbox.
    pub(crate) fn deliver(&mut self, tag: u64, sender: u64, data: &[u8]) {
        self.arrivals += 1;
        self.mailbox.push_back(Message {
            tag,
            sender,
            data: data.to_vec(),
        });
    }
}

fn not_here(what: &str) -> HostError {
    HostError::new(err::UNSUPPORTED, format!("the fake VM has no {what}"))
}

impl ProcessCtx for Fake {
    fn pid(&self) -> u64 {
        self.pid
    }

    fn memory(&self) -> Option<wasmtime::Memory> {
        // The host functions then find the `memory` export through the
        // caller, as they do in a start function.
        None
    }

    fn record_error(&mut self, error: HostError) -> i32 {
        self.last_error = error.message;
        error.code
    }

    fn last_error(&self) -> &str {
        &self.last_error
    }

    fn send(&self, to: u64, tag: u64, data: Vec<u8>) -> Result<(), SendError> {
        if to == 0 {
            return Err(SendError::NoProcess(to));
        }
        self.sent.lock().unwrap().push((to, tag, data));
        Ok(())
    }

    async fn receive(&mut self, tags: TagSet, timeout: Option<Duration>) -> Option<Message> {
        if let Some(i) = self.mailbox.iter().position(|m| tags.matches(m.tag)) {
            return self.mailbox.remove(i);
        }
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
        None
    }

    fn mailbox_arrivals(&self) -> u64 {
        self.arrivals
    }

    fn mailbox_arrival(
        &self,
        after: u64,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        // Nothing is delivered while a test's guest runs.
        let arrived = self.arrivals > after;
        async move {
            if !arrived {
                std::future::pending::<()>().await
            }
        }
    }

    fn wasi(&mut self) -> &mut wasmtime_wasi::p1::WasiP1Ctx {
        self.wasi
            .get_or_insert_with(|| wasmtime_wasi::WasiCtxBuilder::new().build_p1())
    }

    fn held_message(&mut self) -> &mut Option<Message> {
        &mut self.held
    }

    async fn module_load(&mut self, _bytes: Vec<u8>) -> Result<u64, HostError> {
        Err(not_here("compiler"))
    }

    fn module_self(&self) -> u64 {
        7
    }

    fn config_new(&mut self) -> Option<u64> {
        let handle = self.next_handle;
        self.next_handle += 1;
        self.configs.insert(handle, SpawnConfig::default());
        Some(handle)
    }

    fn config_drop(&mut self, handle: u64) -> bool {
        self.configs.remove(&handle).is_some()
    }

    fn config_mut(&mut self, handle: u64) -> Option<&mut SpawnConfig> {
        self.configs.get_mut(&handle)
    }

    fn config_charge(&mut self, _handle: u64) -> Result<(), HostError> {
        Ok(())
    }

    fn holds_preopen(&self, guest_path: &str) -> bool {
        guest_path == "/data"
    }

    async fn spawn(&mut self, request: SpawnRequest) -> Result<u64, HostError> {
        self.spawned.push(request);
        Ok(99 + self.spawned.len() as u64)
    }

    fn can_hibernate(&self, _entry: &str, _params: usize) -> Result<(), HostError> {
        Err(not_here("hibernation"))
    }

    fn fuel_metering(&self) -> bool {
        false
    }

    fn link(&mut self, _pid: u64) -> Result<(), HostError> {
        Err(not_here("links"))
    }

    fn unlink(&mut self, _pid: u64) {}

    fn monitor(&mut self, _pid: u64) -> Result<u64, HostError> {
        Err(not_here("monitors"))
    }

    fn demonitor(&mut self, _reference: u64) -> Result<(), HostError> {
        Err(not_here("monitors"))
    }

    fn trap_exit(&mut self, _enable: bool) -> bool {
        false
    }

    fn kill(&mut self, _pid: u64) -> Result<(), HostError> {
        Err(not_here("kill"))
    }

    fn send_exit(&mut self, pid: u64, reason: ExitReason) -> Result<(), HostError> {
        self.exits_sent.push((pid, reason));
        Ok(())
    }

    fn register(&mut self, name: String, pid: u64) -> Result<(), HostError> {
        if self.names.contains_key(&name) {
            return Err(HostError::new(
                err::ALREADY_REGISTERED,
                format!("{name:?} is taken"),
            ));
        }
        self.names.insert(name, pid);
        Ok(())
    }

    fn unregister(&mut self, name: &str) -> Result<(), HostError> {
        self.names
            .remove(name)
            .map(drop)
            .ok_or_else(|| HostError::new(err::NOT_FOUND, format!("{name:?} is not registered")))
    }

    fn whereis(&self, name: &str) -> Option<u64> {
        self.names.get(name).copied()
    }

    async fn sleep(&mut self, duration: Duration) {
        tokio::time::sleep(duration).await
    }

    fn send_after(
        &mut self,
        _to: u64,
        _tag: u64,
        _data: Vec<u8>,
        _delay: Duration,
    ) -> Result<u64, HostError> {
        Err(not_here("timers"))
    }

    fn cancel_timer(&mut self, _reference: u64) -> bool {
        false
    }

    fn net_policy(&self) -> &NetPolicy {
        &self.policy
    }

    fn sockets(&self) -> &Sockets {
        &self.sockets
    }

    fn attachments(&mut self) -> &mut Vec<u64> {
        &mut self.attached
    }

    fn sockets_of(&self, _pid: u64) -> Option<std::sync::Arc<Sockets>> {
        None
    }
}

/// A WAT guest instantiated with every Troupe host function and a [`Fake`].
pub(crate) struct Guest {
    pub(crate) store: Store<Fake>,
    instance: Instance,
}

impl Guest {
    /// Instantiates `wat` (a whole `(module ...)`).
    pub(crate) async fn new(wat: &str, fake: Fake) -> Guest {
        let engine = Engine::new(&Config::new()).expect("an engine");
        let module = Module::new(&engine, wat).expect("the test's WAT compiles");
        let mut linker = Linker::new(&engine);
        troupe_host_api::register(&mut linker).expect("the host functions register");
        let mut store = Store::new(&engine, fake);
        let instance = linker
            .instantiate_async(&mut store, &module)
            .await
            .expect("the guest instantiates");
        Guest { store, instance }
    }

    /// Calls export `name` (no parameters, an `i32` or `i64` result, as
    /// `i64`): `Err` with the trap's whole text if it trapped.
    pub(crate) async fn call(&mut self, name: &str) -> Result<i64, String> {
        let func = self.instance_func(name);
        let mut out = [wasmtime::Val::I32(0)];
        let results = if func.ty(&self.store).results().len() == 0 {
            &mut out[..0]
        } else {
            &mut out[..]
        };
        match func.call_async(&mut self.store, &[], results).await {
            Ok(()) => Ok(results
                .first()
                .map_or(0, |v| v.i64().or(v.i32().map(i64::from)).unwrap())),
            Err(e) => Err(format!("{e:?}")),
        }
    }

    /// Calls export `name` and returns the error code it returned.
    pub(crate) async fn code(&mut self, name: &str) -> i32 {
        match self.call(name).await {
            Ok(v) => v as i32,
            Err(trap) => panic!("{name} trapped: {trap}"),
        }
    }

    /// Calls export `name`, expecting a trap; returns its text.
    pub(crate) async fn trap(&mut self, name: &str) -> String {
        match self.call(name).await {
            Ok(v) => panic!("{name} returned {v} instead of trapping"),
            Err(trap) => trap,
        }
    }

    /// Export `name`, a function.
    pub(crate) fn instance_func(&mut self, name: &str) -> wasmtime::Func {
        self.instance
            .get_func(&mut self.store, name)
            .unwrap_or_else(|| panic!("the guest exports no {name:?}"))
    }

    /// Writes `bytes` into the guest's memory at `at`.
    pub(crate) fn write(&mut self, at: usize, bytes: &[u8]) {
        let memory = self
            .instance
            .get_memory(&mut self.store, "memory")
            .expect("a memory");
        memory.data_mut(&mut self.store)[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// `len` bytes of the guest's memory at `at`.
    pub(crate) fn memory(&mut self, at: usize, len: usize) -> Vec<u8> {
        let memory = self
            .instance
            .get_memory(&mut self.store, "memory")
            .expect("a memory");
        memory.data(&self.store)[at..at + len].to_vec()
    }

    /// The little-endian `u64` at `at`.
    pub(crate) fn u64_at(&mut self, at: usize) -> u64 {
        u64::from_le_bytes(self.memory(at, 8).try_into().unwrap())
    }

    /// The process's state.
    pub(crate) fn fake(&mut self) -> &mut Fake {
        self.store.data_mut()
    }
}
