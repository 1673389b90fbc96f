//! The workload table: what is run, with which parameters, in full and quick mode.

use serde::Serialize;

/// Whether a larger or a smaller number is better for a workload's primary value.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

type Params = &'static [(&'static str, u64)];

pub struct WorkloadSpec {
    pub name: &'static str,
    pub better: Better,
    /// Unit every system must report for this workload.
    pub unit: &'static str,
    /// Extra numeric fields shown (as medians) in the Markdown table.
    pub details: &'static [&'static str],
    /// One entry per case (e.g. one per payload size), full-size runs.
    pub full: &'static [Params],
    /// Small sizes for `--quick` (the CI smoke run).
    pub quick: &'static [Params],
}

pub const WORKLOADS: &[WorkloadSpec] = &[
    WorkloadSpec {
        name: "spawn",
        better: Better::Lower,
        unit: "us/spawn",
        details: &["spawn_call_us", "total_ms"],
        full: &[&[("n", 100_000)]],
        quick: &[&[("n", 20_000)]],
    },
    // `hibernate=1`: each process waits hibernated (Troupe:
    // `troupe::hibernate`, Erlang: `erlang:hibernate/3`) instead of in a
    // plain receive. tokio has no such thing (n/a).
    WorkloadSpec {
        name: "idle",
        better: Better::Lower,
        unit: "bytes/proc",
        details: &[
            "pss_bytes_per_proc",
            "spawn_rate",
            "erlang_memory_bytes_per_proc",
        ],
        full: &[
            &[("n", 10_000)],
            &[("n", 100_000)],
            &[("n", 1_000_000)],
            &[("n", 10_000), ("hibernate", 1)],
            &[("n", 100_000), ("hibernate", 1)],
            &[("n", 1_000_000), ("hibernate", 1)],
        ],
        quick: &[&[("n", 10_000)], &[("n", 10_000), ("hibernate", 1)]],
    },
    WorkloadSpec {
        name: "pingpong",
        better: Better::Higher,
        unit: "roundtrips/s",
        details: &["rtt_ns"],
        full: &[&[("rounds", 1_000_000)]],
        quick: &[&[("rounds", 100_000)]],
    },
    WorkloadSpec {
        name: "ring",
        better: Better::Higher,
        unit: "msgs/s",
        details: &["setup_ms"],
        full: &[&[("procs", 10_000), ("laps", 100)]],
        quick: &[&[("procs", 1_000), ("laps", 20)]],
    },
    WorkloadSpec {
        name: "fanin",
        better: Better::Higher,
        unit: "msgs/s",
        details: &[],
        full: &[&[("producers", 1_000), ("msgs", 1_000)]],
        quick: &[&[("producers", 100), ("msgs", 500)]],
    },
    WorkloadSpec {
        name: "payload",
        better: Better::Higher,
        unit: "bytes/s",
        details: &["roundtrips_per_s"],
        full: &[
            &[("size", 8), ("rounds", 100_000)],
            &[("size", 1024), ("rounds", 100_000)],
            &[("size", 65_536), ("rounds", 20_000)],
        ],
        quick: &[
            &[("size", 8), ("rounds", 20_000)],
            &[("size", 1024), ("rounds", 20_000)],
            &[("size", 65_536), ("rounds", 5_000)],
        ],
    },
    // A compute loop timed alone (the value: tokio runs it natively, so the
    // ratio is the cost of Wasm + epoch checks), then while 2*threads-1 other
    // processes spin on it (`shared_ms`, `slowdown`: about 2 if time-slicing
    // is fair). tokio cannot preempt, so it has no shared run.
    WorkloadSpec {
        name: "preemption",
        better: Better::Lower,
        unit: "ms",
        details: &["shared_ms", "slowdown"],
        full: &[&[("iters", 200_000_000)]],
        quick: &[&[("iters", 20_000_000)]],
    },
    // A load- and store-heavy loop (`kernels.rs`), timed in one process:
    // Troupe runs it with `--max-memory` = `reserve_mib`, so with 64 MiB
    // (the default: explicit bounds checks on every access) and with 4 GiB
    // (checks elided): the two Troupe rows differ only by the checks. Not in
    // Erlang (no linear memory).
    WorkloadSpec {
        name: "bounds",
        better: Better::Lower,
        unit: "ms",
        details: &["checksum"],
        full: &[
            &[("reserve_mib", 64), ("passes", 5_000)],
            &[("reserve_mib", 4096), ("passes", 5_000)],
        ],
        quick: &[
            &[("reserve_mib", 64), ("passes", 300)],
            &[("reserve_mib", 4096), ("passes", 300)],
        ],
    },
];

