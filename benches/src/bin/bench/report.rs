//! Aggregation (min / median), ratios against tokio, Markdown and JSON output.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
pub use troupe_benches::human;
use troupe_benches::now_utc;

use crate::cases::{series, Better, Case};
use crate::exec::Sample;
use crate::systems::BASELINE;

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    /// Not run: the case has no meaning for this system (`note` says why).
    #[serde(rename = "n/a")]
    NotApplicable,
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
    /// The tokio case the ratio is against when it is not this case (tokio
    /// has no hibernated idle: its plain idle is the reference).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_against: Option<String>,
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
            ratio_against: None,
            extra,
            details: case.details,
        }
    }

    /// A cell that was not run because the case does not apply to `system`.
    pub fn not_applicable(case: &Case, threads: usize, system: &'static str, why: &str) -> Row {
        Row {
            status: Status::NotApplicable,
            note: Some(why.to_string()),
            ..Row::new(case, threads, system, &[], None)
        }
    }
}

/// The suffix of a hibernated idle case's label, whose tokio reference is
/// the plain idle case of the same `n` (a tokio task has no stack to give up).
const HIBERNATED: &str = " hibernate=1";

/// Fill `ratio_vs_tokio` from the tokio row of the same case and thread count
/// (for hibernated idle, of the plain idle case: see `ratio_against`).
pub fn compute_ratios(rows: &mut [Row]) {
    let base: BTreeMap<(String, usize), f64> = rows
        .iter()
        .filter(|r| r.system == BASELINE && r.status == Status::Ok)
        .filter_map(|r| Some(((r.case.clone(), r.threads), r.median?)))
        .collect();
    for r in rows.iter_mut() {
        let plain = r.case.strip_suffix(HIBERNATED).map(str::to_owned);
        let (Some(m), Some(&b)) = (r.median, base.get(&(r.case.clone(), r.threads))) else {
            let (Some(m), Some(plain)) = (r.median, plain) else {
                continue;
            };
            if r.system == BASELINE {
                continue;
            }
            if let Some(&b) = base.get(&(plain.clone(), r.threads)) {
                r.ratio_vs_tokio = (b > 0.0).then(|| m / b);
                r.ratio_against = Some(plain);
            }
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
            let num = |v: Option<f64>| match r.status {
                Status::NotApplicable => "n/a".to_string(),
                _ => v.map_or("-".to_string(), human),
            };
            let ratio = match (r.status, r.ratio_vs_tokio) {
                (Status::Failed, _) => "failed".to_string(),
                (Status::NotApplicable, _) => "n/a".to_string(),
                (_, Some(x)) if r.ratio_against.is_some() => format!("{x:.2}†"),
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
        let floor = self.against_floor();
        if !floor.is_empty() {
            let _ = write!(
                s,
                "\nTroupe's cost against the wasmtime floor (medians, PSS for memory; >1 = Troupe costs more): {}  \n",
                floor.join("; ")
            );
        }
        let capacity = self.idle_capacity();
        if !capacity.is_empty() {
            s.push('\n');
        }
        for (series, fit) in capacity {
            let _ = writeln!(
                s,
                "Largest idle N that fit ({series}): {}  ",
                fit.join("; ")
            );
        }
        let mut notes: Vec<String> = self.notes.clone();
        if self.rows.iter().any(|r| r.ratio_against.is_some()) {
            notes.push(
                "†: against tokio's plain `idle` of the same n (tokio has no hibernated \
                 variant: a task waiting on a channel is already as small as it gets)"
                    .into(),
            );
        }
        // One note per (case, system) that does not apply, not per thread count.
        let mut na_seen = Vec::new();
        for r in self
            .rows
            .iter()
            .filter(|r| r.status == Status::NotApplicable)
        {
            if !na_seen.contains(&(&r.case, r.system)) {
                na_seen.push((&r.case, r.system));
                notes.push(format!(
                    "{} / {}: n/a: {}",
                    r.case,
                    r.system,
                    r.note.as_deref().unwrap_or("")
                ));
            }
        }
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

    /// For each case and thread count with both a Troupe and a wasmtime
    /// floor median: "case NT: ratio", Troupe's cost over the floor's. For
    /// memory, PSS where both report it: RSS counts the module image pages
    /// that all Troupe processes share once per process.
    fn against_floor(&self) -> Vec<String> {
        let median = |r: &Row, system: &str| {
            let f = self
                .rows
                .iter()
                .find(|f| f.system == system && f.case == r.case && f.threads == r.threads)?;
            f.extra
                .get("pss_bytes_per_proc")
                .copied()
                .or(f.median)
                .filter(|&m| m > 0.0)
        };
        self.rows
            .iter()
            .filter(|r| r.system == "troupe")
            .filter_map(|r| {
                let (troupe, floor) = (median(r, "troupe")?, median(r, "wasmtime-floor")?);
                let cost = match r.better {
                    Better::Lower => troupe / floor,
                    Better::Higher => floor / troupe,
                };
                Some(format!("{} {}T: {cost:.2}×", r.case, r.threads))
            })
            .collect()
    }

    /// Per idle series ("plain", or its parameters other than `n`, e.g.
    /// "hibernate=1"), then per system and thread count, the largest idle N
    /// that succeeded. Plain idle first.
    fn idle_capacity(&self) -> Vec<(String, Vec<String>)> {
        let mut best: BTreeMap<(String, usize, &str), u64> = BTreeMap::new();
        for r in self
            .rows
            .iter()
            .filter(|r| r.workload == "idle" && r.status == Status::Ok)
        {
            let series = series(r.workload, r.params.iter().map(|(k, v)| (*k, *v)));
            let n = r.params.get("n").copied().unwrap_or(0);
            let e = best.entry((series, r.threads, r.system)).or_default();
            *e = (*e).max(n);
        }
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for ((series, t, sys), n) in best {
            let name = match series.strip_prefix("idle").map(str::trim) {
                Some("") | None => "plain".to_string(),
                Some(rest) => rest.to_string(),
            };
            let fit = format!("{sys} {t}T: {}", human(n as f64));
            match out.iter_mut().find(|(s, _)| *s == name) {
                Some((_, v)) => v.push(fit),
                None => out.push((name, vec![fit])),
            }
        }
        out.sort_by_key(|(s, _)| s != "plain");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rows: Vec<Row>) -> Report {
        Report {
            machine: Machine::probe(None),
            quick: true,
            reps: 1,
            threads: vec![1],
            wall_secs: 0.0,
            notes: vec![],
            rows,
        }
    }

    fn sample(value: f64) -> Sample {
        Sample {
            value,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn troupe_is_compared_with_the_wasmtime_floor_in_cost_terms() {
        let all = crate::cases::cases(false, None, u64::MAX).unwrap();
        let spawn = all.iter().find(|c| c.workload == "spawn").unwrap();
        let ping = all.iter().find(|c| c.workload == "pingpong").unwrap();
        let idle = all.iter().find(|c| c.workload == "idle").unwrap();
        let with_pss = |rss: f64, pss: f64| Sample {
            value: rss,
            extra: BTreeMap::from([("pss_bytes_per_proc".to_string(), pss)]),
        };
        let rows = vec![
            Row::new(idle, 1, "troupe", &[with_pss(57600.0, 36600.0)], None),
            Row::new(
                idle,
                1,
                "wasmtime-floor",
                &[with_pss(12200.0, 12200.0)],
                None,
            ),
            Row::new(spawn, 1, "troupe", &[sample(9.0)], None),
            Row::new(spawn, 1, "wasmtime-floor", &[sample(4.5)], None),
            Row::new(ping, 1, "troupe", &[sample(800.0)], None),
            Row::new(ping, 1, "wasmtime-floor", &[sample(1200.0)], None),
            Row::new(ping, 2, "troupe", &[sample(700.0)], None),
        ];
        let md = report(rows).markdown();
        assert!(
            md.contains(&format!(
                "floor (medians, PSS for memory; >1 = Troupe costs more): {} 1T: 3.00×; {} 1T: 2.00×; {} 1T: 1.50×  \n",
                idle.label(),
                spawn.label(),
                ping.label()
            )),
            "{md}"
        );
    }

    #[test]
    fn idle_variants_are_reported_apart() {
        let idle = crate::cases::cases(false, Some(&["idle".to_string()]), u64::MAX).unwrap();
        let (plain_100k, plain_1m, hib_1m) = (&idle[1], &idle[2], &idle[5]);
        let rows = vec![
            Row::new(plain_100k, 1, "troupe", &[sample(1.0)], None),
            Row::new(plain_1m, 1, "troupe", &[], Some("oom".into())),
            Row::not_applicable(hib_1m, 1, "tokio", "no stack"),
            Row::new(hib_1m, 1, "troupe", &[sample(2.0)], None),
        ];
        let md = report(rows).markdown();
        assert!(md.contains("Largest idle N that fit (plain): troupe 1T: 100k  \n"));
        assert!(md.contains("Largest idle N that fit (hibernate=1): troupe 1T: 1.00M  \n"));
        assert!(md.contains(
            "| idle n=1000000 hibernate=1 | 1 | tokio | n/a | n/a | bytes/proc | n/a |  |"
        ));
        assert!(md.contains("| idle n=1000000 hibernate=1 | 1 | troupe | 2.00 |"));
        assert!(md.contains("- idle n=1000000 hibernate=1 / tokio: n/a: no stack\n"));
    }

    #[test]
    fn hibernated_idle_is_compared_with_tokios_plain_idle() {
        let idle = crate::cases::cases(false, Some(&["idle".to_string()]), u64::MAX).unwrap();
        let (plain, hib) = (&idle[0], &idle[3]);
        assert_eq!(hib.label(), "idle n=10000 hibernate=1");
        let mut rows = vec![
            Row::new(plain, 1, "tokio", &[sample(1000.0)], None),
            Row::new(plain, 1, "troupe", &[sample(40000.0)], None),
            Row::not_applicable(hib, 1, "tokio", "no stack"),
            Row::new(hib, 1, "troupe", &[sample(2500.0)], None),
        ];
        compute_ratios(&mut rows);
        assert_eq!(rows[1].ratio_vs_tokio, Some(40.0));
        assert_eq!(rows[1].ratio_against, None);
        assert_eq!(rows[2].ratio_vs_tokio, None, "tokio's own n/a row");
        assert_eq!(rows[3].ratio_vs_tokio, Some(2.5));
        assert_eq!(rows[3].ratio_against.as_deref(), Some("idle n=10000"));
        let md = report(rows).markdown();
        assert!(
            md.contains(
                "| idle n=10000 hibernate=1 | 1 | troupe | 2500 | 2500 | bytes/proc | 2.50† |"
            ),
            "{md}"
        );
        assert!(
            md.contains("- †: against tokio's plain `idle` of the same n"),
            "{md}"
        );
    }

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
