//! `kv-bench`: the network benchmark. It serves the kv-server protocol with
//! Troupe (`examples/kv-server`, one Wasm process per connection) and with
//! plain tokio (`kv-native`), loads each with `kv-load` at several connection
//! counts, and writes `kv.md` and `kv.json`. `benches/kv.sh` builds
//! everything and runs this; see `benches/README.md`.
//!
//! Each measurement starts a fresh server on `127.0.0.1:0`, reads the
//! address it prints (`...: listening on ADDR`), runs
//! `kv-load --addr ADDR --conns N --duration D --json` while sampling the
//! server's `VmRSS` (its peak is reported), and kills the server. The two systems alternate, and every
//! connection count is measured once per repetition before the next
//! repetition starts, so that changes in the machine's load hit both alike.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Serialize;
use serde_json::Value;
use troupe_benches::{fmt_us, human, median, now_utc, run_with_timeout};

#[derive(Parser, Debug)]
#[command(about = "kv benchmark: the kv-server example on Troupe vs the same service in tokio")]
struct Cli {
    /// CI smoke run: 1, 100 and 1000 connections, 0.5 s each, 1 repetition.
    #[arg(long)]
    quick: bool,
    /// Comma-separated connection counts (default 1,100,1000).
    #[arg(long, value_delimiter = ',')]
    conns: Option<Vec<usize>>,
    /// Load duration of each measurement (kv-load's --duration; default 5s, 500ms with --quick).
    #[arg(long)]
    duration: Option<String>,
    /// Repetitions of each measurement (default 3, 1 with --quick).
    #[arg(long)]
    reps: Option<usize>,
    /// Scheduler threads of both servers (`troupe run --threads`, `kv-native --threads`);
    /// default: one per core.
    #[arg(long)]
    threads: Option<usize>,
    /// Threads of the load client (default: one per core).
    #[arg(long)]
    client_threads: Option<usize>,
    /// Run the servers and the client on these CPUs only (`taskset -c CPUS`,
    /// for example `0`: one core for all, so no request waits for another
    /// core to wake up).
    #[arg(long)]
    pin: Option<String>,
    /// Distinct keys (kv-load's --keys).
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Comma-separated systems (native,troupe).
    #[arg(long, value_delimiter = ',', default_value = "native,troupe")]
    systems: Vec<String>,
    /// Output directory for kv.md and kv.json (default: `results/` in the
    /// benches folder, see `troupe_benches::benches_dir`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The troupe binary.
    #[arg(long, env = "TROUPE_BIN", default_value = "troupe")]
    troupe: PathBuf,
    /// kv-server.wasm (built from examples/kv-server); needed for the troupe system.
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// Directory holding the kv-load and kv-native binaries (examples/kv-server/load).
    #[arg(long)]
    load_bin: PathBuf,
}

/// One measurement.
#[derive(Serialize, Debug, Clone)]
struct Run {
    system: String,
    conns: usize,
    rep: usize,
    ok: bool,
    /// Why the run failed (`ok` is false).
    error: Option<String>,
    requests: f64,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    wrong_replies: f64,
    conn_errors: f64,
    /// The server's peak resident memory (`VmRSS`) during the load.
    server_rss_bytes: Option<u64>,
}

/// The medians of one (connections, system) cell, and Troupe's ratios.
#[derive(Serialize, Debug)]
struct Cell {
    conns: usize,
    system: String,
    runs_ok: usize,
    runs_failed: usize,
    rps_median: f64,
    rps_min: f64,
    rps_max: f64,
    p50_us_median: f64,
    p99_us_median: f64,
    max_us_median: f64,
    server_rss_bytes_median: Option<f64>,
    /// This system's req/s divided by native's (below 1: slower).
    rps_ratio_to_native: Option<f64>,
    /// This system's p99 latency divided by native's (above 1: slower).
    p99_ratio_to_native: Option<f64>,
}

