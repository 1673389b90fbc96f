//! `http-bench`: the HTTP benchmark. The same small JSON endpoint (`GET
//! /hello`) served by Go's `net/http` and by Rust's axum, each natively and
//! in a Troupe process (`benches/http/{go,rust}`), loaded at several
//! connection counts by this program's own client (a thread per keep-alive
//! connection), and reported as requests/s and p50/p99 latency, with
//! Troupe's ratio to the same program native. Writes `http.md` and
//! `http.json`. `benches/http.sh` builds everything and runs this.
//!
//! The systems alternate within each repetition, so that changes in the
//! machine's load hit them alike; compare the ratios of one run.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Serialize;
use troupe_benches::{fmt_us, human, median, now_utc};

#[derive(Parser, Debug)]
#[command(about = "HTTP benchmark: net/http and axum, native and on Troupe")]
struct Cli {
    /// CI smoke run: 1 and 50 connections, 0.5 s each, 1 repetition.
    #[arg(long)]
    quick: bool,
    /// Comma-separated connection counts (default 1,50,500).
    #[arg(long, value_delimiter = ',')]
    conns: Option<Vec<usize>>,
    /// Seconds of load per measurement, after a 0.3 s warm-up (default 3, 0.5 with --quick).
    #[arg(long)]
    secs: Option<f64>,
    /// Repetitions (default 3, 1 with --quick).
    #[arg(long)]
    reps: Option<usize>,
    /// Comma-separated systems.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "go-native,go-native-1,go-troupe,axum-native,axum-troupe"
    )]
    systems: Vec<String>,
    /// The troupe binary.
    #[arg(long, env = "TROUPE_BIN", default_value = "troupe")]
    troupe: PathBuf,
    /// The Go server, built natively.
    #[arg(long)]
    go_native: PathBuf,
    /// The Go server, built for wasip1.
    #[arg(long)]
    go_wasm: PathBuf,
    /// The axum server, built natively.
    #[arg(long)]
    axum_native: PathBuf,
    /// The axum server, built for wasm32-wasip1.
    #[arg(long)]
    axum_wasm: PathBuf,
    /// Output directory (default: `results/` in the benches folder).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Serialize, Debug, Clone)]
struct Run {
    system: String,
    conns: usize,
    rep: usize,
    error: Option<String>,
    requests: u64,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
}

#[derive(Serialize, Debug)]
struct Cell {
    conns: usize,
    system: String,
    runs_ok: usize,
    rps_median: f64,
    p50_us_median: f64,
    p99_us_median: f64,
    /// Troupe's req/s over the same program's native req/s.
    rps_ratio_to_native: Option<f64>,
}

fn command(cli: &Cli, system: &str) -> Result<Command> {
    let troupe = |wasm: &PathBuf| {
        let mut c = Command::new(&cli.troupe);
        c.args(["run", "--allow-net=127.0.0.1", "--max-memory=512M"])
            .arg(wasm);
        c
    };
    Ok(match system {
        "go-native" => Command::new(&cli.go_native),
        // Go on one thread, as a Troupe process runs (a Wasm instance has
        // one), where native Go runs goroutines on every core.
        "go-native-1" => {
            let mut c = Command::new(&cli.go_native);
            c.env("GOMAXPROCS", "1");
            c
        }
        "go-troupe" => troupe(&cli.go_wasm),
        "axum-native" => Command::new(&cli.axum_native),
        "axum-troupe" => troupe(&cli.axum_wasm),
        other => bail!("unknown system {other:?}"),
    })
}

/// Starts a server; its child and the address it listens on.
fn start(cli: &Cli, system: &str) -> Result<(Child, String)> {
    let mut child = command(cli, system)?
        .arg("127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {system}"))?;
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("http: listening on ") {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => Ok((child, addr)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{system} printed no address")
        }
    }
}

const REQUEST: &[u8] = b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n";

