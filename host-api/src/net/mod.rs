//! Namespace `troupe_net`: TCP, UDP and name resolution, off unless the VM
//! was started with permission. See `host-api/SPEC.md`.
//!
//! Sockets are tokio sockets held in the owning process's [`Sockets`] table
//! under VM-wide handles; a call that waits (accept, read, a full write)
//! suspends only the calling process. A socket moves to another process with
//! a message: [`take_attached`] removes the sockets the caller attached from
//! its table, and the VM puts them in the receiver's before queueing the
//! message.
//!
//! The parts: [`sockets`] (the table and its bounds), [`policy`] (which
//! addresses a process may use), `dns` (addresses and names, `resolve`),
//! `tcp` and `udp` (their host functions); the calls on any socket are here.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use troupe_abi::{err, module::NET};
use wasmtime::{Caller, Linker};

use crate::call::{call, host_async, Fault, Guest};
use crate::{HostError, ProcessCtx};

mod dns;
pub mod policy;
pub mod sockets;
mod tcp;
mod udp;

pub use policy::{NetPolicy, NetRule};
pub use sockets::{move_attached, take_attached, FdState, Listener, Socket, SocketRef, Sockets};
pub(crate) use sockets::{room_for, Kind};

/// Registers `troupe_net` into `linker`.
pub fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap_async(NET, "tcp_listen", |mut c: Caller<'_, T>, args| {
        host_async!(c, "troupe_net::tcp_listen", |g| {
            bind(g, args, "listen on", tcp::bind_listener, |l| {
                Socket::Listener(Listener::new(l))
            })
        })
    })?;
    linker.func_wrap_async(NET, "udp_bind", |mut c: Caller<'_, T>, args| {
        host_async!(c, "troupe_net::udp_bind", |g| {
            bind(g, args, "bind", UdpSocket::bind, Socket::Udp)
        })
    })?;
    linker.func_wrap_async(NET, "tcp_accept", |mut c: Caller<'_, T>, args| {
        host_async!(c, "troupe_net::tcp_accept", |g| tcp::accept(g, args))
    })?;
    linker.func_wrap_async(NET, "tcp_connect", |mut c: Caller<'_, T>, args| {
        host_async!(c, "troupe_net::tcp_connect", |g| tcp::connect(g, args))
    })?;
    linker.func_wrap_async(NET, "read", |mut c: Caller<'_, T>, args| {
        host_async!(c, "troupe_net::read", |g| tcp::read(g, args))
    })?;
    linker.func_wrap_async(NET, "write", |mut c: Caller<'_, T>, args| {
        host_async!(c, "troupe_net::write", |g| tcp::write(g, args))
    })?;
    linker.func_wrap_async(NET, "udp_send_to", |mut c: Caller<'_, T>, args| {
        host_async!(c, "troupe_net::udp_send_to", |g| udp::send_to(g, args))
    })?;
    linker.func_wrap_async(NET, "udp_recv_from", |mut c: Caller<'_, T>, args| {
        host_async!(c, "troupe_net::udp_recv_from", |g| udp::recv_from(g, args))
    })?;
    linker.func_wrap_async(NET, "resolve", |mut c: Caller<'_, T>, args| {
        host_async!(c, "troupe_net::resolve", |g| dns::resolve(g, args))
    })?;
    linker.func_wrap(NET, "shutdown", |mut c: Caller<'_, T>, h: i64, how: i32| {
        call(&mut c, "troupe_net::shutdown", |g| tcp::shutdown(g, h, how))
    })?;
    linker.func_wrap(NET, "close", |mut c: Caller<'_, T>, h: i64| {
        call(&mut c, "troupe_net::close", |g| close(g, h))
    })?;
    linker.func_wrap(NET, "attach", |mut c: Caller<'_, T>, h: i64| {
        call(&mut c, "troupe_net::attach", |g| attach(g, h))
    })?;
    linker.func_wrap(
        NET,
        "descriptor",
        |mut c: Caller<'_, T>, h: i64, out_fd: i32| {
            call(&mut c, "troupe_net::descriptor", |g| {
                g.check("out_fd", out_fd, 4)?;
                socket_of(g.ctx(), h, None)?;
                let fd = g
                    .ctx()
                    .sockets()
                    .fd_of(h as u64)
                    .expect("a held socket has a descriptor");
                g.write_u32("out_fd", out_fd, fd)?;
                Ok(err::OK)
            })
        },
    )?;
    linker.func_wrap(
        NET,
        "handle_of",
        |mut c: Caller<'_, T>, fd: i32, out_handle: i32| {
            call(&mut c, "troupe_net::handle_of", |g| {
                g.check("out_handle", out_handle, 8)?;
                let (handle, _, _) = g.ctx().sockets().by_fd(fd as u32).ok_or_else(|| {
                    HostError::new(
                        err::BAD_HANDLE,
                        format!(
                            "descriptor {} is not a socket this process holds",
                            fd as u32
                        ),
                    )
                })?;
                g.write_u64("out_handle", out_handle, handle)?;
                Ok(err::OK)
            })
        },
    )?;
    linker.func_wrap(NET, "local_addr", |mut c: Caller<'_, T>, h, p, l, o| {
        call(&mut c, "troupe_net::local_addr", |g| {
            addr_of(g, (h, p, l, o), false)
        })
    })?;
    linker.func_wrap(NET, "peer_addr", |mut c: Caller<'_, T>, h, p, l, o| {
        call(&mut c, "troupe_net::peer_addr", |g| {
            addr_of(g, (h, p, l, o), true)
        })
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------
// What every part uses

/// An I/O error as an ABI error.
pub(crate) fn io_error(what: &str, e: &io::Error) -> HostError {
    use io::ErrorKind as K;
    let code = match e.kind() {
        K::ConnectionRefused => err::CONNECTION_REFUSED,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => err::CONNECTION_RESET,
        K::AddrInUse => err::ADDR_IN_USE,
        K::AddrNotAvailable => err::ADDR_NOT_AVAILABLE,
        K::NotConnected => err::NOT_CONNECTED,
        K::TimedOut => err::TIMEOUT,
        K::PermissionDenied => err::PERMISSION_DENIED,
        K::InvalidInput => err::INVALID_ARGUMENT,
        _ => err::IO_ERROR,
    };
    HostError::new(code, format!("{what}: {e}"))
}

/// Runs `f` within `timeout_ns` (negative: no limit).
async fn within<R, E: From<HostError>>(
    what: &str,
    timeout_ns: i64,
    f: impl Future<Output = Result<R, E>>,
) -> Result<R, E> {
    if timeout_ns < 0 {
        return f.await;
    }
    let d = Duration::from_nanos(timeout_ns as u64);
    match tokio::time::timeout(d, f).await {
        Ok(done) => done,
        Err(_) => {
            Err(HostError::new(err::TIMEOUT, format!("{what}: timed out after {d:?}")).into())
        }
    }
}

/// The socket `handle` of the caller, as long as it is of the kind
/// `wanted` (`None`: any kind).
fn socket_of<T: ProcessCtx>(
    ctx: &T,
    handle: i64,
    wanted: Option<Kind>,
) -> Result<SocketRef, HostError> {
    let handle = handle as u64;
    let socket = ctx.sockets().get(handle).ok_or_else(|| {
        HostError::new(
            err::BAD_HANDLE,
            format!(
                "{handle} is not a socket this process holds (never opened, closed, or moved \
                 to another process)"
            ),
        )
    })?;
    match wanted {
        Some(kind) if kind != socket.kind() => Err(HostError::new(
            err::BAD_HANDLE,
            format!("socket {handle} is {}, not {kind}", socket.kind()),
        )),
        _ => Ok(socket),
    }
}

/// `tcp_listen` and `udp_bind`: a socket bound to the first address of the
/// argument that the caller's policy allows and `open` can bind.
async fn bind<T: ProcessCtx, S, F: Future<Output = io::Result<S>>>(
    g: &mut Guest<'_, '_, T>,
    (addr_ptr, addr_len, out_handle): (i32, i32, i32),
    action: &str,
    open: impl FnMut(SocketAddr) -> F,
    socket: fn(S) -> Socket,
) -> Result<i32, Fault> {
    g.check("out_handle", out_handle, 8)?;
    let addr = g.read_str("addr", addr_ptr, addr_len)?;
    let policy = g.ctx().net_policy().clone();
    let addrs = dns::permitted(&policy, action, &addr).await?;
    let bound = open_first(addrs, action, &addr, open).await?;
    add_socket(g, out_handle, socket(bound))
}

/// Opens a socket on the first of `addrs` where `open` succeeds; if none
/// does, the last error, as "cannot {action} {addr}".
async fn open_first<S, F: Future<Output = io::Result<S>>>(
    addrs: Vec<SocketAddr>,
    action: &str,
    addr: &str,
    mut open: impl FnMut(SocketAddr) -> F,
) -> Result<S, HostError> {
    let mut last = None;
    for a in addrs {
        match open(a).await {
            Ok(socket) => return Ok(socket),
            Err(e) => last = Some(e),
        }
    }
    let e = last.expect("permitted() returns at least one address");
    Err(io_error(&format!("cannot {action} {addr}"), &e))
}

/// Adds a new socket to the caller's table and writes its handle.
fn add_socket<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    out_handle: i32,
    socket: Socket,
) -> Result<i32, Fault> {
    // A socket the process may not keep is closed (dropped) at once.
    room_for(g.ctx().sockets(), &socket)?;
    let (handle, _fd) = g.ctx().sockets().add(socket).ok_or_else(|| {
        HostError::new(
            err::IO_ERROR,
            "the process is ending: its sockets are closed",
        )
    })?;
    g.write_u64("out_handle", out_handle, handle)?;
    Ok(err::OK)
}

