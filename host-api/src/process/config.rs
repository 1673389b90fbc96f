//! Spawn configurations: `config_new`, `config_drop` and the `config_*`
//! setters, which change a configuration only if they succeed.

use troupe_abi::{err, module::PROCESS};
use wasmtime::{Caller, Linker};

use crate::call::{call, split_nul_list, Fault, Guest};
use crate::{HostError, NetPolicy, ProcessCtx, SpawnConfig};

/// Registers a setter `troupe_process::$name(config, value)`: `apply`
/// changes the configuration (or refuses, leaving it as it was).
macro_rules! setter {
    ($linker:ident, $name:literal, |$state:pat_param, $cfg:ident, $value:ident: $ty:ty| $apply:expr) => {
        $linker.func_wrap(
            PROCESS,
            $name,
            |mut caller: Caller<'_, T>, config: i64, $value: $ty| {
                call(&mut caller, concat!("troupe_process::", $name), |g| {
                    with_config(g, config, |$state, $cfg| $apply)
                })
            },
        )?;
    };
}

/// Registers a setter `troupe_process::$name(config, list_ptr, list_len)`
/// of a NUL-separated list: `apply` gets the list's items.
macro_rules! list_setter {
    ($linker:ident, $name:literal, |$state:pat_param, $cfg:ident, $items:ident| $apply:expr) => {
        $linker.func_wrap(
            PROCESS,
            $name,
            |mut caller: Caller<'_, T>, config: i64, ptr: i32, len: i32| {
                const F: &str = concat!("troupe_process::", $name);
                call(&mut caller, F, |g| {
                    let $items = split_nul_list(g.bytes("list", ptr, len)?, F)
                        .map_err(|e| HostError::new(err::INVALID_ARGUMENT, e))?;
                    with_config(g, config, |$state, $cfg| $apply)
                })
            },
        )?;
    };
}

/// Registers the configuration calls of `troupe_process`.
pub(super) fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(PROCESS, "config_new", |mut caller: Caller<'_, T>| {
        call(&mut caller, "troupe_process::config_new", |g| {
            let handle = g.ctx_mut().config_new().ok_or_else(|| {
                HostError::new(
                    err::RESOURCE_LIMIT,
                    format!(
                        "this process already holds {} spawn configurations (drop some with \
                         config_drop)",
                        troupe_abi::limit::CONFIGS
                    ),
                )
            })?;
            Ok(handle as i64)
        })
    })?;
    linker.func_wrap(
        PROCESS,
        "config_drop",
        |mut caller: Caller<'_, T>, config: i64| {
            call(&mut caller, "troupe_process::config_drop", |g| {
                if !g.ctx_mut().config_drop(config as u64) {
                    return Err(unknown_config(config).into());
                }
                Ok(err::OK)
            })
        },
    )?;
    list_setter!(linker, "config_set_args", |_, cfg, args| {
        cfg.args = Some(args);
        Ok(())
    });
    list_setter!(linker, "config_set_envs", |_, cfg, items| {
        cfg.envs = Some(envs(items)?);
        Ok(())
    });
    list_setter!(linker, "config_preopens_only", |state, cfg, dirs| {
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
    });
    list_setter!(linker, "config_set_net", |state, cfg, rules| {
        cfg.net = Some(child_net(state, &rules)?);
        Ok(())
    });
    linker.func_wrap(
        PROCESS,
        "config_link",
        |mut caller: Caller<'_, T>, config: i64| {
            call(&mut caller, "troupe_process::config_link", |g| {
                with_config(g, config, |_, cfg| {
                    cfg.link = true;
                    Ok(())
                })
            })
        },
    )?;
    setter!(linker, "config_set_max_memory", |_, cfg, bytes: i64| {
        cfg.max_memory = Some(bytes.max(0) as u64);
        Ok(())
    });
    setter!(linker, "config_set_fuel", |state, cfg, units: i64| {
        if !state.fuel_metering() {
            return Err(HostError::new(
                err::INVALID_ARGUMENT,
                "this VM does not meter fuel (start it with a fuel budget: \
                 `troupe run --fuel N`, or TROUPE_FUEL=N for the containerd shim)",
            ));
        }
        cfg.fuel = Some(units.max(0) as u64);
        Ok(())
    });
    setter!(linker, "config_set_can_spawn", |_, cfg, allowed: i32| {
        cfg.can_spawn = Some(allowed != 0);
        Ok(())
    });
    Ok(())
}

pub(super) fn unknown_config(config: i64) -> HostError {
    HostError::new(
        err::INVALID_ARGUMENT,
        format!("no spawn configuration has handle {config}"),
    )
}

/// `KEY=VALUE` items as environment variables.
fn envs(items: Vec<String>) -> Result<Vec<(String, String)>, HostError> {
    items
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(HostError::new(
                err::INVALID_ARGUMENT,
                format!("environment entry {kv:?} is not KEY=VALUE"),
            )),
        })
        .collect()
}

/// The network rules of a child, which must be within the caller's.
fn child_net<T: ProcessCtx>(state: &T, rules: &[String]) -> Result<NetPolicy, HostError> {
    let child =
        NetPolicy::from_rules(rules).map_err(|e| HostError::new(err::INVALID_ARGUMENT, e))?;
    if let Some(rule) = state.net_policy().uncovered(&child) {
        return Err(HostError::new(
            err::PERMISSION_DENIED,
            format!(
                "network rule {rule} is not allowed to this process (it may use {}), so a child \
                 cannot be given it",
                state.net_policy().describe()
            ),
        ));
    }
    Ok(child)
}

/// Applies `apply` to a configuration (which a failed call leaves as it
/// was).
fn with_config<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    config: i64,
    apply: impl FnOnce(&T, &mut SpawnConfig) -> Result<(), HostError>,
) -> Result<i32, Fault> {
    let state = g.ctx_mut();
    let Some(mut cfg) = state.config_mut(config as u64).map(std::mem::take) else {
        return Err(unknown_config(config).into());
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
    result?;
    Ok(err::OK)
}