#[derive(Serialize)]
struct Machine {
    date_utc: String,
    nproc: usize,
    cpu: String,
    kernel: String,
    loadavg_at_start: String,
    loadavg_at_end: String,
    open_files_limit: Option<u64>,
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    pin: Option<String>,
    quick: bool,
    duration: String,
    reps: usize,
    server_threads: Option<usize>,
    client_threads: Option<usize>,
    keys: u64,
    wall_secs: f64,
    notes: Vec<String>,
    cells: Vec<Cell>,
    runs: Vec<Run>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let started = Instant::now();
    let conns = cli.conns.clone().unwrap_or_else(|| vec![1, 100, 1000]);
    let duration = cli
        .duration
        .clone()
        .unwrap_or_else(|| if cli.quick { "500ms" } else { "5s" }.to_string());
    let reps = cli.reps.unwrap_or(if cli.quick { 1 } else { 3 }).max(1);
    for s in &cli.systems {
        if s != "native" && s != "troupe" {
            bail!("unknown system {s:?} (native, troupe)");
        }
    }
    let kv_load = cli.load_bin.join("kv-load");
    let kv_native = cli.load_bin.join("kv-native");
    for p in [&kv_load, &kv_native] {
        if !p.is_file() {
            bail!("{} is missing: build examples/kv-server/load", p.display());
        }
    }
    if cli.systems.iter().any(|s| s == "troupe") {
        match &cli.wasm {
            Some(w) if w.is_file() => {}
            Some(w) => bail!("{} is missing: build examples/kv-server", w.display()),
            None => bail!("--wasm kv-server.wasm is needed for the troupe system"),
        }
    }

    let mut notes = Vec::new();
    // Each connection is a descriptor in the client and one in the server.
    let limit = open_files_limit();
    let mut conns_run = Vec::new();
    for &n in &conns {
        match limit {
            Some(l) if (n as u64) + 200 > l => notes.push(format!(
                "{n} connections skipped: the open-file limit is {l} (raise it with `ulimit -n`)"
            )),
            _ => conns_run.push(n),
        }
    }

    let mut machine = probe_machine();
    machine.open_files_limit = limit;
    eprintln!(
        "kv-bench: connections {conns_run:?}, {duration} each, {reps} repetition(s), systems {:?}",
        cli.systems
    );
    eprintln!(
        "kv-bench: machine {} UTC, nproc {}, {}, load avg {}",
        machine.date_utc, machine.nproc, machine.cpu, machine.loadavg_at_start
    );

    let mut runs = Vec::new();
    for rep in 1..=reps {
        for &n in &conns_run {
            // Alternate which system goes first.
            let mut order: Vec<&String> = cli.systems.iter().collect();
            if rep % 2 == 0 {
                order.reverse();
            }
            for system in order {
                let run = measure(&cli, system, n, rep, &duration, &kv_load, &kv_native);
                match &run.error {
                    None => eprintln!(
                        "  rep {rep} conns {n:>5} {system:<6} {:>9} req/s  p50 {:>9}  p99 {:>9}  max {:>9}",
                        human(run.rps),
                        fmt_us(run.p50_us),
                        fmt_us(run.p99_us),
                        fmt_us(run.max_us)
                    ),
                    Some(e) => eprintln!("  rep {rep} conns {n:>5} {system:<6} FAILED: {e}"),
                }
                runs.push(run);
            }
        }
    }

    let mut cells = Vec::new();
    for &n in &conns_run {
        for system in &cli.systems {
            cells.push(cell(&runs, n, system));
        }
    }
    // Ratios to native.
    for i in 0..cells.len() {
        let native = cells
            .iter()
            .find(|c| c.conns == cells[i].conns && c.system == "native" && c.runs_ok > 0)
            .map(|c| (c.rps_median, c.p99_us_median));
        if let Some((rps, p99)) = native {
            if cells[i].runs_ok > 0 {
                cells[i].rps_ratio_to_native = Some(cells[i].rps_median / rps);
                cells[i].p99_ratio_to_native = Some(cells[i].p99_us_median / p99);
            }
        }
    }
    machine.loadavg_at_end = loadavg();

