//! `containerd-shim-troupe-v1`: the containerd shim v2 for runtime
//! `io.containerd.troupe.v1`. Each container runs one whole Troupe VM: the
//! container's entry module is the root process (pid 1 of the VM), and every
//! process it spawns lives in the same container.
//!
//! Built on runwasi's `containerd-shim-wasm` (youki's libcontainer sets up the
//! namespaces, cgroups, rootfs and stdio; this crate only runs the VM). See
//! `README.md` beside this file.

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use containerd_shim_wasm::sandbox::context::RuntimeContext;
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::shim::{version, Cli, Config, Shim, Version};
use troupe_shim::{plan, run_plan, Plan};

mod troupe_shim;

struct TroupeShim;

#[derive(Default)]
struct TroupeSandbox;

impl Shim for TroupeShim {
    type Sandbox = TroupeSandbox;

    fn name() -> &'static str {
        "troupe"
    }

    fn version() -> Version {
        version!()
    }
}

impl Sandbox for TroupeSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        let entry = ctx.entrypoint();
        if entry.func != "_start" {
            bail!(
                "troupe runs a module's `_start` only; the entrypoint asks for {:?}",
                entry.func
            );
        }
        let bytes = entry
            .source
            .as_bytes()
            .context("cannot read the entry module")?
            .into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let plan: Plan = plan(ctx.args(), ctx.envs(), &mounts)?;
        let module = PathBuf::from(&plan.args[0]);
        // runwasi calls us from its own tokio runtime, and the VM owns a
        // runtime of its own: it must run on its own OS thread, or tokio
        // panics ("Cannot start a runtime from within a runtime").
        let (tx, rx) = futures::channel::oneshot::channel();
        std::thread::Builder::new()
            .name("troupe-vm".into())
            .spawn(move || {
                let _ = tx.send(run_plan(plan, &module, bytes));
            })
            .context("cannot start the VM's thread")?;
        // A panic in the VM drops `tx`: the container then ends with 134 (as
        // a panic caught by `run_plan`) instead of hanging.
        Ok(rx.await.unwrap_or_else(|_| troupe_vm::Exit::Panic.code()))
    }
}

fn main() {
    TroupeShim::run(Config {
        default_log_level: "warn".into(),
        ..Config::default()
    });
}
