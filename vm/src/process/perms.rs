//! What a process may do: its WASI context's makings ([`Perms`]: args, env,
//! preopened directories, stdio, network), the limits it runs under
//! ([`Limits`]), and how a child's are narrowed from its parent's.

use std::path::PathBuf;
use std::sync::Arc;

use troupe_abi::err;
use troupe_host_api::{HostError, NetPolicy, SpawnConfig};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::config::{DirMapping, Output};

/// Limits a process runs under, inherited and only ever narrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Maximum linear memory, bytes.
    pub(crate) max_memory: u64,
    /// Fuel budget, when the VM meters fuel.
    pub(crate) fuel: Option<u64>,
    pub(crate) can_spawn: bool,
}

/// A preopened directory a process holds: a [`DirMapping`] (`--dir
/// HOST::GUEST`, or a shim's mount) made real, the directory itself opened
/// once when the root process was made, and the path the guest sees it as.
///
/// Children share the parent's open directory (an `Arc` of one descriptor)
/// and never look the host path up again: a guest that replaced a directory
/// on the host by a symlink (through another preopen that contains it) must
/// not send its children through that link.
#[derive(Clone, Debug)]
pub(crate) struct Preopen {
    /// The mapping it was opened from. Its host path is for messages only:
    /// it is never opened again.
    pub(crate) mapping: DirMapping,
    dir: Arc<std::os::fd::OwnedFd>,
}

impl Preopen {
    /// Opens the host directory of `mapping` (following symlinks, as `--dir`
    /// does), to be seen as its guest path.
    pub(crate) fn open(mapping: &DirMapping) -> std::io::Result<Preopen> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_PATH | libc::O_CLOEXEC)
            .open(&mapping.host)?;
        Ok(Preopen {
            mapping: mapping.clone(),
            dir: Arc::new(file.into()),
        })
    }

    /// The path the guest sees it as.
    pub(crate) fn guest(&self) -> &str {
        &self.mapping.guest
    }

    /// A path that names this very directory, whatever has become of its
    /// host path since: its descriptor's entry in `/proc/self/fd`, which the
    /// kernel resolves to the open directory without a path lookup.
    fn handle_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
    }
}

/// What a process's WASI context is made of. Shared (`Arc`) between a parent
/// and the children that inherit it unchanged, so spawning copies nothing.
#[derive(Clone, Debug)]
pub(crate) struct Perms {
    pub(crate) args: Arc<[String]>,
    pub(crate) envs: Arc<[(String, String)]>,
    pub(crate) preopens: Arc<[Preopen]>,
    pub(crate) stdout: Output,
    pub(crate) stderr: Output,
    /// Where it may listen and connect (no network by default).
    pub(crate) net: Arc<NetPolicy>,
    pub(crate) limits: Limits,
}

impl Perms {
    /// The permissions of a child spawned with `config`: data (args, env) as
    /// the parent chose, directories only from the parent's own.
    pub(crate) fn narrowed(&self, config: &SpawnConfig) -> Result<Perms, HostError> {
        let mut child = self.clone();
        if let Some(args) = &config.args {
            child.args = args.clone().into();
        }
        if let Some(envs) = &config.envs {
            child.envs = envs.clone().into();
        }
        if let Some(keep) = &config.preopens {
            let mut preopens = Vec::with_capacity(keep.len());
            for guest in keep {
                let p = self
                    .preopens
                    .iter()
                    .find(|p| p.guest() == guest)
                    .ok_or_else(|| {
                        HostError::new(
                            err::PERMISSION_DENIED,
                            format!("directory {guest:?} is not preopened in the parent"),
                        )
                    })?;
                preopens.push(p.clone());
            }
            child.preopens = preopens.into();
        }
        if let Some(m) = config.max_memory {
            child.limits.max_memory = m.min(self.limits.max_memory);
        }
        if let Some(f) = config.fuel {
            child.limits.fuel = Some(self.limits.fuel.map_or(f, |mine| f.min(mine)));
        }
        if let Some(can) = config.can_spawn {
            child.limits.can_spawn = can && self.limits.can_spawn;
        }
        if let Some(net) = &config.net {
            // `config_set_net` checked that the parent holds every rule.
            if let Some(rule) = self.net.uncovered(net) {
                return Err(HostError::new(
                    err::PERMISSION_DENIED,
                    format!("network rule {rule} is not allowed to the parent"),
                ));
            }
            child.net = Arc::new(net.clone());
        }
        Ok(child)
    }

    /// Builds the WASI preview 1 context. Only the root reads stdin.
    pub(crate) fn build_wasi(&self, stdin: bool) -> Result<WasiP1Ctx, HostError> {
        let mut b = WasiCtxBuilder::new();
        match &self.stdout {
            Output::Inherit => b.inherit_stdout(),
            Output::Pipe(p) => b.stdout(p.clone()),
        };
        match &self.stderr {
            Output::Inherit => b.inherit_stderr(),
            Output::Pipe(p) => b.stderr(p.clone()),
        };
        if stdin {
            b.inherit_stdin();
        }
        b.args(&self.args);
        b.envs(&self.envs);
        for p in self.preopens.iter() {
            b.preopened_dir(p.handle_path(), p.guest(), FsPerms::ReadWrite)
                .map_err(|e| {
                    HostError::new(
                        err::RESOURCE_LIMIT,
                        format!(
                            "cannot open directory {:?} again through /proc/self/fd (is /proc \
                             mounted?): {e:#}",
                            p.mapping.host
                        ),
                    )
                })?;
        }
        let mut ctx = b.build_p1();
        // Each open file or directory holds a host descriptor: bounded.
        wasmtime_wasi::WasiView::ctx(&mut ctx)
            .table
            .set_max_capacity(troupe_abi::limit::WASI_HANDLES as usize);
        Ok(ctx)
    }
}
