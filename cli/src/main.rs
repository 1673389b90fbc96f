//! `troupe`: the command line of the Troupe VM, in wasmtime's style.
//!
//! - `troupe run [FLAGS] module.wasm [ARGS]...` runs a module as the root
//!   process of a VM ([`cli`]); the exit code and the report come from
//!   [`troupe_vm::Exit`], as in the containerd shim.
//! - `troupe image -o app.tar module.wasm` packages a module as an OCI image
//!   tarball ([`image`]).

use clap::Parser;
use std::io::Write;

mod cli;
mod image;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TROUPE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = cli::main_with(cli::Cli::parse());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code);
}
