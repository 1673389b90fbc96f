//! A fuzzer of the host ABI: guests generated from a seed make random
//! sequences of host calls with random and boundary arguments, in several
//! processes at once, under small limits. Whatever they do, the VM must end
//! the run with an exit reason: no panic on any of its threads, no abort,
//! no hang.
//!
//! The host functions and their signatures are read from `host-api/SPEC.md`
//! (so a function the spec documents is fuzzed, and a signature the spec
//! gets wrong fails to link), plus a few WASI calls. Each argument's kind
//! (a pointer, a length, a pid, a tag, a time-out, a handle...) comes from
//! its name in the spec.
//!
//! In the test suite it runs for `TROUPE_FUZZ_SECS` seconds (default 30).
//! For hours: `TROUPE_FUZZ_SECS=3600 cargo test --release -p troupe-vm
//! --test fuzz_abi -- --nocapture`. A failure names its seed; replay it with
//! `TROUPE_FUZZ_SEED=N` (one case, its guest printed).
//!
//! A test binary of its own, not a module of `tests/all` (as wasmtime keeps
//! a few): it installs a process-wide panic hook that fails the run on a
//! panic of any VM thread in the process, and its budget of seconds is worth
//! the cases it runs only with the machine to itself (cargo runs test
//! binaries one after another, the tests of one binary side by side). So it
//! shares no helpers with `all`; the three it needs are at the end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use troupe_vm::{NetPolicy, Output, RootOptions, Vm, VmConfig};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// xorshift64*: enough randomness, and every case is its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Ptr,
    Len,
    Pid,
    Tag,
    Timeout,
    Delay,
    Handle,
    Units,
    Small,
    AnyI32,
    AnyI64,
}

#[derive(Clone, Debug)]
struct HostFn {
    module: String,
    name: String,
    params: Vec<(bool, Kind)>, // (is i64, kind)
    result: Option<bool>,      // Some(is i64)
}

impl HostFn {
    fn ident(&self) -> String {
        format!("${}.{}", self.module, self.name)
    }
}

fn kind_of(name: &str, is64: bool) -> Kind {
    match name {
        "pid" => Kind::Pid,
        "tag" => Kind::Tag,
        "timeout_ns" => Kind::Timeout,
        "delay_ns" | "ns" => Kind::Delay,
        "config" | "module" | "ref" | "listener" | "stream" | "socket" | "handle" => Kind::Handle,
        "bytes" | "units" => Kind::Units,
        "enable" | "allowed" | "how" => Kind::Small,
        n if n.ends_with("ptr") || n.starts_with("out_") => Kind::Ptr,
        n if n.ends_with("len") || n.ends_with("count") || n.ends_with("cap") => Kind::Len,
        _ if is64 => Kind::AnyI64,
        _ => Kind::AnyI32,
    }
}

/// Every host function the spec documents, by namespace.
fn spec_functions() -> Vec<HostFn> {
    let spec = std::fs::read_to_string(repo().join("host-api/SPEC.md")).unwrap();
    let mut module = None;
    let mut fns = Vec::new();
    for line in spec.lines() {
        if let Some(rest) = line.strip_prefix("## Namespace `") {
            module = Some(rest.trim_end_matches('`').to_owned());
            continue;
        }
        let (Some(module), Some(sig)) = (&module, line.strip_prefix("### `")) else {
            continue;
        };
        let sig = sig.trim_end_matches('`');
        let (name, rest) = sig.split_once('(').expect("a signature");
        let (params, result) = rest.split_once(')').expect("a signature");
        let params = params
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                let (pname, ty) = p.split_once(':').expect("name: type");
                let is64 = ty.trim() == "i64";
                (is64, kind_of(pname.trim(), is64))
            })
            .collect();
        let result = result.trim().strip_prefix("->").map(|t| t.trim() == "i64");
        fns.push(HostFn {
            module: module.clone(),
            name: name.to_owned(),
            params,
            result,
        });
    }
    let wasi = |name: &str, params: &[(bool, Kind)]| HostFn {
        module: "wasi_snapshot_preview1".into(),
        name: name.into(),
        params: params.to_vec(),
        result: Some(false),
    };
    use Kind::*;
    fns.push(wasi(
        "fd_write",
        &[(false, Small), (false, Ptr), (false, Len), (false, Ptr)],
    ));
    fns.push(wasi(
        "fd_read",
        &[(false, Small), (false, Ptr), (false, Len), (false, Ptr)],
    ));
    fns.push(wasi("random_get", &[(false, Ptr), (false, Len)]));
    fns.push(wasi(
        "clock_time_get",
        &[(false, Small), (true, AnyI64), (false, Ptr)],
    ));
    fns.push(wasi("sched_yield", &[]));
    fns.push(wasi("args_sizes_get", &[(false, Ptr), (false, Ptr)]));
    fns.push(wasi("environ_get", &[(false, Ptr), (false, Ptr)]));
    assert!(
        fns.len() > 50,
        "only {} functions found in the spec",
        fns.len()
    );
    fns
}

