//! Safe calls of the host functions: the only place the SDK calls
//! [`crate::sys`].
//!
//! Each function here takes Rust slices, strings and references where the
//! raw import takes `i32` offsets into linear memory, and returns the host's
//! result (an error code, a handle, a count) as the import does, for the
//! caller to map to its own error type.
//!
//! # Why the calls are sound
//!
//! `host-api/SPEC.md` holds every host function to this: it reads only the
//! `len` bytes at an input's offset, writes only within the length given
//! with an output (an out-parameter: its 4 or 8 bytes), keeps no offset
//! after it returns, and touches no other byte of the guest's memory; a
//! range that does not lie in linear memory traps the calling process
//! instead. A call is therefore sound when every (offset, length) pair it
//! passes is a slice, string or value that Rust lets this code read (or, for
//! outputs, write) for the whole call, which is what the signatures below
//! take. Two functions do more than read and write: [`exit`] does not
//! return, and [`hibernate`] discards the caller's stack; see there.

use crate::sys::{self, len, ptr, ptr_mut};
use troupe_abi::info;

// ---------------------------------------------------------------------------
// troupe_process

/// The caller's pid.
pub(crate) fn self_pid() -> u64 {
    // SAFETY: no pointers (see the module's docs).
    unsafe { sys::self_pid() as u64 }
}

/// Copies the explanation of the caller's last error into `buf` (truncated)
/// and returns its full length.
pub(crate) fn error_message(buf: &mut [u8]) -> i32 {
    // SAFETY: `buf` is writable for the call (see the module's docs).
    unsafe { sys::error_message(ptr_mut(buf.as_mut_ptr()), len(buf.len())) }
}

/// Compiles `bytes`; the module's handle goes to `module`.
pub(crate) fn module_load(bytes: &[u8], module: &mut u64) -> i32 {
    // SAFETY: `bytes` readable, `module` an exclusive u64 for the call.
    unsafe { sys::module_load(ptr(bytes.as_ptr()), len(bytes.len()), ptr_mut(module)) }
}

/// The handle of the caller's own module.
pub(crate) fn module_self() -> u64 {
    // SAFETY: no pointers.
    unsafe { sys::module_self() as u64 }
}

/// A new spawn configuration's handle (0: the process holds too many).
pub(crate) fn config_new() -> i64 {
    // SAFETY: no pointers.
    unsafe { sys::config_new() }
}

/// Frees a spawn configuration.
pub(crate) fn config_drop(config: i64) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::config_drop(config) }
}

/// Which list of a spawn configuration [`config_set_list`] sets.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ConfigList {
    /// `config_set_args`: the child's argv.
    Args,
    /// `config_set_envs`: the child's environment.
    Envs,
    /// `config_preopens_only`: the preopened directories it keeps.
    PreopensOnly,
    /// `config_set_net`: its network rules.
    Net,
}

/// Sets one of a configuration's lists (NUL-terminated UTF-8 strings).
pub(crate) fn config_set_list(config: i64, which: ConfigList, list: &[u8]) -> i32 {
    let (p, n) = (ptr(list.as_ptr()), len(list.len()));
    // SAFETY: `list` is readable for the call (see the module's docs).
    unsafe {
        match which {
            ConfigList::Args => sys::config_set_args(config, p, n),
            ConfigList::Envs => sys::config_set_envs(config, p, n),
            ConfigList::PreopensOnly => sys::config_preopens_only(config, p, n),
            ConfigList::Net => sys::config_set_net(config, p, n),
        }
    }
}

/// Links the child to its parent before it runs.
pub(crate) fn config_link(config: i64) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::config_link(config) }
}

/// Caps the child's memory (bytes).
pub(crate) fn config_set_max_memory(config: i64, bytes: i64) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::config_set_max_memory(config, bytes) }
}

/// Gives the child a fuel budget.
pub(crate) fn config_set_fuel(config: i64, units: i64) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::config_set_fuel(config, units) }
}

/// Allows or forbids the child to spawn.
pub(crate) fn config_set_can_spawn(config: i64, allowed: bool) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::config_set_can_spawn(config, allowed as i32) }
}

