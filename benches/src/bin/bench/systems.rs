//! The systems compared (the columns). Adding one = implementing [`System`]
//! and adding it to [`all`].

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cases::Case;

/// Everything a system may need to set itself up.
pub struct Ctx {
    /// Scratch directory (e.g. for compiled Erlang code).
    pub scratch: PathBuf,
    pub install_erlang: bool,
    pub troupe_bin: Option<PathBuf>,
    /// `wasmtime-floor` (default: next to the troupe binary).
    pub floor_bin: Option<PathBuf>,
    pub guests: PathBuf,
}

pub trait System {
    /// Column name, also the `system` field of the JSON results.
    fn name(&self) -> &'static str;
    /// Check availability and build what is needed. `Err(note)` skips the
    /// whole column, with the note shown in the report.
    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String>;
    /// Workloads this system has no implementation for are skipped silently.
    fn supports(&self, _workload: &str) -> bool {
        true
    }
    /// `Some(why)` for a case that has no meaning for this system (not just
    /// no implementation): it is not run, and the report shows it as n/a
    /// with `why` as the note.
    fn not_applicable(&self, _case: &Case) -> Option<&'static str> {
        None
    }
    /// The command that runs `case` once on `threads` scheduler threads and
    /// prints one JSON result line. `Err(note)` skips this case.
    fn command(&self, case: &Case, threads: usize) -> Result<Command, String>;
}

/// The table of systems, in column order. tokio first: ratios are relative to it.
pub fn all() -> Vec<Box<dyn System>> {
    vec![
        Box::new(Tokio::default()),
        Box::new(Erlang::default()),
        Box::new(Troupe::default()),
        Box::new(WasmtimeFloor::default()),
    ]
}

pub const BASELINE: &str = "tokio";

fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

// ------------------------------------------------------------------ tokio

#[derive(Default)]
pub struct Tokio {
    bin: PathBuf,
}

impl System for Tokio {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn prepare(&mut self, _ctx: &Ctx) -> Result<(), String> {
        // Built by the same `cargo build`, so it sits next to this binary.
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        self.bin = me.with_file_name("tokio-baseline");
        if self.bin.is_file() {
            Ok(())
        } else {
            Err(format!(
                "{} not found: build with `cargo build --release` in benches/",
                self.bin.display()
            ))
        }
    }

    fn not_applicable(&self, case: &Case) -> Option<&'static str> {
        case.hibernated().then_some(
            "a tokio task waiting on a channel has no stack to give up (it is \
             already a small state machine): there is nothing to hibernate",
        )
    }

    fn command(&self, case: &Case, threads: usize) -> Result<Command, String> {
        let mut c = Command::new(&self.bin);
        c.arg(case.workload)
            .args(case.args())
            .arg("--threads")
            .arg(threads.to_string());
        Ok(c)
    }
}

// ----------------------------------------------------------------- Erlang

#[derive(Default)]
pub struct Erlang {
    erl: PathBuf,
    ebin: PathBuf,
}

fn install_erlang() -> Result<(), String> {
    eprintln!("installing erlang-nox with apt-get ...");
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if ok(Command::new("apt-get").arg("update").arg("-qq"))
        && ok(Command::new("apt-get").args(["install", "-y", "-qq", "erlang-nox"]))
    {
        Ok(())
    } else {
        Err("apt-get install erlang-nox failed".into())
    }
}

