//! Supervisors in the spirit of Erlang/OTP's `supervisor`: a process that
//! starts children, watches them, restarts them when they end (as their
//! [`Restart`] policy and the [`Strategy`] say), gives up when they fail too
//! often, and stops them in reverse order.
//!
//! ```ignore
//! use troupe::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
//!
//! let spec = SupervisorSpec::new(Strategy::OneForOne)
//!     .intensity(5, Duration::from_secs(10))     // at most 5 restarts in 10 s
//!     .child(ChildSpec::server::<KvStore>("kv", ()).name("kv"))
//!     .child(ChildSpec::worker("ticker", 100u64, ticker));
//! let sup = Supervisor::start_link(spec)?;        // all children are running
//! println!("{:?}", sup.which_children()?);
//! ```
//!
//! # How it works
//!
//! A supervisor is a [`Server`] (like OTP's, which is a `gen_server`): it
//! traps exits and is linked to each child, so a child that ends sends it an
//! `EXIT` event. Its requests ([`SupervisorRef::start_child`],
//! [`which_children`](SupervisorRef::which_children)...) are calls.
//!
//! A [`ChildSpec`] says how to start its child as data: the table indices
//! of a function of this module (as [`spawn`](crate::spawn) passes them) and
//! its encoded argument, so specs can be carried in messages (a supervisor's
//! own spec is its spawn argument, and [`SupervisorRef::start_child`] sends
//! one). Function indices are only meaningful in the module that made them:
//! a spec of a function or server child must be used by a process of the
//! same module. A [`ChildSpec::module`] child is another module's `_start`
//! (a Go or Rust program's `main`), named by its VM-wide handle, so it can
//! be supervised from any module.
//!
//! Waiting for one particular message (the acknowledgement of a starting
//! child, the end of a child it is stopping) is a selective receive on a
//! condition the VM's tag selection cannot express: the supervisor uses
//! [`receive_matching`](crate::receive_matching), which keeps every other
//! message (another child's `EXIT`, a call) queued in order in the
//! process's stash, to be handled next.
//!
//! # Semantics (those of OTP)
//!
//! - Children start in the order of the spec; each start waits until the
//!   child runs (for a [`Server`] child: until its `init` returned). A child
//!   that fails to start makes the supervisor's own start fail, after the
//!   children already started are stopped.
//! - Stopping a child (a restart of the others, a shutdown, or
//!   [`SupervisorRef::terminate_child`]) follows its [`Shutdown`]: exit
//!   signal `Shutdown`, then `kill` if it has not ended within the time-out
//!   (or `kill` at once, or wait forever). Children stop in reverse order.
//! - [`Restart::Permanent`] children are always restarted,
//!   [`Restart::Transient`] ones only after an abnormal end (not `Normal`
//!   nor `Shutdown`), [`Restart::Temporary`] ones never (they are removed).
//! - More than `intensity` restarts within `period` makes the supervisor
//!   stop all its children and exit with reason `Shutdown`, which its own
//!   supervisor sees (as in OTP; it also prints a report on stderr).
//! - An exit signal from the supervisor's parent stops its children (in
//!   reverse order) and ends it with the same reason.
//!
//! Not implemented: `simple_one_for_one` (use dynamic children with
//! [`SupervisorRef::start_child`]), significant children and
//! `auto_shutdown`, and `ignore` from a child's start.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::message::encode;
use crate::server::{new_ack, server_params, wait_started, CallResult, Caller, Next, Server};
use crate::spawn::{entry_params, spawn_function};
use crate::{
    kill, monitor, receive_down_from, receive_exit_from, register, send_exit, trap_exit, unlink,
    CallError, Event, ExitReason, Mailbox, Module, Pid, ServerRef, SpawnOptions, StartError,
};
use troupe_abi::val;

/// Which children a supervisor restarts when one ends and must be
/// restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// That child only.
    OneForOne,
    /// All children: the others are stopped (in reverse order), then all are
    /// started again (in order).
    OneForAll,
    /// That child and the children started after it.
    RestForOne,
}

/// When a child is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only if it ended abnormally (not `Normal` and not `Shutdown`).
    Transient,
    /// Never: it is removed from the supervisor when it ends.
    Temporary,
}

