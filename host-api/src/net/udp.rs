//! UDP's host functions: `udp_send_to`, `udp_recv_from` (`udp_bind` is
//! `tcp_listen`'s twin, in the module above).

use troupe_abi::err;

use super::dns::permitted;
use super::tcp::read_ready;
use super::{io_error, socket_of, within, Kind, Socket};
use crate::call::{Fault, Guest};
use crate::ProcessCtx;

/// `udp_send_to`.
pub(super) async fn send_to<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    (handle, buf_ptr, buf_len, addr_ptr, addr_len, timeout_ns, out_n): (
        i64,
        i32,
        i32,
        i32,
        i32,
        i64,
        i32,
    ),
) -> Result<i32, Fault> {
    let data = g.read("buf", buf_ptr, buf_len)?;
    g.check("out_n", out_n, 4)?;
    let addr = g.read_str("addr", addr_ptr, addr_len)?;
    let socket = socket_of(g.ctx(), handle, Some(Kind::Udp))?;
    let Socket::Udp(udp) = &*socket else {
        unreachable!("checked by socket_of")
    };
    let policy = g.ctx().net_policy().clone();
    let n = within(g.func(), timeout_ns, async {
        let addrs = permitted(&policy, "send to", &addr).await?;
        udp.send_to(&data, addrs[0])
            .await
            .map_err(|e| io_error(&format!("send to {addr}"), &e))
    })
    .await?;
    g.write_u32("out_n", out_n, n as u32)?;
    Ok(err::OK)
}

/// `udp_recv_from`.
pub(super) async fn recv_from<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    (handle, buf_ptr, buf_len, timeout_ns, out_n, addr_ptr, addr_cap, out_addr_len): (
        i64,
        i32,
        i32,
        i64,
        i32,
        i32,
        i32,
        i32,
    ),
) -> Result<i32, Fault> {
    g.check("buf", buf_ptr, buf_len)?;
    g.check("out_n", out_n, 4)?;
    g.check("addr", addr_ptr, addr_cap)?;
    g.check("out_addr_len", out_addr_len, 4)?;
    let socket = socket_of(g.ctx(), handle, Some(Kind::Udp))?;
    let Socket::Udp(udp) = &*socket else {
        unreachable!("checked by socket_of")
    };
    // A guest may read its descriptor's datagrams this way, and wait for
    // more with poll_oneoff (the Go SDK does): this read counts as one
    // that may find nothing, as an fd_read does.
    g.ctx().sockets().rearm_read(handle as u64);
    let (n, from) = read_ready(
        g,
        (buf_ptr, buf_len),
        timeout_ns,
        || udp.readable(),
        |buf| udp.try_recv_from(buf),
    )
    .await?;
    g.write_u32("out_n", out_n, n as u32)?;
    let text = from.to_string();
    let shown = text.len().min(addr_cap as u32 as usize);
    g.write("addr", addr_ptr, &text.as_bytes()[..shown])?;
    g.write_u32("out_addr_len", out_addr_len, text.len() as u32)?;
    Ok(err::OK)
}
