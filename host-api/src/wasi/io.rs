//! The WASI calls on one descriptor: reading, writing, accepting, shutting
//! down, closing, and the descriptor's type and flags. Each serves Troupe's
//! descriptors and hands `wasmtime-wasi`'s to it.

use std::future::Future;
use std::io;
use std::task::{Context, Poll, Waker};

use troupe_abi::val;
use wasmtime::{Caller, Linker};

use super::{delegate, errno, errno_of, finish, is_ours, MODULE};
use crate::call::{Fault, Guest};
use crate::net::{room_for, Socket, SocketRef};
use crate::ProcessCtx;

/// `fdflags.nonblock`.
const FDFLAGS_NONBLOCK: i32 = 4;
/// `filetype`: unknown, socket_dgram, socket_stream.
const FILETYPE_UNKNOWN: u8 = 0;
const FILETYPE_SOCKET_DGRAM: u8 = 5;
const FILETYPE_SOCKET_STREAM: u8 = 6;
/// `rights`: fd_read, fd_fdstat_set_flags, fd_write, poll_fd_readwrite,
/// sock_shutdown, sock_accept.
const SOCKET_RIGHTS: u64 = 1 << 1 | 1 << 3 | 1 << 6 | 1 << 27 | 1 << 28 | 1 << 29;
const MAILBOX_RIGHTS: u64 = 1 << 27;
/// `sdflags`: rd, wr.
const SDFLAGS_RD: i32 = 1;
const SDFLAGS_WR: i32 = 2;

