//! Troupe's host functions: the guest ABI described in `host-api/SPEC.md`.
//!
//! One module per ABI namespace ([`process`], [`message`], [`registry`],
//! [`timer`], [`net`]), each with its own `register` into a
//! [`wasmtime::Linker`], all written on one host-call layer ([`call`]). The
//! host functions are generic over [`ProcessCtx`]: the per-process state
//! that the VM (crate `troupe-vm`) keeps in each `Store` implements it. This
//! crate holds the ABI (argument decoding, memory checks, error codes) and
//! what networking needs (each process's socket table, the network policy,
//! name look-ups); the VM holds the rest of the runtime (mailboxes, the
//! process table, spawning, links, timers).
//!
//! ```no_run
//! # fn demo<T: troupe_host_api::ProcessCtx>(engine: &wasmtime::Engine) -> wasmtime::Result<()> {
//! let mut linker = wasmtime::Linker::<T>::new(engine);
//! troupe_host_api::register(&mut linker)?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

pub use troupe_abi as abi;

pub mod call;
pub mod message;
pub mod net;
pub mod process;
pub mod reason;
pub mod registry;
pub mod timer;
pub mod wasi;

pub use net::{FdState, Listener, NetPolicy, NetRule, Socket, SocketRef, Sockets};
pub use reason::{ExitReason, GuestExit, Hibernate, Limit, LimitExceeded};

/// A message in a mailbox: a tag chosen by the sender, the sender's pid and
/// the payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The tag the sender chose (or one of the VM's, `troupe_abi::tag`).
    pub tag: u64,
    /// The sender's pid.
    pub sender: u64,
    /// The payload.
    pub data: Vec<u8>,
}

/// Which tags a receive accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSet {
    /// Any message.
    Any,
    /// Only this tag (the common case: no allocation).
    One(u64),
    /// Any of these tags: sorted, without duplicates (see [`TagSet::many`]),
    /// so a message is matched in a binary search.
    Many(Vec<u64>),
}

impl TagSet {
    /// Whether a message with `tag` is accepted.
    #[inline]
    pub fn matches(&self, tag: u64) -> bool {
        match self {
            TagSet::Any => true,
            TagSet::One(t) => *t == tag,
            TagSet::Many(ts) => ts.binary_search(&tag).is_ok(),
        }
    }

    /// The set of `tags` (in any order, duplicates allowed).
    pub fn many(mut tags: Vec<u64>) -> Self {
        tags.sort_unstable();
        tags.dedup();
        TagSet::Many(tags)
    }
}

/// An error a host function reports to the guest: an ABI error code and the
/// sentence `error_message` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    /// The code the call returns (`troupe_abi::err`).
    pub code: i32,
    /// The sentence `error_message` gives.
    pub message: String,
}

impl HostError {
    /// An error with `code` and the sentence `message`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        HostError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", abi::err::name(self.code), self.message)
    }
}

impl std::error::Error for HostError {}

/// Why a message was not queued (it is dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The target does not exist (it ended, or never did).
    NoProcess(u64),
    /// The target's memory budget (or the VM's) cannot hold the message:
    /// its mailbox is full. The sentence says which budget.
    Full {
        /// The target.
        to: u64,
        /// Which budget is full.
        why: String,
    },
}

impl SendError {
    /// As the ABI reports it: `NO_PROCESS` or `RESOURCE_LIMIT`.
    pub fn to_host_error(&self, context: &str) -> HostError {
        match self {
            SendError::NoProcess(_) => {
                HostError::new(abi::err::NO_PROCESS, format!("{self}{context}"))
            }
            SendError::Full { .. } => {
                HostError::new(abi::err::RESOURCE_LIMIT, format!("{self}{context}"))
            }
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::NoProcess(pid) => write!(f, "process {pid} does not exist"),
            SendError::Full { to, why } => write!(f, "process {to}'s mailbox is full: {why}"),
        }
    }
}

impl std::error::Error for SendError {}