/// Where the guest's memory holds valid arguments.
const DATA: &[(u32, &str)] = &[
    (1024, "child"),
    (1040, "_start"),
    (1056, "grand"),
    (1072, "127.0.0.1:0"),
    (1100, "localhost"),
    (1120, "a\\00b\\00"),
    (1140, "K=V\\00PATH=/\\00"),
    (1160, "127.0.0.1\\00"),
    (1180, "/data\\00"),
    // An exit reason: CUSTOM (5), length 3, "abc"; and NORMAL.
    (1200, "\\05\\00\\00\\00\\03\\00\\00\\00\\00\\00\\00\\00abc"),
    (1220, "\\00\\00\\00\\00"),
    // Tags: 0, SYSTEM_BASE, EXIT, DOWN (little-endian u64s).
    (
        1240,
        "\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\80\
         \\01\\00\\00\\00\\00\\00\\00\\80\\02\\00\\00\\00\\00\\00\\00\\80",
    ),
    // Spawn parameters (i64s).
    (
        1280,
        "\\01\\00\\00\\00\\00\\00\\00\\00\\02\\00\\00\\00\\00\\00\\00\\00",
    ),
    // An iovec for fd_write: 4 bytes at 1072.
    (1300, "\\30\\04\\00\\00\\04\\00\\00\\00"),
];

fn arg(rng: &mut Rng, kind: Kind, root: bool) -> i64 {
    match kind {
        Kind::Ptr => match rng.below(50) {
            0..=24 => i64::from(rng.pick(&[
                1024, 1040, 1056, 1072, 1100, 1120, 1140, 1160, 1180, 1200, 1220, 1240, 1280, 1300,
                4096, 8192,
            ])),
            25 => rng.pick(&[0, 8, 65528, 65535, 65536, 131071, -1, -8, i32::MAX as i64]),
            _ => rng.below(65536) as i64,
        },
        Kind::Len => match rng.below(50) {
            0..=29 => rng.pick(&[0, 1, 3, 4, 5, 6, 8, 11, 16, 19, 24, 32, 64]),
            30..=32 => rng.pick(&[1024, 4096, 65536, 1 << 20]),
            33 => rng.pick(&[-1, i32::MAX as i64, i32::MIN as i64]),
            _ => rng.below(300) as i64,
        },
        Kind::Pid => rng.pick(&[0, 1, 1, 2, 2, 3, 3, 4, 5, 7, 12, 40, -1, i64::MAX]),
        Kind::Tag => rng.pick(&[
            0,
            0,
            1,
            1 << 62,
            (1u64 << 63) as i64,
            ((1u64 << 63) + 1) as i64,
            ((1u64 << 63) + 2) as i64,
            -1,
        ]),
        Kind::Timeout if root => rng.pick(&[0, 0, 1_000, 1_000_000, 3_000_000]),
        Kind::Timeout => rng.pick(&[0, 1_000, 1_000_000, 5_000_000, -1]),
        Kind::Delay => rng.pick(&[0, 1, 1_000, 1_000_000, 4_000_000, -1]),
        Kind::Handle => rng.pick(&[0, 1, 2, 3, 4, 5, 6, 8, 16, 100, -1, i64::MAX]),
        Kind::Units => rng.pick(&[0, 1, 1000, 65536, 1 << 20, 1 << 40, -1, i64::MAX]),
        Kind::Small => rng.pick(&[0, 1, 2, 3, -1, 100]),
        Kind::AnyI32 => rng.next() as i32 as i64,
        Kind::AnyI64 => rng.next() as i64,
    }
}

/// Functions a root must not call: they could keep it from ever ending
/// (a hibernating root waits for a message nobody sends).
fn root_may_call(f: &HostFn) -> bool {
    f.name != "hibernate"
}

