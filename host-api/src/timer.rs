//! Namespace `troupe_timer`: sleep, send_after, cancel_timer. See
//! `host-api/SPEC.md`.

use std::time::Duration;

use troupe_abi::{err, module::TIMER, val};
use wasmtime::{Caller, Linker};

use crate::call::call;
use crate::ProcessCtx;

fn duration(ns: i64) -> Duration {
    Duration::from_nanos(ns.max(0) as u64)
}

/// Registers `troupe_timer` into `linker`.
pub fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        TIMER,
        "sleep",
        |mut caller: Caller<'_, T>, (ns,): (i64,)| {
            Box::new(async move { caller.data_mut().sleep(duration(ns)).await })
        },
    )?;
    linker.func_wrap(TIMER, "send_after", send_after::<T>)?;
    linker.func_wrap(
        TIMER,
        "cancel_timer",
        |mut caller: Caller<'_, T>, r: i64| {
            if caller.data_mut().cancel_timer(r as u64) {
                val::TIMER_CANCELLED
            } else {
                val::TIMER_NOT_PENDING
            }
        },
    )?;
    Ok(())
}

fn send_after<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    pid: i64,
    tag: i64,
    data_ptr: i32,
    data_len: i32,
    delay_ns: i64,
    out_ref: i32,
) -> wasmtime::Result<i32> {
    call(&mut caller, "troupe_timer::send_after", |g| {
        g.check("out_ref", out_ref, 8)?;
        let data = g.read("data", data_ptr, data_len)?;
        let r = g
            .ctx_mut()
            .send_after(pid as u64, tag as u64, data, duration(delay_ns))?;
        g.write_u64("out_ref", out_ref, r)?;
        Ok(err::OK)
    })
}
