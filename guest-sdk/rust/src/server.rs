//! Servers in the spirit of Erlang/OTP's `gen_server`: a process that holds
//! a state and handles calls (a typed request and its reply, with a
//! time-out), casts (requests without a reply) and everything else that
//! arrives (plain messages, timers, `EXIT` and `DOWN` events), and cleans up
//! in `terminate`.
//!
//! ```ignore
//! use troupe::{CallResult, Server, ServerRef, ExitReason, Caller};
//!
//! struct Counter(u64);
//!
//! impl Server for Counter {
//!     type Arg = u64;
//!     type Call = ();       // "what is the count?"
//!     type Reply = u64;
//!     type Cast = u64;      // "add this"
//!     type Info = ();
//!
//!     fn init(start: u64) -> Result<Self, ExitReason> {
//!         Ok(Counter(start))
//!     }
//!     fn handle_call(&mut self, _: (), _: Caller<u64>) -> CallResult<u64> {
//!         CallResult::Reply(self.0)
//!     }
//!     fn handle_cast(&mut self, n: u64) -> troupe::Next {
//!         self.0 += n;
//!         troupe::Next::Continue
//!     }
//! }
//!
//! let counter = Counter::start_link(10)?;
//! counter.cast(5)?;
//! assert_eq!(counter.call((), Duration::from_secs(5))?, 15);
//! ```
//!
//! # How it maps to `gen_server`
//!
//! | `gen_server` | here |
//! |---|---|
//! | `start_link(Mod, Args, [])` | [`Server::start_link`] (waits for `init`) |
//! | `start_link({local, Name}, ...)` | [`Server::start_link_named`] |
//! | `init/1` returning `{ok, S}` / `{error, R}` | [`Server::init`] returning `Ok` / `Err` |
//! | `call(S, Req, Timeout)` | [`call`], [`ServerRef::call`] |
//! | `cast(S, Req)` | [`cast`], [`ServerRef::cast`] |
//! | `Pid ! Msg`, `erlang:send_after` | [`ServerRef::info`], [`ServerRef::info_after`] |
//! | `{reply, R, S}`, `{noreply, S}`, `{stop, Why, R, S}` | [`CallResult`] |
//! | `{noreply, S}`, `{stop, Why, S}` | [`Next`] |
//! | `reply(From, R)` | [`Caller::reply`] |
//! | `handle_info({'EXIT', P, R})`, `handle_info({'DOWN', ...})` | [`Server::handle_info`] with [`Event::Exit`] / [`Event::Down`] |
//! | `terminate/2` | [`Server::terminate`] |
//! | `stop(S, Reason, Timeout)` | [`ServerRef::stop`] |
//!
//! As in OTP, a server that traps exits ([`trap_exit`](crate::trap_exit) in
//! `init`) stops with the same reason when its parent (the process that
//! started it: for a supervised server, its supervisor) sends it an exit
//! signal, calling `terminate` first; other `EXIT`s go to `handle_info`.
//!
//! Differences from OTP: there is no `code_change`, `format_status`,
//! `{continue, ...}` or `timeout` return (use [`ServerRef::info_after`]);
//! hibernation is there ([`Next::Hibernate`], [`CallResult::ReplyHibernate`],
//! `HIBERNATE_AFTER`); `init` cannot return `ignore`; and since a
//! panic aborts a Wasm process, `terminate` is not called when a callback
//! panics (the process simply dies with the trap as its reason).

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use troupe_abi::tag;

use crate::message::{decode, encode, receive_matching, send_value};
use crate::process::next_reply_tag;
use crate::signal::{demonitor_surely, is_down_of, system_event};
use crate::spawn::{entry_params, spawn_function};
use crate::{
    exit, monitor, receive_down_from, receive_exit_from, register, self_pid, send_after, whereis,
    Event, ExitReason, Mailbox, Pid, Process, ReceiveError, SendError, SpawnError, SpawnOptions,
    TimerRef,
};

