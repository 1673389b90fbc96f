//! Running one benchmark process and parsing its one-line JSON result.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use troupe_benches::run_with_timeout;

use crate::cases::Case;

/// A parsed result line.
#[derive(Debug)]
pub struct Sample {
    pub value: f64,
    /// Every other numeric top-level field (elapsed_ms, spawn_rate, ...).
    pub extra: BTreeMap<String, f64>,
}

/// Run `cmd` (killing it after `timeout`) and parse its result line.
pub fn run(cmd: Command, case: &Case, threads: usize, timeout: Duration) -> Result<Sample, String> {
    let (status, stdout, stderr) = run_with_timeout(cmd, timeout, &mut || {})?;
    if !status.success() {
        return Err(format!("{status}; stderr: {}", tail(&stderr)));
    }
    parse(&stdout, case, threads)
}

fn tail(s: &str) -> String {
    let t: Vec<&str> = s.trim().lines().rev().take(3).collect();
    let t: Vec<&str> = t.into_iter().rev().collect();
    if t.is_empty() {
        "(empty)".into()
    } else {
        t.join(" | ")
    }
}

/// Parse the last stdout line that is a JSON object and check it against the case.
pub fn parse(stdout: &str, case: &Case, threads: usize) -> Result<Sample, String> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("no JSON line on stdout: {}", tail(stdout)))?;
    let v: Value = serde_json::from_str(line).map_err(|e| format!("bad JSON ({e}): {line}"))?;
    let obj = v.as_object().ok_or("result is not a JSON object")?;
    let workload = obj.get("workload").and_then(Value::as_str);
    if workload != Some(case.workload) {
        return Err(format!(
            "result is for workload {workload:?}, expected {:?}",
            case.workload
        ));
    }
    if let Some(t) = obj.get("threads").and_then(Value::as_u64) {
        if t as usize != threads {
            return Err(format!("result reports threads={t}, expected {threads}"));
        }
    }
    let unit = obj.get("unit").and_then(Value::as_str);
    if unit != Some(case.unit) {
        return Err(format!("unit {unit:?}, expected {:?}", case.unit));
    }
    let value = obj
        .get("value")
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
        .ok_or("missing or non-numeric \"value\"")?;
    let extra = obj
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "value" | "threads"))
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
        .collect();
    Ok(Sample { value, extra })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::cases;

    fn pingpong() -> Case {
        cases(true, Some(&["pingpong".to_string()]), u64::MAX)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn parses_last_json_line() {
        let out = "log line\n{\"workload\":\"pingpong\",\"threads\":2,\"value\":5.5,\"unit\":\"roundtrips/s\",\"rtt_ns\":3}\n";
        let s = parse(out, &pingpong(), 2).unwrap();
        assert_eq!(s.value, 5.5);
        assert_eq!(s.extra["rtt_ns"], 3.0);
        assert!(!s.extra.contains_key("threads"));
    }

    #[test]
    fn rejects_mismatches() {
        let case = pingpong();
        let line = |w: &str, t: u32, u: &str| {
            format!("{{\"workload\":\"{w}\",\"threads\":{t},\"value\":1,\"unit\":\"{u}\"}}")
        };
        assert!(parse(&line("ring", 1, "roundtrips/s"), &case, 1).is_err());
        assert!(parse(&line("pingpong", 2, "roundtrips/s"), &case, 1).is_err());
        assert!(parse(&line("pingpong", 1, "msgs/s"), &case, 1).is_err());
        assert!(parse("nothing", &case, 1).is_err());
        assert!(parse(&line("pingpong", 1, "roundtrips/s"), &case, 1).is_ok());
    }
}