impl System for Erlang {
    fn name(&self) -> &'static str {
        "erlang"
    }

    fn supports(&self, workload: &str) -> bool {
        workload != "bounds"
    }

    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String> {
        if which("erl").is_none() && ctx.install_erlang {
            install_erlang()?;
        }
        let (Some(erl), Some(erlc)) = (which("erl"), which("erlc")) else {
            return Err(
                "`erl` not found: skipped (install with `apt-get install erlang-nox` or pass --install-erlang)"
                    .into(),
            );
        };
        self.erl = erl;
        self.ebin = ctx.scratch.join("ebin");
        std::fs::create_dir_all(&self.ebin).map_err(|e| e.to_string())?;
        let src = troupe_benches::benches_dir().join("erlang/troupe_bench.erl");
        let out = Command::new(erlc)
            .arg("-o")
            .arg(&self.ebin)
            .arg(&src)
            .output()
            .map_err(|e| format!("erlc: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "erlc {} failed: {}",
                src.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    fn command(&self, case: &Case, threads: usize) -> Result<Command, String> {
        let mut c = Command::new(&self.erl);
        c.arg("-noshell")
            .arg("+S")
            .arg(format!("{threads}:{threads}"))
            // Room for the 1M-process idle run (default limit is 262144).
            .args(["+P", "2097152"])
            .arg("-pa")
            .arg(&self.ebin)
            .args(["-s", "troupe_bench", "main", case.workload])
            .args(case.args())
            .args(["-s", "init", "stop"]);
        Ok(c)
    }
}

/// `erl`'s OTP release, for the machine line of the report.
pub fn otp_release() -> Option<String> {
    let out = Command::new(which("erl")?)
        .args([
            "-noshell",
            "-eval",
            "io:format(\"~s\", [erlang:system_info(otp_release)]), halt().",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ----------------------------------------------------------------- Troupe

/// Troupe: `troupe run --threads N [VM flags] <guests>/<workload>.wasm <workload> k=v ...`
/// (or `<guests>/bench.wasm` when there is no per-workload guest). The VM
/// flags come from the case: see [`Troupe::vm_flags`].
#[derive(Default)]
pub struct Troupe {
    bin: PathBuf,
    guests: PathBuf,
}

/// The VM's default pool size (`troupe run` without `--max-processes`).
const TROUPE_DEFAULT_POOL: u64 = 10_000;
/// The VM's default `--max-memory` (64 MiB), reserved per pool slot.
const TROUPE_DEFAULT_MAX_MEMORY: u64 = 64 << 20;
/// Address space the memory pool may reserve: the VM's own limit (80 TiB, the
/// largest piece of x86-64's 128 TiB it can reserve at once).
const TROUPE_ADDRESS_BUDGET: u64 = 80 << 40;
/// Kernel memory mappings per pool slot / live process (`vm/src/limits.rs`).
const TROUPE_MAPS_PER_PROCESS: u64 = 6;

/// The Troupe guest of `workload` in `guests`: `<workload>.wasm`, else
/// `bench.wasm`.
fn guest_in(guests: &Path, workload: &str) -> Option<PathBuf> {
    [format!("{workload}.wasm"), "bench.wasm".to_string()]
        .into_iter()
        .map(|f| guests.join(f))
        .find(|p| p.is_file())
}

impl Troupe {
    /// How many processes the case has alive at once, root included.
    fn processes(case: &Case, threads: usize) -> u64 {
        let p = |k: &str| case.param(k).unwrap_or(0);
        1 + match case.workload {
            "spawn" | "idle" => p("n"),
            "ring" => p("procs"),
            "fanin" => p("producers"),
            "preemption" => 2 * threads as u64,
            _ => 2,
        }
    }

    /// The VM flags of a case's pool, with `--threads`:
    /// - `--max-processes`: the default pool (10,000) or, for bigger cases,
    ///   what the case has alive at once plus 100; but the default pool for
    ///   `idle hibernate=1`, whatever `n`: a hibernated process holds no pool
    ///   slot (no instance, memory slot or stack), so the pool only has to
    ///   hold the root and the children not yet hibernated (spawning waits
    ///   for a free slot when it is full);
    /// - `--max-memory`: the default (64 MiB), unless the pool would reserve
    ///   more than 80 TiB of address space, then less (never below 8 MiB);
    ///   for `bounds`, `reserve_mib` MiB (with a pool of 16 slots).
    ///
    /// Returns the pool's slots too. The wasmtime floor runs with these.
    fn pool_flags(case: &Case, threads: usize) -> (u64, Vec<String>) {
        let slots = match case.workload {
            "bounds" => 16,
            "idle" if case.hibernated() => TROUPE_DEFAULT_POOL,
            _ => TROUPE_DEFAULT_POOL.max(Self::processes(case, threads) + 100),
        };
        let mut flags = vec![
            "--threads".to_string(),
            threads.to_string(),
            "--max-processes".to_string(),
            slots.to_string(),
        ];
        if let ("bounds", Some(mib)) = (case.workload, case.param("reserve_mib")) {
            flags.extend(["--max-memory".to_string(), format!("{mib}M")]);
        } else if slots * TROUPE_DEFAULT_MAX_MEMORY > TROUPE_ADDRESS_BUDGET {
            let mib = ((TROUPE_ADDRESS_BUDGET / slots) >> 20).max(8);
            flags.extend(["--max-memory".to_string(), format!("{mib}M")]);
        }
        (slots, flags)
    }

    /// The VM flags a case needs: [`Troupe::pool_flags`], and for the guest
    /// - `--dir /proc::/proc` for `idle`, so the guest can read the VM's RSS;
    /// - `--env TROUPE_BENCH_THREADS=N`, so the guest knows N.
    fn vm_flags(case: &Case, threads: usize) -> (u64, Vec<String>) {
        let (slots, mut flags) = Self::pool_flags(case, threads);
        if case.workload == "idle" {
            flags.extend(["--dir".to_string(), "/proc::/proc".to_string()]);
        }
        flags.extend([
            "--env".to_string(),
            format!("TROUPE_BENCH_THREADS={threads}"),
        ]);
        (slots, flags)
    }
}

/// Makes sure the kernel lets a VM with `slots` processes map its memory:
/// `vm.max_map_count` must be at least 6 per slot. Raises it (as root) with
/// `sysctl -w`, or says why the case is skipped.
fn ensure_map_count(slots: u64) -> Result<(), String> {
    const PATH: &str = "/proc/sys/vm/max_map_count";
    let need = slots * TROUPE_MAPS_PER_PROCESS + 65_536;
    let have: u64 = match std::fs::read_to_string(PATH) {
        Ok(s) => s.trim().parse().unwrap_or(0),
        Err(_) => return Ok(()), // not Linux, or no /proc: let the VM decide
    };
    if have >= need {
        return Ok(());
    }
    let want = need.max(16_777_216);
    if is_root() {
        let ok = Command::new("sysctl")
            .arg("-w")
            .arg(format!("vm.max_map_count={want}"))
            .stdout(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
            || std::fs::write(PATH, want.to_string()).is_ok();
        if ok {
            eprintln!("note: raised vm.max_map_count from {have} to {want} (for {slots} Troupe processes)");
            return Ok(());
        }
    }
    Err(format!(
        "needs vm.max_map_count >= {need} for {slots} processes and it is {have}; \
         raise it as root: sysctl -w vm.max_map_count={want}"
    ))
}

/// Whether we run as root (`id -u` is 0), without a libc dependency.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

impl System for Troupe {
    fn name(&self) -> &'static str {
        "troupe"
    }

    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String> {
        let bin = ctx.troupe_bin.clone().or_else(|| which("troupe"));
        let Some(bin) = bin.filter(|b| b.is_file()) else {
            return Err(
                "troupe binary not found (set TROUPE_BIN or pass --troupe): skipped".into(),
            );
        };
        self.bin = bin;
        self.guests = ctx.guests.clone();
        let has_wasm = std::fs::read_dir(&self.guests).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "wasm")))
        });
        if !has_wasm {
            return Err(format!(
                "no guest (.wasm) in {}: skipped (benches/run.sh builds them)",
                self.guests.display()
            ));
        }
        Ok(())
    }

    fn command(&self, case: &Case, threads: usize) -> Result<Command, String> {
        let guest = guest_in(&self.guests, case.workload).ok_or_else(|| {
            format!(
                "no guest {}/{}.wasm (nor bench.wasm)",
                display(&self.guests),
                case.workload
            )
        })?;
        let (slots, flags) = Self::vm_flags(case, threads);
        ensure_map_count(slots)?;
        let mut c = Command::new(&self.bin);
        c.arg("run")
            .args(flags)
            .arg(guest)
            .arg(case.workload)
            .args(case.args());
        Ok(c)
    }
}