/// A server's behaviour: its state is `Self`, built by [`init`](Self::init)
/// in the server's own process.
///
/// All message types cross process boundaries, so they are encoded with
/// bincode (`Serialize + DeserializeOwned`).
pub trait Server: Sized + 'static {
    /// What [`init`](Self::init) is started with.
    type Arg: Serialize + DeserializeOwned;
    /// The requests of [`call`].
    type Call: Serialize + DeserializeOwned;
    /// The replies to calls (use an enum when requests answer differently).
    type Reply: Serialize + DeserializeOwned;
    /// The requests of [`cast`] (`()` if there are none).
    type Cast: Serialize + DeserializeOwned;
    /// Plain messages for [`handle_info`](Self::handle_info): sent with
    /// [`ServerRef::info`] or by a timer ([`ServerRef::info_after`]); `()` if
    /// there are none.
    type Info: Serialize + DeserializeOwned;

    /// Hibernate (see [`Next::Hibernate`]) whenever no message has come for
    /// this long, as with OTP's `{hibernate_after, Time}` start option;
    /// `Some(Duration::ZERO)`: whenever the mailbox is empty, so from right
    /// after `init`. `None` (the default): only when a handler asks.
    const HIBERNATE_AFTER: Option<Duration> = None;

    /// Builds the state, in the new process. The starter waits until this
    /// returns: `Err(reason)` fails the start with `reason` (the process
    /// ends normally, as with OTP 26's `{error, Reason}`, so a linked
    /// starter lives on). Call [`trap_exit`](crate::trap_exit)`(true)` here to
    /// receive exit signals as events (and so get `terminate` called when
    /// the parent shuts the server down).
    fn init(arg: Self::Arg) -> Result<Self, ExitReason>;

    /// Handles a request sent with [`call`]. `from` is the caller: keep it
    /// and return [`CallResult::NoReply`] to answer later with
    /// [`Caller::reply`].
    fn handle_call(
        &mut self,
        request: Self::Call,
        from: Caller<Self::Reply>,
    ) -> CallResult<Self::Reply>;

    /// Handles a request sent with [`cast`]. By default: ignores it.
    fn handle_cast(&mut self, request: Self::Cast) -> Next {
        let _ = request;
        Next::Continue
    }

    /// Handles everything else: an [`Event::Message`] (an `Info` sent with
    /// [`ServerRef::info`] or a timer), an [`Event::Exit`] (this server
    /// traps exits) or an [`Event::Down`] (a monitor fired). By default:
    /// ignores it.
    fn handle_info(&mut self, info: Event<Self::Info>) -> Next {
        let _ = info;
        Next::Continue
    }

    /// Called before the server ends by its own decision (a [`Next::Stop`]
    /// or [`CallResult::Stop`]), by [`ServerRef::stop`], or because its
    /// parent sent it an exit signal while it traps exits. Not called when
    /// it is killed, dies of a link without trapping exits, or panics.
    fn terminate(&mut self, reason: &ExitReason) {
        let _ = reason;
    }

    /// Starts the server in a new process, unlinked, and waits until its
    /// [`init`](Self::init) has returned.
    fn start(arg: Self::Arg) -> Result<ServerRef<Self>, StartError> {
        start_with(arg, StartOptions::new())
    }

    /// Starts the server in a new process linked to this one, and waits
    /// until its [`init`](Self::init) has returned.
    fn start_link(arg: Self::Arg) -> Result<ServerRef<Self>, StartError> {
        start_with(arg, StartOptions::new().link())
    }

    /// [`start`](Self::start), registering the server under `name` before
    /// `init` runs: [`StartError::AlreadyStarted`] if the name is taken.
    fn start_named(name: &str, arg: Self::Arg) -> Result<ServerRef<Self>, StartError> {
        start_with(arg, StartOptions::new().name(name))
    }

    /// [`start_link`](Self::start_link) and [`start_named`](Self::start_named).
    fn start_link_named(name: &str, arg: Self::Arg) -> Result<ServerRef<Self>, StartError> {
        start_with(arg, StartOptions::new().link().name(name))
    }
}