/// How a spawned process's WASI context differs from its parent's. `None`
/// fields inherit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpawnConfig {
    /// The child's argv (data: any values).
    pub args: Option<Vec<String>>,
    /// The child's environment (data: any values).
    pub envs: Option<Vec<(String, String)>>,
    /// The guest paths of the parent's preopened directories the child keeps.
    pub preopens: Option<Vec<String>>,
    /// Link the child to the parent before it runs.
    pub link: bool,
    /// The child's maximum linear memory in bytes (lowered to the parent's).
    pub max_memory: Option<u64>,
    /// The child's fuel budget (lowered to the parent's).
    pub fuel: Option<u64>,
    /// Whether the child may spawn (it cannot if the parent cannot).
    pub can_spawn: Option<bool>,
    /// The child's network permission (already checked to be within the
    /// parent's).
    pub net: Option<NetPolicy>,
}

impl SpawnConfig {
    /// About how many bytes the host holds for this configuration.
    pub fn host_bytes(&self) -> u64 {
        let strings = |v: &[String]| v.iter().map(|s| s.len() as u64 + 24).sum::<u64>();
        let args = self.args.as_deref().map_or(0, strings);
        let envs = self.envs.as_deref().map_or(0, |v| {
            v.iter().map(|(k, v)| (k.len() + v.len()) as u64 + 48).sum()
        });
        let preopens = self.preopens.as_deref().map_or(0, strings);
        let net = self.net.as_ref().map_or(0, |n| n.describe().len() as u64);
        std::mem::size_of::<SpawnConfig>() as u64 + args + envs + preopens + net
    }
}

/// A request to start a process, decoded from the guest's arguments.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    /// Module handle; [`abi::val::MODULE_SELF`] for the caller's module.
    pub module: u64,
    /// The configuration (already resolved from its handle).
    pub config: SpawnConfig,
    /// Name of the exported entry function.
    pub entry: String,
    /// The entry's parameters, as `i64` (narrowed to the entry's types).
    pub params: Vec<i64>,
    /// The spawn argument, delivered as the child's first message.
    pub arg: Vec<u8>,
    /// Sockets moving to the child with its argument (see `attach`): the VM
    /// puts them in the child's table before it runs.
    pub sockets: Vec<(u64, SocketRef)>,
}

