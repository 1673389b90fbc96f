//! The `troupe` command line, in wasmtime's style:
//! `troupe run [--dir HOST[::GUEST]]... [--env KEY[=VALUE]]... module.wasm [args...]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use troupe_vm::DEFAULT_MAX_MEMORY;
use troupe_vm::{parse_size, DirMapping, Exit, NetPolicy, RootOptions, Vm, VmConfig};

#[derive(Parser, Debug)]
#[command(
    name = "troupe",
    version,
    about = "Troupe: an actor runtime for WebAssembly",
    long_about = "Troupe runs wasm32-wasip1 programs as Erlang-style processes: each process \
                  is its own Wasm instance with its own memory and mailbox."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a WebAssembly command module as the root process.
    Run(RunArgs),
    /// Package a module and its files as an OCI image tarball (for
    /// `ctr images import` and the containerd shim), without Docker.
    Image(crate::image::ImageArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Grant access to a host directory, as GUEST in the guest (default: the
    /// same path). Repeatable.
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    pub dirs: Vec<DirMapping>,

    /// Set an environment variable for the guest; `KEY` alone passes the
    /// host's value. Repeatable.
    #[arg(long = "env", value_name = "KEY[=VALUE]", value_parser = parse_env)]
    pub envs: Vec<(String, Option<String>)>,

    /// Allow networking (off by default): `--allow-net` for any address, or
    /// `--allow-net=HOST[:PORT],...` to listen on and connect to only these
    /// (HOST: an IP, `[IPv6]`, a host name or `*`; no port: any port).
    /// Children get no more than their parent. Repeatable.
    #[arg(
        long = "allow-net",
        value_name = "HOST[:PORT],...",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "*",
        value_parser = parse_net
    )]
    pub allow_net: Vec<NetPolicy>,

    /// Scheduler threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// How many processes may hold an instance at once [default: 10000, or
    /// what the kernel's vm.max_map_count allows if less]; hibernated
    /// processes hold none and do not count. The pool is reserved at
    /// start-up, which costs about 4 µs per slot.
    #[arg(long, value_name = "N")]
    pub max_processes: Option<u32>,

    /// The most linear memory one process may use (bytes, or with a K, M or
    /// G suffix).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value_t = DEFAULT_MAX_MEMORY)]
    pub max_memory: u64,

    /// Meter fuel (Wasm instructions) and give the root process this budget;
    /// children get their parent's unless a spawn lowers it. Off by default.
    #[arg(long, value_name = "UNITS")]
    pub fuel: Option<u64>,

    /// Do not keep compiled modules in the on-disk cache
    /// (~/.cache/wasmtime).
    #[arg(long)]
    pub no_cache: bool,

    /// What all processes together may hold in memory: their linear
    /// memories, queued messages, timers and hibernated state (bytes, or
    /// with a K, M or G suffix). Default: 90% of the machine's memory or its
    /// container's limit.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_vm_memory: Option<u64>,

    /// Each process's native stack size (bytes, or with a K, M or G suffix).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub stack_size: Option<u64>,

    /// The WebAssembly module to run (a wasm32-wasip1 command module), then
    /// the arguments passed to it (it sees the module's path as argv[0]).
    /// Everything after the module goes to the module, flags included.
    #[arg(
        value_name = "MODULE [ARGS]...",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub module_and_args: Vec<String>,
}

fn parse_dir(s: &str) -> Result<DirMapping, String> {
    let (host, guest) = match s.split_once("::") {
        Some((h, g)) => (h, g),
        None => (s, s),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("expected HOST or HOST::GUEST, got {s:?}"));
    }
    Ok(DirMapping {
        host: host.into(),
        guest: guest.into(),
    })
}

fn parse_net(s: &str) -> Result<NetPolicy, String> {
    NetPolicy::parse(s)
}

fn parse_env(s: &str) -> Result<(String, Option<String>), String> {
    match s.split_once('=') {
        Some(("", _)) => Err(format!("expected KEY=VALUE, got {s:?}")),
        Some((k, v)) => Ok((k.to_owned(), Some(v.to_owned()))),
        None if s.is_empty() => Err("expected KEY=VALUE or KEY".into()),
        None => Ok((s.to_owned(), None)),
    }
}

