//! Compute kernels of the benchmarks, a crate used by the Troupe guest
//! (`benches/guests`, compiled to Wasm) and the native baseline
//! (`benches/src/bin/tokio_baseline.rs`): the two systems run exactly the
//! same code. The Erlang baseline has its own `xorshift32`
//! (`erlang/troupe_bench.erl`).

/// The compute loop of `preemption`: `iters` rounds of xorshift32 from `x`.
/// All three systems report the same `checksum`.
#[inline(never)]
pub fn xorshift32(mut x: u32, iters: u64) -> u32 {
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
    }
    x
}

/// The seed of `preemption`'s loop.
pub const XORSHIFT_SEED: u32 = 2_463_534_242;

/// Elements in each of `memloop`'s two arrays (256 KiB each).
const MEMLOOP_LEN: usize = 1 << 16;
/// Buckets of `memloop`'s histogram (64 KiB).
const MEMLOOP_BUCKETS: usize = 1 << 14;

/// The loop of `bounds`: a load- and store-heavy kernel over 576 KiB of
/// memory. Each pass streams one array into another (a load and a store per
/// element), then builds a histogram of the second (a load, then a load and a
/// store at a data-dependent address). Rust's own index checks are all
/// provably in range and compiled away, so in Wasm the only checks left are
/// the engine's bounds checks on linear memory. Returns a checksum of the
/// histogram.
#[inline(never)]
pub fn memloop(passes: u64) -> u64 {
    let a: Vec<u32> = (0..MEMLOOP_LEN as u32).collect();
    let mut b = vec![0u32; MEMLOOP_LEN];
    let mut h: Box<[u32; MEMLOOP_BUCKETS]> = vec![0u32; MEMLOOP_BUCKETS]
        .into_boxed_slice()
        .try_into()
        .expect("the length is MEMLOOP_BUCKETS");
    for p in 0..passes {
        let k = p as u32;
        for (x, y) in a.iter().zip(b.iter_mut()) {
            *y = x.wrapping_mul(2_654_435_761).wrapping_add(k);
        }
        for y in &b {
            // `y >> 18` < 2^14 = MEMLOOP_BUCKETS: no index check.
            h[(*y >> 18) as usize] += 1;
        }
    }
    h.iter().enumerate().fold(0u64, |acc, (i, &c)| {
        acc.wrapping_mul(31).wrapping_add(u64::from(c) ^ i as u64)
    })
}
