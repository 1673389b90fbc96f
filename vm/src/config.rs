//! Configuration of a VM ([`VmConfig`]) and of its root process
//! ([`RootOptions`]).

use std::path::PathBuf;
use std::time::Duration;

use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// How the VM is sized and scheduled. Built like wasmtime's `Config`:
///
/// ```
/// let config = troupe_vm::VmConfig::new().max_processes(10_000).threads(2);
/// assert_eq!(config.get_max_processes(), 10_000);
/// ```
#[derive(Clone, Debug)]
pub struct VmConfig {
    pub(crate) max_processes: Option<u32>,
    pub(crate) max_memory: u64,
    pub(crate) max_vm_memory: Option<u64>,
    pub(crate) async_stack_size: usize,
    pub(crate) max_wasm_stack: usize,
    pub(crate) table_elements: usize,
    pub(crate) threads: usize,
    pub(crate) preemption_tick: Duration,
    pub(crate) handle_signals: bool,
    pub(crate) fuel: Option<u64>,
    pub(crate) compile_cache: bool,
}

/// The part of each process's native stack that Wasm code cannot use: a host
/// call made from Wasm's deepest frame (a spawn, a WASI call) runs in it, so
/// that no guest, however deep it recurses, overflows the stack in host code
/// (which would abort the VM rather than trap the guest). Wasmtime's own
/// default leaves 1.5 MiB; the VM's host calls were measured to need less
/// than a quarter of this (cli/tests/all/sandbox.rs sweeps every depth).
pub const HOST_STACK_HEADROOM: usize = 256 << 10;
/// The least stack Wasm code gets, whatever [`VmConfig::stack_size`] says.
pub const MIN_WASM_STACK: usize = 32 << 10;

/// The largest default [`VmConfig::max_processes`]: the default is this, or
/// what the kernel's `vm.max_map_count` allows if that is less.
pub const DEFAULT_MAX_PROCESSES: u32 = 10_000;
/// Default [`VmConfig::max_memory`]: 64 MiB.
pub const DEFAULT_MAX_MEMORY: u64 = 64 << 20;

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            max_processes: None,
            max_memory: DEFAULT_MAX_MEMORY,
            max_vm_memory: None,
            async_stack_size: 1 << 20,
            max_wasm_stack: (1 << 20) - HOST_STACK_HEADROOM,
            table_elements: 65_536,
            threads: 0,
            preemption_tick: Duration::from_millis(1),
            handle_signals: false,
            fuel: None,
            compile_cache: false,
        }
    }
}

impl VmConfig {
    /// The defaults: up to 10,000 processes (fewer if the kernel's
    /// `vm.max_map_count` allows fewer) of at most 64 MiB of linear memory,
    /// 1 MiB async stacks, one scheduler thread per core, a 1 ms preemption
    /// tick.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many processes can hold an instance at once: the size of the
    /// instance, memory, table and stack pools, reserved (not committed) up
    /// front. Hibernated processes hold none and do not count. A spawn
    /// beyond it waits while processes end or hibernate, then fails with
    /// `RESOURCE_LIMIT`.
    ///
    /// Each slot of the stack pool costs two kernel memory mappings from the
    /// start, and each live process a few more, so a count beyond what
    /// `vm.max_map_count` allows is refused with advice on raising it.
    pub fn max_processes(mut self, n: u32) -> Self {
        self.max_processes = Some(n.max(1));
        self
    }

