//! `spawn`: a new process from a module, an entry, its parameters and a
//! first message; its fuel comes out of the parent's.

use troupe_abi::{err, module::PROCESS, val};
use wasmtime::{Caller, Linker};

use super::config::unknown_config;
use crate::call::{host_async, trap_now, Fault, Guest};
use crate::{HostError, ProcessCtx, SpawnConfig, SpawnRequest};

/// Registers `spawn`.
pub(super) fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap_async(PROCESS, "spawn", |mut caller: Caller<'_, T>, args| {
        host_async!(caller, "troupe_process::spawn", |g| spawn(g, args))
    })?;
    Ok(())
}

/// `spawn`'s arguments: the module and configuration handles, the entry's
/// name, its parameters, the first message, and where the pid goes.
type SpawnArgs = (i64, i64, i32, i32, i32, i32, i32, i32, i32);

async fn spawn<T: ProcessCtx>(g: &mut Guest<'_, '_, T>, args: SpawnArgs) -> Result<i32, Fault> {
    let (module, config, entry_ptr, entry_len, params_ptr, params_count, arg_ptr, arg_len, out_pid) =
        args;
    g.check("out_pid", out_pid, 8)?;
    // The sockets attached to the argument go to the child; if the spawn
    // fails they are dropped (closed) with the request.
    let sockets = crate::net::take_attached(g.ctx_mut());
    // Every pointer is checked (a trap) before any argument error.
    let entry = trap_now(g.read_str("entry", entry_ptr, entry_len))?;
    let params = trap_now(read_params(g, params_ptr, params_count))?;
    let arg = g.read("arg", arg_ptr, arg_len)?;
    let (entry, params) = (entry?, params?);
    let mut config = if config as u64 == val::CONFIG_INHERIT {
        SpawnConfig::default()
    } else {
        match g.ctx_mut().config_mut(config as u64) {
            Some(cfg) => cfg.clone(),
            None => return Err(unknown_config(config).into()),
        }
    };
    // The child's fuel comes out of what the parent has left (so a process
    // tree never runs more than the root's budget): what the configuration
    // asks for, at most all of it, or else half of it.
    let carved = if g.ctx().fuel_metering() {
        let left = g.caller().get_fuel()?;
        let given = config.fuel.map_or(left / 2, |asked| asked.min(left));
        g.caller().set_fuel(left - given)?;
        config.fuel = Some(given);
        Some(given)
    } else {
        None
    };
    let request = SpawnRequest {
        module: module as u64,
        config,
        entry,
        params,
        arg,
        sockets,
    };
    match g.ctx_mut().spawn(request).await {
        Ok(pid) => {
            g.write_u64("out_pid", out_pid, pid)?;
            Ok(err::OK)
        }
        Err(e) => {
            if let Some(given) = carved {
                // No child: the parent keeps its fuel.
                let left = g.caller().get_fuel()?;
                g.caller().set_fuel(left.saturating_add(given))?;
            }
            Err(e.into())
        }
    }
}

/// Reads an entry's `count` little-endian `i64` parameters (at most
/// [`val::MAX_SPAWN_PARAMS`]).
pub(super) fn read_params<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    ptr: i32,
    count: i32,
) -> Result<Vec<i64>, Fault> {
    let count = count as u32;
    if count > val::MAX_SPAWN_PARAMS {
        return Err(HostError::new(
            err::INVALID_ARGUMENT,
            format!(
                "{count} entry parameters given; at most {} can be passed",
                val::MAX_SPAWN_PARAMS
            ),
        )
        .into());
    }
    Ok(g.bytes("params", ptr, (count * 8) as i32)?
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect())
}