/// What the host functions need from the VM's per-process state.
///
/// Implemented by the VM for the data `T` of every `Store<T>`.
pub trait ProcessCtx: Send + 'static {
    /// The process's pid.
    fn pid(&self) -> u64;

    /// The process's exported linear memory, if it has one.
    fn memory(&self) -> Option<wasmtime::Memory>;

    /// Remembers `error` as the process's last error and returns its code.
    fn record_error(&mut self, error: HostError) -> i32;

    /// The explanation of the last error ("" if none).
    fn last_error(&self) -> &str;

    /// Queues a message in `to`'s mailbox; the message is dropped if `to`
    /// does not exist or its mailbox is full.
    fn send(&self, to: u64, tag: u64, data: Vec<u8>) -> Result<(), SendError>;

    /// Takes the oldest message matching `tags` from this process's mailbox,
    /// waiting up to `timeout` (`None`: forever). `None` on time-out.
    fn receive(
        &mut self,
        tags: TagSet,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Option<Message>> + Send + '_;

    /// How many messages have arrived in this process's mailbox so far
    /// (the mailbox descriptor's readiness, see [`wasi`]).
    fn mailbox_arrivals(&self) -> u64;

    /// Completes once more than `after` messages have arrived in this
    /// process's mailbox.
    fn mailbox_arrival(&self, after: u64) -> impl Future<Output = ()> + Send + 'static;

    /// The process's WASI preview 1 context (which may be built on first
    /// use).
    fn wasi(&mut self) -> &mut wasmtime_wasi::p1::WasiP1Ctx;

    /// The message taken by `receive` that did not fit the guest's buffer.
    fn held_message(&mut self) -> &mut Option<Message>;

    /// Compiles (or finds in the cache) a module and returns its handle.
    /// Compiling runs off the scheduler's threads: only the caller waits.
    fn module_load(
        &mut self,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<u64, HostError>> + Send + '_;

    /// The handle of this process's own module.
    fn module_self(&self) -> u64;

    /// Creates a spawn configuration; returns its non-zero handle, or
    /// `None` if the process holds [`abi::limit::CONFIGS`] already.
    fn config_new(&mut self) -> Option<u64>;

    /// Frees a configuration; `false` if the handle is unknown.
    fn config_drop(&mut self, handle: u64) -> bool;

    /// A configuration by handle.
    fn config_mut(&mut self, handle: u64) -> Option<&mut SpawnConfig>;

    /// Charges a configuration's lists (just changed) to the process's
    /// memory budget: `RESOURCE_LIMIT` if they do not fit.
    fn config_charge(&mut self, handle: u64) -> Result<(), HostError>;

    /// Whether this process holds a preopened directory with this guest path.
    fn holds_preopen(&self, guest_path: &str) -> bool;

    /// Starts a process; returns its pid.
    fn spawn(
        &mut self,
        request: SpawnRequest,
    ) -> impl Future<Output = Result<u64, HostError>> + Send + '_;

    /// Checks that this process can hibernate and wake in `entry` with
    /// `params` parameters (see `hibernate` in SPEC.md).
    fn can_hibernate(&self, entry: &str, params: usize) -> Result<(), HostError>;

    /// Whether the VM meters fuel (so `config_set_fuel` can be honoured).
    fn fuel_metering(&self) -> bool;

    /// Links this process and `pid`.
    fn link(&mut self, pid: u64) -> Result<(), HostError>;

    /// Removes the link with `pid`, if any.
    fn unlink(&mut self, pid: u64);

    /// Monitors `pid`; returns the monitor's reference.
    fn monitor(&mut self, pid: u64) -> Result<u64, HostError>;

    /// Stops a monitor this process holds and flushes its DOWN message.
    fn demonitor(&mut self, reference: u64) -> Result<(), HostError>;

    /// Sets exit trapping; returns the previous setting.
    fn trap_exit(&mut self, enable: bool) -> bool;

    /// Sends the untrappable kill signal to `pid`.
    fn kill(&mut self, pid: u64) -> Result<(), HostError>;

    /// Sends the exit signal `reason` to `pid`, as if from a linked process.
    fn send_exit(&mut self, pid: u64, reason: ExitReason) -> Result<(), HostError>;

    /// Registers `name` for `pid`.
    fn register(&mut self, name: String, pid: u64) -> Result<(), HostError>;

    /// Frees `name`.
    fn unregister(&mut self, name: &str) -> Result<(), HostError>;

    /// The pid registered under `name`.
    fn whereis(&self, name: &str) -> Option<u64>;

    /// Suspends this process for `duration`.
    fn sleep(&mut self, duration: Duration) -> impl Future<Output = ()> + Send + '_;

    /// Sends a message from this process to `to` after `delay`; returns the
    /// timer's reference.
    fn send_after(
        &mut self,
        to: u64,
        tag: u64,
        data: Vec<u8>,
        delay: Duration,
    ) -> Result<u64, HostError>;

    /// Cancels one of this process's timers; `true` if it had not fired yet.
    fn cancel_timer(&mut self, reference: u64) -> bool;

    /// Where this process may listen and connect.
    fn net_policy(&self) -> &NetPolicy;

    /// The sockets this process holds.
    fn sockets(&self) -> &Sockets;

    /// The handles `attach`ed to this process's next message.
    fn attachments(&mut self) -> &mut Vec<u64>;

    /// The socket table of process `pid`, if it is alive (to move sockets
    /// to it).
    fn sockets_of(&self, pid: u64) -> Option<std::sync::Arc<Sockets>>;
}

/// Registers every namespace of the Troupe ABI into `linker`.
pub fn register<T: ProcessCtx>(linker: &mut wasmtime::Linker<T>) -> wasmtime::Result<()> {
    process::register(linker)?;
    message::register(linker)?;
    registry::register(linker)?;
    timer::register(linker)?;
    net::register(linker)?;
    Ok(())
}
