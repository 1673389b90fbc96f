//! WASI preview 1 with Troupe's descriptors: a process's sockets and its
//! mailbox are file descriptors of its WASI table (see "WASI descriptors"
//! in `host-api/SPEC.md`), so that a guest language's own I/O and poller
//! (Go's netpoller, mio and tokio, Rust's `std::net`) work on them and wait
//! in `poll_oneoff` without stopping the process's other work.
//!
//! `wasmtime-wasi`'s preview 1 has no sockets, and its descriptor table is
//! its own: Troupe's descriptors are numbered apart, from
//! [`val::MAILBOX_FD`] (2^30 - 1) up, where WASI's never reach. [`register`]
//! adds `wasmtime-wasi`'s functions and then shadows the ones that take a
//! descriptor Troupe may own (`fd_read`, `fd_write`, `fd_close`,
//! `fd_fdstat_get`, `fd_fdstat_set_flags`, `sock_*`, `poll_oneoff`): each
//! serves Troupe's descriptors and hands every other call, unchanged, to
//! `wasmtime-wasi` ([`delegate`]).
//!
//! The parts: [`io`] (reading, writing, accepting, closing, a descriptor's
//! flags) and [`poll`] (`poll_oneoff` over sockets, the mailbox and clocks).

use troupe_abi::val;
use wasmtime::Linker;

use crate::call::Fault;
use crate::{HostError, ProcessCtx};

mod io;
mod poll;

/// The import module of WASI preview 1.
pub(crate) const MODULE: &str = "wasi_snapshot_preview1";

/// WASI's `errno` values used here.
#[allow(missing_docs)]
pub mod errno {
    pub const SUCCESS: i32 = 0;
    pub const ACCES: i32 = 2;
    pub const AGAIN: i32 = 6;
    pub const BADF: i32 = 8;
    pub const CONNABORTED: i32 = 13;
    pub const CONNREFUSED: i32 = 14;
    pub const CONNRESET: i32 = 15;
    pub const INVAL: i32 = 28;
    pub const MFILE: i32 = 33;
    pub const IO: i32 = 29;
    pub const NOTCONN: i32 = 53;
    pub const NOTSOCK: i32 = 57;
    pub const NOTSUP: i32 = 58;
    pub const PIPE: i32 = 64;
    pub const TIMEDOUT: i32 = 73;
}

/// Whether descriptor `fd` is one of Troupe's (a socket's or the mailbox's)
/// rather than `wasmtime-wasi`'s.
pub(crate) fn is_ours(fd: i32) -> bool {
    fd as u32 >= val::MAILBOX_FD
}

/// The errno for an I/O error of a socket.
pub(crate) fn errno_of(e: &std::io::Error) -> i32 {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::WouldBlock => errno::AGAIN,
        K::ConnectionReset => errno::CONNRESET,
        K::ConnectionAborted => errno::CONNABORTED,
        K::ConnectionRefused => errno::CONNREFUSED,
        K::BrokenPipe => errno::PIPE,
        K::NotConnected => errno::NOTCONN,
        K::TimedOut => errno::TIMEDOUT,
        K::PermissionDenied => errno::ACCES,
        K::InvalidInput => errno::INVAL,
        _ => errno::IO,
    }
}

/// A WASI call's result: its errno, or a trap (a pointer out of bounds).
/// A [`HostError`] from the shared host-call layer (a socket the process may
/// not keep, say) becomes an errno too.
pub(crate) fn finish<T: ProcessCtx>(
    ctx: &mut T,
    result: Result<i32, Fault>,
) -> wasmtime::Result<i32> {
    match result {
        Ok(errno) => Ok(errno),
        Err(Fault::Trap(e)) => Err(e),
        Err(Fault::Code(e)) => {
            let errno = match e.code {
                troupe_abi::err::RESOURCE_LIMIT => errno::MFILE,
                troupe_abi::err::BAD_HANDLE => errno::BADF,
                troupe_abi::err::INVALID_ARGUMENT => errno::INVAL,
                troupe_abi::err::PERMISSION_DENIED => errno::ACCES,
                troupe_abi::err::CONNECTION_RESET => errno::CONNRESET,
                troupe_abi::err::NOT_CONNECTED => errno::NOTCONN,
                _ => errno::IO,
            };
            ctx.record_error(HostError::new(e.code, e.message));
            Ok(errno)
        }
    }
}

/// Calls `wasmtime-wasi`'s own implementation of a preview 1 function, as
/// its generated linker code does: with the caller's memory as wiggle's
/// `GuestMemory` and the store's host-call fuel passed on.
macro_rules! delegate {
    ($caller:ident, $func:ident ( $($arg:expr),* ) $(. $await:tt)?) => {{
        use wasmtime::AsContextMut as _;
        use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1 as _;
        let fuel = $caller.as_context_mut().hostcall_fuel();
        match $caller.get_export("memory") {
            Some(wasmtime::Extern::Memory(m)) => {
                let (mem, state) = m.data_and_store_mut(&mut $caller);
                let ctx = $crate::ProcessCtx::wasi(state);
                ctx.set_hostcall_fuel(fuel);
                let mut mem = wiggle::GuestMemory::Unshared(mem);
                wasmtime_wasi::p1::wasi_snapshot_preview1::$func(ctx, &mut mem $(, $arg)*) $(.$await)?
                    .map_err(wasmtime::Error::from)
            }
            _ => Err(wasmtime::format_err!(
                "{}: the module exports no linear memory named \"memory\"",
                stringify!($func)
            )),
        }
    }};
}
pub(crate) use delegate;

/// Adds WASI preview 1 (`wasmtime-wasi`'s, with Troupe's descriptors) to
/// `linker`.
pub fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_async(linker, |t: &mut T| t.wasi())?;
    linker.allow_shadowing(true);
    let result = io::register(linker).and_then(|_| poll::register(linker));
    linker.allow_shadowing(false);
    result
}
