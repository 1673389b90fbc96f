//! The wasmtime engine every process of a VM runs on: its configuration
//! (the pooling allocator with copy-on-write memories, epoch preemption,
//! async stacks, fuel), the checks that a pool of the asked size fits the
//! kernel and the address space, and the linker holding WASI and the
//! Troupe host functions.

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig,
};

use crate::config::VmConfig;
use crate::error::RunError;
use crate::limits;
use crate::process::ProcessState;

/// Bytes of a freed linear memory zeroed in place rather than decommitted.
const KEEP_RESIDENT_MEMORY: usize = (1 << 20) + (64 << 10);
/// The guard region after each linear memory's slot.
const MEMORY_GUARD: u64 = 64 << 10;
/// Address space the memory pool may reserve. The pool is one mapping, and
/// of the 128 TiB a process has on x86-64 the largest free range is about
/// 84 TiB (below the executable, which ASLR places near 85 TiB).
const ADDRESS_SPACE_BUDGET: u64 = 80 << 40;
/// Bytes of a freed table zeroed in place rather than decommitted.
const KEEP_RESIDENT_TABLE: usize = 64 << 10;

/// Refuses a pool of `n` slots (`config`'s `--max-processes`) that the
/// kernel's `vm.max_map_count` or the address space cannot hold, with advice.
pub(crate) fn check_pool_fits(config: &VmConfig, n: u32) -> Result<(), RunError> {
    if let Some(max) = limits::max_map_count() {
        let needed = u64::from(n) * limits::MAPS_PER_PROCESS;
        if needed > max {
            return Err(RunError::Engine(format!(
                "a pool of {n} processes (`--max-processes`, TROUPE_MAX_PROCESSES) needs the \
                 kernel's vm.max_map_count to be at least \
                 {needed}, and it is {max}; raise it as root with `sysctl -w \
                 vm.max_map_count={needed}` or ask for fewer processes"
            )));
        }
    }
    // Each slot reserves `max_memory` plus its guard of address space.
    let reserve = u64::from(n).saturating_mul(config.max_memory + MEMORY_GUARD);
    if reserve > ADDRESS_SPACE_BUDGET {
        let most = ADDRESS_SPACE_BUDGET / (config.max_memory + MEMORY_GUARD);
        return Err(RunError::Engine(format!(
            "a pool of {n} processes (`--max-processes`, TROUPE_MAX_PROCESSES) of {} MiB each \
             (`--max-memory`, TROUPE_MAX_MEMORY) would reserve {} TiB of address \
             space for linear memories, more than the {} TiB it can reserve in one piece; ask \
             for at most {most} processes, or less memory per process",
            config.max_memory >> 20,
            reserve >> 40,
            ADDRESS_SPACE_BUDGET >> 40,
        )));
    }
    Ok(())
}

/// The engine of a VM made with `config` (with wasmtime's on-disk cache if
/// asked for) and its linker: WASI preview 1 and the Troupe host functions.
pub(crate) fn new_engine(config: &VmConfig) -> Result<(Engine, Linker<ProcessState>), RunError> {
    let mut wasm = engine_config(config);
    if config.compile_cache {
        match wasmtime::Cache::from_file(None) {
            Ok(cache) => {
                wasm.cache(Some(cache));
            }
            Err(e) => tracing::warn!("running without the compiled-module cache: {e:#}"),
        }
    }
    let engine = Engine::new(&wasm).map_err(|e| RunError::Engine(format!("{e:#}")))?;
    let mut linker = Linker::new(&engine);
    troupe_host_api::wasi::register(&mut linker)
        .and_then(|_| troupe_host_api::register(&mut linker))
        .map_err(|e| RunError::Engine(format!("{e:#}")))?;
    Ok((engine, linker))
}

/// The wasmtime [`Config`] of a VM made with `config`: the pooling allocator
/// sized for `--max-processes` slots with copy-on-write memory images, small
/// memory reservations, epoch interruption (preemption), async stacks for
/// processes that wait inside host calls, and fuel if asked for. Public (in
/// `troupe_vm::bench`) so that the benchmarks' "wasmtime floor"
/// (`benches/wasmtime-floor`) runs bare wasmtime with exactly the VM's
/// settings.
pub fn engine_config(config: &VmConfig) -> Config {
    let n = config.get_max_processes();
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(n)
        .total_memories(n)
        .total_tables(n)
        .total_stacks(n)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .max_memory_size(config.max_memory as usize)
        .table_elements(config.table_elements)
        .pagemap_scan(Enabled::Auto);
    // A freed slot's dirty pages (found with pagemap_scan) are zeroed in
    // place instead of being decommitted, up to these sizes, so the next
    // process in the slot does not page-fault them back in. 1 MiB + 64 KiB
    // covers a Rust guest's shadow stack (the first MiB) and the start of
    // its heap. Spawn + run + exit costs about 30% less CPU with it
    // (benches/README.md); the price is that the pages a process dirtied
    // stay resident in its slot after it exits, until the slot is reused.
    pool.linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
        .table_keep_resident(KEEP_RESIDENT_TABLE);
    // A freed slot is used again before a fresh one is, also one another
    // module used: with wasmtime's default (100), a VM running several
    // modules takes fresh slots first and, since every slot a process used
    // keeps its resident pages (see above), its RSS climbs towards the
    // pool's size times those pages. So the slots holding pages are about
    // as many as the most processes alive at once. (The stack pool already
    // works this way; cli/tests/all/chaos.rs shows the plateau.)
    pool.max_unused_warm_slots(0);
    let mut wasm = Config::new();
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .memory_reservation(config.max_memory)
        .memory_guard_size(MEMORY_GUARD)
        .memory_reservation_for_growth(0)
        .memory_init_cow(true)
        .async_stack_size(config.async_stack_size)
        .max_wasm_stack(config.max_wasm_stack)
        .consume_fuel(config.fuel.is_some());
    wasm
}