/// Writes `text` into `buf` and its length at `out_len`
/// (`BUFFER_TOO_SMALL` if it does not fit).
fn write_text<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    text: &str,
    buf_ptr: i32,
    buf_len: i32,
    out_len: i32,
) -> Result<i32, Fault> {
    g.write_u32("out_len", out_len, text.len() as u32)?;
    if text.len() > buf_len as u32 as usize {
        return Err(HostError::new(
            err::BUFFER_TOO_SMALL,
            format!("{} bytes are needed, the buffer has {buf_len}", text.len()),
        )
        .into());
    }
    g.write("buf", buf_ptr, text.as_bytes())?;
    Ok(err::OK)
}

// ---------------------------------------------------------------------------
// The calls on any socket

fn close<T: ProcessCtx>(g: &mut Guest<'_, '_, T>, handle: i64) -> Result<i32, Fault> {
    let state = g.ctx_mut();
    match state.sockets().remove(handle as u64) {
        Some(_) => state.attachments().retain(|h| *h != handle as u64),
        None => drop(socket_of(&*state, handle, None)?),
    }
    Ok(err::OK)
}

fn attach<T: ProcessCtx>(g: &mut Guest<'_, '_, T>, handle: i64) -> Result<i32, Fault> {
    let state = g.ctx_mut();
    socket_of(&*state, handle, None)?;
    let pending = state.attachments();
    if !pending.contains(&(handle as u64)) {
        pending.push(handle as u64);
    }
    Ok(err::OK)
}

/// `local_addr` and (`peer`) `peer_addr`.
fn addr_of<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    (handle, buf_ptr, buf_len, out_len): (i64, i32, i32, i32),
    peer: bool,
) -> Result<i32, Fault> {
    g.check("buf", buf_ptr, buf_len)?;
    g.check("out_len", out_len, 4)?;
    let socket = socket_of(g.ctx(), handle, peer.then_some(Kind::Stream))?;
    let addr = match &*socket {
        Socket::Stream(s) if peer => s.peer_addr(),
        s => s.local_addr(),
    }
    .map_err(|e| io_error(g.func(), &e))?;
    write_text(g, &addr.to_string(), buf_ptr, buf_len, out_len)
}