/// Shadows the calls on one descriptor (see the module's docs).
pub(super) fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        MODULE,
        "fd_read",
        |mut c: Caller<'_, T>, (fd, iovs, n, out): (i32, i32, i32, i32)| {
            Box::new(async move {
                if !is_ours(fd) {
                    return delegate!(c, fd_read(fd, iovs, n, out).await);
                }
                let mut g = Guest::new(&mut c, "wasi_snapshot_preview1::fd_read");
                let result = transfer(&mut g, fd, (iovs, n), out, Direction::Read).await;
                finish(g.ctx_mut(), result)
            })
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "fd_write",
        |mut c: Caller<'_, T>, (fd, iovs, n, out): (i32, i32, i32, i32)| {
            Box::new(async move {
                if !is_ours(fd) {
                    return delegate!(c, fd_write(fd, iovs, n, out).await);
                }
                let mut g = Guest::new(&mut c, "wasi_snapshot_preview1::fd_write");
                let result = transfer(&mut g, fd, (iovs, n), out, Direction::Write).await;
                finish(g.ctx_mut(), result)
            })
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "sock_recv",
        |mut c: Caller<'_, T>,
         (fd, iovs, n, flags, out, out_flags): (i32, i32, i32, i32, i32, i32)| {
            Box::new(async move {
                if !is_ours(fd) {
                    return delegate!(c, sock_recv(fd, iovs, n, flags, out, out_flags));
                }
                let mut g = Guest::new(&mut c, "wasi_snapshot_preview1::sock_recv");
                let result = async {
                    g.check("ro_flags", out_flags, 2)?;
                    if flags != 0 {
                        // PEEK and WAITALL.
                        return Ok(errno::NOTSUP);
                    }
                    let e = transfer(&mut g, fd, (iovs, n), out, Direction::Read).await?;
                    g.write("ro_flags", out_flags, &0u16.to_le_bytes())?;
                    Ok(e)
                }
                .await;
                finish(g.ctx_mut(), result)
            })
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "sock_send",
        |mut c: Caller<'_, T>, (fd, iovs, n, flags, out): (i32, i32, i32, i32, i32)| {
            Box::new(async move {
                if !is_ours(fd) {
                    return delegate!(c, sock_send(fd, iovs, n, flags, out));
                }
                let mut g = Guest::new(&mut c, "wasi_snapshot_preview1::sock_send");
                let result = transfer(&mut g, fd, (iovs, n), out, Direction::Write).await;
                finish(g.ctx_mut(), result)
            })
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "sock_accept",
        |mut c: Caller<'_, T>, (fd, flags, out): (i32, i32, i32)| {
            Box::new(async move {
                if !is_ours(fd) {
                    return delegate!(c, sock_accept(fd, flags, out));
                }
                let mut g = Guest::new(&mut c, "wasi_snapshot_preview1::sock_accept");
                let result = accept(&mut g, fd, flags, out).await;
                finish(g.ctx_mut(), result)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "sock_shutdown",
        |mut c: Caller<'_, T>, fd: i32, how: i32| -> wasmtime::Result<i32> {
            if !is_ours(fd) {
                return delegate!(c, sock_shutdown(fd, how));
            }
            Ok(shutdown(c.data(), fd, how))
        },
    )?;
    linker.func_wrap_async(MODULE, "fd_close", |mut c: Caller<'_, T>, (fd,): (i32,)| {
        Box::new(async move {
            if !is_ours(fd) {
                return delegate!(c, fd_close(fd).await);
            }
            Ok(close(c.data_mut(), fd))
        })
    })?;
    linker.func_wrap_async(
        MODULE,
        "fd_fdstat_get",
        |mut c: Caller<'_, T>, (fd, out): (i32, i32)| {
            Box::new(async move {
                if !is_ours(fd) {
                    return delegate!(c, fd_fdstat_get(fd, out).await);
                }
                let mut g = Guest::new(&mut c, "wasi_snapshot_preview1::fd_fdstat_get");
                let result = fdstat(&mut g, fd, out);
                finish(g.ctx_mut(), result)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_fdstat_set_flags",
        |mut c: Caller<'_, T>, fd: i32, flags: i32| -> wasmtime::Result<i32> {
            if !is_ours(fd) {
                return delegate!(c, fd_fdstat_set_flags(fd, flags));
            }
            if fd as u32 == val::MAILBOX_FD {
                // Always non-blocking: nothing to set.
                return Ok(errno::SUCCESS);
            }
            let nonblock = flags & FDFLAGS_NONBLOCK != 0;
            let known = c
                .data()
                .sockets()
                .update(fd as u32, |s| s.nonblock = nonblock);
            Ok(if known { errno::SUCCESS } else { errno::BADF })
        },
    )?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

/// The first non-empty buffer of an iovec array (reads and writes may be
/// short, so one buffer per call is enough), or an empty one.
fn first_buffer<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    (iovs, n): (i32, i32),
) -> Result<(i32, i32), Fault> {
    let count = (n as u32).min(1024) as i32;
    let list = g.bytes("iovs", iovs, count.saturating_mul(8))?;
    let found = list
        .chunks_exact(8)
        .map(|c| {
            let ptr = i32::from_le_bytes(c[..4].try_into().unwrap());
            let len = i32::from_le_bytes(c[4..].try_into().unwrap());
            (ptr, len)
        })
        .find(|(_, len)| *len != 0)
        .unwrap_or((0, 0));
    g.check("iovec buffer", found.0, found.1)?;
    Ok(found)
}