/// A body of `calls` random host calls, then maybe a fault.
fn body(rng: &mut Rng, fns: &[HostFn], calls: u64, root: bool) -> String {
    let mut out = String::new();
    for _ in 0..calls {
        if rng.chance(3) {
            let pages = rng.pick(&[1, 2, 16, 100]);
            out.push_str(&format!("(drop (memory.grow (i32.const {pages})))\n"));
            continue;
        }
        if rng.chance(12) {
            // Spawns often, so that processes meet: `child`, or `grand`
            // with its two parameters, with a fresh configuration or none.
            let (entry, count) = rng.pick(&[(1024, 0), (1056, 2)]);
            let config = if rng.chance(30) {
                "(call $troupe_process.config_new)"
            } else {
                "(i64.const 0)"
            };
            out.push_str(&format!(
                "(drop (call $troupe_process.spawn (i64.const 0) {config} (i32.const {entry}) \
                 (i32.const 5) (i32.const 1280) (i32.const {count}) (i32.const 1200) \
                 (i32.const {}) (i32.const 8192)))\n",
                rng.pick(&[0, 4, 16])
            ));
            continue;
        }
        let f = loop {
            let f = &fns[rng.below(fns.len() as u64) as usize];
            if !root || root_may_call(f) {
                break f;
            }
        };
        let mut call = format!("(call {}", f.ident());
        for (is64, kind) in &f.params {
            let v = arg(rng, *kind, root);
            if *is64 {
                call.push_str(&format!(" (i64.const {v})"));
            } else {
                call.push_str(&format!(" (i32.const {})", v as i32));
            }
        }
        call.push(')');
        if f.result.is_some() {
            out.push_str(&format!("(drop {call})\n"));
        } else {
            out.push_str(&format!("{call}\n"));
        }
    }
    if !root {
        // How a child ends, besides returning.
        match rng.below(8) {
            0 => out.push_str("unreachable\n"),
            1 => out.push_str("(loop $spin (br $spin))\n"),
            2 => out.push_str("(call $recurse (i32.const 0))\n"),
            3 => out.push_str("(drop (i32.load (i32.const -4)))\n"),
            _ => {}
        }
    }
    out
}

fn guest(seed: u64, fns: &[HostFn]) -> String {
    let mut rng = Rng::new(seed);
    let mut wat = String::from("(module\n");
    for f in fns {
        let params: String = f
            .params
            .iter()
            .map(|(is64, _)| if *is64 { " i64" } else { " i32" })
            .collect();
        let result = match f.result {
            Some(true) => " (result i64)",
            Some(false) => " (result i32)",
            None => "",
        };
        wat.push_str(&format!(
            "(import \"{}\" \"{}\" (func {} (param{params}){result}))\n",
            f.module,
            f.name,
            f.ident()
        ));
    }
    wat.push_str("(memory (export \"memory\") 1 4)\n");
    for (at, text) in DATA {
        wat.push_str(&format!("(data (i32.const {at}) \"{text}\")\n"));
    }
    wat.push_str(
        "(func $recurse (param i32) (call $recurse (i32.add (local.get 0) (i32.const 1))))\n",
    );
    let root_calls = 5 + rng.below(40);
    let child_calls = rng.below(30);
    let grand_calls = rng.below(10);
    let root = body(&mut rng, fns, root_calls, true);
    let child = body(&mut rng, fns, child_calls, false);
    let grand = body(&mut rng, fns, grand_calls, false);
    wat.push_str(&format!("(func (export \"_start\")\n{root})\n"));
    wat.push_str(&format!("(func (export \"child\")\n{child})\n"));
    wat.push_str(&format!(
        "(func (export \"grand\") (param i32 i64)\n{grand})\n"
    ));
    wat.push_str(")\n");
    wat
}

fn config(seed: u64) -> (VmConfig, NetPolicy) {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut c = VmConfig::new()
        .threads(rng.pick(&[1, 2]))
        .max_processes(rng.pick(&[8, 64]))
        .max_memory(rng.pick(&[1u64 << 20, 4 << 20]))
        .max_vm_memory(256 << 20)
        .stack_size(rng.pick(&[64 << 10, 1 << 20]));
    if rng.chance(20) {
        c = c.fuel(rng.pick(&[100_000, 10_000_000]));
    }
    // Loopback only: no name is ever looked up (no rule names one).
    let net = if rng.chance(50) {
        NetPolicy::parse("127.0.0.1").unwrap()
    } else {
        NetPolicy::deny()
    };
    (c, net)
}