    let failed = runs.iter().filter(|r| !r.ok).count();
    let report = Report {
        machine,
        pin: cli.pin.clone(),
        quick: cli.quick,
        duration,
        reps,
        server_threads: cli.threads,
        client_threads: cli.client_threads,
        keys: cli.keys,
        wall_secs: started.elapsed().as_secs_f64(),
        notes,
        cells,
        runs,
    };
    let md = markdown(&report);
    print!("{md}");
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| troupe_benches::benches_dir().join("results"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("kv.md"), &md)?;
    std::fs::write(
        out.join("kv.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    eprintln!(
        "kv-bench: wrote {} and kv.json; {} runs, {failed} failed",
        out.join("kv.md").display(),
        report.runs.len()
    );
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// A server being measured: killed when dropped.
struct Server {
    child: Child,
    addr: String,
    stderr: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(cli: &Cli, system: &str, kv_native: &Path) -> Result<Server, String> {
        let mut cmd = match system {
            "troupe" => {
                let mut c = command(cli, &cli.troupe);
                c.arg("run").arg("--allow-net=127.0.0.1");
                if let Some(t) = cli.threads {
                    c.arg("--threads").arg(t.to_string());
                }
                c.arg(cli.wasm.as_ref().expect("checked in main"))
                    .arg("127.0.0.1:0");
                c
            }
            _ => {
                let mut c = command(cli, kv_native);
                c.arg("--addr").arg("127.0.0.1:0");
                if let Some(t) = cli.threads {
                    c.arg("--threads").arg(t.to_string());
                }
                c
            }
        };
        let stderr = std::env::temp_dir().join(format!("kv-bench-{system}.stderr"));
        let err_file = std::fs::File::create(&stderr).map_err(|e| format!("{e}"))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err_file)
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
        // Read stdout on a thread until "listening on ADDR", then drain it.
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut line = String::new();
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some((_, addr)) = line.trim_end().split_once("listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                line.clear();
            }
        });
        let mut server = Server {
            child,
            addr: String::new(),
            stderr,
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => {
                server.addr = addr;
                Ok(server)
            }
            Err(_) => Err(format!(
                "{system} did not print its address; stderr: {}",
                server.stderr_tail()
            )),
        }
    }

    fn stderr_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        tail(&s)
    }

    fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(kb * 1024)
    }
}

/// Runs one measurement.
fn measure(
    cli: &Cli,
    system: &str,
    conns: usize,
    rep: usize,
    duration: &str,
    kv_load: &Path,
    kv_native: &Path,
) -> Run {
    let mut run = Run {
        system: system.to_string(),
        conns,
        rep,
        ok: false,
        error: None,
        requests: 0.0,
        rps: 0.0,
        p50_us: 0.0,
        p99_us: 0.0,
        max_us: 0.0,
        wrong_replies: 0.0,
        conn_errors: 0.0,
        server_rss_bytes: None,
    };
    let mut server = match Server::start(cli, system, kv_native) {
        Ok(s) => s,
        Err(e) => {
            run.error = Some(e);
            return run;
        }
    };
    let mut cmd = command(cli, kv_load);
    cmd.arg("--addr")
        .arg(&server.addr)
        .arg("--conns")
        .arg(conns.to_string())
        .arg("--duration")
        .arg(duration)
        .arg("--keys")
        .arg(cli.keys.to_string())
        .arg("--json");
    if let Some(t) = cli.client_threads {
        cmd.arg("--threads").arg(t.to_string());
    }
    // The server's peak RSS while the client runs (sampled every 10 ms).
    let mut peak = None;
    let result = run_with_timeout(cmd, Duration::from_secs(120), &mut || {
        peak = peak.max(server.rss_bytes());
    })
    .map_err(|e| format!("kv-load: {e}"));
    run.server_rss_bytes = peak;
    // A server that died during the load is a failure even if the client
    // did not notice.
    let server_gone = matches!(server.child.try_wait(), Ok(Some(_)));
    let (status, stdout, stderr) = match result {
        Ok(r) => r,
        Err(e) => {
            run.error = Some(e);
            return run;
        }
    };
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let json: Option<Value> = line.and_then(|l| serde_json::from_str(l).ok());
    if let Some(v) = &json {
        let num = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        run.requests = num("requests");
        run.rps = num("rps");
        run.p50_us = num("p50_us");
        run.p99_us = num("p99_us");
        run.max_us = num("max_us");
        run.wrong_replies = num("wrong_replies");
        run.conn_errors = num("conn_errors");
    }
    run.error = match &json {
        None => Some(format!(
            "kv-load printed no JSON line ({status}); stderr: {}",
            tail(&stderr)
        )),
        Some(v) if !status.success() => Some(format!(
            "kv-load failed: {} wrong replies, {} connection errors: {} {}",
            run.wrong_replies,
            run.conn_errors,
            v.get("errors").map_or(String::new(), |e| e.to_string()),
            v.get("wrong_examples")
                .map_or(String::new(), |e| e.to_string()),
        )),
        Some(_) if server_gone => Some(format!(
            "the server exited during the load; stderr: {}",
            server.stderr_tail()
        )),
        Some(_) if run.requests == 0.0 => Some("no request completed".to_string()),
        Some(_) => None,
    };
    run.ok = run.error.is_none();
    run
}