/// What [`Server::handle_call`] decided.
#[derive(Debug)]
pub enum CallResult<R> {
    /// Answer the caller with this and go on.
    Reply(R),
    /// Answer the caller with this, then wait for the next message
    /// hibernated (OTP's `{reply, R, State, hibernate}`; see
    /// [`Next::Hibernate`]).
    ReplyHibernate(R),
    /// Do not answer now (the handler kept the [`Caller`] to answer later)
    /// and go on.
    NoReply,
    /// Answer the caller (if `Some`), then terminate with the reason.
    Stop(ExitReason, Option<R>),
}

/// What [`Server::handle_cast`] and [`Server::handle_info`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Go on.
    Continue,
    /// Go on, waiting for the next message hibernated (OTP's `{noreply,
    /// State, hibernate}`): the process gives up its instance until a
    /// message arrives, and its memory is kept compressed (see
    /// [`hibernate`](crate::hibernate)). For servers that wait long between
    /// messages; waking costs about a spawn.
    Hibernate,
    /// Call [`Server::terminate`], then end with this reason.
    Stop(ExitReason),
}

/// The process that made a [`call`], and the tag it waits on: what
/// `gen_server` calls `From`. Answer with [`reply`](Self::reply).
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Caller<R> {
    pid: Pid,
    tag: u64,
    #[serde(skip)]
    _reply: PhantomData<fn(R)>,
}

impl<R> Caller<R> {
    /// The caller's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }
}

impl<R: Serialize> Caller<R> {
    /// Answers the call (`gen_server:reply/2`). A caller that has gone, or
    /// gave up waiting, never sees it.
    pub fn reply(&self, value: R) -> Result<(), SendError> {
        send_value(self.pid, self.tag, &value)
    }
}

impl<R> Clone for Caller<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for Caller<R> {}
impl<R> fmt::Debug for Caller<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Caller({}, {:#x})", self.pid, self.tag)
    }
}

/// The messages of a server's mailbox.
#[derive(Serialize, Deserialize)]
enum Msg<C, R, K, I> {
    Call(C, Caller<R>),
    Cast(K),
    Info(I),
    Stop(ExitReason),
}

type MsgOf<S> =
    Msg<<S as Server>::Call, <S as Server>::Reply, <S as Server>::Cast, <S as Server>::Info>;

/// A running server: a pid that knows the server's types. `Copy`, and
/// encoded in messages as the pid alone.
pub struct ServerRef<S> {
    pid: Pid,
    _server: PhantomData<fn(S)>,
}

impl<S> ServerRef<S> {
    /// The server at `pid` (which you claim runs `S`).
    pub fn from_pid(pid: Pid) -> Self {
        ServerRef {
            pid,
            _server: PhantomData,
        }
    }

    /// The server's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The server registered under `name`, if any.
    pub fn whereis(name: &str) -> Option<Self> {
        whereis(name).map(Self::from_pid)
    }
}

impl<S: Server> ServerRef<S> {
    /// The calling process, seen as a server of type `S` (from inside its
    /// callbacks).
    pub fn this() -> Self {
        Self::from_pid(self_pid())
    }

    /// Sends a request and waits at most `timeout` for the reply. See
    /// [`call`].
    pub fn call(&self, request: S::Call, timeout: Duration) -> Result<S::Reply, CallError> {
        call(self, request, timeout)
    }

    /// Sends a request without waiting. See [`cast`].
    pub fn cast(&self, request: S::Cast) -> Result<(), SendError> {
        cast(self, request)
    }

    /// Sends a plain message, which the server gets in
    /// [`Server::handle_info`] as an [`Event::Message`].
    pub fn info(&self, msg: S::Info) -> Result<(), SendError> {
        send_value(
            self.pid,
            tag::DATA,
            &Msg::<S::Call, S::Reply, S::Cast, S::Info>::Info(msg),
        )
    }