/// Starts a process running export `entry(params)` of `module`, with `arg`
/// as its first message; its pid goes to `pid`.
pub(crate) fn spawn(
    module: u64,
    config: i64,
    entry: &str,
    params: &[i64],
    arg: &[u8],
    pid: &mut u64,
) -> i32 {
    // SAFETY: `entry`, `params` (its length in elements, as the SPEC's
    // `params_count`) and `arg` readable, `pid` an exclusive u64.
    unsafe {
        sys::spawn(
            module as i64,
            config,
            ptr(entry.as_ptr()),
            len(entry.len()),
            ptr(params.as_ptr()),
            len(params.len()),
            ptr(arg.as_ptr()),
            len(arg.len()),
            ptr_mut(pid),
        )
    }
}

/// Links the caller and `pid`.
pub(crate) fn link(pid: u64) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::link(pid as i64) }
}

/// Removes the link with `pid`.
pub(crate) fn unlink(pid: u64) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::unlink(pid as i64) }
}

/// Monitors `pid`: the reference (0: the process holds too many).
pub(crate) fn monitor(pid: u64) -> u64 {
    // SAFETY: no pointers.
    unsafe { sys::monitor(pid as i64) as u64 }
}

/// Stops a monitor and flushes its DOWN message.
pub(crate) fn demonitor(reference: u64) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::demonitor(reference as i64) }
}

/// Sets exit trapping; returns the previous setting.
pub(crate) fn trap_exit(enable: bool) -> bool {
    // SAFETY: no pointers.
    unsafe { sys::trap_exit(enable as i32) != 0 }
}

/// Sends the untrappable kill signal.
pub(crate) fn kill(pid: u64) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::kill(pid as i64) }
}

/// Sends an exit signal with an encoded reason.
pub(crate) fn send_exit(pid: u64, reason: &[u8]) -> i32 {
    // SAFETY: `reason` readable for the call.
    unsafe { sys::send_exit(pid as i64, ptr(reason.as_ptr()), len(reason.len())) }
}

/// Ends the caller with an encoded reason.
pub(crate) fn exit(reason: &[u8]) -> ! {
    // SAFETY: `reason` readable for the call. The host ends the process
    // inside the call: no code of this instance runs after it (as with
    // `std::process::exit`, no destructor of a live frame runs).
    unsafe { sys::exit(ptr(reason.as_ptr()), len(reason.len())) };
    unreachable!("troupe_process::exit returned")
}

/// Hibernates: discards the caller's stack and instance until a message
/// arrives, then calls export `entry(params)` in a fresh instance that has
/// this one's memory. Returns only on error (the code).
///
/// The frames of the caller's stack are not unwound: their destructors never
/// run and their locals are never read again; the stack's region of memory
/// is reused by the fresh instance. So nothing that lives on after the call,
/// in the heap or in a static (restored with the memory), may point into a
/// frame of the current stack; the SDK's `hibernate` hands its state over
/// boxed, by address in `params`, for the woken entry to take back.
pub(crate) fn hibernate(entry: &str, params: &[i64]) -> i32 {
    // SAFETY: `entry` and `params` readable for the call. On success the
    // call does not return, and per the above nothing refers to the
    // discarded frames: the SDK's only caller passes its state in the heap.
    unsafe {
        sys::hibernate(
            ptr(entry.as_ptr()),
            len(entry.len()),
            ptr(params.as_ptr()),
            len(params.len()),
        )
    }
}

// ---------------------------------------------------------------------------
// troupe_message

/// Queues a copy of `data` with `tag` in `pid`'s mailbox.
pub(crate) fn send(pid: u64, tag: u64, data: &[u8]) -> i32 {
    // SAFETY: `data` readable for the call.
    unsafe { sys::send(pid as i64, tag as i64, ptr(data.as_ptr()), len(data.len())) }
}

/// Takes the oldest message with one of `tags` (any if empty) into `buf`,
/// its tag, sender and length into `record`, waiting up to `timeout_ns`.
pub(crate) fn receive(
    tags: &[u64],
    timeout_ns: i64,
    buf: &mut [u8],
    record: &mut [u8; info::SIZE],
) -> i32 {
    // SAFETY: `tags` readable (its length in elements: `tags_count`); `buf`
    // and `record` (the SPEC's info record, `info::SIZE` bytes) writable.
    unsafe {
        sys::receive(
            ptr(tags.as_ptr()),
            len(tags.len()),
            timeout_ns,
            ptr_mut(buf.as_mut_ptr()),
            len(buf.len()),
            ptr_mut(record.as_mut_ptr()),
        )
    }
}

