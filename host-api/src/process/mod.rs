//! Namespace `troupe_process`: identity, errors, module loading, spawn
//! configuration and spawn. See `host-api/SPEC.md`.

use troupe_abi::{err, module::PROCESS};
use wasmtime::{Caller, Linker};

use crate::call::{call, host_async, trap_now, Fault, Guest};
use crate::{ExitReason, GuestExit, Hibernate, HostError, ProcessCtx};

mod config;
mod spawn;

/// Registers `troupe_process` into `linker`.
pub fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(PROCESS, "self_pid", |caller: Caller<'_, T>| {
        caller.data().pid() as i64
    })?;
    linker.func_wrap(PROCESS, "error_message", error_message::<T>)?;
    linker.func_wrap_async(PROCESS, "module_load", |mut caller: Caller<'_, T>, args| {
        host_async!(caller, "troupe_process::module_load", |g| module_load(
            g, args
        ))
    })?;
    linker.func_wrap(PROCESS, "module_self", |caller: Caller<'_, T>| {
        caller.data().module_self() as i64
    })?;
    config::register(linker)?;
    linker.func_wrap(PROCESS, "link", |mut caller: Caller<'_, T>, pid: i64| {
        call(&mut caller, "troupe_process::link", |g| {
            g.ctx_mut().link(pid as u64)?;
            Ok(err::OK)
        })
    })?;
    linker.func_wrap(PROCESS, "unlink", |mut caller: Caller<'_, T>, pid: i64| {
        caller.data_mut().unlink(pid as u64);
        err::OK
    })?;
    linker.func_wrap(PROCESS, "monitor", |mut caller: Caller<'_, T>, pid: i64| {
        call(&mut caller, "troupe_process::monitor", |g| {
            Ok(g.ctx_mut().monitor(pid as u64)? as i64)
        })
    })?;
    linker.func_wrap(PROCESS, "demonitor", |mut caller: Caller<'_, T>, r: i64| {
        call(&mut caller, "troupe_process::demonitor", |g| {
            g.ctx_mut().demonitor(r as u64)?;
            Ok(err::OK)
        })
    })?;
    linker.func_wrap(
        PROCESS,
        "trap_exit",
        |mut caller: Caller<'_, T>, on: i32| caller.data_mut().trap_exit(on != 0) as i32,
    )?;
    linker.func_wrap(PROCESS, "kill", |mut caller: Caller<'_, T>, pid: i64| {
        call(&mut caller, "troupe_process::kill", |g| {
            g.ctx_mut().kill(pid as u64)?;
            Ok(err::OK)
        })
    })?;
    linker.func_wrap(PROCESS, "send_exit", send_exit::<T>)?;
    linker.func_wrap(PROCESS, "exit", exit::<T>)?;
    linker.func_wrap(PROCESS, "hibernate", hibernate::<T>)?;
    spawn::register(linker)?;
    Ok(())
}

fn error_message<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    buf_ptr: i32,
    buf_len: i32,
) -> wasmtime::Result<i32> {
    call(&mut caller, "troupe_process::error_message", |g| {
        let text = g.ctx().last_error().as_bytes().to_vec();
        let buf = g.bytes_mut("buf", buf_ptr, buf_len)?;
        let n = text.len().min(buf.len());
        buf[..n].copy_from_slice(&text[..n]);
        Ok(text.len() as i32)
    })
}

async fn module_load<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    (bytes_ptr, bytes_len, out_module): (i32, i32, i32),
) -> Result<i32, Fault> {
    g.check("out_module", out_module, 8)?;
    let bytes = g.read("bytes", bytes_ptr, bytes_len)?;
    let handle = g.ctx_mut().module_load(bytes).await?;
    g.write_u64("out_module", out_module, handle)?;
    Ok(err::OK)
}

/// Reads an encoded exit reason (an `INVALID_ARGUMENT` error if it does
/// not decode or is too long).
fn read_reason<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    ptr: i32,
    len: i32,
) -> Result<ExitReason, Fault> {
    let bytes = g.bytes("reason", ptr, len)?;
    let limit = troupe_abi::limit::REASON_LEN as usize;
    let decoded = if bytes.len() > limit {
        // It would be copied into every EXIT and DOWN of the process.
        Err(format!(
            "an encoded exit reason is at most {limit} bytes; this one is {}",
            bytes.len()
        ))
    } else {
        ExitReason::decode(bytes)
    };
    decoded
        .map_err(|e| HostError::new(err::INVALID_ARGUMENT, format!("bad exit reason: {e}")).into())
}

fn send_exit<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    pid: i64,
    reason_ptr: i32,
    reason_len: i32,
) -> wasmtime::Result<i32> {
    call(&mut caller, "troupe_process::send_exit", |g| {
        let reason = read_reason(g, reason_ptr, reason_len)?;
        g.ctx_mut().send_exit(pid as u64, reason)?;
        Ok(err::OK)
    })
}

/// `exit` never returns: it unwinds with [`GuestExit`], or traps if the
/// reason is bad.
fn exit<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    reason_ptr: i32,
    reason_len: i32,
) -> wasmtime::Result<()> {
    let mut g = Guest::new(&mut caller, "troupe_process::exit");
    match read_reason(&mut g, reason_ptr, reason_len) {
        Ok(reason) => Err(unwind(GuestExit(reason))),
        Err(Fault::Code(e)) => Err(wasmtime::format_err!("{}: {}", g.func(), e.message)),
        Err(Fault::Trap(e)) => Err(e),
    }
}

/// `hibernate`: unwinds the caller with [`Hibernate`] (so it does not
/// return) unless the process cannot hibernate, which is an error code.
fn hibernate<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    entry_ptr: i32,
    entry_len: i32,
    params_ptr: i32,
    params_count: i32,
) -> wasmtime::Result<i32> {
    call(&mut caller, "troupe_process::hibernate", |g| {
        let entry = trap_now(g.read_str("entry", entry_ptr, entry_len))?;
        let params = trap_now(spawn::read_params(g, params_ptr, params_count))?;
        let (entry, params) = (entry?, params?);
        g.ctx().can_hibernate(&entry, params.len())?;
        Err(Fault::Trap(unwind(Hibernate { entry, params })))
    })
}

/// The error that unwinds a process that asked to stop running (`exit`,
/// `hibernate`): not a fault, so it carries an empty Wasm backtrace, which
/// tells wasmtime not to capture one (capturing symbolises every frame:
/// about a tenth of the cost of a hibernation).
fn unwind<E: std::error::Error + Send + Sync + 'static>(e: E) -> wasmtime::Error {
    thread_local! {
        /// A store of an engine that captures no backtraces: its
        /// `WasmBacktrace::capture` is an empty one, made without a walk.
        static NO_BACKTRACES: wasmtime::Store<()> = {
            let mut config = wasmtime::Config::new();
            config.wasm_backtrace_max_frames(None);
            let engine = wasmtime::Engine::new(&config).expect("a default engine");
            wasmtime::Store::new(&engine, ())
        };
    }
    let empty = NO_BACKTRACES.with(|store| wasmtime::WasmBacktrace::capture(store));
    wasmtime::Error::new(e).context(empty)
}
