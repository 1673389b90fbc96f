//! Helpers shared by the integration tests of `troupe-vm` (`vm/tests/all`)
//! and `troupe-cli` (`cli/tests/all`): building the guest programs for
//! `wasm32-wasip1` (once per test binary), finding them, and running them
//! through the library. (Running the `troupe` binary is `troupe-cli`'s:
//! cargo tells only its tests where the binary is.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub mod servers;

use troupe_vm::{ExitReason, Output as Stdio, RootOptions, Vm, VmConfig};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// The repository root. `cargo test` sets `CARGO_MANIFEST_DIR` (`vm/` or
/// `cli/`) when it runs a test, so the checkout being tested wins over the
/// one the binary was compiled in (a target dir shared by two clones can
/// hand one the other's binary).
pub fn repo() -> PathBuf {
    match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(crate_dir) => Path::new(&crate_dir).parent().unwrap().to_owned(),
        // This crate is vm/tests/support.
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.."),
    }
}

/// The cargo target dir the running test binary was built in (it is
/// `<target>/release/deps/<test>`). The guests are built there too, by the
/// wasm32-wasip1 workspace, into `wasm32-wasip1/release`: where the scripts
/// build them (`build_guests` in scripts/env.sh), with the same command, so
/// whichever runs second finds nothing to do.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("a test binary in <target>/<profile>/deps")
        .to_owned()
}

/// Builds every guest of the wasm32-wasip1 workspace (`wasm/Cargo.toml`):
/// the examples, the test guests, the benchmark guest and the SDK's
/// `selftest` example. The same command as `build_guests` in scripts/env.sh.
fn build_guests() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = repo().join("wasm/Cargo.toml");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip1",
            "--workspace",
            "--bins",
            "--examples",
            "--manifest-path",
        ])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir())
        .status()
        .expect("run cargo to build the guests");
    assert!(
        status.success(),
        "building the guests of {} failed (is the wasm32-wasip1 target installed? \
         `rustup target add wasm32-wasip1`)",
        manifest.display()
    );
}

/// The path of a built guest: an example (`ping-pong`), a test guest
/// (`spawn_many`) or the SDK's `selftest`.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(build_guests);
    let dir = target_dir().join("wasm32-wasip1/release");
    let path = if name == "selftest" {
        dir.join("examples/selftest.wasm")
    } else {
        dir.join(format!("{name}.wasm"))
    };
    assert!(path.exists(), "no guest {}", path.display());
    path
}

