//! TCP's host functions: `tcp_accept`, `tcp_connect`, `read`, `write`,
//! `shutdown`, and the listener `tcp_listen` binds (through `bind`, above).

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use troupe_abi::{err, val};

use super::dns::permitted;
use super::{add_socket, io_error, open_first, socket_of, within, Kind, Socket};
use crate::call::{Fault, Guest};
use crate::{HostError, ProcessCtx};

/// A listening TCP socket on `addr` (for `tcp_listen`).
pub(super) async fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// `tcp_accept`.
pub(super) async fn accept<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    (listener, timeout_ns, out_handle): (i64, i64, i32),
) -> Result<i32, Fault> {
    g.check("out_handle", out_handle, 8)?;
    let socket = socket_of(g.ctx(), listener, Some(Kind::Listener))?;
    let Socket::Listener(l) = &*socket else {
        unreachable!("checked by socket_of")
    };
    let stream = within(g.func(), timeout_ns, async {
        let (stream, _) = l.accept().await.map_err(|e| io_error("accept", &e))?;
        let _ = stream.set_nodelay(true);
        Ok::<_, HostError>(stream)
    })
    .await?;
    add_socket(g, out_handle, Socket::Stream(stream))
}

/// `tcp_connect`.
pub(super) async fn connect<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    (addr_ptr, addr_len, timeout_ns, out_handle): (i32, i32, i64, i32),
) -> Result<i32, Fault> {
    g.check("out_handle", out_handle, 8)?;
    let addr = g.read_str("addr", addr_ptr, addr_len)?;
    let policy = g.ctx().net_policy().clone();
    let stream = within(g.func(), timeout_ns, async {
        let addrs = permitted(&policy, "connect to", &addr).await?;
        open_first(addrs, "connect to", &addr, TcpStream::connect).await
    })
    .await?;
    let _ = stream.set_nodelay(true);
    add_socket(g, out_handle, Socket::Stream(stream))
}

/// Waits until `ready` says the socket is readable and runs `try_read` on
/// the guest's buffer `buf_ptr..+buf_len`, again while it would block;
/// within `timeout_ns`. The guest's memory is borrowed only between the
/// waits.
pub(super) async fn read_ready<T: ProcessCtx, R, W: Future<Output = io::Result<()>>>(
    g: &mut Guest<'_, '_, T>,
    (buf_ptr, buf_len): (i32, i32),
    timeout_ns: i64,
    ready: impl Fn() -> W,
    mut try_read: impl FnMut(&mut [u8]) -> io::Result<R>,
) -> Result<R, Fault> {
    let what = g.func();
    within(what, timeout_ns, async {
        loop {
            ready().await.map_err(|e| io_error(what, &e))?;
            match try_read(g.bytes_mut("buf", buf_ptr, buf_len)?) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return done.map_err(|e| io_error(what, &e).into()),
            }
        }
    })
    .await
}

/// `read`.
pub(super) async fn read<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    (handle, buf_ptr, buf_len, timeout_ns, out_n): (i64, i32, i32, i64, i32),
) -> Result<i32, Fault> {
    g.check("buf", buf_ptr, buf_len)?;
    g.check("out_n", out_n, 4)?;
    let socket = socket_of(g.ctx(), handle, Some(Kind::Stream))?;
    let Socket::Stream(stream) = &*socket else {
        unreachable!("checked by socket_of")
    };
    let n = read_ready(
        g,
        (buf_ptr, buf_len),
        timeout_ns,
        || stream.readable(),
        |buf| stream.try_read(buf),
    )
    .await?;
    g.write_u32("out_n", out_n, n as u32)?;
    Ok(err::OK)
}

/// `write`: all of the buffer, or as much as went out before an error or
/// the time-out (`out_n` says how much, either way).
pub(super) async fn write<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    (handle, buf_ptr, buf_len, timeout_ns, out_n): (i64, i32, i32, i64, i32),
) -> Result<i32, Fault> {
    let buf = g.check("buf", buf_ptr, buf_len)?;
    g.check("out_n", out_n, 4)?;
    let socket = socket_of(g.ctx(), handle, Some(Kind::Stream))?;
    let Socket::Stream(stream) = &*socket else {
        unreachable!("checked by socket_of")
    };
    let mut written = 0usize;
    let (g_ref, written_ref) = (&mut *g, &mut written);
    let result = within(g_ref.func(), timeout_ns, async {
        while *written_ref < buf.len() {
            // Try first: a socket with room in its buffer needs no wait.
            let left = (buf.start + *written_ref) as i32;
            let tried =
                stream.try_write(g_ref.bytes("buf", left, (buf.len() - *written_ref) as i32)?);
            match tried {
                Ok(n) => *written_ref += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stream.writable().await.map_err(|e| io_error("write", &e))?
                }
                Err(e) => return Err(io_error("write", &e).into()),
            }
        }
        Ok::<_, Fault>(())
    })
    .await;
    g.write_u32("out_n", out_n, written as u32)?;
    result?;
    Ok(err::OK)
}

/// `shutdown`.
pub(super) fn shutdown<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    handle: i64,
    how: i32,
) -> Result<i32, Fault> {
    let socket = socket_of(g.ctx(), handle, Some(Kind::Stream))?;
    let Socket::Stream(stream) = &*socket else {
        unreachable!("checked by socket_of")
    };
    let how = match how {
        val::SHUTDOWN_READ => std::net::Shutdown::Read,
        val::SHUTDOWN_WRITE => std::net::Shutdown::Write,
        val::SHUTDOWN_BOTH => std::net::Shutdown::Both,
        other => {
            return Err(HostError::new(
                err::INVALID_ARGUMENT,
                format!("shutdown: how must be 0 (read), 1 (write) or 2 (both), not {other}"),
            )
            .into())
        }
    };
    socket2::SockRef::from(stream)
        .shutdown(how)
        .map_err(|e| io_error("shutdown", &e))?;
    Ok(err::OK)
}
