//! `bench`: runs every workload on every available system (tokio, Erlang,
//! Troupe) and thread count, and writes results/latest.{json,md,svg}.

mod cases;
mod chart;
mod exec;
mod report;
mod systems;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::exec::Sample;
use crate::report::{Machine, Report, Row};
use crate::systems::{Ctx, System};

#[derive(Parser, Debug)]
#[command(about = "Troupe benchmark runner: Troupe vs tokio vs Erlang/OTP")]
struct Cli {
    /// Smoke run for CI: small sizes, 2 runs per cell, under a minute.
    #[arg(long)]
    quick: bool,
    /// Comma-separated workloads (spawn,idle,pingpong,ring,fanin,payload,preemption,bounds); default all.
    #[arg(long, value_delimiter = ',')]
    workloads: Option<Vec<String>>,
    /// Comma-separated scheduler thread counts.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Comma-separated systems (tokio,erlang,troupe,wasmtime-floor); default all that are available.
    #[arg(long, value_delimiter = ',')]
    systems: Option<Vec<String>>,
    /// Runs per cell (default 5, or 2 with --quick).
    #[arg(long)]
    reps: Option<usize>,
    /// Output directory for latest.{json,md,svg} (default: `results/` in the
    /// benches folder, see `troupe_benches::benches_dir`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Path to the troupe binary (default: $TROUPE_BIN, then `troupe` on PATH).
    #[arg(long, env = "TROUPE_BIN")]
    troupe: Option<PathBuf>,
    /// Path to the wasmtime-floor binary (default: $TROUPE_FLOOR_BIN, then
    /// `wasmtime-floor` next to the troupe binary).
    #[arg(long, env = "TROUPE_FLOOR_BIN")]
    wasmtime_floor: Option<PathBuf>,
    /// Directory holding the Troupe guests (<workload>.wasm or bench.wasm);
    /// the default is where run.sh builds benches/guests.
    #[arg(long, default_value = "/var/tmp/troupe-target/wasm32-wasip1/release")]
    guests: PathBuf,
    /// Skip idle cases with more processes than this (e.g. 100000 to skip 1M).
    #[arg(long, default_value_t = 1_000_000)]
    idle_max: u64,
    /// Kill a single run after this many seconds (default 300, or 30 with --quick).
    #[arg(long)]
    timeout: Option<u64>,
    /// Install Erlang (apt-get install erlang-nox) if `erl` is missing.
    #[arg(long)]
    install_erlang: bool,
}

const GIB: f64 = (1u64 << 30) as f64;