impl RunArgs {
    /// The module's path.
    pub fn module(&self) -> PathBuf {
        PathBuf::from(&self.module_and_args[0])
    }

    /// The VM configuration these flags give.
    pub fn vm_config(&self) -> VmConfig {
        let mut c = VmConfig::new()
            .max_memory(self.max_memory)
            .handle_signals(true)
            .compile_cache(!self.no_cache);
        if let Some(n) = self.max_processes {
            c = c.max_processes(n);
        }
        if let Some(t) = self.threads {
            c = c.threads(t);
        }
        if let Some(f) = self.fuel {
            c = c.fuel(f);
        }
        if let Some(s) = self.stack_size {
            c = c.stack_size(s as usize);
        }
        if let Some(m) = self.max_vm_memory {
            c = c.max_vm_memory(m);
        }
        c
    }

    /// The network permission of every `--allow-net` together.
    pub fn net_policy(&self) -> NetPolicy {
        self.allow_net
            .iter()
            .fold(NetPolicy::deny(), |all, p| all.union(p))
    }

    /// The root process's options these flags give.
    pub fn root_options(&self) -> Result<RootOptions, String> {
        for d in &self.dirs {
            if !d.host.is_dir() {
                return Err(format!(
                    "--dir {}: {:?} is not a directory on the host",
                    d.host.display(),
                    d.host
                ));
            }
        }
        let args = self.module_and_args.clone();
        let envs = self
            .envs
            .iter()
            .filter_map(|(k, v)| match v {
                Some(v) => Some((k.clone(), v.clone())),
                None => std::env::var(k).ok().map(|v| (k.clone(), v)),
            })
            .collect();
        Ok(RootOptions {
            args,
            envs,
            dirs: self.dirs.clone(),
            stdin: true,
            net: self.net_policy(),
            ..RootOptions::default()
        })
    }
}

/// Runs the CLI and returns the process exit code.
pub fn main_with(cli: Cli) -> i32 {
    match cli.command {
        Command::Image(args) => crate::image::main(args),
        Command::Run(run) => {
            let root = match run.root_options() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("troupe: {e}");
                    return troupe_abi::exit::LOAD_ERROR;
                }
            };
            let result = Vm::new(run.vm_config()).and_then(|vm| vm.run_file(&run.module(), root));
            Exit::from(result).finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_map_host_to_guest_like_wasmtime() {
        let d = parse_dir("/tmp/x::/data").unwrap();
        assert_eq!(
            (d.host.to_str().unwrap(), d.guest.as_str()),
            ("/tmp/x", "/data")
        );
        let d = parse_dir("data").unwrap();
        assert_eq!(
            (d.host.to_str().unwrap(), d.guest.as_str()),
            ("data", "data")
        );
        assert!(parse_dir("::/data").is_err());
    }

    #[test]
    fn env_takes_key_value_or_inherits_a_key() {
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), Some("b=c".into()))));
        assert_eq!(parse_env("HOME"), Ok(("HOME".into(), None)));
        assert!(parse_env("=x").is_err());
    }

    #[test]
    fn flags_before_the_module_are_troupes_and_after_it_the_guests() {
        let cli = Cli::try_parse_from([
            "troupe", "run", "--env", "A=1", "app.wasm", "--env", "B=2", "-x",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not the run command");
        };
        assert_eq!(run.envs, vec![("A".into(), Some("1".into()))]);
        assert_eq!(run.module(), PathBuf::from("app.wasm"));
        let root = run.root_options().unwrap();
        assert_eq!(root.args, vec!["app.wasm", "--env", "B=2", "-x"]);
    }

    #[test]
    fn unknown_flags_and_a_missing_module_are_rejected() {
        assert!(Cli::try_parse_from(["troupe", "run", "--bogus", "app.wasm"]).is_err());
        assert!(Cli::try_parse_from(["troupe", "run", "--env", "A=1"]).is_err());
    }
}
