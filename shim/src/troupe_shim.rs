//! What the shim does with a container, apart from runwasi's plumbing: turn
//! the OCI process (args, env) and the container's mounts into a VM
//! configuration and a root process, and run the VM.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use troupe_vm::{parse_size, DirMapping, Exit, NetPolicy, RootOptions, Vm, VmConfig};

/// Everything needed to run one container's VM.
#[derive(Debug)]
pub struct Plan {
    /// The guest's argv: the module's path inside the rootfs, then its args.
    pub args: Vec<String>,
    /// The guest's environment, de-duplicated (the last value wins).
    pub envs: Vec<(String, String)>,
    /// Preopened directories: `/` and every non-system mount point.
    pub dirs: Vec<DirMapping>,
    pub config: VmConfig,
    /// A `tracing` filter for the VM's own log (`TROUPE_LOG`), to stderr.
    pub log: String,
    /// Where the app may listen and connect (`TROUPE_ALLOW_NET`).
    pub net: NetPolicy,
}

/// Builds the plan from the OCI process's `args` (`args[0]` is the module,
/// possibly as `path#_start`), its `env` (`KEY=VALUE`, duplicates allowed:
/// CRI passes the image's and the pod's) and the text of
/// `/proc/self/mountinfo` inside the container.
///
/// The VM is sized by optional variables of the container's environment
/// (they are passed to the guest too): `TROUPE_MAX_PROCESSES`,
/// `TROUPE_MAX_MEMORY` (e.g. `64M`), `TROUPE_MAX_VM_MEMORY`,
/// `TROUPE_STACK_SIZE`, `TROUPE_THREADS`, `TROUPE_FUEL` (as `troupe run
/// --fuel`);
/// networking (off by default, as with `troupe run`) by `TROUPE_ALLOW_NET`:
/// `*` for any address, or `HOST[:PORT],...` as `--allow-net=` takes them.
pub fn plan(args: &[String], envs: &[String], mountinfo: &str) -> Result<Plan> {
    let Some(arg0) = args.first() else {
        bail!("the container has no process args: args[0] must be the .wasm module's path");
    };
    let module = arg0.split_once('#').map_or(arg0.as_str(), |(p, _)| p);
    if module.is_empty() {
        bail!("the container's args[0] ({arg0:?}) names no module");
    }
    let mut guest_args = vec![module.to_owned()];
    guest_args.extend(args[1..].iter().cloned());

    let envs = dedup_env(envs);
    let get = |k: &str| {
        envs.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let mut config = VmConfig::new().handle_signals(true);
    if let Some(v) = get("TROUPE_MAX_PROCESSES") {
        config = config.max_processes(
            v.parse()
                .map_err(|_| anyhow::anyhow!("TROUPE_MAX_PROCESSES={v:?}: not a number"))?,
        );
    }
    if let Some(v) = get("TROUPE_MAX_MEMORY") {
        config = config
            .max_memory(parse_size(v).map_err(|e| anyhow::anyhow!("TROUPE_MAX_MEMORY: {e}"))?);
    }
    if let Some(v) = get("TROUPE_STACK_SIZE") {
        config = config.stack_size(
            parse_size(v).map_err(|e| anyhow::anyhow!("TROUPE_STACK_SIZE: {e}"))? as usize,
        );
    }
    if let Some(v) = get("TROUPE_MAX_VM_MEMORY") {
        config = config.max_vm_memory(
            parse_size(v).map_err(|e| anyhow::anyhow!("TROUPE_MAX_VM_MEMORY: {e}"))?,
        );
    }
    if let Some(v) = get("TROUPE_FUEL") {
        config = config.fuel(
            v.parse()
                .map_err(|_| anyhow::anyhow!("TROUPE_FUEL={v:?}: not a number"))?,
        );
    }
    if let Some(v) = get("TROUPE_THREADS") {
        config = config.threads(
            v.parse()
                .map_err(|_| anyhow::anyhow!("TROUPE_THREADS={v:?}: not a number"))?,
        );
    }
    let log = get("TROUPE_LOG").unwrap_or("warn").to_owned();
    let net = match get("TROUPE_ALLOW_NET") {
        None | Some("") => NetPolicy::deny(),
        Some(v) => NetPolicy::parse(v).map_err(|e| anyhow::anyhow!("TROUPE_ALLOW_NET: {e}"))?,
    };

    let mut dirs = vec![DirMapping {
        host: "/".into(),
        guest: "/".into(),
    }];
    for m in app_mounts(mountinfo) {
        if !dirs.iter().any(|d| d.guest == m) {
            dirs.push(DirMapping {
                host: PathBuf::from(&m),
                guest: m,
            });
        }
    }
    Ok(Plan {
        args: guest_args,
        envs,
        dirs,
        config,
        log,
        net,
    })
}

/// `KEY=VALUE` strings to pairs: one per key, in the order keys first
/// appear, with the last value given. An entry without `=` is skipped.
pub fn dedup_env(envs: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(envs.len());
    for e in envs {
        let Some((k, v)) = e.split_once('=') else {
            continue;
        };
        if k.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.to_owned(),
            None => out.push((k.to_owned(), v.to_owned())),
        }
    }
    out
}

