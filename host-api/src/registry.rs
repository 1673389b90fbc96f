//! Namespace `troupe_registry`: VM-wide process names. See `host-api/SPEC.md`.

use troupe_abi::{err, module::REGISTRY};
use wasmtime::{Caller, Linker};

use crate::memory::{memory_of, read_str, slice, write_u64};
use crate::{HostError, ProcessCtx};

/// Registers `troupe_registry` into `linker`.
pub fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(REGISTRY, "register", register_name::<T>)?;
    linker.func_wrap(REGISTRY, "unregister", unregister::<T>)?;
    linker.func_wrap(REGISTRY, "whereis", whereis::<T>)?;
    linker.func_wrap(REGISTRY, "send", send::<T>)?;
    Ok(())
}

/// Reads the name argument; `Err(code)` (already recorded) if not UTF-8.
fn name<T: ProcessCtx>(
    caller: &mut Caller<'_, T>,
    func: &str,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<Result<String, i32>> {
    let memory = memory_of(caller, func)?;
    let limit = troupe_abi::limit::NAME_LEN;
    if len as u32 > limit {
        // Checked before the name is copied; the pointer is checked too.
        slice(&memory, caller, func, "name", ptr, len)?;
        return Ok(Err(caller.data_mut().record_error(HostError::new(
            err::INVALID_ARGUMENT,
            format!(
                "a name is at most {limit} bytes; this one is {}",
                len as u32
            ),
        ))));
    }
    Ok(match read_str(&memory, caller, func, "name", ptr, len)? {
        Ok(name) => Ok(name),
        Err(e) => Err(caller
            .data_mut()
            .record_error(HostError::new(err::INVALID_ARGUMENT, e))),
    })
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
    let name = match name(&mut caller, "troupe_registry::register", ptr, len)? {
        Ok(n) => n,
        Err(code) => return Ok(code),
    };
    let state = caller.data_mut();
    Ok(match state.register(name, pid as u64) {
        Ok(()) => err::OK,
        Err(e) => state.record_error(e),
    })
}

fn unregister<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i32> {
    let name = match name(&mut caller, "troupe_registry::unregister", ptr, len)? {
        Ok(n) => n,
        Err(code) => return Ok(code),
    };
    let state = caller.data_mut();
    Ok(match state.unregister(&name) {
        Ok(()) => err::OK,
        Err(e) => state.record_error(e),
    })
}

fn whereis<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    ptr: i32,
    len: i32,
    out_pid: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_registry::whereis";
    let memory = memory_of(&mut caller, F)?;
    slice(&memory, &caller, F, "out_pid", out_pid, 8)?;
    let name = match name(&mut caller, F, ptr, len)? {
        Ok(n) => n,
        Err(code) => return Ok(code),
    };
    match caller.data().whereis(&name) {
        Some(pid) => {
            write_u64(&memory, &mut caller, F, "out_pid", out_pid, pid)?;
            Ok(err::OK)
        }
        None => Ok(caller.data_mut().record_error(not_found(&name))),
    }
}

fn send<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    name_ptr: i32,
    name_len: i32,
    tag: i64,
    data_ptr: i32,
    data_len: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_registry::send";
    let memory = memory_of(&mut caller, F)?;
    let data = slice(&memory, &caller, F, "data", data_ptr, data_len)?.to_vec();
    let name = match name(&mut caller, F, name_ptr, name_len)? {
        Ok(n) => n,
        Err(code) => return Ok(code),
    };
    let Some(pid) = caller.data().whereis(&name) else {
        // Sockets attached to a message that is not sent are closed.
        drop(crate::net::take_attached(caller.data_mut()));
        return Ok(caller.data_mut().record_error(not_found(&name)));
    };
    crate::net::move_attached(caller.data_mut(), pid);
    Ok(match caller.data().send(pid, tag as u64, data) {
        Ok(()) => err::OK,
        Err(e) => {
            let e = e.to_host_error(&format!(
                " (registered as {name:?}; the message was dropped)"
            ));
            caller.data_mut().record_error(e)
        }
    })
}
