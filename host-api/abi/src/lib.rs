//! The constants of Troupe's guest ABI.
//!
//! This crate is the single place where the numbers of the ABI live: the host
//! (`troupe-host-api`, `troupe-vm`) and the Rust guest SDK (`troupe`) both
//! depend on it, and the Go package mirrors it (checked by a test). The
//! meaning of every value is given in `host-api/SPEC.md`.
//!
//! It also holds [`ExitReason`], the one definition of why a process
//! ended, with its ABI encoding; the `serde` feature (the Rust SDK's) derives
//! serde's traits for it, in the same layout.
//!
//! It is `no_std` (with `alloc`) and has no dependencies by default, so it
//! builds for `wasm32-wasip1` and for the host alike.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod exit_reason;
pub use exit_reason::{ExitReason, Limit};

/// The payload codec of the Rust SDK (feature `serde`): bincode 1.3,
/// little-endian, fixed-width integers, `u64` lengths (the layout of
/// `bincode::serialize`), and a payload must be consumed entirely when
/// decoded. Custom exit reasons carry values in it.
#[cfg(feature = "serde")]
pub fn payload_codec() -> impl bincode::Options + Copy {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
}

/// Import module names, one per namespace.
pub mod module {
    /// Processes: identity, module loading, spawn configuration and spawn.
    pub const PROCESS: &str = "troupe_process";
    /// Messages: send, selective receive, reading a held message.
    pub const MESSAGE: &str = "troupe_message";
    /// The name registry.
    pub const REGISTRY: &str = "troupe_registry";
    /// Timers: sleep, send_after, cancel_timer.
    pub const TIMER: &str = "troupe_timer";
    /// Networking: TCP, UDP and name resolution (with permission).
    pub const NET: &str = "troupe_net";
}

/// Error codes returned (as `i32`) by host functions. `OK` is zero; every
/// other value is one of these. After a non-zero code the calling process can
/// read a human-readable explanation with `troupe_process::error_message`.
pub mod err {
    /// Success.
    pub const OK: i32 = 0;
    /// The target process does not exist (it exited, or never existed).
    pub const NO_PROCESS: i32 = 1;
    /// A receive timed out before a matching message arrived.
    pub const TIMEOUT: i32 = 2;
    /// The message does not fit the buffer: it is kept as the held message
    /// and its length was written to the info record; call `read`.
    pub const BUFFER_TOO_SMALL: i32 = 3;
    /// `read` was called with no held message.
    pub const NO_MESSAGE: i32 = 4;
    /// The bytes given to `module_load` are not a usable WebAssembly module
    /// (not Wasm, failed validation, or imports the VM does not provide).
    pub const INVALID_MODULE: i32 = 5;
    /// No module has this handle.
    pub const NO_SUCH_MODULE: i32 = 6;
    /// The entry function given to `spawn` is not exported by the module, or
    /// its signature is not one spawn can call.
    pub const NO_SUCH_EXPORT: i32 = 7;
    /// The VM cannot hold another process now (its process pool is full, or
    /// the kernel refused memory): a resource limit.
    pub const RESOURCE_LIMIT: i32 = 8;
    /// The caller asked for more than it holds (a directory it cannot see).
    pub const PERMISSION_DENIED: i32 = 9;
    /// An argument is malformed (bad UTF-8, a bad list, an unknown config
    /// handle, too many parameters).
    pub const INVALID_ARGUMENT: i32 = 10;
    /// The new process could not be started for another reason (e.g. its
    /// instantiation trapped).
    pub const SPAWN_FAILED: i32 = 11;

    /// `register`: the name is already taken.
    pub const ALREADY_REGISTERED: i32 = 12;
    /// No such name (registry), monitor or timer.
    pub const NOT_FOUND: i32 = 13;
    /// Not a socket the caller holds (unknown, closed, moved to another
    /// process, or of the wrong kind for the call).
    pub const BAD_HANDLE: i32 = 14;
    /// `tcp_connect`: nobody listens at the address.
    pub const CONNECTION_REFUSED: i32 = 15;
    /// The peer reset or aborted the connection (also a write to a
    /// connection the peer closed).
    pub const CONNECTION_RESET: i32 = 16;
    /// `tcp_listen`/`udp_bind`: the address is in use.
    pub const ADDR_IN_USE: i32 = 17;
    /// The address is not local, or not usable here.
    pub const ADDR_NOT_AVAILABLE: i32 = 18;
    /// The socket is not connected (e.g. after `shutdown`).
    pub const NOT_CONNECTED: i32 = 19;
    /// A host name did not resolve.
    pub const HOST_NOT_FOUND: i32 = 20;
    /// Any other I/O error (`error_message` has the system's text).
    pub const IO_ERROR: i32 = 21;
    /// The caller's module cannot do what was asked (`hibernate`: the module
    /// keeps state the VM cannot restore, such as a second mutable global).
    pub const UNSUPPORTED: i32 = 22;