/// The mount points of `/proc/self/mountinfo` that are the app's own
/// (volumes, bind mounts, secrets), not the container's plumbing: not `/`,
/// nor anything under `/proc`, `/sys` or `/dev`. Each becomes a preopened
/// directory (the guest also reaches it through `/`); files are skipped by
/// the caller.
///
/// Parsed here rather than with `procfs` (already in Cargo.lock, through
/// runwasi's libcontainer): procfs 0.17's `MountInfo::mount_point` keeps the
/// kernel's octal escapes, so a volume at `/my files` would come back as
/// `/my\040files`, a directory that does not exist (the test
/// `app_mounts_become_preopens_and_system_mounts_do_not` has one).
pub fn app_mounts(mountinfo: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options ...
        let Some(point) = line.split(' ').nth(4) else {
            continue;
        };
        let point = unescape_octal(point);
        let system = ["/proc", "/sys", "/dev"]
            .iter()
            .any(|s| point == *s || point.starts_with(&format!("{s}/")));
        if point == "/" || system || !point.starts_with('/') || out.contains(&point) {
            continue;
        }
        out.push(point);
    }
    out
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the VM for a plan on the calling thread (which must not be inside a
/// tokio runtime) and returns the container's exit code, as `troupe run`
/// does ([`Exit`]): the root process's code, 143 / 130 when stopped by
/// SIGTERM / SIGINT, 134 for a trap in the root or a panic, 1 when the
/// module cannot be loaded.
pub fn run_plan(plan: Plan, module: &Path, bytes: Vec<u8>) -> i32 {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&plan.log))
        .with_writer(std::io::stderr)
        .try_init();
    let dirs = plan.dirs.into_iter().filter(|d| d.host.is_dir()).collect();
    let root = RootOptions {
        args: plan.args,
        envs: plan.envs,
        dirs,
        stdin: true,
        net: plan.net,
        ..RootOptions::default()
    };
    let config = plan.config;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Vm::new(config).and_then(|vm| vm.run(module, &bytes, root))
    }));
    let exit = match result {
        Ok(run) => Exit::from(run),
        Err(_) => Exit::Panic,
    };
    exit.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn args0_is_the_module_and_the_rest_are_its_args() {
        let p = plan(&s(&["/app/app.wasm#_start", "-n", "3"]), &[], "").unwrap();
        assert_eq!(p.args, s(&["/app/app.wasm", "-n", "3"]));
        assert!(plan(&[], &[], "").is_err());
        assert!(plan(&s(&["#_start"]), &[], "").is_err());
    }

    #[test]
    fn env_is_deduplicated_with_the_last_value_winning() {
        let e = dedup_env(&s(&["PATH=/a", "A=1", "PATH=/b", "B=x=y", "junk", "=v"]));
        assert_eq!(
            e,
            vec![
                ("PATH".into(), "/b".into()),
                ("A".into(), "1".into()),
                ("B".into(), "x=y".into())
            ]
        );
    }

    #[test]
    fn troupe_variables_size_the_vm() {
        let p = plan(
            &s(&["a.wasm"]),
            &s(&[
                "TROUPE_MAX_PROCESSES=50",
                "TROUPE_MAX_MEMORY=16M",
                "TROUPE_THREADS=1",
                "TROUPE_FUEL=1000",
                "TROUPE_LOG=debug",
            ]),
            "",
        )
        .unwrap();
        assert_eq!(p.config.get_max_processes(), 50);
        assert_eq!(p.config.get_max_memory(), 16 << 20);
        assert_eq!(p.config.get_threads(), 1);
        assert_eq!(p.log, "debug");
        assert_eq!(p.config.get_fuel(), Some(1000));
        assert!(plan(&s(&["a.wasm"]), &s(&["TROUPE_THREADS=x"]), "").is_err());
        assert!(plan(&s(&["a.wasm"]), &s(&["TROUPE_FUEL=lots"]), "").is_err());
    }

    #[test]
    fn networking_is_off_unless_troupe_allow_net_says() {
        let p = plan(&s(&["a.wasm"]), &[], "").unwrap();
        assert!(!p.net.is_enabled());
        let p = plan(&s(&["a.wasm"]), &s(&["TROUPE_ALLOW_NET=*"]), "").unwrap();
        assert_eq!(p.net, NetPolicy::allow_all());
        let p = plan(
            &s(&["a.wasm"]),
            &s(&["TROUPE_ALLOW_NET=0.0.0.0:7000,kv:7000"]),
            "",
        )
        .unwrap();
        assert_eq!(p.net.describe(), "0.0.0.0:7000,kv:7000");
        let e = plan(&s(&["a.wasm"]), &s(&["TROUPE_ALLOW_NET=kv:x"]), "").unwrap_err();
        assert!(e.to_string().contains("TROUPE_ALLOW_NET"), "{e}");
    }

    #[test]
    fn app_mounts_become_preopens_and_system_mounts_do_not() {
        let mi = "\
22 1 0:21 / / rw - overlay overlay rw
23 22 0:5 / /proc rw - proc proc rw
24 22 0:6 / /dev rw - tmpfs tmpfs rw
25 24 0:7 / /dev/pts rw - devpts devpts rw
26 22 0:8 / /sys ro - sysfs sysfs ro
27 22 8:1 /srv/data /data rw - ext4 /dev/vda rw
28 22 8:1 /srv/my\\040files /my\\040files rw - ext4 /dev/vda rw
29 22 0:9 / /proc2 rw - tmpfs tmpfs rw
";
        assert_eq!(app_mounts(mi), s(&["/data", "/my files", "/proc2"]));
        let p = plan(&s(&["a.wasm"]), &[], mi).unwrap();
        let guests: Vec<_> = p.dirs.iter().map(|d| d.guest.as_str()).collect();
        assert_eq!(guests, ["/", "/data", "/my files", "/proc2"]);
    }
}