/// How a child is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shutdown {
    /// Killed at once (untrappable).
    BrutalKill,
    /// Sent exit signal `Shutdown`, then killed if it has not ended within
    /// the time.
    Timeout(Duration),
    /// Sent exit signal `Shutdown`, and waited for (supervisors' default).
    Infinity,
}

/// Whether a child is a worker or a supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildKind {
    /// Anything but a supervisor.
    Worker,
    /// A supervisor.
    Supervisor,
}

/// How a child's process is started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Start {
    /// `fn(A, Mailbox<M>)`: running as soon as spawned.
    Function {
        params: [i64; 2],
        arg: Vec<u8>,
        options: SpawnOptions,
    },
    /// A [`Server`]: running once its `init` returned.
    Server {
        params: [i64; 2],
        arg: Vec<u8>,
        options: SpawnOptions,
    },
    /// Another module's `_start` (its `main`, in any language): running as
    /// soon as spawned.
    Module {
        module: Module,
        arg: Vec<u8>,
        options: SpawnOptions,
    },
}

/// How to start, restart and stop one child (OTP's child specification).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildSpec {
    id: String,
    start: Start,
    name: Option<String>,
    /// When it is restarted (default: permanent).
    pub restart: Restart,
    /// How it is stopped (default: 5 s for workers, infinity for
    /// supervisors).
    pub shutdown: Shutdown,
    /// Worker or supervisor.
    pub kind: ChildKind,
}

/// OTP's default shutdown time-out of workers.
const WORKER_SHUTDOWN: Duration = Duration::from_secs(5);

impl ChildSpec {
    /// A child running `f(arg, mailbox)` (as [`spawn`](crate::spawn) would):
    /// a permanent worker.
    pub fn worker<A, M>(id: impl Into<String>, arg: A, f: fn(A, Mailbox<M>)) -> Self
    where
        A: Serialize + DeserializeOwned,
        M: DeserializeOwned,
    {
        ChildSpec {
            id: id.into(),
            start: Start::Function {
                params: entry_params(f),
                arg: encode(&arg),
                options: SpawnOptions::new(),
            },
            name: None,
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(WORKER_SHUTDOWN),
            kind: ChildKind::Worker,
        }
    }

    /// A child running server `S` started with `arg`: a permanent worker,
    /// counted as started once its `init` returned.
    pub fn server<S: Server>(id: impl Into<String>, arg: S::Arg) -> Self {
        ChildSpec {
            id: id.into(),
            start: Start::Server {
                params: server_params::<S>(),
                arg: encode(&arg),
                options: SpawnOptions::new(),
            },
            name: None,
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(WORKER_SHUTDOWN),
            kind: ChildKind::Worker,
        }
    }

    /// A child running `module`'s `_start` (its `main`: a Go or Rust
    /// program) with `arg` (bincode) as its spawn argument: a permanent
    /// worker. Set its argv and environment with
    /// [`spawn_options`](ChildSpec::spawn_options), for example
    /// `SpawnOptions::new().args(["worker", "--role=cache"])`.
    ///
    /// The module is a VM-wide handle ([`Module::from_file`],
    /// [`Module::load`]), so unlike function children this spec is valid in
    /// any process. A program's `main` that returns ends the process
    /// normally; a Go panic or `os.Exit(n)` with `n != 0` ends it with
    /// [`ExitReason::ExitCode`], an abnormal end that a supervisor restarts.
    ///
    /// ```ignore
    /// let worker = Module::from_file("/modules/worker.wasm")?;
    /// let spec = SupervisorSpec::new(Strategy::OneForOne)
    ///     .child(ChildSpec::module("go-worker", worker, &"shard-1").name("shard-1"));
    /// ```
    pub fn module(id: impl Into<String>, module: Module, arg: &impl Serialize) -> Self {
        ChildSpec {
            id: id.into(),
            start: Start::Module {
                module,
                arg: encode(arg),
                options: SpawnOptions::new(),
            },
            name: None,
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(WORKER_SHUTDOWN),
            kind: ChildKind::Worker,
        }
    }

    /// A child supervisor with its own children: a permanent supervisor
    /// with an infinite shutdown time-out (a subtree).
    pub fn supervisor(id: impl Into<String>, spec: SupervisorSpec) -> Self {
        ChildSpec {
            kind: ChildKind::Supervisor,
            shutdown: Shutdown::Infinity,
            ..ChildSpec::server::<Supervisor>(id, spec)
        }
    }