    /// A short stable name for an error code, for messages.
    pub const fn name(code: i32) -> &'static str {
        match code {
            OK => "ok",
            NO_PROCESS => "no such process",
            TIMEOUT => "timed out",
            BUFFER_TOO_SMALL => "buffer too small",
            NO_MESSAGE => "no held message",
            INVALID_MODULE => "invalid module",
            NO_SUCH_MODULE => "no such module",
            NO_SUCH_EXPORT => "no such export",
            RESOURCE_LIMIT => "resource limit reached",
            PERMISSION_DENIED => "permission denied",
            INVALID_ARGUMENT => "invalid argument",
            SPAWN_FAILED => "spawn failed",
            ALREADY_REGISTERED => "name already registered",
            NOT_FOUND => "not found",
            BAD_HANDLE => "bad socket handle",
            CONNECTION_REFUSED => "connection refused",
            CONNECTION_RESET => "connection reset",
            ADDR_IN_USE => "address in use",
            ADDR_NOT_AVAILABLE => "address not available",
            NOT_CONNECTED => "not connected",
            HOST_NOT_FOUND => "host not found",
            IO_ERROR => "I/O error",
            UNSUPPORTED => "not supported by this module",
            _ => "unknown error",
        }
    }
}

/// Message tags. A tag is a `u64` chosen by the sender; `receive` can select
/// on a set of tags. Tags with the top bit set are reserved for the VM.
pub mod tag {
    /// The tag guest SDKs use for ordinary typed messages.
    pub const DATA: u64 = 0;
    /// First tag of the range SDKs use for replies to requests:
    /// `REPLY_BASE..SYSTEM_BASE`. A requester picks a fresh tag from it, puts
    /// it in the request, and selectively receives the reply on it.
    pub const REPLY_BASE: u64 = 1 << 62;
    /// First tag reserved for messages the VM itself sends.
    pub const SYSTEM_BASE: u64 = 1 << 63;
    /// The spawn argument: the first message of every spawned process, sent
    /// by the VM on behalf of the parent (its sender is the parent's pid).
    pub const SPAWN_ARG: u64 = SYSTEM_BASE;
    /// An exit signal turned into a message (the receiver traps exits):
    /// payload `u64 pid` then an exit reason (see [`reason`](crate::reason)).
    pub const EXIT: u64 = SYSTEM_BASE + 1;
    /// A monitored process ended: payload `u64 monitor ref`, `u64 pid`, then
    /// an exit reason.
    pub const DOWN: u64 = SYSTEM_BASE + 2;
}

/// Exit reasons as they cross the ABI: a `u32` kind (little-endian), then
/// the kind's data. This is bincode 1.3's layout of the Rust SDK's
/// `ExitReason` enum, whose variants are in this order.
pub mod reason {
    /// The process returned from its entry, or called `proc_exit(0)`.
    pub const NORMAL: u32 = 0;
    /// It trapped: then `u64` length and the UTF-8 trap message.
    pub const TRAP: u32 = 1;
    /// It was killed (`kill`, untrappable).
    pub const KILLED: u32 = 2;
    /// It exceeded a limit: then a `u32`, one of [`LIMIT_MEMORY`], [`LIMIT_FUEL`].
    pub const LIMIT: u32 = 3;
    /// It called `proc_exit` with a non-zero code: then the `i32` code.
    pub const EXIT_CODE: u32 = 4;
    /// It exited with a reason of its own: then `u64` length and the bytes.
    pub const CUSTOM: u32 = 5;
    /// (Only in DOWN and EXIT messages) the process did not exist.
    pub const NOPROC: u32 = 6;
    /// It was asked to shut down (by a supervisor): not an error, but it
    /// still kills linked processes that do not trap exits.
    pub const SHUTDOWN: u32 = 7;
    /// [`LIMIT`]: linear memory grew past the process's maximum.
    pub const LIMIT_MEMORY: u32 = 0;
    /// [`LIMIT`]: the process ran out of fuel (instructions).
    pub const LIMIT_FUEL: u32 = 1;
}