/// Copies the held message into `buf`.
pub(crate) fn read(buf: &mut [u8]) -> i32 {
    // SAFETY: `buf` writable for the call.
    unsafe { sys::read(ptr_mut(buf.as_mut_ptr()), len(buf.len())) }
}

// ---------------------------------------------------------------------------
// troupe_registry

/// Registers `name` for `pid`.
pub(crate) fn register(name: &str, pid: u64) -> i32 {
    // SAFETY: `name` readable for the call.
    unsafe { sys::register(ptr(name.as_ptr()), len(name.len()), pid as i64) }
}

/// Frees `name`.
pub(crate) fn unregister(name: &str) -> i32 {
    // SAFETY: `name` readable for the call.
    unsafe { sys::unregister(ptr(name.as_ptr()), len(name.len())) }
}

/// The pid registered under `name` goes to `pid`.
pub(crate) fn whereis(name: &str, pid: &mut u64) -> i32 {
    // SAFETY: `name` readable, `pid` an exclusive u64.
    unsafe { sys::whereis(ptr(name.as_ptr()), len(name.len()), ptr_mut(pid)) }
}

/// Sends to the process registered under `name`.
pub(crate) fn send_named(name: &str, tag: u64, data: &[u8]) -> i32 {
    // SAFETY: `name` and `data` readable for the call.
    unsafe {
        sys::send_named(
            ptr(name.as_ptr()),
            len(name.len()),
            tag as i64,
            ptr(data.as_ptr()),
            len(data.len()),
        )
    }
}

// ---------------------------------------------------------------------------
// troupe_timer

/// Suspends the caller for `ns` nanoseconds.
pub(crate) fn sleep(ns: i64) {
    // SAFETY: no pointers.
    unsafe { sys::sleep(ns) }
}

/// Sends `data` with `tag` to `pid` after `delay_ns`; the timer's reference
/// goes to `reference`.
pub(crate) fn send_after(
    pid: u64,
    tag: u64,
    data: &[u8],
    delay_ns: i64,
    reference: &mut u64,
) -> i32 {
    // SAFETY: `data` readable, `reference` an exclusive u64.
    unsafe {
        sys::send_after(
            pid as i64,
            tag as i64,
            ptr(data.as_ptr()),
            len(data.len()),
            delay_ns,
            ptr_mut(reference),
        )
    }
}

/// Cancels a timer: `troupe_abi::val::TIMER_CANCELLED` if it had not fired.
pub(crate) fn cancel_timer(reference: u64) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::cancel_timer(reference as i64) }
}

// ---------------------------------------------------------------------------
// troupe_net

/// Binds a TCP listener to `addr`; its handle goes to `handle`.
pub(crate) fn tcp_listen(addr: &str, handle: &mut u64) -> i32 {
    // SAFETY: `addr` readable, `handle` an exclusive u64.
    unsafe { sys::tcp_listen(ptr(addr.as_ptr()), len(addr.len()), ptr_mut(handle)) }
}

/// Waits for a connection; the stream's handle goes to `stream`.
pub(crate) fn tcp_accept(listener: u64, timeout_ns: i64, stream: &mut u64) -> i32 {
    // SAFETY: `stream` an exclusive u64.
    unsafe { sys::tcp_accept(listener as i64, timeout_ns, ptr_mut(stream)) }
}

/// Connects to `addr`; the stream's handle goes to `stream`.
pub(crate) fn tcp_connect(addr: &str, timeout_ns: i64, stream: &mut u64) -> i32 {
    // SAFETY: `addr` readable, `stream` an exclusive u64.
    unsafe {
        sys::tcp_connect(
            ptr(addr.as_ptr()),
            len(addr.len()),
            timeout_ns,
            ptr_mut(stream),
        )
    }
}

/// Reads into `buf`; the count goes to `n` (0 at the end of the stream).
pub(crate) fn net_read(stream: u64, buf: &mut [u8], timeout_ns: i64, n: &mut u32) -> i32 {
    // SAFETY: `buf` writable, `n` an exclusive u32.
    unsafe {
        sys::net_read(
            stream as i64,
            ptr_mut(buf.as_mut_ptr()),
            len(buf.len()),
            timeout_ns,
            ptr_mut(n),
        )
    }
}

/// Writes `buf`; the count written goes to `n` (also on an error).
pub(crate) fn net_write(stream: u64, buf: &[u8], timeout_ns: i64, n: &mut u32) -> i32 {
    // SAFETY: `buf` readable, `n` an exclusive u32.
    unsafe {
        sys::net_write(
            stream as i64,
            ptr(buf.as_ptr()),
            len(buf.len()),
            timeout_ns,
            ptr_mut(n),
        )
    }
}

