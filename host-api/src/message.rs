//! Namespace `troupe_message`: send, selective receive, and reading a held
//! message. See `host-api/SPEC.md`.

use std::time::Duration;

use troupe_abi::{err, info, module::MESSAGE};
use wasmtime::{Caller, Linker};

use crate::call::{call, host_async, Fault, Guest};
use crate::{HostError, ProcessCtx, TagSet};

/// Registers `troupe_message` into `linker`.
pub fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(MESSAGE, "send", send::<T>)?;
    linker.func_wrap(MESSAGE, "read", read::<T>)?;
    linker.func_wrap_async(MESSAGE, "receive", |mut caller: Caller<'_, T>, args| {
        host_async!(caller, "troupe_message::receive", |g| receive(g, args))
    })?;
    Ok(())
}

fn send<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    pid: i64,
    tag: i64,
    data_ptr: i32,
    data_len: i32,
) -> wasmtime::Result<i32> {
    call(&mut caller, "troupe_message::send", |g| {
        let data = g.read("data", data_ptr, data_len)?;
        crate::net::move_attached(g.ctx_mut(), pid as u64);
        g.ctx()
            .send(pid as u64, tag as u64, data)
            .map_err(|e| e.to_host_error(" (the message was dropped)"))?;
        Ok(err::OK)
    })
}

async fn receive<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    (tags_ptr, tags_count, timeout_ns, buf_ptr, buf_cap, info_ptr): (i32, i32, i64, i32, i32, i32),
) -> Result<i32, Fault> {
    // Check every range before waiting, so a bad pointer traps at once.
    if tags_count as u32 > troupe_abi::limit::RECEIVE_TAGS {
        return Err(HostError::new(
            err::INVALID_ARGUMENT,
            format!(
                "a receive selects on at most {} tags; {} given",
                troupe_abi::limit::RECEIVE_TAGS,
                tags_count as u32
            ),
        )
        .into());
    }
    let tag_bytes = g.bytes("tags", tags_ptr, tags_count * 8)?;
    let tags = match tags_count {
        0 => TagSet::Any,
        1 => TagSet::One(u64::from_le_bytes(tag_bytes[..8].try_into().unwrap())),
        _ => TagSet::many(
            tag_bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
    };
    let buf = g.check("buf", buf_ptr, buf_cap)?;
    let info_at = g.check("info", info_ptr, info::SIZE as i32)?;

    let timeout = (timeout_ns >= 0).then(|| Duration::from_nanos(timeout_ns as u64));
    let state = g.ctx_mut();
    *state.held_message() = None;
    // Counted before looking, so that a message arriving while this receive
    // finds none makes the mailbox's descriptor ready (see `wasi`).
    let arrivals = state.mailbox_arrivals();
    let Some(msg) = state.receive(tags, timeout).await else {
        state.sockets().arm_mailbox(arrivals);
        return Err(HostError::new(
            err::TIMEOUT,
            format!("no matching message within {timeout_ns} ns"),
        )
        .into());
    };

    let mut record = [0u8; info::SIZE];
    record[info::TAG..info::TAG + 8].copy_from_slice(&msg.tag.to_le_bytes());
    record[info::SENDER..info::SENDER + 8].copy_from_slice(&msg.sender.to_le_bytes());
    record[info::LEN..info::LEN + 4].copy_from_slice(&(msg.data.len() as u32).to_le_bytes());
    let (memory, state) = g.memory_and_ctx()?;
    // The ranges were checked above and memory never shrinks.
    memory[info_at].copy_from_slice(&record);
    if msg.data.len() <= buf.len() {
        memory[buf.start..buf.start + msg.data.len()].copy_from_slice(&msg.data);
        Ok(err::OK)
    } else {
        let len = msg.data.len();
        *state.held_message() = Some(msg);
        Err(HostError::new(
            err::BUFFER_TOO_SMALL,
            format!("the message is {len} bytes, the buffer {buf_cap}"),
        )
        .into())
    }
}

fn read<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    buf_ptr: i32,
    buf_len: i32,
) -> wasmtime::Result<i32> {
    call(&mut caller, "troupe_message::read", |g| {
        g.check("buf", buf_ptr, buf_len)?;
        let Some(msg) = g.ctx_mut().held_message().take() else {
            return Err(HostError::new(err::NO_MESSAGE, "no message is held").into());
        };
        if msg.data.len() > buf_len as u32 as usize {
            let len = msg.data.len();
            *g.ctx_mut().held_message() = Some(msg);
            return Err(HostError::new(
                err::BUFFER_TOO_SMALL,
                format!("the held message is {len} bytes, the buffer {buf_len}"),
            )
            .into());
        }
        g.write("buf", buf_ptr, &msg.data)?;
        Ok(err::OK)
    })
}