/// Special values of parameters.
pub mod val {
    /// `spawn`'s module handle meaning "the caller's own module".
    pub const MODULE_SELF: u64 = 0;
    /// `spawn`'s config handle meaning "inherit everything from the caller".
    pub const CONFIG_INHERIT: u64 = 0;
    /// A negative receive timeout waits forever; zero polls.
    pub const TIMEOUT_FOREVER: i64 = -1;
    /// The most entry parameters `spawn` passes.
    pub const MAX_SPAWN_PARAMS: u32 = 16;
    /// The export a guest SDK provides so that `spawn` can start a function
    /// of the module: it takes two `i32` parameters chosen by the SDK.
    pub const SDK_ENTRY: &str = "__troupe_entry";
    /// The export that every command module has.
    pub const START: &str = "_start";
    /// `cancel_timer`'s result when the timer was cancelled before firing.
    pub const TIMER_CANCELLED: i32 = 1;
    /// `cancel_timer`'s result when the timer had already fired (or the
    /// reference is unknown).
    pub const TIMER_NOT_PENDING: i32 = 0;
    /// `troupe_net::shutdown`: shut the reading half.
    pub const SHUTDOWN_READ: i32 = 0;
    /// `troupe_net::shutdown`: shut the writing half (the peer reads EOF).
    pub const SHUTDOWN_WRITE: i32 = 1;
    /// `troupe_net::shutdown`: shut both halves.
    pub const SHUTDOWN_BOTH: i32 = 2;
    /// The lowest WASI file descriptor of a socket (2^30): WASI's own
    /// descriptors (stdio, preopened directories, files) are numbered from
    /// 0 up and never reach it; a process's sockets are numbered from here.
    pub const FD_BASE: u32 = 1073741824;
    /// The WASI file descriptor of the caller's mailbox (2^30 - 1): readable
    /// in `poll_oneoff` when a message has arrived since a `receive` last
    /// found none (see "WASI descriptors" in SPEC.md).
    pub const MAILBOX_FD: u32 = 1073741823;
}

/// What one process may hold at once, so that no guest can make the host
/// hold without bound on its behalf. Going over fails the call with
/// `RESOURCE_LIMIT` (`INVALID_ARGUMENT` for a name too long, too many tags).
pub mod limit {
    /// Timers (`send_after`) pending at once, per process.
    pub const TIMERS: u32 = 10_000;
    /// Monitors a process holds on others at once.
    pub const MONITORS: u32 = 100_000;
    /// Links of one process.
    pub const LINKS: u32 = 100_000;
    /// Names registered for one process.
    pub const NAMES: u32 = 64;
    /// Bytes of one registered name.
    pub const NAME_LEN: u32 = 1024;
    /// Spawn configurations alive at once, per process.
    pub const CONFIGS: u32 = 1024;
    /// Tags one `receive` may select on.
    pub const RECEIVE_TAGS: u32 = 1024;
    /// Sockets a process may open (listen, accept, connect, bind) while it
    /// holds this many; sockets moved to it in messages still arrive.
    pub const SOCKETS: u32 = 1024;
    /// WASI handles (open files and directories, streams) of one process:
    /// an open past it fails, so that no process takes the VM's file
    /// descriptors.
    pub const WASI_HANDLES: u32 = 1024;
    /// Bytes of an encoded exit reason (`exit`, `send_exit`: longer ones
    /// are refused), of a trap's message (cut), and of the text
    /// `error_message` gives (cut).
    pub const REASON_LEN: u32 = 4096;
}

/// The record `receive` writes at `info_ptr`: 24 bytes, little-endian.
pub mod info {
    /// Offset of the message's tag (`u64`).
    pub const TAG: usize = 0;
    /// Offset of the sender's pid (`u64`).
    pub const SENDER: usize = 8;
    /// Offset of the message's length in bytes (`u32`).
    pub const LEN: usize = 16;
    /// Size of the whole record.
    pub const SIZE: usize = 24;
}

/// Exit codes the `troupe` CLI uses for itself (the root process's own exit
/// code is passed through unchanged).
pub mod exit {
    /// The root process trapped (as wasmtime's CLI: 128 + SIGABRT).
    pub const TRAP: i32 = 134;
    /// The module could not be loaded or started (bad file, not Wasm, no
    /// `_start`, unknown imports); also a root that exited with a custom
    /// reason.
    pub const LOAD_ERROR: i32 = 1;
    /// The root process was killed (128 + SIGKILL).
    pub const KILLED: i32 = 137;
}