    /// Sets the restart policy.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Registers each incarnation of the child under `name` (a server
    /// before its `init`; a function child right after it is spawned).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Spawns the child with these options (limits such as
    /// [`SpawnOptions::max_memory`] or [`SpawnOptions::fuel`]); the child is
    /// always linked to the supervisor.
    pub fn spawn_options(mut self, options: SpawnOptions) -> Self {
        match &mut self.start {
            Start::Function { options: o, .. }
            | Start::Server { options: o, .. }
            | Start::Module { options: o, .. } => *o = options,
        }
        self
    }

    /// The child's id (unique in its supervisor).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Starts the child, linked to the calling process; waits until it runs.
    fn start_linked(&self) -> Result<Pid, ExitReason> {
        let failed = |e: &dyn fmt::Display| ExitReason::Custom(e.to_string().into_bytes());
        match &self.start {
            Start::Function {
                params,
                arg,
                options,
            } => {
                let options = options.clone().link();
                let pid = spawn_function(&options, *params, arg).map_err(|e| failed(&e))?;
                self.register_child(pid)
            }
            Start::Module {
                module,
                arg,
                options,
            } => {
                let options = options.clone().link();
                let pid = module
                    .spawn_export(val::START, &[], &options, arg)
                    .map_err(|e| failed(&e))?;
                self.register_child(pid)
            }
            Start::Server {
                params,
                arg,
                options,
            } => {
                let options = options.clone().link();
                let (ack, ack_tag) = new_ack();
                let mut bytes = encode(&(ack, &self.name));
                bytes.extend_from_slice(arg);
                let pid = spawn_function(&options, *params, &bytes).map_err(|e| failed(&e))?;
                wait_started(pid, ack_tag).map_err(|e| match e {
                    StartError::Exit(reason) => reason,
                    other => failed(&other),
                })
            }
        }
    }

    /// Registers a just-spawned function or module child under its name,
    /// if it has one (killing it if the name is taken).
    fn register_child(&self, pid: Pid) -> Result<Pid, ExitReason> {
        if let Some(name) = &self.name {
            if let Err(e) = register(name, pid) {
                let _ = kill(pid);
                let _ = receive_exit_from(pid, None);
                return Err(ExitReason::Custom(e.to_string().into_bytes()));
            }
        }
        Ok(pid)
    }
}

/// A supervisor's flags and its children (OTP's `{SupFlags, ChildSpecs}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SupervisorSpec {
    /// Which children are restarted together.
    pub strategy: Strategy,
    /// At most this many restarts...
    pub intensity: u32,
    /// ...within this period, or the supervisor gives up.
    pub period: Duration,
    /// The children, in start order.
    pub children: Vec<ChildSpec>,
}

impl SupervisorSpec {
    /// No children yet, and OTP's default intensity: at most 1 restart in
    /// 5 seconds.
    pub fn new(strategy: Strategy) -> Self {
        SupervisorSpec {
            strategy,
            intensity: 1,
            period: Duration::from_secs(5),
            children: Vec::new(),
        }
    }

    /// At most `max_restarts` restarts within `period`; one more and the
    /// supervisor stops its children and exits with `Shutdown`.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.intensity = max_restarts;
        self.period = period;
        self
    }

    /// Adds a child (started after the ones before it).
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }
}

/// A child as [`SupervisorRef::which_children`] describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildInfo {
    /// Its id.
    pub id: String,
    /// Its current process, if it runs.
    pub pid: Option<Pid>,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Its restart policy.
    pub restart: Restart,
    /// How many times this supervisor restarted it (not in OTP).
    pub restarts: u32,
}

/// [`SupervisorRef::count_children`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildCounts {
    /// Child specifications.
    pub specs: usize,
    /// Children running.
    pub active: usize,
    /// Children that are supervisors.
    pub supervisors: usize,
    /// Children that are workers.
    pub workers: usize,
    /// Restarts done by this supervisor since it started (not in OTP).
    pub restarts: u64,
}