/// Bytes as text (lossily).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What a guest run through the library printed, and how its root ended.
pub struct Run {
    pub reason: ExitReason,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a guest as the root process of a VM made from `config`, capturing
/// its stdout and stderr.
pub fn run(config: VmConfig, name: &str, args: &[&str]) -> Run {
    run_with_dirs(config, name, args, &[])
}

/// [`run`] with preopened directories (`(host, guest)`).
pub fn run_with_dirs(config: VmConfig, name: &str, args: &[&str], dirs: &[(&Path, &str)]) -> Run {
    let path = guest(name);
    let stdout = MemoryOutputPipe::new(64 << 20);
    let stderr = MemoryOutputPipe::new(64 << 20);
    let mut argv = vec![name.to_owned()];
    argv.extend(args.iter().map(|s| s.to_string()));
    let vm = Vm::new(config).unwrap_or_else(|e| panic!("{e}"));
    let reason = vm
        .run_file(
            &path,
            RootOptions {
                args: argv,
                stdout: Stdio::Pipe(stdout.clone()),
                stderr: Stdio::Pipe(stderr.clone()),
                dirs: dirs
                    .iter()
                    .map(|(host, guest)| troupe_vm::DirMapping {
                        host: host.to_path_buf(),
                        guest: guest.to_string(),
                    })
                    .collect(),
                ..RootOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    Run {
        reason,
        stdout: text(&stdout.contents()),
        stderr: text(&stderr.contents()),
    }
}

/// A config for `n` live processes; fails with the fix if the kernel's
/// `vm.max_map_count` is too low (the test scripts raise it).
pub fn pool(n: u32) -> VmConfig {
    let needed = u64::from(n) * troupe_vm::limits::MAPS_PER_PROCESS;
    let max = troupe_vm::limits::max_map_count().unwrap_or(u64::MAX);
    assert!(
        max >= needed,
        "this test needs vm.max_map_count >= {needed} (it is {max}): run \
         `sysctl -w vm.max_map_count=16777216` as root, as scripts/test.sh does"
    );
    VmConfig::new().max_processes(n)
}

/// The Go toolchain the Go guests are built with: `$TROUPE_GO`, else the Go
/// 1.23 that `scripts/test.sh` installs. Go guests need Go >= 1.21
/// (`GOOS=wasip1`); a missing toolchain fails the test with the fix.
fn go_toolchain() -> PathBuf {
    let go = std::env::var_os("TROUPE_GO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/go-1.23/bin/go"));
    let version = Command::new(&go).arg("version").output();
    match version {
        Ok(out) if out.status.success() => go,
        _ => panic!(
            "no Go toolchain at {} (Go >= 1.21 builds the Go guests): run scripts/test.sh, \
             which installs Go 1.23 from bookworm-backports (install_go in scripts/env.sh), \
             or set TROUPE_GO",
            go.display()
        ),
    }
}

/// The path of a built Go guest: an example (`go-hello`, `go-ping-pong`,
/// `go-workers`, `mixed`, `go-echo`, `go-db`, `orders-go`), the Go SDK's
/// `selftest`, `netcheck` or `httpcheck`, or the Go SDK's unit tests
/// compiled for wasm (`sdk-tests-troupe`, `sdk-tests-bincode`,
/// `sdk-tests-abi`), all built once per test binary with `GOOS=wasip1
/// GOARCH=wasm` into the cargo target dir's tmp folder (`go-guests`), with
/// no module proxy: the standard library, and for `go-db` and `orders-go`
/// Debian's lib/pq and redigo.
pub fn go_guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let out = target_dir().join("tmp/go-guests");
    BUILT.get_or_init(|| {
        let go = go_toolchain();
        let root = repo();
        let sdk = root.join("guest-sdk/go");
        let builds = [
            ("go-hello", root.join("examples/go-hello"), "build", "."),
            (
                "go-ping-pong",
                root.join("examples/go-ping-pong"),
                "build",
                ".",
            ),
            ("go-workers", root.join("examples/go-workers"), "build", "."),
            ("mixed", root.join("examples/mixed"), "build", "."),
            (
                "go-worker",
                root.join("examples/go-supervised/worker"),
                "build",
                ".",
            ),
            ("go-echo", root.join("examples/go-echo"), "build", "."),
            ("selftest", sdk.clone(), "build", "./examples/selftest"),
            ("netcheck", sdk.clone(), "build", "./examples/netcheck"),
            ("httpcheck", sdk.clone(), "build", "./examples/httpcheck"),
            ("otpcheck", sdk.clone(), "build", "./examples/otpcheck"),
            ("sdk-tests-troupe", sdk.clone(), "test", "."),
            ("sdk-tests-bincode", sdk.clone(), "test", "./bincode"),
            ("sdk-tests-abi", sdk.clone(), "test", "./abi"),
        ];
        // Guests that use Debian's Go libraries (lib/pq, redigo), built with
        // the SDK's overlay for those that need one (guest-sdk/go/compat).
        let overlay = out.join("overlay.json");
        let with_libraries = [
            ("go-db", root.join("examples/go-db"), "build", "."),
            ("orders-go", root.join("examples/orders/go"), "build", "."),
        ];
        std::fs::create_dir_all(&out).unwrap();
        let printed = Command::new("bash")
            .arg(sdk.join("compat/overlay.sh"))
            .output()
            .expect("run guest-sdk/go/compat/overlay.sh");
        assert!(printed.status.success(), "overlay.sh failed");
        std::fs::write(&overlay, printed.stdout).unwrap();
        for (name, dir, command, package) in builds.into_iter().chain(with_libraries.clone()) {
            let mut go_cmd = Command::new(&go);
            go_cmd.arg(command);
            if with_libraries.iter().any(|(n, ..)| *n == name) {
                for lib in ["lib/pq", "gomodule/redigo"] {
                    let path = Path::new("/usr/share/gocode/src/github.com").join(lib);
                    assert!(
                        path.exists(),
                        "{} is missing (Go guest {name} needs it): run scripts/install.sh",
                        path.display()
                    );
                }
                go_cmd.arg(format!("-overlay={}", overlay.display()));
            }
            if command == "test" {
                go_cmd.arg("-c"); // compile the test binary, do not run it
            }
            let status = go_cmd
                .arg("-o")
                .arg(out.join(format!("{name}.wasm")))
                .arg(package)
                .current_dir(&dir)
                .env("GOOS", "wasip1")
                .env("GOARCH", "wasm")
                .env("GOFLAGS", "-mod=mod")
                .env("GOPROXY", "off")
                .env("GOTOOLCHAIN", "local")
                .env("GOCACHE", out.join("cache"))
                .env("GOPATH", out.join("gopath"))
                .status()
                .expect("run go build");
            assert!(
                status.success(),
                "go {command} {package} in {} failed",
                dir.display()
            );
        }
    });
    let path = out.join(format!("{name}.wasm"));
    assert!(path.exists(), "no Go guest {}", path.display());
    path
}

/// Runs guest `name` (a guest that prints `ok: <check>` or `FAIL: <check>`
/// per check, then `done`) and checks that it ended normally, printed every
/// line of `expected` as `ok: <line>`, and no failure.
pub fn run_case(config: VmConfig, name: &str, args: &[&str], expected: &[&str]) -> Run {
    let r = run(config, name, args);
    let context = format!(
        "{name} {args:?}\nstdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
    assert_eq!(r.reason, ExitReason::Normal, "{context}");
    assert!(!r.stdout.contains("FAIL"), "{context}");
    for line in expected {
        assert!(
            r.stdout.contains(&format!("ok: {line}\n")),
            "missing `ok: {line}` in {context}"
        );
    }
    assert!(r.stdout.ends_with("done\n"), "{context}");
    r
}