// --------------------------------------------------------- wasmtime floor

/// Bare wasmtime on tokio with the VM's engine and scheduler settings and
/// none of its code (`benches/wasmtime-floor`): the floor of a runtime built
/// as Troupe is. Run with the same pool flags as Troupe for the same case;
/// `spawn` instantiates and drops Troupe's own guest module.
#[derive(Default)]
pub struct WasmtimeFloor {
    bin: PathBuf,
    guests: PathBuf,
}

impl System for WasmtimeFloor {
    fn name(&self) -> &'static str {
        "wasmtime-floor"
    }

    fn supports(&self, workload: &str) -> bool {
        matches!(workload, "spawn" | "idle" | "pingpong" | "ring")
    }

    fn not_applicable(&self, case: &Case) -> Option<&'static str> {
        case.hibernated()
            .then_some("bare wasmtime has no hibernation: the floor is of plain idle")
    }

    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String> {
        let bin = ctx.floor_bin.clone().or_else(|| {
            let troupe = ctx.troupe_bin.clone().or_else(|| which("troupe"))?;
            Some(troupe.with_file_name("wasmtime-floor"))
        });
        let Some(bin) = bin.filter(|b| b.is_file()) else {
            return Err(
                "wasmtime-floor binary not found (benches/run.sh builds it next to \
                 troupe; or set TROUPE_FLOOR_BIN): skipped"
                    .into(),
            );
        };
        self.bin = bin;
        self.guests = ctx.guests.clone();
        Ok(())
    }

    fn command(&self, case: &Case, threads: usize) -> Result<Command, String> {
        let (slots, flags) = Troupe::pool_flags(case, threads);
        ensure_map_count(slots)?;
        let mut c = Command::new(&self.bin);
        c.arg(case.workload).args(case.args()).args(flags);
        if case.workload == "spawn" {
            let guest = guest_in(&self.guests, case.workload)
                .ok_or_else(|| format!("no Troupe guest in {}", display(&self.guests)))?;
            c.arg("--module").arg(guest);
        }
        Ok(c)
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::cases;

    fn case(workload: &str, quick: bool, nth: usize) -> Case {
        cases(quick, Some(&[workload.to_string()]), u64::MAX)
            .unwrap()
            .remove(nth)
    }

    #[test]
    fn hibernated_idle_is_na_for_tokio_only() {
        let plain = case("idle", true, 0);
        let hib = case("idle", true, 1);
        assert!(Tokio::default().not_applicable(&plain).is_none());
        assert!(Tokio::default().not_applicable(&hib).is_some());
        assert!(Erlang::default().not_applicable(&hib).is_none());
        assert!(Troupe::default().not_applicable(&hib).is_none());
    }

    #[test]
    fn troupe_pool_fits_the_case() {
        let (slots, flags) = Troupe::vm_flags(&case("pingpong", false, 0), 2);
        assert_eq!(slots, TROUPE_DEFAULT_POOL);
        assert_eq!(&flags[..4], ["--threads", "2", "--max-processes", "10000"]);
        assert!(!flags.iter().any(|f| f == "--dir" || f == "--max-memory"));
        assert!(flags.contains(&"TROUPE_BENCH_THREADS=2".to_string()));

        let (slots, flags) = Troupe::vm_flags(&case("idle", false, 2), 1);
        assert_eq!(slots, 1_000_101);
        assert!(flags.windows(2).any(|w| w == ["--dir", "/proc::/proc"]));
        // 1M slots of 64 MiB would be 64 TiB: within the 80 TiB budget.
        assert!(!flags.iter().any(|f| f == "--max-memory"));

        // bounds: a small pool, and the case's reservation.
        let (slots, flags) = Troupe::vm_flags(&case("bounds", false, 1), 1);
        assert_eq!(slots, 16);
        assert!(flags.windows(2).any(|w| w == ["--max-memory", "4096M"]));

        // Hibernated idle: the default pool, even for a million processes.
        let hib = case("idle", false, 5);
        assert_eq!(hib.label(), "idle n=1000000 hibernate=1");
        let (slots, flags) = Troupe::vm_flags(&hib, 1);
        assert_eq!(slots, TROUPE_DEFAULT_POOL);
        assert_eq!(&flags[..4], ["--threads", "1", "--max-processes", "10000"]);
        assert!(flags.windows(2).any(|w| w == ["--dir", "/proc::/proc"]));
        assert!(!flags.iter().any(|f| f == "--max-memory"));

        let (slots, _) = Troupe::vm_flags(&case("ring", false, 0), 1);
        assert_eq!(slots, TROUPE_DEFAULT_POOL.max(10_000 + 1 + 100));
    }
}