    /// Has `msg` sent to the server's [`Server::handle_info`] after `delay`
    /// (`erlang:send_after/3`); cancel with
    /// [`cancel_timer`](crate::cancel_timer).
    pub fn info_after(&self, msg: S::Info, delay: Duration) -> TimerRef {
        let process: Process<MsgOf<S>> = Process::from_pid(self.pid);
        send_after(&process, &Msg::Info(msg), delay)
    }

    /// Asks the server to terminate with `reason` (calling its
    /// [`Server::terminate`]) and waits at most `timeout` until it has ended
    /// (`gen_server:stop/3`). `Err(Exit(r))` if it ended with another
    /// reason `r`.
    pub fn stop(&self, reason: ExitReason, timeout: Duration) -> Result<(), CallError> {
        let m = monitor(self.pid);
        let msg: MsgOf<S> = Msg::Stop(reason.clone());
        if send_value(self.pid, tag::DATA, &msg).is_err() {
            demonitor_surely(m);
            return Err(CallError::NoProc);
        }
        match receive_down_from(m, Some(timeout)) {
            Ok(r) if r == reason => Ok(()),
            Ok(ExitReason::NoProc) => Err(CallError::NoProc),
            Ok(r) => Err(CallError::Exit(r)),
            Err(_) => {
                demonitor_surely(m);
                Err(CallError::Timeout)
            }
        }
    }
}

// Manual impls: none of them needs anything of `S`.
impl<S> Clone for ServerRef<S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for ServerRef<S> {}
impl<S> PartialEq for ServerRef<S> {
    fn eq(&self, other: &Self) -> bool {
        self.pid == other.pid
    }
}
impl<S> Eq for ServerRef<S> {}
impl<S> fmt::Debug for ServerRef<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerRef({})", self.pid)
    }
}
impl<S> fmt::Display for ServerRef<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.pid.fmt(f)
    }
}
impl<S> Serialize for ServerRef<S> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        self.pid.serialize(serializer)
    }
}
impl<'de, S> Deserialize<'de> for ServerRef<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Pid::deserialize(deserializer).map(Self::from_pid)
    }
}

/// A [`call`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// No reply in time. The server may still handle the request; its late
    /// reply is dropped.
    Timeout,
    /// The server does not exist (it ended before the call, or no process
    /// has the name).
    NoProc,
    /// The server ended with this reason before replying.
    Exit(ExitReason),
    /// A process cannot call itself (it would wait for itself).
    CallingSelf,
    /// The reply does not decode as the server's `Reply` type.
    Malformed(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout => write!(f, "call timed out"),
            CallError::NoProc => write!(f, "call failed: no such server"),
            CallError::Exit(reason) => write!(f, "the server ended during the call: {reason}"),
            CallError::CallingSelf => write!(f, "a server cannot call itself"),
            CallError::Malformed(e) => write!(f, "malformed reply: {e}"),
        }
    }
}

impl std::error::Error for CallError {}

