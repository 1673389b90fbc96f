//! Aggregation (min / median), ratios against tokio, Markdown and JSON output.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
pub use troupe_benches::human;
use troupe_benches::now_utc;

use crate::cases::{Better, Case};
use crate::exec::Sample;
use crate::systems::BASELINE;

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
}

/// One (case, threads, system) cell.
#[derive(Serialize, Debug)]
pub struct Row {
    pub workload: &'static str,
    pub case: String,
    pub params: BTreeMap<&'static str, u64>,
    pub threads: usize,
    pub system: &'static str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub unit: &'static str,
    pub better: Better,
    pub values: Vec<f64>,
    pub min: Option<f64>,
    pub median: Option<f64>,
    pub max: Option<f64>,
    /// Cost relative to tokio's median: >1 means worse than tokio.
    pub ratio_vs_tokio: Option<f64>,
    /// Median of each extra numeric field over the runs.
    pub extra: BTreeMap<String, f64>,
    #[serde(skip)]
    pub details: &'static [&'static str],
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

impl Row {
    pub fn new(
        case: &Case,
        threads: usize,
        system: &'static str,
        samples: &[Sample],
        error: Option<String>,
    ) -> Row {
        let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
        let mut keys: Vec<&String> = samples.iter().flat_map(|s| s.extra.keys()).collect();
        keys.sort();
        keys.dedup();
        let extra = keys
            .into_iter()
            .filter_map(|k| {
                let vs: Vec<f64> = samples
                    .iter()
                    .filter_map(|s| s.extra.get(k).copied())
                    .collect();
                Some((k.clone(), median(&vs)?))
            })
            .collect();
        Row {
            workload: case.workload,
            case: case.label(),
            params: case.params.iter().copied().collect(),
            threads,
            system,
            status: if error.is_none() {
                Status::Ok
            } else {
                Status::Failed
            },
            note: error,
            unit: case.unit,
            better: case.better,
            min: values.iter().copied().min_by(f64::total_cmp),
            max: values.iter().copied().max_by(f64::total_cmp),
            median: median(&values),
            values,
            ratio_vs_tokio: None,
            extra,
            details: case.details,
        }
    }
}

/// Fill `ratio_vs_tokio` from the tokio row of the same case and thread count.
pub fn compute_ratios(rows: &mut [Row]) {
    let base: BTreeMap<(String, usize), f64> = rows
        .iter()
        .filter(|r| r.system == BASELINE && r.status == Status::Ok)
        .filter_map(|r| Some(((r.case.clone(), r.threads), r.median?)))
        .collect();
    for r in rows.iter_mut() {
        let (Some(m), Some(&b)) = (r.median, base.get(&(r.case.clone(), r.threads))) else {
            continue;
        };
        r.ratio_vs_tokio = match r.better {
            Better::Lower if b > 0.0 => Some(m / b),
            Better::Higher if m > 0.0 => Some(b / m),
            _ => None,
        };
    }
}

#[derive(Serialize)]
pub struct Machine {
    pub date_utc: String,
    pub nproc: usize,
    pub cpu: String,
    pub mem_total_gib: f64,
    pub kernel: String,
    pub loadavg_at_start: String,
    pub otp_release: Option<String>,
}

impl Machine {
    pub fn probe(otp_release: Option<String>) -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let mem_kb: f64 = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            date_utc: now_utc(),
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            mem_total_gib: (mem_kb / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            loadavg_at_start: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            otp_release,
        }
    }

    pub fn line(&self) -> String {
        format!(
            "{} UTC; nproc={}; {}; {} GiB RAM; Linux {}; load avg at start {}; Erlang/OTP {}",
            self.date_utc,
            self.nproc,
            self.cpu,
            self.mem_total_gib,
            self.kernel,
            self.loadavg_at_start,
            self.otp_release.as_deref().unwrap_or("n/a"),
        )
    }
}

#[derive(Serialize)]
pub struct Report {
    pub machine: Machine,
    pub quick: bool,
    pub reps: usize,
    pub threads: Vec<usize>,
    pub wall_secs: f64,
    /// Systems or cases that were skipped, with the reason.
    pub notes: Vec<String>,
    pub rows: Vec<Row>,
}

impl Report {
    /// The Markdown table plus machine line, idle capacity and notes.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Machine: {}  ", self.machine.line());
        let _ = writeln!(
            s,
            "Mode: {}, {} run(s) per cell, total wall time {:.0} s. Ratio = cost relative to tokio's median (>1 = worse than tokio).\n",
            if self.quick { "quick" } else { "full" },
            self.reps,
            self.wall_secs
        );
        s.push_str("| workload | threads | system | min | median | unit | ratio vs tokio | details (median) |\n");
        s.push_str("|---|---:|---|---:|---:|---|---:|---|\n");
        for r in &self.rows {
            let num = |v: Option<f64>| v.map_or("-".to_string(), human);
            let ratio = match (r.status, r.ratio_vs_tokio) {
                (Status::Failed, _) => "failed".to_string(),
                (_, Some(x)) => format!("{x:.2}"),
                _ => "-".to_string(),
            };
            let details: Vec<String> = r
                .details
                .iter()
                .filter_map(|k| Some(format!("{k}={}", human(*r.extra.get(*k)?))))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.case,
                r.threads,
                r.system,
                num(r.min),
                num(r.median),
                r.unit,
                ratio,
                details.join(", ")
            );
        }
        let capacity = self.idle_capacity();
        if !capacity.is_empty() {
            s.push_str("\nLargest idle N that fit: ");
            s.push_str(&capacity.join("; "));
            s.push('\n');
        }
        let mut notes: Vec<String> = self.notes.clone();
        notes.extend(
            self.rows
                .iter()
                .filter(|r| r.status == Status::Failed)
                .map(|r| {
                    format!(
                        "{} / {} threads / {}: failed: {}",
                        r.case,
                        r.threads,
                        r.system,
                        r.note.as_deref().unwrap_or("")
                    )
                }),
        );
        if !notes.is_empty() {
            s.push_str("\nNotes:\n");
            for n in notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }

    /// Per system and thread count, the largest idle N that succeeded.
    fn idle_capacity(&self) -> Vec<String> {
        let mut best: BTreeMap<(usize, &str), u64> = BTreeMap::new();
        for r in self
            .rows
            .iter()
            .filter(|r| r.workload == "idle" && r.status == Status::Ok)
        {
            let n = r.params.get("n").copied().unwrap_or(0);
            let e = best.entry((r.threads, r.system)).or_default();
            *e = (*e).max(n);
        }
        best.into_iter()
            .map(|((t, sys), n)| format!("{sys} {t}T: {}", human(n as f64)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn human_format() {
        assert_eq!(human(3_588_802.8), "3.59M");
        assert_eq!(human(0.5437), "0.544");
        assert_eq!(human(1296.0), "1296");
        assert_eq!(human(35_395_629_509.0), "35.4G");
    }

    #[test]
    fn date_is_plausible() {
        let d = now_utc();
        assert_eq!(d.len(), 16);
        assert!(d.starts_with("20"));
    }
}