/// `fd_read`/`sock_recv` and `fd_write`/`sock_send` on a Troupe descriptor:
/// at most one buffer's worth, waiting (blocking mode) or `EAGAIN`
/// (non-blocking) when the socket is not ready. The count goes to `out`.
async fn transfer<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    fd: i32,
    iovs: (i32, i32),
    out: i32,
    direction: Direction,
) -> Result<i32, Fault> {
    g.check("out", out, 4)?;
    let (ptr, len) = first_buffer(g, iovs)?;
    if fd as u32 == val::MAILBOX_FD {
        // The mailbox is read with troupe_message::receive; its descriptor
        // is only for waiting.
        return Ok(errno::NOTSUP);
    }
    let Some((_, socket, state)) = g.ctx().sockets().by_fd(fd as u32) else {
        return Ok(errno::BADF);
    };
    if len == 0 {
        g.write_u32("out", out, 0)?;
        return Ok(errno::SUCCESS);
    }
    let interest = match direction {
        Direction::Read => tokio::io::Interest::READABLE,
        Direction::Write => tokio::io::Interest::WRITABLE,
    };
    loop {
        let tried = {
            let buf = g.bytes_mut("iovec buffer", ptr, len)?;
            try_io(&socket, direction, buf)
        };
        match tried {
            Ok(n) => {
                g.write_u32("out", out, n as u32)?;
                return Ok(errno::SUCCESS);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if state.nonblock {
                    g.ctx().sockets().update(fd as u32, |s| match direction {
                        Direction::Read => s.read_armed = true,
                        Direction::Write => s.write_armed = true,
                    });
                    return Ok(errno::AGAIN);
                }
                if let Err(e) = ready(&socket, interest).await {
                    return Ok(errno_of(&e));
                }
            }
            Err(e) => return Ok(errno_of(&e)),
        }
    }
}

/// One non-blocking read or write on a socket.
fn try_io(socket: &Socket, direction: Direction, buf: &mut [u8]) -> io::Result<usize> {
    match (socket, direction) {
        (Socket::Stream(s), Direction::Read) => s.try_read(buf),
        (Socket::Stream(s), Direction::Write) => s.try_write(buf),
        (Socket::Udp(u), Direction::Read) => u.try_recv(buf),
        // An unconnected UDP socket has nowhere to write to
        // (troupe_net::udp_send_to names the address).
        (Socket::Udp(_), Direction::Write) => Err(io::ErrorKind::NotConnected.into()),
        (Socket::Listener(_), _) => Err(io::ErrorKind::NotConnected.into()),
    }
}

/// Waits until the socket may be ready for `interest`.
pub(super) fn ready(
    socket: &SocketRef,
    interest: tokio::io::Interest,
) -> impl Future<Output = io::Result<tokio::io::Ready>> + Send + 'static {
    let socket = socket.clone();
    async move {
        match &*socket {
            Socket::Stream(s) => s.ready(interest).await,
            Socket::Udp(u) => u.ready(interest).await,
            Socket::Listener(l) => {
                if !interest.is_readable() {
                    return std::future::pending().await;
                }
                accept_ahead(l).await;
                Ok(tokio::io::Ready::READABLE)
            }
        }
    }
}

/// Waits for a connection on `l` and keeps it for the next accept.
pub(super) async fn accept_ahead(l: &crate::net::Listener) {
    if crate::net::sockets::lock_pending(l).is_some() {
        return;
    }
    // On an error, the next accept meets it (or a connection) itself.
    if let Ok(conn) = std::future::poll_fn(|cx| l.inner.poll_accept(cx)).await {
        *crate::net::sockets::lock_pending(l) = Some(conn);
    }
}

/// `sock_accept`: a connection from the listener, as a new descriptor (and
/// handle) of this process; `flags` may ask for it non-blocking.
async fn accept<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    fd: i32,
    flags: i32,
    out: i32,
) -> Result<i32, Fault> {
    g.check("ro_fd", out, 4)?;
    let Some((_, socket, state)) = g.ctx().sockets().by_fd(fd as u32) else {
        return Ok(if fd as u32 == val::MAILBOX_FD {
            errno::NOTSOCK
        } else {
            errno::BADF
        });
    };
    let Socket::Listener(l) = &*socket else {
        return Ok(errno::INVAL);
    };
    let conn = if state.nonblock {
        let taken = crate::net::sockets::lock_pending(l).take();
        match taken {
            Some(conn) => Ok(conn),
            None => {
                let mut cx = Context::from_waker(Waker::noop());
                match l.inner.poll_accept(&mut cx) {
                    Poll::Ready(r) => r,
                    Poll::Pending => {
                        g.ctx().sockets().update(fd as u32, |s| s.read_armed = true);
                        return Ok(errno::AGAIN);
                    }
                }
            }
        }
    } else {
        l.accept().await
    };
    let (stream, _) = match conn {
        Ok(conn) => conn,
        Err(e) => return Ok(errno_of(&e)),
    };
    let _ = stream.set_nodelay(true);
    let stream = Socket::Stream(stream);
    room_for(g.ctx().sockets(), &stream)?;
    let Some((_, new_fd)) = g.ctx().sockets().add(stream) else {
        return Ok(errno::IO);
    };
    if flags & FDFLAGS_NONBLOCK != 0 {
        g.ctx().sockets().update(new_fd, |s| s.nonblock = true);
    }
    g.write_u32("ro_fd", out, new_fd)?;
    Ok(errno::SUCCESS)
}

