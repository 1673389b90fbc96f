//! Namespace `troupe_process`: identity, errors, module loading, spawn
//! configuration and spawn. See `host-api/SPEC.md`.

use troupe_abi::{err, module::PROCESS, val};
use wasmtime::{Caller, Linker};

use crate::memory::{memory_of, read_str_arg, slice, slice_mut, split_nul_list, write_u64};
use crate::{ExitReason, GuestExit, Hibernate, HostError, ProcessCtx, SpawnConfig, SpawnRequest};

/// Registers `troupe_process` into `linker`.
pub fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(PROCESS, "self_pid", |caller: Caller<'_, T>| {
        caller.data().pid() as i64
    })?;
    linker.func_wrap(PROCESS, "error_message", error_message::<T>)?;
    linker.func_wrap_async(
        PROCESS,
        "module_load",
        |caller: Caller<'_, T>, (bytes_ptr, bytes_len, out_module): (i32, i32, i32)| {
            Box::new(module_load(caller, bytes_ptr, bytes_len, out_module))
        },
    )?;
    linker.func_wrap(PROCESS, "module_self", |caller: Caller<'_, T>| {
        caller.data().module_self() as i64
    })?;
    linker.func_wrap(PROCESS, "config_new", |mut caller: Caller<'_, T>| {
        let state = caller.data_mut();
        match state.config_new() {
            Some(handle) => handle as i64,
            None => {
                state.record_error(HostError::new(
                    err::RESOURCE_LIMIT,
                    format!(
                        "this process already holds {} spawn configurations (drop some with \
                         config_drop)",
                        troupe_abi::limit::CONFIGS
                    ),
                ));
                0
            }
        }
    })?;
    linker.func_wrap(
        PROCESS,
        "config_drop",
        |mut caller: Caller<'_, T>, config: i64| {
            if caller.data_mut().config_drop(config as u64) {
                err::OK
            } else {
                caller.data_mut().record_error(unknown_config(config))
            }
        },
    )?;
    linker.func_wrap(PROCESS, "config_set_args", config_set_args::<T>)?;
    linker.func_wrap(PROCESS, "config_set_envs", config_set_envs::<T>)?;
    linker.func_wrap(PROCESS, "config_preopens_only", config_preopens_only::<T>)?;
    linker.func_wrap(PROCESS, "config_set_net", config_set_net::<T>)?;
    linker.func_wrap(
        PROCESS,
        "config_link",
        |mut caller: Caller<'_, T>, cfg: i64| {
            with_config(&mut caller, cfg, |_, c| {
                c.link = true;
                Ok(())
            })
        },
    )?;
    linker.func_wrap(
        PROCESS,
        "config_set_max_memory",
        |mut caller: Caller<'_, T>, cfg: i64, bytes: i64| {
            with_config(&mut caller, cfg, |_, c| {
                c.max_memory = Some(bytes.max(0) as u64);
                Ok(())
            })
        },
    )?;
    linker.func_wrap(
        PROCESS,
        "config_set_fuel",
        |mut caller: Caller<'_, T>, cfg: i64, units: i64| {
            with_config(&mut caller, cfg, |state, c| {
                if !state.fuel_metering() {
                    return Err(HostError::new(
                        err::INVALID_ARGUMENT,
                        "this VM does not meter fuel (start it with `troupe run --fuel N`)",
                    ));
                }
                c.fuel = Some(units.max(0) as u64);
                Ok(())
            })
        },
    )?;
    linker.func_wrap(
        PROCESS,
        "config_set_can_spawn",
        |mut caller: Caller<'_, T>, cfg: i64, allowed: i32| {
            with_config(&mut caller, cfg, |_, c| {
                c.can_spawn = Some(allowed != 0);
                Ok(())
            })
        },
    )?;
    linker.func_wrap(PROCESS, "link", |mut caller: Caller<'_, T>, pid: i64| {
        let state = caller.data_mut();
        match state.link(pid as u64) {
            Ok(()) => err::OK,
            Err(e) => state.record_error(e),
        }
    })?;
    linker.func_wrap(PROCESS, "unlink", |mut caller: Caller<'_, T>, pid: i64| {
        caller.data_mut().unlink(pid as u64);
        err::OK
    })?;
    linker.func_wrap(PROCESS, "monitor", |mut caller: Caller<'_, T>, pid: i64| {
        let state = caller.data_mut();
        match state.monitor(pid as u64) {
            Ok(reference) => reference as i64,
            Err(e) => {
                state.record_error(e);
                0
            }
        }
    })?;
    linker.func_wrap(PROCESS, "demonitor", |mut caller: Caller<'_, T>, r: i64| {
        let state = caller.data_mut();
        match state.demonitor(r as u64) {
            Ok(()) => err::OK,
            Err(e) => state.record_error(e),
        }
    })?;
    linker.func_wrap(
        PROCESS,
        "trap_exit",
        |mut caller: Caller<'_, T>, on: i32| caller.data_mut().trap_exit(on != 0) as i32,
    )?;
    linker.func_wrap(PROCESS, "kill", |mut caller: Caller<'_, T>, pid: i64| {
        let state = caller.data_mut();
        match state.kill(pid as u64) {
            Ok(()) => err::OK,
            Err(e) => state.record_error(e),
        }
    })?;
    linker.func_wrap(PROCESS, "send_exit", send_exit::<T>)?;
    linker.func_wrap(PROCESS, "exit", exit::<T>)?;
    linker.func_wrap(PROCESS, "hibernate", hibernate::<T>)?;
    linker.func_wrap_async(
        PROCESS,
        "spawn",
        |caller: Caller<'_, T>,
         (
            module,
            config,
            entry_ptr,
            entry_len,
            params_ptr,
            params_count,
            arg_ptr,
            arg_len,
            out_pid,
        ): (i64, i64, i32, i32, i32, i32, i32, i32, i32)| {
            Box::new(spawn(
                caller,
                SpawnArgs {
                    module,
                    config,
                    entry_ptr,
                    entry_len,
                    params_ptr,
                    params_count,
                    arg_ptr,
                    arg_len,
                    out_pid,
                },
            ))
        },
    )?;
    Ok(())
}

