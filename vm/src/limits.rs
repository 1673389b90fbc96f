//! Kernel limits that bound how many processes a VM can hold.
//!
//! Every live process holds several memory mappings (its linear memory slot,
//! its copy-on-write image, its table, its stack and their guard pages), so
//! the kernel's `vm.max_map_count` (65,530 by default) caps a VM near ten
//! thousand processes. The VM reads the limit, warns before it is reached and
//! says how to raise it.

/// About how many memory mappings one live process costs (measured with
/// `benches/`; see the README).
pub const MAPS_PER_PROCESS: u64 = 6;

const MAX_MAP_COUNT: &str = "/proc/sys/vm/max_map_count";

/// The kernel's `vm.max_map_count`, if it can be read.
pub fn max_map_count() -> Option<u64> {
    std::fs::read_to_string(MAX_MAP_COUNT)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What to tell a user whose VM nears the kernel's mapping limit.
pub fn map_count_advice(live: u32) -> String {
    match max_map_count() {
        Some(max) => format!(
            "{live} processes are alive and the kernel's vm.max_map_count is {max}, enough for \
             about {} processes ({MAPS_PER_PROCESS} mappings each); raise it as root with \
             `sysctl -w vm.max_map_count={}`",
            max / MAPS_PER_PROCESS,
            (u64::from(live) * 2).max(1_000_000) * MAPS_PER_PROCESS
        ),
        None => format!("{live} processes are alive; the kernel limits memory mappings"),
    }
}

/// Raises the soft limit on open files to the hard limit: processes with
/// preopened directories each hold a descriptor per directory.
pub fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    // `None` is no limit (RLIM_INFINITY).
    let below_hard = match (lim.current, lim.maximum) {
        (Some(current), Some(maximum)) => current < maximum,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if below_hard {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: lim.maximum,
                maximum: lim.maximum,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_names_the_sysctl_and_a_sufficient_value() {
        let text = map_count_advice(10_000);
        if max_map_count().is_some() {
            assert!(text.contains("sysctl -w vm.max_map_count="), "{text}");
            let value: u64 = text
                .rsplit('=')
                .next()
                .unwrap()
                .trim_end_matches('`')
                .parse()
                .unwrap();
            assert!(value >= 10_000 * MAPS_PER_PROCESS);
        }
    }
}