/// Shuts the reading, writing or both halves of a stream.
pub(crate) fn shutdown(stream: u64, how: i32) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::shutdown(stream as i64, how) }
}

/// Closes a socket and frees its handle.
pub(crate) fn close(handle: u64) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::close(handle as i64) }
}

/// The socket's local address into `buf`; its full length goes to `n`.
pub(crate) fn local_addr(handle: u64, buf: &mut [u8], n: &mut u32) -> i32 {
    // SAFETY: `buf` writable, `n` an exclusive u32.
    unsafe {
        sys::local_addr(
            handle as i64,
            ptr_mut(buf.as_mut_ptr()),
            len(buf.len()),
            ptr_mut(n),
        )
    }
}

/// The stream's peer address into `buf`; its full length goes to `n`.
pub(crate) fn peer_addr(handle: u64, buf: &mut [u8], n: &mut u32) -> i32 {
    // SAFETY: `buf` writable, `n` an exclusive u32.
    unsafe {
        sys::peer_addr(
            handle as i64,
            ptr_mut(buf.as_mut_ptr()),
            len(buf.len()),
            ptr_mut(n),
        )
    }
}

/// Binds a UDP socket to `addr`; its handle goes to `handle`.
pub(crate) fn udp_bind(addr: &str, handle: &mut u64) -> i32 {
    // SAFETY: `addr` readable, `handle` an exclusive u64.
    unsafe { sys::udp_bind(ptr(addr.as_ptr()), len(addr.len()), ptr_mut(handle)) }
}

/// Sends `buf` as one datagram to `addr`; the count sent goes to `n`.
pub(crate) fn udp_send_to(
    socket: u64,
    buf: &[u8],
    addr: &str,
    timeout_ns: i64,
    n: &mut u32,
) -> i32 {
    // SAFETY: `buf` and `addr` readable, `n` an exclusive u32.
    unsafe {
        sys::udp_send_to(
            socket as i64,
            ptr(buf.as_ptr()),
            len(buf.len()),
            ptr(addr.as_ptr()),
            len(addr.len()),
            timeout_ns,
            ptr_mut(n),
        )
    }
}

/// Receives one datagram into `buf` (its length to `n`) and its sender's
/// address into `addr` (that text's length to `addr_len`).
pub(crate) fn udp_recv_from(
    socket: u64,
    buf: &mut [u8],
    timeout_ns: i64,
    n: &mut u32,
    addr: &mut [u8],
    addr_len: &mut u32,
) -> i32 {
    // SAFETY: `buf` and `addr` writable, `n` and `addr_len` exclusive u32s.
    unsafe {
        sys::udp_recv_from(
            socket as i64,
            ptr_mut(buf.as_mut_ptr()),
            len(buf.len()),
            timeout_ns,
            ptr_mut(n),
            ptr_mut(addr.as_mut_ptr()),
            len(addr.len()),
            ptr_mut(addr_len),
        )
    }
}

/// Resolves `name`: its addresses, each followed by `\n`, into `buf`; the
/// full length goes to `n`.
pub(crate) fn resolve(name: &str, buf: &mut [u8], n: &mut u32) -> i32 {
    // SAFETY: `name` readable, `buf` writable, `n` an exclusive u32.
    unsafe {
        sys::resolve(
            ptr(name.as_ptr()),
            len(name.len()),
            ptr_mut(buf.as_mut_ptr()),
            len(buf.len()),
            ptr_mut(n),
        )
    }
}

/// Marks a socket to move with the caller's next message.
pub(crate) fn attach(handle: u64) -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::attach(handle as i64) }
}

/// The WASI descriptor of socket `handle` goes to `fd`.
pub(crate) fn descriptor(handle: u64, fd: &mut u32) -> i32 {
    // SAFETY: `fd` an exclusive u32.
    unsafe { sys::descriptor(handle as i64, ptr_mut(fd)) }
}

/// The handle of the socket behind WASI descriptor `fd` goes to `handle`.
pub(crate) fn handle_of(fd: u32, handle: &mut u64) -> i32 {
    // SAFETY: `handle` an exclusive u64.
    unsafe { sys::handle_of(fd as i32, ptr_mut(handle)) }
}