/// Panics on the VM's own threads (a guest's trap is no panic).
static VM_PANICKED: AtomicBool = AtomicBool::new(false);
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

fn watch_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        if thread.name().is_some_and(|n| n.starts_with("troupe")) {
            VM_PANICKED.store(true, Ordering::SeqCst);
            *LAST_PANIC.lock().unwrap() = format!("{info}");
        }
        default(info);
    }));
}

/// Runs one case; `Err` says what went wrong.
fn run_case(seed: u64, fns: &[HostFn]) -> Result<(), String> {
    let wat = guest(seed, fns);
    let (config, net) = config(seed);
    let stdout = MemoryOutputPipe::new(1 << 20);
    let stderr = MemoryOutputPipe::new(1 << 20);
    let (tx, rx) = mpsc::channel();
    let err = stderr.clone();
    let out = stdout.clone();
    std::thread::spawn(move || {
        let result = Vm::new(config).map_err(|e| e.to_string()).and_then(|vm| {
            vm.run(
                "fuzz.wat".as_ref(),
                wat.as_bytes(),
                RootOptions {
                    args: vec!["fuzz".into()],
                    stdout: Output::Pipe(out),
                    stderr: Output::Pipe(err),
                    net,
                    ..RootOptions::default()
                },
            )
            .map_err(|e| e.to_string())
        });
        let _ = tx.send(result);
    });
    let outcome = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| "the VM did not end within 60 s".to_string())?;
    let stderr = text(&stderr.contents());
    if VM_PANICKED.load(Ordering::SeqCst) {
        return Err(format!("the VM panicked: {}", LAST_PANIC.lock().unwrap()));
    }
    if stderr.contains("the VM failed") {
        return Err(format!("a process's task panicked: {stderr}"));
    }
    match outcome {
        Ok(_) => Ok(()),
        // A root that cannot start (its module's memory too large for
        // the limit, say) is a clear error, not a failure of the VM.
        Err(e) if e.starts_with("cannot start the root process") => Ok(()),
        Err(e) => Err(format!("the run failed: {e}")),
    }
}

#[test]
fn random_host_calls_from_random_guests_never_break_the_vm() {
    assert_map_count_for(64);
    watch_panics();
    let fns = spec_functions();
    if let Ok(seed) = std::env::var("TROUPE_FUZZ_SEED") {
        let seed: u64 = seed.parse().expect("TROUPE_FUZZ_SEED is a number");
        println!("{}", guest(seed, &fns));
        if let Err(e) = run_case(seed, &fns) {
            panic!("seed {seed}: {e}");
        }
        return;
    }
    let secs: u64 = std::env::var("TROUPE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let start_seed: u64 = std::env::var("TROUPE_FUZZ_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let last = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-last-seed");
    let started = Instant::now();
    let mut seed = start_seed;
    let mut slowest = (Duration::ZERO, 0);
    while started.elapsed() < Duration::from_secs(secs) {
        // If the VM aborts, this file names the case that did it.
        std::fs::write(&last, seed.to_string()).unwrap();
        let case = Instant::now();
        if let Err(e) = run_case(seed, &fns) {
            panic!("seed {seed}: {e}\nreplay: TROUPE_FUZZ_SEED={seed} cargo test --release -p troupe-vm --test fuzz_abi -- --nocapture");
        }
        slowest = slowest.max((case.elapsed(), seed));
        seed += 1;
    }
    println!(
        "fuzz_abi: {} cases (seeds {start_seed}..{seed}) in {:.0?}, {} host functions; the slowest: seed {} in {:.1?}",
        seed - start_seed,
        started.elapsed(),
        fns.len(),
        slowest.1,
        slowest.0
    );
}

/// The repository root. `cargo test` sets `CARGO_MANIFEST_DIR` when it runs a
/// test, so the checkout being tested wins over the one the binary was
/// compiled in.
fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .unwrap()
        .to_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails with the fix if the kernel's `vm.max_map_count` is too low for `n`
/// live processes (the test scripts raise it).
fn assert_map_count_for(n: u64) {
    let needed = n * troupe_vm::limits::MAPS_PER_PROCESS;
    let max = troupe_vm::limits::max_map_count().unwrap_or(u64::MAX);
    assert!(
        max >= needed,
        "this test needs vm.max_map_count >= {needed} (it is {max}): run \
         `sysctl -w vm.max_map_count=16777216` as root, as scripts/test.sh does"
    );
}