/// One request and its response on a keep-alive connection.
fn request(w: &mut TcpStream, r: &mut BufReader<TcpStream>, line: &mut String) -> Result<()> {
    w.write_all(REQUEST)?;
    line.clear();
    r.read_line(line)?;
    if !line.starts_with("HTTP/1.1 200") {
        bail!("status line {line:?}");
    }
    let mut length = None;
    loop {
        line.clear();
        if r.read_line(line)? == 0 {
            bail!("closed in the headers");
        }
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = [0u8; 256];
    let n = length.context("no Content-Length")?;
    r.read_exact(&mut body[..n.min(256)])?;
    Ok(())
}

/// `conns` clients, each a thread with one connection, for `secs` after a
/// warm-up: every latency, in µs.
fn load(addr: &str, conns: usize, secs: f64) -> Result<Vec<u32>> {
    let warm = Instant::now() + Duration::from_millis(300);
    let end = warm + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let addr = addr.to_string();
            std::thread::spawn(move || -> Result<Vec<u32>> {
                let s = TcpStream::connect(&addr)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(30)))?;
                let mut w = s.try_clone()?;
                let mut r = BufReader::new(s);
                let mut line = String::new();
                let mut lat = Vec::new();
                loop {
                    let t = Instant::now();
                    if t >= end {
                        return Ok(lat);
                    }
                    request(&mut w, &mut r, &mut line)?;
                    if t >= warm {
                        lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(
            t.join()
                .map_err(|_| anyhow::anyhow!("a client panicked"))??,
        );
    }
    Ok(all)
}

fn measure(cli: &Cli, system: &str, conns: usize, rep: usize, secs: f64) -> Run {
    let mut run = Run {
        system: system.into(),
        conns,
        rep,
        error: None,
        requests: 0,
        rps: 0.0,
        p50_us: 0.0,
        p99_us: 0.0,
        max_us: 0.0,
    };
    let result = start(cli, system).and_then(|(mut child, addr)| {
        let lat = load(&addr, conns, secs);
        let _ = child.kill();
        let _ = child.wait();
        lat
    });
    match result {
        Ok(mut lat) if !lat.is_empty() => {
            lat.sort_unstable();
            let at = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize] as f64;
            run.requests = lat.len() as u64;
            run.rps = lat.len() as f64 / secs;
            run.p50_us = at(0.50);
            run.p99_us = at(0.99);
            run.max_us = *lat.last().unwrap() as f64;
        }
        Ok(_) => run.error = Some("no request completed".into()),
        Err(e) => run.error = Some(format!("{e:#}")),
    }
    run
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let started = Instant::now();
    let conns = cli.conns.clone().unwrap_or_else(|| {
        if cli.quick {
            vec![1, 50]
        } else {
            vec![1, 50, 500]
        }
    });
    let secs = cli.secs.unwrap_or(if cli.quick { 0.5 } else { 3.0 });
    let reps = cli.reps.unwrap_or(if cli.quick { 1 } else { 3 }).max(1);
    let mut runs = Vec::new();
    for rep in 1..=reps {
        for &n in &conns {
            let mut order: Vec<&String> = cli.systems.iter().collect();
            if rep % 2 == 0 {
                order.reverse();
            }
            for system in order {
                let run = measure(&cli, system, n, rep, secs);
                match &run.error {
                    None => eprintln!(
                        "  rep {rep} conns {n:>4} {system:<12} {:>9} req/s  p50 {:>9}  p99 {:>9}",
                        human(run.rps),
                        fmt_us(run.p50_us),
                        fmt_us(run.p99_us)
                    ),
                    Some(e) => eprintln!("  rep {rep} conns {n:>4} {system:<12} FAILED: {e}"),
                }
                runs.push(run);
            }
        }
    }
    let mut cells = Vec::new();
    for &n in &conns {
        for system in &cli.systems {
            let ok: Vec<&Run> = runs
                .iter()
                .filter(|r| r.conns == n && &r.system == system && r.error.is_none())
                .collect();
            cells.push(Cell {
                conns: n,
                system: system.clone(),
                runs_ok: ok.len(),
                rps_median: median(&mut ok.iter().map(|r| r.rps).collect::<Vec<_>>()),
                p50_us_median: median(&mut ok.iter().map(|r| r.p50_us).collect::<Vec<_>>()),
                p99_us_median: median(&mut ok.iter().map(|r| r.p99_us).collect::<Vec<_>>()),
                rps_ratio_to_native: None,
            });
        }
    }
    for i in 0..cells.len() {
        if let Some(lang) = cells[i].system.strip_suffix("-troupe") {
            let native = format!("{lang}-native");
            let base = cells
                .iter()
                .find(|c| c.conns == cells[i].conns && c.system == native && c.runs_ok > 0)
                .map(|c| c.rps_median);
            if let (Some(base), true) = (base, cells[i].runs_ok > 0) {
                cells[i].rps_ratio_to_native = Some(cells[i].rps_median / base);
            }
        }
    }

    let mut md = String::new();
    writeln!(md, "# HTTP benchmark\n")?;
    writeln!(
        md,
        "{} UTC, {} core(s), `GET /hello` (a small JSON body) on keep-alive connections, \
         {secs} s per run after a 0.3 s warm-up, median of {reps} run(s); the client is a \
         thread per connection on the same machine. `-troupe`: the same program in a Troupe \
         process (`troupe run`); ratio: its req/s over the same program native. \
         `go-native-1`: the native Go server with `GOMAXPROCS=1` (one thread, as a Troupe \
         process has; the axum server is current-thread natively too).\n",
        now_utc(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )?;
    writeln!(
        md,
        "| connections | system | req/s | p50 | p99 | ratio to native |"
    )?;
    writeln!(md, "|---:|---|---:|---:|---:|---:|")?;
    for c in &cells {
        if c.runs_ok == 0 {
            writeln!(md, "| {} | {} | failed | | | |", c.conns, c.system)?;
            continue;
        }
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            c.conns,
            c.system,
            human(c.rps_median),
            fmt_us(c.p50_us_median),
            fmt_us(c.p99_us_median),
            c.rps_ratio_to_native
                .map_or(String::new(), |r| format!("{r:.2}"))
        )?;
    }
    writeln!(md, "\n({:.0} s in all)", started.elapsed().as_secs_f64())?;
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| troupe_benches::benches_dir().join("results"));
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("http.md"), &md)?;
    std::fs::write(
        out.join("http.json"),
        serde_json::to_string_pretty(&serde_json::json!({ "cells": cells, "runs": runs }))?,
    )?;
    print!("{md}");
    if runs.iter().any(|r| r.error.is_some()) {
        bail!("some runs failed");
    }
    Ok(())
}