/// Sends `request` to `server` and waits at most `timeout` for its reply
/// (`gen_server:call/3`).
///
/// The caller monitors the server while it waits, so a server that dies
/// before replying gives [`CallError::Exit`] with its reason at once (or
/// [`CallError::NoProc`] if it was not there), not a time-out. Other
/// messages that arrive meanwhile stay queued, in order (see
/// [`receive_matching`]). `Duration::MAX` waits forever, as `infinity`.
pub fn call<S: Server>(
    server: &ServerRef<S>,
    request: S::Call,
    timeout: Duration,
) -> Result<S::Reply, CallError> {
    let pid = server.pid;
    let me = self_pid();
    if pid == me {
        return Err(CallError::CallingSelf);
    }
    let m = monitor(pid);
    let reply_tag = next_reply_tag();
    let msg: MsgOf<S> = Msg::Call(
        request,
        Caller {
            pid: me,
            tag: reply_tag,
            _reply: PhantomData,
        },
    );
    if send_value(pid, tag::DATA, &msg).is_err() {
        demonitor_surely(m);
        return Err(CallError::NoProc);
    }
    enum Got<R> {
        Reply(Result<R, String>),
        Down(ExitReason),
    }
    let got = receive_matching(Some(timeout), |msg| {
        if msg.tag == reply_tag {
            Ok(Got::Reply(decode::<S::Reply>(&msg.data)))
        } else if is_down_of(&msg, m) {
            match system_event::<()>(msg.tag, msg.from, &msg.data) {
                Some(Event::Down { reason, .. }) => Ok(Got::Down(reason)),
                _ => Ok(Got::Down(ExitReason::NoProc)),
            }
        } else {
            Err(msg)
        }
    });
    match got {
        Ok(Got::Reply(reply)) => {
            demonitor_surely(m);
            reply.map_err(CallError::Malformed)
        }
        Ok(Got::Down(ExitReason::NoProc)) => Err(CallError::NoProc),
        Ok(Got::Down(reason)) => Err(CallError::Exit(reason)),
        Err(_) => {
            demonitor_surely(m);
            crate::message::abandon_reply_tag(reply_tag);
            Err(CallError::Timeout)
        }
    }
}

/// [`call`] to the server registered under `name` (looked up now, so a
/// restarted server is found under its name).
pub fn call_named<S: Server>(
    name: &str,
    request: S::Call,
    timeout: Duration,
) -> Result<S::Reply, CallError> {
    match ServerRef::<S>::whereis(name) {
        Some(server) => call(&server, request, timeout),
        None => Err(CallError::NoProc),
    }
}

/// Sends `request` to `server` without waiting (`gen_server:cast/2`). `Ok`
/// means it was queued, not handled; the only error is that the server does
/// not exist.
pub fn cast<S: Server>(server: &ServerRef<S>, request: S::Cast) -> Result<(), SendError> {
    let msg: MsgOf<S> = Msg::Cast(request);
    send_value(server.pid, tag::DATA, &msg)
}

/// Starting a server failed.
#[derive(Clone, Debug, PartialEq)]
pub enum StartError {
    /// The process could not be spawned.
    Spawn(SpawnError),
    /// The name is taken by this process (OTP's `{already_started, Pid}`).
    AlreadyStarted(Pid),
    /// `init` returned this error, or the server ended with this reason
    /// before `init` returned (a panic: then a linked starter that does not
    /// trap exits ends with it too, as in OTP).
    Exit(ExitReason),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Spawn(e) => e.fmt(f),
            StartError::AlreadyStarted(pid) => write!(f, "already started as {pid}"),
            StartError::Exit(reason) => write!(f, "the server did not start: {reason}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<SpawnError> for StartError {
    fn from(e: SpawnError) -> Self {
        StartError::Spawn(e)
    }
}

/// How [`start_with`] starts a server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// Link it to the caller.
    pub link: bool,
    /// Register it under this name (before `init`).
    pub name: Option<String>,
    /// Its spawn options (limits, args...); their `link` is replaced by
    /// this `link`.
    pub spawn: SpawnOptions,
}

impl StartOptions {
    /// Unlinked, unnamed, inheriting everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Links the server to the caller.
    pub fn link(mut self) -> Self {
        self.link = true;
        self
    }

    /// Registers the server under `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Spawns the server with these options (for example a memory limit).
    pub fn spawn_options(mut self, options: SpawnOptions) -> Self {
        self.spawn = options;
        self
    }
}