fn unknown_config(config: i64) -> HostError {
    HostError::new(
        err::INVALID_ARGUMENT,
        format!("no spawn configuration has handle {config}"),
    )
}

fn error_message<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    buf_ptr: i32,
    buf_len: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_process::error_message";
    let memory = memory_of(&mut caller, F)?;
    let text = caller.data().last_error().as_bytes().to_vec();
    let buf = slice_mut(&memory, &mut caller, F, "buf", buf_ptr, buf_len)?;
    let n = text.len().min(buf.len());
    buf[..n].copy_from_slice(&text[..n]);
    Ok(text.len() as i32)
}

async fn module_load<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    bytes_ptr: i32,
    bytes_len: i32,
    out_module: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_process::module_load";
    let memory = memory_of(&mut caller, F)?;
    slice(&memory, &caller, F, "out_module", out_module, 8)?;
    let bytes = slice(&memory, &caller, F, "bytes", bytes_ptr, bytes_len)?.to_vec();
    match caller.data_mut().module_load(bytes).await {
        Ok(handle) => {
            write_u64(&memory, &mut caller, F, "out_module", out_module, handle)?;
            Ok(err::OK)
        }
        Err(e) => Ok(caller.data_mut().record_error(e)),
    }
}

/// Reads a NUL-separated list argument and applies it to a configuration.
fn with_list<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    func: &str,
    config: i64,
    ptr: i32,
    len: i32,
    apply: impl FnOnce(&T, &mut SpawnConfig, Vec<String>) -> Result<(), HostError>,
) -> wasmtime::Result<i32> {
    let memory = memory_of(&mut caller, func)?;
    let bytes = slice(&memory, &caller, func, "list", ptr, len)?;
    let items = match split_nul_list(bytes, func) {
        Ok(items) => items,
        Err(e) => {
            return Ok(caller
                .data_mut()
                .record_error(HostError::new(err::INVALID_ARGUMENT, e)))
        }
    };
    Ok(with_config(&mut caller, config, |state, cfg| {
        apply(state, cfg, items)
    }))
}