/// `MemAvailable` of /proc/meminfo, in bytes.
fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let started = Instant::now();
    let reps = cli.reps.unwrap_or(if cli.quick { 2 } else { 5 });
    if reps == 0 || cli.threads.is_empty() || cli.threads.contains(&0) {
        bail!("--reps and --threads must be >= 1");
    }
    let timeout = Duration::from_secs(cli.timeout.unwrap_or(if cli.quick { 30 } else { 300 }));
    let cases = cases::cases(cli.quick, cli.workloads.as_deref(), cli.idle_max)?;
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| troupe_benches::benches_dir().join("results"));
    let scratch = out.join("tmp");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;

    let ctx = Ctx {
        scratch,
        install_erlang: cli.install_erlang,
        troupe_bin: cli.troupe.clone(),
        floor_bin: cli.wasmtime_floor.clone(),
        guests: cli.guests.clone(),
    };
    let known: Vec<&str> = systems::all().iter().map(|s| s.name()).collect();
    for name in cli.systems.iter().flatten() {
        if !known.contains(&name.as_str()) {
            bail!("unknown system {name:?} (known: {})", known.join(", "));
        }
    }
    let mut notes = Vec::new();
    let mut systems: Vec<Box<dyn System>> = Vec::new();
    for mut s in systems::all() {
        if cli
            .systems
            .as_ref()
            .is_some_and(|only| !only.iter().any(|n| n == s.name()))
        {
            continue;
        }
        match s.prepare(&ctx) {
            Ok(()) => systems.push(s),
            Err(note) => {
                eprintln!("note: {}: {note}", s.name());
                notes.push(format!("{}: {note}", s.name()));
            }
        }
    }
    if systems.is_empty() {
        bail!("no system available to benchmark");
    }
    let machine = Machine::probe(systems::otp_release());
    eprintln!("machine: {}", machine.line());

    // (case index, threads, system index) -> samples, error
    type Key = (usize, usize, usize);
    let mut samples: BTreeMap<Key, Vec<Sample>> = BTreeMap::new();
    let mut errors: BTreeMap<Key, String> = BTreeMap::new();
    let mut skipped: BTreeSet<Key> = BTreeSet::new();
    // (case index, system index) -> why the case does not apply to the system.
    let mut not_applicable: BTreeMap<(usize, usize), &'static str> = BTreeMap::new();
    // Smallest idle N that failed, per (series, threads, system): larger N of
    // the same series are skipped (plain and hibernated idle are two series).
    let mut idle_failed: BTreeMap<(String, usize, usize), u64> = BTreeMap::new();

    for (ci, case) in cases.iter().enumerate() {
        for (si, sys) in systems.iter().enumerate() {
            if let Some(why) = sys.not_applicable(case) {
                not_applicable.insert((ci, si), why);
            }
        }
        let runs = |si: usize, sys: &dyn System| {
            sys.supports(case.workload) && !not_applicable.contains_key(&(ci, si))
        };
        if !systems
            .iter()
            .enumerate()
            .any(|(si, s)| runs(si, s.as_ref()))
        {
            notes.push(format!(
                "{}: no available system implements it",
                case.label()
            ));
            continue;
        }
        for &threads in &cli.threads {
            // Repetitions are interleaved across systems so slow drifts in
            // machine load hit every column alike.
            for rep in 0..reps {
                for (si, sys) in systems.iter().enumerate() {
                    let key = (ci, threads, si);
                    if !runs(si, sys.as_ref())
                        || errors.contains_key(&key)
                        || skipped.contains(&key)
                    {
                        continue;
                    }
                    if case.workload == "idle" {
                        let n = case.param("n").unwrap_or(0);
                        let series = (case.series(), threads, si);
                        if idle_failed.get(&series).is_some_and(|&f| n > f) {
                            notes.push(format!(
                                "{} / {threads} threads / {}: skipped, a smaller N failed",
                                case.label(),
                                sys.name()
                            ));
                            skipped.insert(key);
                            continue;
                        }
                        // Do not run the machine out of memory (the OOM killer
                        // may pick another process): extrapolate from the
                        // largest smaller N of the same series measured, by
                        // PSS if reported (RSS counts pages shared by k
                        // processes k times).
                        let measured = cases[..ci]
                            .iter()
                            .enumerate()
                            .filter(|(_, c)| c.workload == "idle" && c.series() == series.0)
                            .filter_map(|(cj, c)| {
                                let s = samples.get(&(cj, threads, si))?;
                                let values: Vec<f64> = s
                                    .iter()
                                    .map(|s| {
                                        s.extra
                                            .get("pss_bytes_per_proc")
                                            .copied()
                                            .filter(|&p| p > 0.0)
                                            .unwrap_or(s.value)
                                    })
                                    .collect();
                                Some((c.param("n")?, report::median(&values)?))
                            })
                            .max_by_key(|(m, _)| *m);
                        if let (Some((m, per)), Some(avail)) = (measured, mem_available()) {
                            let need = n as f64 * per * 1.1;
                            if need > avail as f64 {
                                notes.push(format!(
                                    "{} / {threads} threads / {}: skipped, does not fit in memory: \
                                     {:.0} bytes/proc (PSS, or RSS if no PSS, measured at \
                                     n={m}) x {n} = {:.1} GiB, and MemAvailable is {:.1} GiB",
                                    case.label(),
                                    sys.name(),
                                    per,
                                    n as f64 * per / GIB,
                                    avail as f64 / GIB
                                ));
                                skipped.insert(key);
                                continue;
                            }
                        }
                    }
                    let cmd = match sys.command(case, threads) {
                        Ok(c) => c,
                        Err(note) => {
                            notes.push(format!(
                                "{} / {threads} threads / {}: skipped: {note}",
                                case.label(),
                                sys.name()
                            ));
                            skipped.insert(key);
                            continue;
                        }
                    };
                    eprint!(
                        "{:<36} {threads}T {:<7} run {}/{reps} ... ",
                        case.label(),
                        sys.name(),
                        rep + 1
                    );
                    match exec::run(cmd, case, threads, timeout) {
                        Ok(s) => {
                            eprintln!("{} {}", report::human(s.value), case.unit);
                            samples.entry(key).or_default().push(s);
                        }
                        Err(e) => {
                            eprintln!("FAILED: {e}");
                            if case.workload == "idle" {
                                let n = case.param("n").unwrap_or(0);
                                let f =
                                    idle_failed.entry((case.series(), threads, si)).or_insert(n);
                                *f = (*f).min(n);
                            }
                            errors.insert(key, e);
                        }
                    }
                }
            }
        }
    }

    let mut rows = Vec::new();
    for (ci, case) in cases.iter().enumerate() {
        for &threads in &cli.threads {
            for (si, sys) in systems.iter().enumerate() {
                if let Some(why) = not_applicable.get(&(ci, si)) {
                    rows.push(Row::not_applicable(case, threads, sys.name(), why));
                    continue;
                }
                let key = (ci, threads, si);
                let err = errors.get(&key).cloned();
                match samples.get(&key) {
                    Some(s) if err.is_none() => {
                        rows.push(Row::new(case, threads, sys.name(), s, None))
                    }
                    _ if err.is_some() => rows.push(Row::new(case, threads, sys.name(), &[], err)),
                    _ => {}
                }
            }
        }
    }
    report::compute_ratios(&mut rows);
    let failed = errors.len();
    let report = Report {
        machine,
        quick: cli.quick,
        reps,
        threads: cli.threads.clone(),
        wall_secs: started.elapsed().as_secs_f64(),
        notes,
        rows,
    };

    let md = report.markdown();
    println!("{md}");
    std::fs::write(out.join("latest.md"), &md)?;
    std::fs::write(
        out.join("latest.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    chart::write_svg(&report, &out.join("latest.svg"))?;
    eprintln!(
        "wrote {}/latest.{{md,json,svg}} in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    let passed = report
        .rows
        .iter()
        .filter(|r| r.status == report::Status::Ok)
        .count();
    let skipped = report.notes.len()
        + report
            .rows
            .iter()
            .filter(|r| r.status == report::Status::NotApplicable)
            .count();
    // Closing line in the plain "N passed, N failed" form CI logs understand.
    println!("bench: {passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 {
        // A plain exit: a failed cell is a result, not a bug in the runner.
        eprintln!("error: {failed} benchmark cell(s) failed (see Notes)");
        std::process::exit(1);
    }
    Ok(())
}
