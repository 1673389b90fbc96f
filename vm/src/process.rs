//! Processes: the state each process's `Store` holds, its WASI permissions,
//! and how it ends.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use troupe_abi::{err, val};
use troupe_host_api::{
    HostError, Message, NoProcess, ProcessCtx, SpawnConfig, SpawnRequest, TagSet,
};
use wasmtime::Memory;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::config::Output;
use crate::mailbox::Mailbox;
use crate::module_cache::LoadedModule;
use crate::vm::VmInner;

/// The part of a process other processes can reach: its mailbox.
pub struct ProcessShared {
    pub pid: u64,
    pub mailbox: Mailbox,
}

/// A preopened directory a process holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
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
            b.preopened_dir(&p.host, &p.guest, FsPerms::ReadWrite)
                .map_err(|e| {
                    HostError::new(
                        err::RESOURCE_LIMIT,
                        format!("cannot open directory {:?}: {e:#}", p.host),
                    )
                })?;
        }
        Ok(b.build_p1())
    }
}

/// Why a process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// Its entry returned, or it called `proc_exit(0)`.
    Normal,
    /// It called `proc_exit` with this non-zero code.
    Exit(i32),
    /// It trapped; the text is the trap with its Wasm backtrace.
    Trap(String),
    /// The VM was stopped from outside (a signal) while it ran; the code is
    /// the VM's exit code (128 + the signal's number).
    Stopped(i32),
}

impl ExitReason {
    /// The exit code a root process ending this way gives the VM.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExitReason::Normal => 0,
            ExitReason::Exit(code) => *code,
            ExitReason::Trap(_) => troupe_abi::exit::TRAP,
            ExitReason::Stopped(code) => *code,
        }
    }

    /// Classifies the result of a process's entry call.
    pub fn from_result(result: wasmtime::Result<()>) -> Self {
        match result {
            Ok(()) => ExitReason::Normal,
            Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(wasmtime_wasi::I32Exit(0)) => ExitReason::Normal,
                Some(wasmtime_wasi::I32Exit(code)) => ExitReason::Exit(*code),
                None => ExitReason::Trap(format!("{e:?}")),
            },
        }
    }
}

/// The data of each process's `Store`.
pub struct ProcessState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) vm: Arc<VmInner>,
    pub(crate) shared: Arc<ProcessShared>,
    pub(crate) module: Arc<LoadedModule>,
    pub(crate) perms: Perms,
    pub(crate) memory: Option<Memory>,
    held: Option<Message>,
    last_error: String,
    configs: Vec<(u64, SpawnConfig)>,
    next_config: u64,
}

impl ProcessState {
    pub(crate) fn new(
        wasi: WasiP1Ctx,
        vm: Arc<VmInner>,
        shared: Arc<ProcessShared>,
        module: Arc<LoadedModule>,
        perms: Perms,
    ) -> Self {
        ProcessState {
            wasi,
            vm,
            shared,
            module,
            perms,
            memory: None,
            held: None,
            last_error: String::new(),
            configs: Vec::new(),
            next_config: 0,
        }
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
        error.code
    }

    fn last_error(&self) -> &str {
        &self.last_error
    }

    fn send(&self, to: u64, tag: u64, data: Vec<u8>) -> Result<(), NoProcess> {
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

    fn module_load(&mut self, bytes: &[u8]) -> Result<u64, HostError> {
        self.vm
            .load_module(bytes, false)
            .map(|m| m.id)
            .map_err(|e| HostError::new(err::INVALID_MODULE, format!("the module {e}")))
    }

    fn module_self(&self) -> u64 {
        self.module.id
    }

    fn config_new(&mut self) -> u64 {
        self.next_config += 1;
        self.configs
            .push((self.next_config, SpawnConfig::default()));
        self.next_config
    }

    fn config_drop(&mut self, handle: u64) -> bool {
        let before = self.configs.len();
        self.configs.retain(|(h, _)| *h != handle);
        self.configs.len() != before
    }

    fn config_mut(&mut self, handle: u64) -> Option<&mut SpawnConfig> {
        self.configs
            .iter_mut()
            .find(|(h, _)| *h == handle)
            .map(|(_, c)| c)
    }

    fn holds_preopen(&self, guest_path: &str) -> bool {
        self.perms.preopens.iter().any(|p| p.guest == guest_path)
    }

    async fn spawn(&mut self, request: SpawnRequest) -> Result<u64, HostError> {
        let module = if request.module == val::MODULE_SELF {
            self.module.clone()
        } else {
            self.vm.modules.get(request.module).ok_or_else(|| {
                HostError::new(
                    err::NO_SUCH_MODULE,
                    format!("no module has handle {}", request.module),
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
            .spawn(
                module,
                perms,
                false,
                &request.entry,
                &request.params,
                Some(arg),
            )
            .await?;
        Ok(child.pid)
    }
}