/// A command running `program`, under `taskset -c CPUS` with `--pin`.
fn command(cli: &Cli, program: &Path) -> Command {
    match &cli.pin {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn cell(runs: &[Run], conns: usize, system: &str) -> Cell {
    let mine: Vec<&Run> = runs
        .iter()
        .filter(|r| r.conns == conns && r.system == system)
        .collect();
    let ok: Vec<&&Run> = mine.iter().filter(|r| r.ok).collect();
    let col = |f: fn(&Run) -> f64| median(&mut ok.iter().map(|r| f(r)).collect::<Vec<_>>());
    let rps_median = col(|r| r.rps);
    let p50_us_median = col(|r| r.p50_us);
    let p99_us_median = col(|r| r.p99_us);
    let max_us_median = col(|r| r.max_us);
    let mut rss: Vec<f64> = ok
        .iter()
        .filter_map(|r| r.server_rss_bytes.map(|b| b as f64))
        .collect();
    Cell {
        conns,
        system: system.to_string(),
        runs_ok: ok.len(),
        runs_failed: mine.len() - ok.len(),
        rps_median,
        rps_min: ok.iter().map(|r| r.rps).fold(f64::NAN, f64::min),
        rps_max: ok.iter().map(|r| r.rps).fold(f64::NAN, f64::max),
        p50_us_median,
        p99_us_median,
        max_us_median,
        server_rss_bytes_median: (!rss.is_empty()).then(|| median(&mut rss)),
        rps_ratio_to_native: None,
        p99_ratio_to_native: None,
    }
}

fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "kv benchmark: `kv-load` (SET/GET, one request at a time per connection, {} keys) \
         for {} per measurement, median of {} repetition(s){}.\n",
        r.keys,
        r.duration,
        r.reps,
        if r.quick { " (quick mode)" } else { "" }
    );
    let _ = writeln!(
        s,
        "Machine: {} UTC; nproc={}; {}; Linux {}; load avg {} at start, {} at end; \
         server threads {}, client threads {}{}.\n",
        r.machine.date_utc,
        r.machine.nproc,
        r.machine.cpu,
        r.machine.kernel,
        r.machine.loadavg_at_start,
        r.machine.loadavg_at_end,
        r.server_threads
            .map_or("one per core".to_string(), |t| t.to_string()),
        r.client_threads
            .map_or("one per core".to_string(), |t| t.to_string()),
        r.pin
            .as_ref()
            .map_or(String::new(), |c| format!("; all pinned to CPUs {c}")),
    );
    let _ = writeln!(
        s,
        "| conns | system | req/s | req/s (min - max) | p50 | p99 | max | server peak RSS | req/s troupe/native | p99 troupe/native |"
    );
    let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in &r.cells {
        if c.runs_ok == 0 {
            let _ = writeln!(
                s,
                "| {} | {} | failed ({} runs) | | | | | | | |",
                c.conns, c.system, c.runs_failed
            );
            continue;
        }
        let ratio = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:.2}"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} - {} | {} | {} | {} | {} | {} | {} |",
            c.conns,
            c.system,
            human(c.rps_median),
            human(c.rps_min),
            human(c.rps_max),
            fmt_us(c.p50_us_median),
            fmt_us(c.p99_us_median),
            fmt_us(c.max_us_median),
            c.server_rss_bytes_median
                .map_or(String::new(), |b| format!("{:.0} MB", b / 1e6)),
            ratio(c.rps_ratio_to_native),
            ratio(c.p99_ratio_to_native),
        );
    }
    let failed: Vec<&Run> = r.runs.iter().filter(|x| !x.ok).collect();
    if !r.notes.is_empty() || !failed.is_empty() {
        let _ = writeln!(s, "\nNotes:\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
        for f in failed {
            let _ = writeln!(
                s,
                "- failed: {} conns {} rep {}: {}",
                f.system,
                f.conns,
                f.rep,
                f.error.as_deref().unwrap_or("?")
            );
        }
    }
    s
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// The soft limit on open files (`ulimit -n`) of this process, which the
/// servers and the client inherit.
fn open_files_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn probe_machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    Machine {
        date_utc: now_utc(),
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        loadavg_at_start: loadavg(),
        loadavg_at_end: String::new(),
        open_files_limit: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn formats() {
        assert_eq!(human(12_345.0), "12.3k");
        assert_eq!(fmt_us(87.4), "87 us");
        assert_eq!(fmt_us(1250.0), "1.25 ms");
    }
}