/// A supervisor request failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SupervisorError {
    /// A running child has this id (OTP's `{already_started, Pid}`).
    AlreadyStarted(Pid),
    /// A stopped child has this id (OTP's `already_present`).
    AlreadyPresent,
    /// The child is running (restart, delete).
    Running,
    /// No child has this id.
    NotFound,
    /// The child did not start: the reason it ended with or why it could
    /// not be spawned.
    StartFailed(ExitReason),
    /// The call to the supervisor failed (it is gone).
    #[serde(skip)]
    Call(CallError),
}

impl fmt::Display for SupervisorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SupervisorError::AlreadyStarted(pid) => write!(f, "child already started as {pid}"),
            SupervisorError::AlreadyPresent => write!(f, "a child with this id is present"),
            SupervisorError::Running => write!(f, "the child is running"),
            SupervisorError::NotFound => write!(f, "no child has this id"),
            SupervisorError::StartFailed(reason) => write!(f, "child failed to start: {reason}"),
            SupervisorError::Call(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SupervisorError {}

/// The requests a supervisor answers (see [`SupervisorRef`]'s methods).
// A request lives only between its encoding and the supervisor's answer; on
// wasm32 (4-byte pointers) its largest variant is under the lint's limit.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
pub enum SupervisorCall {
    /// `start_child`.
    StartChild(ChildSpec),
    /// `terminate_child`.
    TerminateChild(String),
    /// `restart_child`.
    RestartChild(String),
    /// `delete_child`.
    DeleteChild(String),
    /// `which_children`.
    WhichChildren,
    /// `count_children`.
    CountChildren,
}

/// A supervisor's replies.
#[derive(Debug, Serialize, Deserialize)]
pub enum SupervisorReply {
    /// To `StartChild` and `RestartChild`.
    Started(Result<Pid, SupervisorError>),
    /// To `TerminateChild` and `DeleteChild`.
    Done(Result<(), SupervisorError>),
    /// To `WhichChildren`.
    Children(Vec<ChildInfo>),
    /// To `CountChildren`.
    Counts(ChildCounts),
}

/// What a supervisor sends itself.
#[derive(Debug, Serialize, Deserialize)]
pub enum SupervisorCast {
    /// Try again to restart the child whose restart failed (OTP's
    /// `try_again_restart`).
    TryAgain(String),
}

/// A running supervisor.
pub type SupervisorRef = ServerRef<Supervisor>;

/// Requests to a supervisor wait as long as they take (OTP's `infinity`).
const FOREVER: Duration = Duration::MAX;

impl ServerRef<Supervisor> {
    fn request(&self, request: SupervisorCall) -> Result<SupervisorReply, SupervisorError> {
        self.call(request, FOREVER).map_err(SupervisorError::Call)
    }

    /// Adds a child and starts it (after the existing ones); stopped in
    /// reverse order like the others. Its id must be new.
    pub fn start_child(&self, spec: ChildSpec) -> Result<Pid, SupervisorError> {
        match self.request(SupervisorCall::StartChild(spec))? {
            SupervisorReply::Started(result) => result,
            other => Err(unexpected_reply(other)),
        }
    }

    /// Stops a child (as its [`Shutdown`] says) and keeps its spec, so that
    /// [`restart_child`](Self::restart_child) can start it again; a temporary
    /// child is removed.
    pub fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        match self.request(SupervisorCall::TerminateChild(id.into()))? {
            SupervisorReply::Done(result) => result,
            other => Err(unexpected_reply(other)),
        }
    }

    /// Starts again a child that is not running.
    pub fn restart_child(&self, id: &str) -> Result<Pid, SupervisorError> {
        match self.request(SupervisorCall::RestartChild(id.into()))? {
            SupervisorReply::Started(result) => result,
            other => Err(unexpected_reply(other)),
        }
    }

    /// Removes the spec of a child that is not running.
    pub fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        match self.request(SupervisorCall::DeleteChild(id.into()))? {
            SupervisorReply::Done(result) => result,
            other => Err(unexpected_reply(other)),
        }
    }

    /// The children, in start order.
    pub fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        match self.request(SupervisorCall::WhichChildren)? {
            SupervisorReply::Children(children) => Ok(children),
            other => Err(unexpected_reply(other)),
        }
    }

    /// How many children there are, of which kind, and running.
    pub fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        match self.request(SupervisorCall::CountChildren)? {
            SupervisorReply::Counts(counts) => Ok(counts),
            other => Err(unexpected_reply(other)),
        }
    }
}

