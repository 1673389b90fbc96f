//! Helpers shared by the benchmark runners: `bench` (the workloads) and
//! `kv-bench` (the network benchmark); and, in [`baseline`], what the native
//! baselines share (the tokio baseline here, and the wasmtime floor).

pub mod baseline;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `benches/` folder of the checkout being run: `$TROUPE_BENCHES_DIR`
/// (set by run.sh and kv.sh), then `$CARGO_MANIFEST_DIR` (set by `cargo run`),
/// and only then the folder this binary was compiled in. A target dir shared
/// by two checkouts can hand one checkout a binary built in the other, so the
/// compile-time path is a last resort (it once sent a run's results and its
/// Erlang source to a deleted CI clone).
pub fn benches_dir() -> PathBuf {
    std::env::var_os("TROUPE_BENCHES_DIR")
        .or_else(|| std::env::var_os("CARGO_MANIFEST_DIR"))
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// Current UTC time as `YYYY-MM-DD HH:MM` (no date crate needed).
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Runs `cmd` to completion (killing it after `timeout`), calling `on_tick`
/// every 10 ms meanwhile: its status, stdout and stderr.
pub fn run_with_timeout(
    mut cmd: Command,
    timeout: Duration,
    on_tick: &mut dyn FnMut(),
) -> Result<(std::process::ExitStatus, String, String), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {}s", timeout.as_secs()));
            }
            Ok(None) => {
                on_tick();
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("wait: {e}")),
        }
    };
    Ok((
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    ))
}

/// Compact human formatting: 3 significant digits with k/M/G suffixes
/// (`12.3k`, `3.59M`); `-` for NaN (a value that was not measured).
pub fn human(x: f64) -> String {
    if x.is_nan() {
        return "-".to_string();
    }
    let (v, suffix) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, "G"),
        a if a >= 1e6 => (x / 1e6, "M"),
        a if a >= 1e4 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    let digits = match v.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        a if a >= 1.0 => 2,
        _ => 3,
    };
    format!("{v:.digits$}{suffix}")
}

/// The median (the mean of the middle two for an even count); NaN for none.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `87 us`, `1.25 ms`; `-` for NaN (not measured).
pub fn fmt_us(us: f64) -> String {
    if us.is_nan() {
        "-".to_string()
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} us")
    }
}