fn config_set_args<T: ProcessCtx>(
    caller: Caller<'_, T>,
    config: i64,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i32> {
    with_list(
        caller,
        "troupe_process::config_set_args",
        config,
        ptr,
        len,
        |_, cfg, args| {
            cfg.args = Some(args);
            Ok(())
        },
    )
}

fn config_set_envs<T: ProcessCtx>(
    caller: Caller<'_, T>,
    config: i64,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i32> {
    with_list(
        caller,
        "troupe_process::config_set_envs",
        config,
        ptr,
        len,
        |_, cfg, items| {
            let envs = items
                .into_iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
                    _ => Err(HostError::new(
                        err::INVALID_ARGUMENT,
                        format!("environment entry {kv:?} is not KEY=VALUE"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            cfg.envs = Some(envs);
            Ok(())
        },
    )
}

fn config_preopens_only<T: ProcessCtx>(
    caller: Caller<'_, T>,
    config: i64,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i32> {
    with_list(
        caller,
        "troupe_process::config_preopens_only",
        config,
        ptr,
        len,
        |state, cfg, dirs| {
            if let Some(missing) = dirs.iter().find(|d| !state.holds_preopen(d)) {
                return Err(HostError::new(
                    err::PERMISSION_DENIED,
                    format!(
                        "directory {missing:?} is not preopened in this process, so a child \
                         cannot be given it"
                    ),
                ));
            }
            cfg.preopens = Some(dirs);
            Ok(())
        },
    )
}

fn config_set_net<T: ProcessCtx>(
    caller: Caller<'_, T>,
    config: i64,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i32> {
    with_list(
        caller,
        "troupe_process::config_set_net",
        config,
        ptr,
        len,
        |state, cfg, rules| {
            let child = crate::NetPolicy::from_rules(&rules)
                .map_err(|e| HostError::new(err::INVALID_ARGUMENT, e))?;
            if let Some(rule) = state.net_policy().uncovered(&child) {
                return Err(HostError::new(
                    err::PERMISSION_DENIED,
                    format!(
                        "network rule {rule} is not allowed to this process (it may use {}), so \
                         a child cannot be given it",
                        state.net_policy().describe()
                    ),
                ));
            }
            cfg.net = Some(child);
            Ok(())
        },
    )
}

/// Applies `apply` to a configuration; records and returns its error code.
fn with_config<T: ProcessCtx>(
    caller: &mut Caller<'_, T>,
    config: i64,
    apply: impl FnOnce(&T, &mut SpawnConfig) -> Result<(), HostError>,
) -> i32 {
    let state = caller.data_mut();
    let Some(mut cfg) = state.config_mut(config as u64).map(std::mem::take) else {
        return state.record_error(unknown_config(config));
    };
    let before = cfg.clone();
    let result = apply(state, &mut cfg).and_then(|()| {
        *state
            .config_mut(config as u64)
            .expect("config checked above") = cfg;
        state.config_charge(config as u64)
    });
    if result.is_err() {
        // Unchanged by a failed call (and still charged as it was).
        *state
            .config_mut(config as u64)
            .expect("config checked above") = before;
        let _ = state.config_charge(config as u64);
    }
    match result {
        Ok(()) => err::OK,
        Err(e) => state.record_error(e),
    }
}

/// Reads an encoded exit reason; `Ok(Err(message))` if it does not decode.
fn read_reason<T: ProcessCtx>(
    caller: &mut Caller<'_, T>,
    func: &str,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<Result<ExitReason, String>> {
    let memory = memory_of(caller, func)?;
    let bytes = slice(&memory, &*caller, func, "reason", ptr, len)?;
    let limit = troupe_abi::limit::REASON_LEN as usize;
    if bytes.len() > limit {
        // It would be copied into every EXIT and DOWN of the process.
        return Ok(Err(format!(
            "an encoded exit reason is at most {limit} bytes; this one is {}",
            bytes.len()
        )));
    }
    Ok(ExitReason::decode(bytes))
}

fn send_exit<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    pid: i64,
    reason_ptr: i32,
    reason_len: i32,
) -> wasmtime::Result<i32> {
    let reason = read_reason(
        &mut caller,
        "troupe_process::send_exit",
        reason_ptr,
        reason_len,
    )?;
    let state = caller.data_mut();
    let result = reason
        .map_err(|e| HostError::new(err::INVALID_ARGUMENT, format!("bad exit reason: {e}")))
        .and_then(|reason| state.send_exit(pid as u64, reason));
    Ok(match result {
        Ok(()) => err::OK,
        Err(e) => state.record_error(e),
    })
}

fn exit<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    reason_ptr: i32,
    reason_len: i32,
) -> wasmtime::Result<()> {
    const F: &str = "troupe_process::exit";
    match read_reason(&mut caller, F, reason_ptr, reason_len)? {
        Ok(reason) => Err(unwind(GuestExit(reason))),
        Err(e) => Err(wasmtime::format_err!("{F}: bad exit reason: {e}")),
    }
}

struct SpawnArgs {
    module: i64,
    config: i64,
    entry_ptr: i32,
    entry_len: i32,
    params_ptr: i32,
    params_count: i32,
    arg_ptr: i32,
    arg_len: i32,
    out_pid: i32,
}

async fn spawn<T: ProcessCtx>(mut caller: Caller<'_, T>, a: SpawnArgs) -> wasmtime::Result<i32> {
    const F: &str = "troupe_process::spawn";
    let memory = memory_of(&mut caller, F)?;
    slice(&memory, &caller, F, "out_pid", a.out_pid, 8)?;
    // The sockets attached to the argument go to the child; if the spawn
    // fails they are dropped (closed) with the request.
    let sockets = crate::net::take_attached(caller.data_mut());
    let entry = read_str_arg(&memory, &caller, F, "entry", a.entry_ptr, a.entry_len)?;
    let params = read_params(&memory, &caller, F, a.params_ptr, a.params_count)?;
    let arg = slice(&memory, &caller, F, "arg", a.arg_ptr, a.arg_len)?.to_vec();
    let (entry, params) = match (entry, params) {
        (Ok(entry), Ok(params)) => (entry, params),
        (Err(e), _) | (_, Err(e)) => return Ok(caller.data_mut().record_error(e)),
    };
    let mut config = if a.config as u64 == val::CONFIG_INHERIT {
        SpawnConfig::default()
    } else {
        match caller.data_mut().config_mut(a.config as u64) {
            Some(cfg) => cfg.clone(),
            None => return Ok(caller.data_mut().record_error(unknown_config(a.config))),
        }
    };
    // The child's fuel comes out of what the parent has left (so a process
    // tree never runs more than the root's budget): what the configuration
    // asks for, at most all of it, or else half of it.
    let carved = if caller.data().fuel_metering() {
        let left = caller.get_fuel()?;
        let given = config.fuel.map_or(left / 2, |asked| asked.min(left));
        caller.set_fuel(left - given)?;
        config.fuel = Some(given);
        Some(given)
    } else {
        None
    };
    let request = SpawnRequest {
        module: a.module as u64,
        config,
        entry,
        params,
        arg,
        sockets,
    };
    match caller.data_mut().spawn(request).await {
        Ok(pid) => {
            write_u64(&memory, &mut caller, F, "out_pid", a.out_pid, pid)?;
            Ok(err::OK)
        }
        Err(e) => {
            if let Some(given) = carved {
                // No child: the parent keeps its fuel.
                let left = caller.get_fuel()?;
                caller.set_fuel(left.saturating_add(given))?;
            }
            Ok(caller.data_mut().record_error(e))
        }
    }
}

/// Reads an entry's `count` little-endian `i64` parameters: `Ok(Err(_))` if
/// there are more than [`val::MAX_SPAWN_PARAMS`].
fn read_params<T: ProcessCtx>(
    memory: &wasmtime::Memory,
    caller: &Caller<'_, T>,
    f: &str,
    ptr: i32,
    count: i32,
) -> wasmtime::Result<Result<Vec<i64>, HostError>> {
    let count = count as u32;
    if count > val::MAX_SPAWN_PARAMS {
        return Ok(Err(HostError::new(
            err::INVALID_ARGUMENT,
            format!(
                "{count} entry parameters given; at most {} can be passed",
                val::MAX_SPAWN_PARAMS
            ),
        )));
    }
    Ok(Ok(slice(
        memory,
        caller,
        f,
        "params",
        ptr,
        (count * 8) as i32,
    )?
    .chunks_exact(8)
    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
    .collect()))
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
    const F: &str = "troupe_process::hibernate";
    let memory = memory_of(&mut caller, F)?;
    let entry = read_str_arg(&memory, &caller, F, "entry", entry_ptr, entry_len)?;
    let params = read_params(&memory, &caller, F, params_ptr, params_count)?;
    let checked = entry.and_then(|entry| {
        let params = params?;
        caller.data().can_hibernate(&entry, params.len())?;
        Ok(Hibernate { entry, params })
    });
    match checked {
        Ok(h) => Err(unwind(h)),
        Err(e) => Ok(caller.data_mut().record_error(e)),
    }
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