fn unexpected_reply(reply: SupervisorReply) -> SupervisorError {
    SupervisorError::Call(CallError::Malformed(format!(
        "unexpected supervisor reply {reply:?}"
    )))
}

/// A child's state in its supervisor.
struct Child {
    spec: ChildSpec,
    pid: Option<Pid>,
    restarts: u32,
}

/// The supervisor server. Start one with [`Supervisor::start_link`], or as
/// a child with [`ChildSpec::supervisor`].
pub struct Supervisor {
    strategy: Strategy,
    intensity: u32,
    period: Duration,
    children: Vec<Child>,
    /// When the recent restarts happened (within `period`).
    recent: VecDeque<Instant>,
    restarts: u64,
}

impl Supervisor {
    /// Starts a supervisor linked to this process, and waits until all its
    /// children have started (`supervisor:start_link/2`).
    pub fn start_link(spec: SupervisorSpec) -> Result<SupervisorRef, StartError> {
        <Supervisor as Server>::start_link(spec)
    }

    /// [`start_link`](Self::start_link), registered under `name`.
    pub fn start_link_named(name: &str, spec: SupervisorSpec) -> Result<SupervisorRef, StartError> {
        <Supervisor as Server>::start_link_named(name, spec)
    }

    fn find(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.id == id)
    }

    /// Starts child `i`; on success records its pid.
    fn start_child_at(&mut self, i: usize) -> Result<Pid, ExitReason> {
        let pid = self.children[i].spec.start_linked()?;
        self.children[i].pid = Some(pid);
        Ok(pid)
    }

    /// Stops child `i` if it runs, as its shutdown says (OTP's
    /// `shutdown/2`: monitor, unlink, exit signal, kill after the time-out).
    fn stop_child_at(&mut self, i: usize) {
        let Some(pid) = self.children[i].pid.take() else {
            return;
        };
        let m = monitor(pid);
        unlink(pid);
        // An EXIT it sent before the unlink is stale now: the DOWN tells.
        let _ = receive_exit_from(pid, Some(Duration::ZERO));
        let shutdown = self.children[i].spec.shutdown;
        let wait = match shutdown {
            Shutdown::BrutalKill => {
                let _ = kill(pid);
                None
            }
            Shutdown::Timeout(t) => {
                let _ = send_exit(pid, &ExitReason::Shutdown);
                Some(t)
            }
            Shutdown::Infinity => {
                let _ = send_exit(pid, &ExitReason::Shutdown);
                None
            }
        };
        let reason = match receive_down_from(m, wait) {
            Ok(reason) => reason,
            Err(_) => {
                let _ = kill(pid);
                receive_down_from(m, None).unwrap_or(ExitReason::Killed)
            }
        };
        let expected = match shutdown {
            Shutdown::BrutalKill => reason == ExitReason::Killed,
            _ => reason == ExitReason::Shutdown,
        };
        if !expected && reason != ExitReason::NoProc && reason != ExitReason::Normal {
            eprintln!(
                "troupe: supervisor {}: child {:?} ({pid}) did not stop cleanly: {reason}",
                crate::self_pid(),
                self.children[i].spec.id
            );
        }
    }

    /// Stops the children from `from` on, in reverse order; temporary ones
    /// are removed.
    fn stop_children_from(&mut self, from: usize) {
        for i in (from..self.children.len()).rev() {
            self.stop_child_at(i);
        }
        let mut i = from;
        while i < self.children.len() {
            if self.children[i].spec.restart == Restart::Temporary {
                self.children.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Records a restart; `false` if that is one too many.
    fn add_restart(&mut self) -> bool {
        let now = Instant::now();
        self.recent.push_back(now);
        while let Some(&first) = self.recent.front() {
            if now.duration_since(first) > self.period {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.len() <= self.intensity as usize
    }

    /// Child `i` ended with `reason` (or its restart failed) and must be
    /// restarted: restarts it and what the strategy says.
    fn restart(&mut self, i: usize, reason: &ExitReason) -> Next {
        if !self.add_restart() {
            eprintln!(
                "troupe: supervisor {}: child {:?} ended ({reason}): more than {} restarts in \
                 {:?}, shutting down",
                crate::self_pid(),
                self.children[i].spec.id,
                self.intensity,
                self.period
            );
            return Next::Stop(ExitReason::Shutdown);
        }
        self.restarts += 1;
        self.children[i].restarts += 1;
        let id = self.children[i].spec.id.clone();
        let first = match self.strategy {
            Strategy::OneForOne => {
                self.restart_range(i, i + 1);
                return Next::Continue;
            }
            Strategy::OneForAll => 0,
            Strategy::RestForOne => i,
        };
        self.stop_children_from(first);
        // Stopping may have removed temporary children before `i`.
        let first = match self.strategy {
            Strategy::OneForAll => 0,
            _ => self.find(&id).unwrap_or(first),
        };
        self.restart_range(first, self.children.len());
        Next::Continue
    }

    /// Starts the children `from..to` that are not running, in order. The
    /// first that fails is retried later through the mailbox (counting as
    /// another restart), and the ones after it are not started now.
    fn restart_range(&mut self, from: usize, to: usize) {
        for i in from..to {
            if self.children[i].pid.is_some() {
                continue;
            }
            if let Err(reason) = self.start_child_at(i) {
                let id = self.children[i].spec.id.clone();
                eprintln!(
                    "troupe: supervisor {}: restarting child {id:?} failed: {reason}",
                    crate::self_pid()
                );
                let _ = ServerRef::<Supervisor>::this().cast(SupervisorCast::TryAgain(id));
                return;
            }
        }
    }

    fn child_ended(&mut self, pid: Pid, reason: ExitReason) -> Next {
        let Some(i) = self.children.iter().position(|c| c.pid == Some(pid)) else {
            return Next::Continue; // not (or no longer) a child
        };
        self.children[i].pid = None;
        match self.children[i].spec.restart {
            Restart::Temporary => {
                self.children.remove(i);
                Next::Continue
            }
            Restart::Transient if !reason.is_abnormal() => Next::Continue,
            _ => self.restart(i, &reason),
        }
    }
}

impl Server for Supervisor {
    type Arg = SupervisorSpec;
    type Call = SupervisorCall;
    type Reply = SupervisorReply;
    type Cast = SupervisorCast;
    type Info = ();

    fn init(spec: SupervisorSpec) -> Result<Self, ExitReason> {
        trap_exit(true);
        let mut sup = Supervisor {
            strategy: spec.strategy,
            intensity: spec.intensity,
            period: spec.period,
            children: Vec::with_capacity(spec.children.len()),
            recent: VecDeque::new(),
            restarts: 0,
        };
        for child in spec.children {
            let id = child.id.clone();
            if sup.find(&id).is_some() {
                sup.stop_children_from(0);
                return Err(ExitReason::Custom(
                    format!("duplicate child id {id:?}").into_bytes(),
                ));
            }
            sup.children.push(Child {
                spec: child,
                pid: None,
                restarts: 0,
            });
            let i = sup.children.len() - 1;
            if let Err(reason) = sup.start_child_at(i) {
                sup.stop_children_from(0);
                return Err(ExitReason::Custom(
                    format!("failed to start child {id:?}: {reason}").into_bytes(),
                ));
            }
        }
        Ok(sup)
    }

    fn handle_call(
        &mut self,
        request: SupervisorCall,
        _from: Caller<SupervisorReply>,
    ) -> CallResult<SupervisorReply> {
        let reply = match request {
            SupervisorCall::StartChild(spec) => {
                SupervisorReply::Started(match self.find(&spec.id) {
                    Some(i) => Err(match self.children[i].pid {
                        Some(pid) => SupervisorError::AlreadyStarted(pid),
                        None => SupervisorError::AlreadyPresent,
                    }),
                    None => {
                        self.children.push(Child {
                            spec,
                            pid: None,
                            restarts: 0,
                        });
                        let i = self.children.len() - 1;
                        self.start_child_at(i).map_err(|reason| {
                            self.children.pop();
                            SupervisorError::StartFailed(reason)
                        })
                    }
                })
            }
            SupervisorCall::TerminateChild(id) => SupervisorReply::Done(match self.find(&id) {
                Some(i) => {
                    self.stop_child_at(i);
                    if self.children[i].spec.restart == Restart::Temporary {
                        self.children.remove(i);
                    }
                    Ok(())
                }
                None => Err(SupervisorError::NotFound),
            }),
            SupervisorCall::RestartChild(id) => SupervisorReply::Started(match self.find(&id) {
                Some(i) if self.children[i].pid.is_some() => Err(SupervisorError::Running),
                Some(i) => self.start_child_at(i).map_err(SupervisorError::StartFailed),
                None => Err(SupervisorError::NotFound),
            }),
            SupervisorCall::DeleteChild(id) => SupervisorReply::Done(match self.find(&id) {
                Some(i) if self.children[i].pid.is_some() => Err(SupervisorError::Running),
                Some(i) => {
                    self.children.remove(i);
                    Ok(())
                }
                None => Err(SupervisorError::NotFound),
            }),
            SupervisorCall::WhichChildren => SupervisorReply::Children(
                self.children
                    .iter()
                    .map(|c| ChildInfo {
                        id: c.spec.id.clone(),
                        pid: c.pid,
                        kind: c.spec.kind,
                        restart: c.spec.restart,
                        restarts: c.restarts,
                    })
                    .collect(),
            ),
            SupervisorCall::CountChildren => {
                let supervisors = self
                    .children
                    .iter()
                    .filter(|c| c.spec.kind == ChildKind::Supervisor)
                    .count();
                SupervisorReply::Counts(ChildCounts {
                    specs: self.children.len(),
                    active: self.children.iter().filter(|c| c.pid.is_some()).count(),
                    supervisors,
                    workers: self.children.len() - supervisors,
                    restarts: self.restarts,
                })
            }
        };
        CallResult::Reply(reply)
    }

    fn handle_cast(&mut self, request: SupervisorCast) -> Next {
        match request {
            SupervisorCast::TryAgain(id) => match self.find(&id) {
                Some(i) if self.children[i].pid.is_none() => {
                    self.restart(i, &ExitReason::Custom(b"restart failed".to_vec()))
                }
                _ => Next::Continue,
            },
        }
    }

    fn handle_info(&mut self, info: Event<()>) -> Next {
        match info {
            Event::Exit { from, reason } => self.child_ended(from, reason),
            _ => Next::Continue,
        }
    }

    fn terminate(&mut self, _reason: &ExitReason) {
        self.stop_children_from(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::decode;

    fn work(_: u32, _: Mailbox<()>) {}

    #[test]
    fn specs_travel_in_messages() {
        let spec = SupervisorSpec::new(Strategy::RestForOne)
            .intensity(3, Duration::from_millis(1500))
            .child(
                ChildSpec::worker("w", 5u32, work)
                    .restart(Restart::Transient)
                    .name("w")
                    .spawn_options(SpawnOptions::new().max_memory(1 << 20)),
            )
            .child(ChildSpec::supervisor(
                "sub",
                SupervisorSpec::new(Strategy::OneForAll),
            ));
        let back: SupervisorSpec = decode(&encode(&spec)).unwrap();
        assert_eq!(back, spec);
        assert_eq!(back.children[1].kind, ChildKind::Supervisor);
        assert_eq!(back.children[1].shutdown, Shutdown::Infinity);
        assert_eq!(
            back.children[0].shutdown,
            Shutdown::Timeout(WORKER_SHUTDOWN)
        );
    }

    #[test]
    fn intensity_counts_restarts_within_the_period() {
        let mut sup = Supervisor {
            strategy: Strategy::OneForOne,
            intensity: 2,
            period: Duration::from_secs(60),
            children: Vec::new(),
            recent: VecDeque::new(),
            restarts: 0,
        };
        assert!(sup.add_restart());
        assert!(sup.add_restart());
        assert!(
            !sup.add_restart(),
            "a third restart in the period is one too many"
        );
        sup.intensity = 0;
        sup.recent.clear();
        assert!(!sup.add_restart(), "intensity 0: no restart at all");
        sup.intensity = 1;
        sup.period = Duration::ZERO;
        sup.recent.clear();
        assert!(sup.add_restart());
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            sup.add_restart(),
            "restarts older than the period are forgotten"
        );
    }
}