/// Starts server `S` with `arg` as `options` say, and waits until its
/// [`Server::init`] has returned.
pub fn start_with<S: Server>(
    arg: S::Arg,
    options: StartOptions,
) -> Result<ServerRef<S>, StartError> {
    let mut spawn = options.spawn;
    spawn.link = options.link;
    let (ack, ack_tag) = new_ack();
    let mut bytes = encode(&(ack, options.name));
    bytes.extend_from_slice(&encode(&arg));
    let pid = spawn_function(&spawn, server_params::<S>(), &bytes)?;
    wait_started(pid, ack_tag).map(ServerRef::from_pid)
}

/// The acknowledgement a starting server sends once `init` returned (then,
/// on an error, it ends normally).
pub(crate) type Ack = Result<(), NotStarted>;

/// Why a server did not start.
#[derive(Serialize, Deserialize)]
pub(crate) enum NotStarted {
    /// Its name is taken by this process.
    Name(Pid),
    /// `init` returned this error.
    Init(ExitReason),
}

/// A fresh acknowledgement handle to this process, and its tag.
pub(crate) fn new_ack() -> (Caller<Ack>, u64) {
    let tag = next_reply_tag();
    let caller = Caller {
        pid: self_pid(),
        tag,
        _reply: PhantomData,
    };
    (caller, tag)
}

/// The `__troupe_entry` parameters that run server `S`.
pub(crate) fn server_params<S: Server>() -> [i64; 2] {
    entry_params(server_main::<S>)
}

/// Waits until the server just spawned as `pid` acknowledges its start (on
/// `ack_tag`) or ends. Other messages stay queued.
pub(crate) fn wait_started(pid: Pid, ack_tag: u64) -> Result<Pid, StartError> {
    let m = monitor(pid);
    enum Got {
        Ack(Ack),
        Down(ExitReason),
    }
    let got = receive_matching(None, |msg| {
        if msg.tag == ack_tag {
            Ok(Got::Ack(decode::<Ack>(&msg.data).unwrap_or_else(|e| {
                Err(NotStarted::Init(ExitReason::Custom(
                    format!("malformed start acknowledgement: {e}").into_bytes(),
                )))
            })))
        } else if is_down_of(&msg, m) {
            match system_event::<()>(msg.tag, msg.from, &msg.data) {
                Some(Event::Down { reason, .. }) => Ok(Got::Down(reason)),
                _ => Ok(Got::Down(ExitReason::NoProc)),
            }
        } else {
            Err(msg)
        }
    })
    .expect("a receive without time-out timed out");
    let reason = match got {
        Got::Ack(Ok(())) => {
            demonitor_surely(m);
            return Ok(pid);
        }
        Got::Ack(Err(why)) => {
            // It ends at once, normally.
            let _ = receive_down_from(m, None);
            forget_exit_of(pid);
            return Err(match why {
                NotStarted::Name(owner) => StartError::AlreadyStarted(owner),
                NotStarted::Init(reason) => StartError::Exit(reason),
            });
        }
        Got::Down(reason) => reason,
    };
    forget_exit_of(pid);
    Err(StartError::Exit(reason))
}

/// Drops the EXIT message of `pid` if there is one (a linked process that
/// ended while this one traps exits). A process's EXIT messages are queued
/// before its DOWN messages, so after its DOWN this one is already here.
fn forget_exit_of(pid: Pid) {
    let _ = receive_exit_from(pid, Some(Duration::ZERO));
}

/// A server's spawn argument: the acknowledgement handle and name, then the
/// argument of `init` (this layout lets a supervisor build it from an
/// already encoded argument).
#[derive(Serialize, Deserialize)]
struct ServerStart<A> {
    ack: Caller<Ack>,
    name: Option<String>,
    arg: A,
}

/// A server's process.
fn server_main<S: Server>(start: ServerStart<S::Arg>, mailbox: Mailbox<MsgOf<S>>) {
    let parent = start.ack.pid();
    if let Some(name) = &start.name {
        if register(name, self_pid()).is_err() {
            let owner = whereis(name).unwrap_or(Pid(0));
            let _ = start.ack.reply(Err(NotStarted::Name(owner)));
            return;
        }
    }
    let state = match S::init(start.arg) {
        Ok(state) => state,
        Err(reason) => {
            // OTP 26's `{error, Reason}`: the starter gets the reason, and
            // the process ends normally so that it kills no linked starter.
            let _ = start.ack.reply(Err(NotStarted::Init(reason)));
            return;
        }
    };
    let _ = start.ack.reply(Ok(()));
    serve((state, parent), mailbox)
}