/// One concrete benchmark: a workload with fixed parameters.
#[derive(Clone, Debug)]
pub struct Case {
    pub workload: &'static str,
    pub params: Vec<(&'static str, u64)>,
    pub better: Better,
    pub unit: &'static str,
    pub details: &'static [&'static str],
}

impl Case {
    /// e.g. `payload size=1024 rounds=100000`
    pub fn label(&self) -> String {
        let mut s = self.workload.to_string();
        for (k, v) in &self.params {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }

    /// Parameters as command-line arguments: `key=value` each.
    pub fn args(&self) -> Vec<String> {
        self.params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    pub fn param(&self, key: &str) -> Option<u64> {
        self.params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// Whether this is the hibernated variant of `idle` (`hibernate=1`).
    pub fn hibernated(&self) -> bool {
        self.workload == "idle" && self.param("hibernate") == Some(1)
    }

    /// The series this case belongs to: its label without `n`, so the cases
    /// that differ only by their number of processes share it (`idle` and
    /// `idle hibernate=1` are two series).
    pub fn series(&self) -> String {
        series(self.workload, self.params.iter().copied())
    }
}

/// A case's label without its `n` parameter: see [`Case::series`].
pub fn series<'a>(workload: &str, params: impl IntoIterator<Item = (&'a str, u64)>) -> String {
    let mut s = workload.to_string();
    for (k, v) in params.into_iter().filter(|(k, _)| *k != "n") {
        s.push_str(&format!(" {k}={v}"));
    }
    s
}

/// Expand the table into cases, filtered by workload names and the idle limit
/// (which applies to every idle variant).
pub fn cases(quick: bool, only: Option<&[String]>, idle_max: u64) -> anyhow::Result<Vec<Case>> {
    if let Some(names) = only {
        for n in names {
            if !WORKLOADS.iter().any(|w| w.name == n) {
                let known: Vec<_> = WORKLOADS.iter().map(|w| w.name).collect();
                anyhow::bail!("unknown workload {n:?} (known: {})", known.join(", "));
            }
        }
    }
    let mut out = Vec::new();
    for w in WORKLOADS {
        if only.is_some_and(|names| !names.iter().any(|n| n == w.name)) {
            continue;
        }
        for params in if quick { w.quick } else { w.full } {
            let case = Case {
                workload: w.name,
                params: params.to_vec(),
                better: w.better,
                unit: w.unit,
                details: w.details,
            };
            if w.name == "idle" && case.param("n").is_some_and(|n| n > idle_max) {
                continue;
            }
            out.push(case);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(quick: bool, idle_max: u64) -> Vec<String> {
        cases(quick, Some(&["idle".to_string()]), idle_max)
            .unwrap()
            .iter()
            .map(Case::label)
            .collect()
    }

    #[test]
    fn idle_variants_and_limit() {
        assert_eq!(
            idle(true, u64::MAX),
            ["idle n=10000", "idle n=10000 hibernate=1"]
        );
        assert_eq!(
            idle(false, 100_000),
            [
                "idle n=10000",
                "idle n=100000",
                "idle n=10000 hibernate=1",
                "idle n=100000 hibernate=1"
            ]
        );
        let all = cases(false, Some(&["idle".to_string()]), u64::MAX).unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all[2].series(), "idle");
        assert!(!all[2].hibernated());
        assert_eq!(all[5].series(), "idle hibernate=1");
        assert!(all[5].hibernated());
        assert_eq!(all[5].param("n"), Some(1_000_000));
    }
}
