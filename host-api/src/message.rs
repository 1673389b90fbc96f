//! Namespace `troupe_message`: send, selective receive, and reading a held
//! message. See `host-api/SPEC.md`.

use std::time::Duration;

use troupe_abi::{err, info, module::MESSAGE};
use wasmtime::{Caller, Linker};

use crate::memory::{memory_of, range, slice, slice_mut};
use crate::{HostError, ProcessCtx, TagSet};

/// Registers `troupe_message` into `linker`.
pub fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(MESSAGE, "send", send::<T>)?;
    linker.func_wrap(MESSAGE, "read", read::<T>)?;
    linker.func_wrap_async(
        MESSAGE,
        "receive",
        |caller: Caller<'_, T>, (tags_ptr, tags_count, timeout_ns, buf_ptr, buf_cap, info_ptr)| {
            Box::new(receive(
                caller, tags_ptr, tags_count, timeout_ns, buf_ptr, buf_cap, info_ptr,
            ))
        },
    )?;
    Ok(())
}

fn send<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    pid: i64,
    tag: i64,
    data_ptr: i32,
    data_len: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_message::send";
    let memory = memory_of(&mut caller, F)?;
    let data = slice(&memory, &caller, F, "data", data_ptr, data_len)?.to_vec();
    crate::net::move_attached(caller.data_mut(), pid as u64);
    let state = caller.data();
    Ok(match state.send(pid as u64, tag as u64, data) {
        Ok(()) => err::OK,
        Err(e) => {
            // `send` only needs `&self`; recording the error needs `&mut`.
            let e = e.to_host_error(" (the message was dropped)");
            caller.data_mut().record_error(e)
        }
    })
}

async fn receive<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    tags_ptr: i32,
    tags_count: i32,
    timeout_ns: i64,
    buf_ptr: i32,
    buf_cap: i32,
    info_ptr: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_message::receive";
    let memory = memory_of(&mut caller, F)?;
    // Check every range before waiting, so a bad pointer traps at once (one
    // look-up of the memory for the three: this is the hottest host call).
    let data = memory.data(&caller);
    if tags_count as u32 > troupe_abi::limit::RECEIVE_TAGS {
        return Ok(caller.data_mut().record_error(HostError::new(
            err::INVALID_ARGUMENT,
            format!(
                "a receive selects on at most {} tags; {} given",
                troupe_abi::limit::RECEIVE_TAGS,
                tags_count as u32
            ),
        )));
    }
    let tags_len = tags_count * 8;
    let tag_bytes = &data[range(F, "tags", tags_ptr, tags_len, data.len())?];
    range(F, "buf", buf_ptr, buf_cap, data.len())?;
    range(F, "info", info_ptr, info::SIZE as i32, data.len())?;
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

    let timeout = (timeout_ns >= 0).then(|| Duration::from_nanos(timeout_ns as u64));
    let state = caller.data_mut();
    *state.held_message() = None;
    let Some(msg) = state.receive(tags, timeout).await else {
        return Ok(caller.data_mut().record_error(HostError::new(
            err::TIMEOUT,
            format!("no matching message within {timeout_ns} ns"),
        )));
    };

    let data = memory.data_mut(&mut caller);
    let mut record = [0u8; info::SIZE];
    record[info::TAG..info::TAG + 8].copy_from_slice(&msg.tag.to_le_bytes());
    record[info::SENDER..info::SENDER + 8].copy_from_slice(&msg.sender.to_le_bytes());
    record[info::LEN..info::LEN + 4].copy_from_slice(&(msg.data.len() as u32).to_le_bytes());
    // Ranges were checked above and memory never shrinks.
    let info_at = info_ptr as u32 as usize;
    data[info_at..info_at + info::SIZE].copy_from_slice(&record);
    if msg.data.len() <= buf_cap as u32 as usize {
        let at = buf_ptr as u32 as usize;
        data[at..at + msg.data.len()].copy_from_slice(&msg.data);
        Ok(err::OK)
    } else {
        let len = msg.data.len();
        let state = caller.data_mut();
        *state.held_message() = Some(msg);
        Ok(state.record_error(HostError::new(
            err::BUFFER_TOO_SMALL,
            format!("the message is {len} bytes, the buffer {buf_cap}: call read"),
        )))
    }
}

fn read<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    buf_ptr: i32,
    buf_len: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_message::read";
    let memory = memory_of(&mut caller, F)?;
    slice(&memory, &caller, F, "buf", buf_ptr, buf_len)?;
    let Some(msg) = caller.data_mut().held_message().take() else {
        return Ok(caller
            .data_mut()
            .record_error(HostError::new(err::NO_MESSAGE, "no message is held")));
    };
    if msg.data.len() > buf_len as u32 as usize {
        let len = msg.data.len();
        let state = caller.data_mut();
        *state.held_message() = Some(msg);
        return Ok(state.record_error(HostError::new(
            err::BUFFER_TOO_SMALL,
            format!("the held message is {len} bytes, the buffer {buf_len}"),
        )));
    }
    slice_mut(
        &memory,
        &mut caller,
        F,
        "buf",
        buf_ptr,
        msg.data.len() as i32,
    )?
    .copy_from_slice(&msg.data);
    Ok(err::OK)
}