/// A started server's loop (also what it wakes in after hibernating).
fn serve<S: Server>((mut state, parent): (S, Pid), mailbox: Mailbox<MsgOf<S>>) {
    loop {
        let event = match mailbox.receive_event_timeout(S::HIBERNATE_AFTER) {
            Ok(event) => event,
            Err(ReceiveError::Malformed { from, error }) => {
                eprintln!(
                    "troupe: server {} dropped a message from {from} that is not one of its \
                     messages: {error}",
                    self_pid()
                );
                continue;
            }
            Err(ReceiveError::Timeout) => crate::hibernate((state, parent), serve::<S>),
        };
        let next = match event {
            Event::Message { from, msg } => match msg {
                Msg::Call(request, caller) => match state.handle_call(request, caller) {
                    CallResult::Reply(reply) => {
                        let _ = caller.reply(reply);
                        Next::Continue
                    }
                    CallResult::ReplyHibernate(reply) => {
                        let _ = caller.reply(reply);
                        Next::Hibernate
                    }
                    CallResult::NoReply => Next::Continue,
                    CallResult::Stop(reason, reply) => {
                        if let Some(reply) = reply {
                            let _ = caller.reply(reply);
                        }
                        Next::Stop(reason)
                    }
                },
                Msg::Cast(request) => state.handle_cast(request),
                Msg::Info(msg) => state.handle_info(Event::Message { from, msg }),
                Msg::Stop(reason) => Next::Stop(reason),
            },
            // OTP: an exit signal from the parent stops a trapping server.
            Event::Exit { from, reason } if from == parent => Next::Stop(reason),
            Event::Exit { from, reason } => state.handle_info(Event::Exit { from, reason }),
            Event::Down {
                monitor,
                pid,
                reason,
            } => state.handle_info(Event::Down {
                monitor,
                pid,
                reason,
            }),
        };
        match next {
            Next::Continue => {}
            Next::Hibernate => crate::hibernate((state, parent), serve::<S>),
            Next::Stop(reason) => {
                state.terminate(&reason);
                exit(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::decode;

    #[test]
    fn a_start_argument_is_its_header_then_the_encoded_init_argument() {
        // A supervisor builds it from an argument encoded long before.
        let ack = Caller::<Ack> {
            pid: Pid(7),
            tag: tag::REPLY_BASE + 3,
            _reply: PhantomData,
        };
        let name = Some("kv".to_string());
        let arg = (42u32, vec!["x".to_string()]);
        let mut bytes = encode(&(ack, &name));
        bytes.extend_from_slice(&encode(&arg));
        let start: ServerStart<(u32, Vec<String>)> = decode(&bytes).unwrap();
        assert_eq!(
            (start.ack.pid(), start.ack.tag),
            (Pid(7), tag::REPLY_BASE + 3)
        );
        assert_eq!(start.name, name);
        assert_eq!(start.arg, arg);
    }

    #[test]
    fn a_caller_is_a_reply_handle_on_the_wire() {
        let caller = Caller::<u8> {
            pid: Pid(3),
            tag: tag::REPLY_BASE,
            _reply: PhantomData,
        };
        let mut expected = 3u64.to_le_bytes().to_vec();
        expected.extend_from_slice(&tag::REPLY_BASE.to_le_bytes());
        assert_eq!(encode(&caller), expected);
        let reply: crate::Reply<u8> = decode(&encode(&caller)).unwrap();
        assert_eq!((reply.pid(), reply.tag()), (Pid(3), tag::REPLY_BASE));
    }
}