    /// The largest linear memory one process may have, in bytes (rounded up to
    /// 64 KiB Wasm pages). Also the size of each memory slot reserved in the
    /// pool, so `max_processes * max_memory` bytes of address space are
    /// reserved.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = bytes.max(1 << 16).div_ceil(1 << 16) << 16;
        self
    }

    /// The size of each process's native stack (its async fiber stack), which
    /// holds the process's Wasm frames and the host calls it makes. Wasm code
    /// may use all of it but [`HOST_STACK_HEADROOM`], which is kept for the
    /// host calls made from the deepest Wasm frame; a size too small to leave
    /// [`MIN_WASM_STACK`] to Wasm is raised to it. Pages are committed only
    /// as used.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.max_wasm_stack = bytes
            .saturating_sub(HOST_STACK_HEADROOM)
            .max(MIN_WASM_STACK);
        self.async_stack_size = self.max_wasm_stack + HOST_STACK_HEADROOM;
        self
    }

    /// The most elements a process's function table may have.
    pub fn table_elements(mut self, n: usize) -> Self {
        self.table_elements = n;
        self
    }

    /// Scheduler threads (0: one per core).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Whether the VM handles SIGTERM and SIGINT itself: every process is
    /// stopped and the run ends with exit code 143 (SIGTERM) or 130
    /// (SIGINT). The CLI and the container shim turn this on, so that the VM
    /// as a container's PID 1 stops on `docker stop` / `ctr task kill`.
    pub fn handle_signals(mut self, yes: bool) -> Self {
        self.handle_signals = yes;
        self
    }

    /// Turns on fuel metering (Wasm instructions are counted) and gives the
    /// root process this budget; each child's comes out of its parent's
    /// (half of what is left, unless the spawn asks for an amount). Running out ends a process with a fuel limit reason.
    /// Metering costs some speed, so it is off unless asked for.
    pub fn fuel(mut self, units: u64) -> Self {
        self.fuel = Some(units);
        self
    }

    /// Keeps compiled modules in wasmtime's on-disk cache (in
    /// `$XDG_CACHE_HOME/wasmtime` or `~/.cache/wasmtime`), so a module is
    /// compiled once per machine rather than at every start: a Go module
    /// takes about 2 s to compile. The CLI turns it on (`--no-cache` turns
    /// it off); if the cache cannot be opened the VM runs without it.
    pub fn compile_cache(mut self, yes: bool) -> Self {
        self.compile_cache = yes;
        self
    }

    /// How often a running process is made to yield to the others.
    pub fn preemption_tick(mut self, tick: Duration) -> Self {
        self.preemption_tick = tick.max(Duration::from_micros(10));
        self
    }

    /// The pool size: the configured one, or the default for this kernel.
    pub fn get_max_processes(&self) -> u32 {
        self.max_processes.unwrap_or_else(|| {
            crate::limits::max_map_count()
                .map(|m| {
                    (m / crate::limits::MAPS_PER_PROCESS)
                        .clamp(1_000, u64::from(DEFAULT_MAX_PROCESSES)) as u32
                })
                .unwrap_or(DEFAULT_MAX_PROCESSES)
        })
    }

    /// Whether the pool size was set explicitly.
    pub fn max_processes_is_explicit(&self) -> bool {
        self.max_processes.is_some()
    }

    /// What all processes together may make the machine hold: their linear
    /// memories and what the host keeps for them (queued messages, timers,
    /// configurations, hibernated snapshots). A memory growth past it ends
    /// the process that grows; a send past it fails. Default: 90% of the
    /// machine's memory or of its container's (cgroup) limit, whichever is
    /// less.
    pub fn max_vm_memory(mut self, bytes: u64) -> Self {
        self.max_vm_memory = Some(bytes);
        self
    }

    /// The VM's memory budget (see [`VmConfig::max_vm_memory`]).
    /// The VM's memory budget: the one set, or the default (90% of the
    /// machine's or the container's memory).
    pub fn get_max_vm_memory(&self) -> u64 {
        self.max_vm_memory
            .unwrap_or_else(crate::budget::default_vm_budget)
    }

    /// The root's fuel budget, if fuel is metered.
    pub fn get_fuel(&self) -> Option<u64> {
        self.fuel
    }

    /// One process's memory budget.
    pub fn get_max_memory(&self) -> u64 {
        self.max_memory
    }

    /// Each process's native stack, in bytes.
    pub fn get_stack_size(&self) -> usize {
        self.async_stack_size
    }

    /// How often a running process is made to yield (see
    /// [`VmConfig::preemption_tick`]).
    pub fn get_preemption_tick(&self) -> Duration {
        self.preemption_tick
    }

    /// The number of scheduler threads this configuration gives.
    pub fn get_threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        }
    }
}

/// A directory made visible to the guest (`--dir HOST::GUEST`, or a
/// container's mount): what is asked for. When the root process is made the
/// VM opens `host` once and keeps the open directory with this mapping (a
/// `Preopen`, in `process/perms.rs`); children inherit that open directory
/// and the host path is never looked up again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirMapping {
    /// The directory on the host.
    pub host: PathBuf,
    /// The path the guest sees it as.
    pub guest: String,
}

/// Where a process's stdout or stderr goes.
#[derive(Clone, Debug, Default)]
pub enum Output {
    /// The VM's own stream.
    #[default]
    Inherit,
    /// An in-memory pipe (for embedding and tests).
    Pipe(MemoryOutputPipe),
}

/// What the root process gets: its WASI arguments, environment, directories
/// and stdio. Every other process inherits from its parent.
#[derive(Clone, Debug, Default)]
pub struct RootOptions {
    /// argv, `argv[0]` included (the CLI passes the module's path).
    pub args: Vec<String>,
    /// The environment, `(KEY, VALUE)`.
    pub envs: Vec<(String, String)>,
    /// The directories preopened for the root (and, unless a spawn says
    /// otherwise, its descendants).
    pub dirs: Vec<DirMapping>,
    /// Whether the root reads the VM's stdin (otherwise it reads EOF).
    pub stdin: bool,
    /// Where the root's (and every process's) stdout goes.
    pub stdout: Output,
    /// Where their stderr goes.
    pub stderr: Output,
    /// Where the root (and so every process) may listen and connect: no
    /// network unless given (`--allow-net`).
    pub net: troupe_host_api::NetPolicy,
}

/// Parses a size as the CLI's flags and the shim's `TROUPE_*` variables give
/// it: `4096`, `64K`, `16M`, `1G` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 10),
        Some((i, 'm' | 'M')) => (&t[..i], 20),
        Some((i, 'g' | 'G')) => (&t[..i], 30),
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a size such as 65536, 64K, 16M or 1G, got {s:?}"))?;
    n.checked_shl(shift)
        .filter(|v| v >> shift == n)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod parse_size_tests {
    use super::parse_size;

    #[test]
    fn sizes_accept_binary_suffixes_and_reject_garbage() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("16m"), Ok(16 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999G")
            .unwrap_err()
            .contains("too large"));
    }
}
