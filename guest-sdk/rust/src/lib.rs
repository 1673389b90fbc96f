//! The Rust guest SDK of Troupe, an Erlang-style actor runtime for
//! WebAssembly.
//!
//! A Troupe program is an ordinary `wasm32-wasip1` command: its `main` is the
//! root process, run by `troupe run app.wasm`. Each process is a separate
//! instance of a module, with its own linear memory and a mailbox; processes
//! share nothing and talk by copying messages. A process that traps (a panic,
//! `unreachable`, an out-of-bounds access) dies alone.
//!
//! - [`spawn`] starts a function of this module as a new process and returns a
//!   typed handle, [`Process<M>`], to its mailbox.
//! - [`Process::send`] sends an `M` (encoded with bincode 1.3); the receiver
//!   takes it from its [`Mailbox<M>`].
//! - [`Process::request`] sends a message carrying a [`Reply<R>`] handle and
//!   waits for the answer alone (a selective receive on a fresh tag).
//! - [`Module`] and [`SpawnOptions`] spawn other modules' `_start`, with the
//!   argv, environment and preopened directories the parent chooses.
//! - [`send_tagged`] and [`receive_tagged`] are raw messaging on tags of your
//!   own choosing.
//! - [`net`] has TCP and UDP sockets and name resolution (in a VM started
//!   with `--allow-net`), std-like and blocking only the calling process;
//!   sockets move between processes in messages.
//!
//! Everything here wraps the host functions of `host-api/SPEC.md` (see
//! [`sys`]), and uses the constants of [`troupe_abi`]. The crate builds on
//! any target so that its pure parts can be tested, but its process and
//! message functions panic outside `wasm32`.
//!
//! # Example
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use troupe::{spawn, Mailbox, Reply};
//!
//! #[derive(Serialize, Deserialize)]
//! enum Counter {
//!     Add(u64),
//!     Get(Reply<u64>),
//!     Stop,
//! }
//!
//! fn counter(start: u64, mailbox: Mailbox<Counter>) {
//!     let mut total = start;
//!     loop {
//!         match mailbox.receive() {
//!             Counter::Add(n) => total += n,
//!             Counter::Get(reply) => {
//!                 let _ = reply.send(total); // the requester may have gone
//!             }
//!             Counter::Stop => return, // the process ends normally
//!         }
//!     }
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let c = spawn(10, counter)?;
//!     println!("spawned counter {}", c.pid());
//!     for n in 1..=4 {
//!         c.send(Counter::Add(n))?;
//!     }
//!     let total: u64 = c.request(Counter::Get)?;
//!     assert_eq!(total, 20);
//!     c.send(Counter::Stop)?;
//!     Ok(())
//! }
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip1` and run with
//! `troupe run target/wasm32-wasip1/release/app.wasm`.
//!
//! # How spawning a function works
//!
//! The SDK exports `__troupe_entry(a: i32, b: i32)`. [`spawn`] asks the VM to
//! start that export in a fresh instance of the caller's own module, with `a`
//! the function-table index of a trampoline monomorphised for the argument
//! and message types and `b` that of the user's function (table indices are
//! the same in every instance of a module). The trampoline receives the spawn
//! argument (tag [`SPAWN_ARG`](troupe_abi::tag::SPAWN_ARG)), decodes it and
//! calls the function with the child's [`Mailbox`].
//!
//! rustc exports `#[export_name]` functions of dependencies from a
//! `wasm32-wasip1` binary, so every program that depends on this crate has
//! the `__troupe_entry` export; no linker flag is needed. The child does not
//! run `main` (nor `_start`); wasi-libc sets up args, environment and
//! preopened directories lazily, and wasm-ld makes every export of a command
//! module run the static constructors first if it has any, so std works in
//! the child as in `main`.
//!
//! # Fault tolerance
//!
//! Erlang/OTP's model: [`link`], [`monitor`], [`trap_exit`], [`kill`] and
//! [`send_exit`] with [`ExitReason`]s, the name registry ([`register`],
//! [`whereis`]), timers ([`send_after`]), per-process limits
//! ([`SpawnOptions::max_memory`], [`SpawnOptions::fuel`]); and on top of
//! them a [`Server`] (a `gen_server`) and a [`Supervisor`] (OTP's
//! `supervisor`, with its strategies, restart policies and intensity). A
//! panic in a spawned process ends it with [`ExitReason::Trap`] carrying
//! the panic's message.
//!
//! [`receive_matching`] is Erlang's selective receive on any condition (the
//! VM selects on tags only): messages it passes over stay queued, in order,
//! in the process's stash, which every receive of the SDK reads first.
//!
//! A [`Process::request`] to a server that dies before answering waits
//! forever; use [`Process::request_timeout`], or a [`Server`] and [`call`],
//! which watches the server with a monitor.
#![warn(missing_docs)]
// Every `unsafe` block says why it is sound; host calls go through the safe
// functions of `host` (the only caller of `sys`).
#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

#[cfg(feature = "tokio")]
mod async_mailbox;
mod error;
mod host;
mod message;
pub mod net;
mod process;
mod registry;
mod server;
mod signal;
mod spawn;
mod supervisor;
pub mod sys;
mod timer;

#[cfg(feature = "tokio")]
pub use async_mailbox::AsyncMailbox;
pub use error::{LoadError, ReceiveError, RequestError, SendError, SpawnError};
pub use message::{decode, encode, receive_matching, receive_tagged, send_tagged, RawMessage};
pub use process::{self_pid, sleep, this_process, Envelope, Mailbox, Pid, Process, Reply};
pub use registry::{register, send_named, unregister, whereis, RegistryError};
pub use server::{
    call, call_named, cast, start_with, CallError, CallResult, Caller, Next, Server, ServerRef,
    StartError, StartOptions,
};
pub use signal::{
    demonitor, exit, kill, link, monitor, receive_down, receive_down_from, receive_exit_from,
    send_exit, trap_exit, unlink, Event, ExitReason, Limit, MonitorRef,
};
pub use spawn::{hibernate, spawn, spawn_arg, spawn_link, Module, SpawnOptions};
pub use supervisor::{
    ChildCounts, ChildInfo, ChildKind, ChildSpec, Restart, Shutdown, Strategy, Supervisor,
    SupervisorCall, SupervisorCast, SupervisorError, SupervisorRef, SupervisorReply,
    SupervisorSpec,
};
pub use timer::{cancel_timer, send_after, TimerRef};
pub use troupe_abi as abi;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub use spawn::__troupe_entry;
