//! The constants of Troupe's guest ABI.
//!
//! This crate is the single place where the numbers of the ABI live: the host
//! (`troupe-host-api`, `troupe-vm`) and the Rust guest SDK (`troupe`) both
//! depend on it, and the Go package mirrors it (checked by a test). The
//! meaning of every value is given in `host-api/SPEC.md`.
//!
//! It is `no_std` and has no dependencies, so it builds for `wasm32-wasip1`
//! and for the host alike.
#![no_std]

/// Import module names, one per namespace.
pub mod module {
    /// Processes: identity, module loading, spawn configuration and spawn.
    pub const PROCESS: &str = "troupe_process";
    /// Messages: send, selective receive, reading a held message.
    pub const MESSAGE: &str = "troupe_message";
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
    /// `_start`, unknown imports).
    pub const LOAD_ERROR: i32 = 1;
}
