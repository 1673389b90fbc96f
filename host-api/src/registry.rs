//! Namespace `troupe_registry`: VM-wide process names. See `host-api/SPEC.md`.

use troupe_abi::{err, module::REGISTRY};
use wasmtime::{Caller, Linker};

use crate::call::{call, Fault, Guest};
use crate::{HostError, ProcessCtx};

/// Registers `troupe_registry` into `linker`.
pub fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(REGISTRY, "register", register_name::<T>)?;
    linker.func_wrap(REGISTRY, "unregister", unregister::<T>)?;
    linker.func_wrap(REGISTRY, "whereis", whereis::<T>)?;
    linker.func_wrap(REGISTRY, "send", send::<T>)?;
    Ok(())
}

/// Reads the name argument (at most [`troupe_abi::limit::NAME_LEN`] bytes
/// of UTF-8).
fn name<T: ProcessCtx>(g: &mut Guest<'_, '_, T>, ptr: i32, len: i32) -> Result<String, Fault> {
    let limit = troupe_abi::limit::NAME_LEN;
    if len as u32 > limit {
        // Checked before the name is copied; the pointer is checked too.
        g.check("name", ptr, len)?;
        return Err(HostError::new(
            err::INVALID_ARGUMENT,
            format!(
                "a name is at most {limit} bytes; this one is {}",
                len as u32
            ),
        )
        .into());
    }
    g.read_str("name", ptr, len)
}

fn not_found(name: &str) -> HostError {
    HostError::new(
        err::NOT_FOUND,
        format!("no process is registered as {name:?}"),
    )
}

fn register_name<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    ptr: i32,
    len: i32,
    pid: i64,
) -> wasmtime::Result<i32> {
    call(&mut caller, "troupe_registry::register", |g| {
        let name = name(g, ptr, len)?;
        g.ctx_mut().register(name, pid as u64)?;
        Ok(err::OK)
    })
}

fn unregister<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i32> {
    call(&mut caller, "troupe_registry::unregister", |g| {
        let name = name(g, ptr, len)?;
        g.ctx_mut().unregister(&name)?;
        Ok(err::OK)
    })
}

fn whereis<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    ptr: i32,
    len: i32,
    out_pid: i32,
) -> wasmtime::Result<i32> {
    call(&mut caller, "troupe_registry::whereis", |g| {
        g.check("out_pid", out_pid, 8)?;
        let name = name(g, ptr, len)?;
        let pid = g.ctx().whereis(&name).ok_or_else(|| not_found(&name))?;
        g.write_u64("out_pid", out_pid, pid)?;
        Ok(err::OK)
    })
}

fn send<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    name_ptr: i32,
    name_len: i32,
    tag: i64,
    data_ptr: i32,
    data_len: i32,
) -> wasmtime::Result<i32> {
    call(&mut caller, "troupe_registry::send", |g| {
        let data = g.read("data", data_ptr, data_len)?;
        let name = name(g, name_ptr, name_len)?;
        let Some(pid) = g.ctx().whereis(&name) else {
            // Sockets attached to a message that is not sent are closed.
            drop(crate::net::take_attached(g.ctx_mut()));
            return Err(not_found(&name).into());
        };
        crate::net::move_attached(g.ctx_mut(), pid);
        g.ctx().send(pid, tag as u64, data).map_err(|e| {
            e.to_host_error(&format!(
                " (registered as {name:?}; the message was dropped)"
            ))
        })?;
        Ok(err::OK)
    })
}