/// `sock_shutdown`.
fn shutdown<T: ProcessCtx>(ctx: &T, fd: i32, how: i32) -> i32 {
    let Some((_, socket, _)) = ctx.sockets().by_fd(fd as u32) else {
        return if fd as u32 == val::MAILBOX_FD {
            errno::NOTSOCK
        } else {
            errno::BADF
        };
    };
    let Socket::Stream(stream) = &*socket else {
        return errno::NOTCONN;
    };
    let how = match how & (SDFLAGS_RD | SDFLAGS_WR) {
        SDFLAGS_RD => std::net::Shutdown::Read,
        SDFLAGS_WR => std::net::Shutdown::Write,
        x if x == SDFLAGS_RD | SDFLAGS_WR => std::net::Shutdown::Both,
        _ => return errno::INVAL,
    };
    match socket2::SockRef::from(stream).shutdown(how) {
        Ok(()) => errno::SUCCESS,
        Err(e) => errno_of(&e),
    }
}

/// `fd_close`: closes the socket (as `troupe_net::close`). The mailbox's
/// descriptor cannot be closed: closing it does nothing.
fn close<T: ProcessCtx>(ctx: &mut T, fd: i32) -> i32 {
    if fd as u32 == val::MAILBOX_FD {
        return errno::SUCCESS;
    }
    let Some((handle, _, _)) = ctx.sockets().by_fd(fd as u32) else {
        return errno::BADF;
    };
    ctx.sockets().remove(handle);
    ctx.attachments().retain(|h| *h != handle);
    errno::SUCCESS
}

/// `fd_fdstat_get`: a socket is `socket_stream` (TCP) or `socket_dgram`
/// (UDP); the mailbox's descriptor is of no type, always non-blocking.
fn fdstat<T: ProcessCtx>(g: &mut Guest<'_, '_, T>, fd: i32, out: i32) -> Result<i32, Fault> {
    g.check("fdstat", out, 24)?;
    let (filetype, nonblock, rights) = if fd as u32 == val::MAILBOX_FD {
        (FILETYPE_UNKNOWN, true, MAILBOX_RIGHTS)
    } else {
        let Some((_, socket, state)) = g.ctx().sockets().by_fd(fd as u32) else {
            return Ok(errno::BADF);
        };
        let filetype = match &*socket {
            Socket::Udp(_) => FILETYPE_SOCKET_DGRAM,
            _ => FILETYPE_SOCKET_STREAM,
        };
        (filetype, state.nonblock, SOCKET_RIGHTS)
    };
    let mut stat = [0u8; 24];
    stat[0] = filetype;
    let flags: u16 = if nonblock { FDFLAGS_NONBLOCK as u16 } else { 0 };
    stat[2..4].copy_from_slice(&flags.to_le_bytes());
    stat[8..16].copy_from_slice(&rights.to_le_bytes());
    stat[16..24].copy_from_slice(&rights.to_le_bytes());
    g.write("fdstat", out, &stat)?;
    Ok(errno::SUCCESS)
}
