//! The floor binary keeps the harness's contract: one JSON line with the
//! workload's unit and a measured value, and clear errors for bad input.

use std::process::Command;
use std::sync::Mutex;

/// One floor process at a time. The idle workloads measure the growth of
/// their own PSS, and a page of the binary's code counts 1/k in each of the
/// k processes mapping it: a second floor process started by a test running
/// beside it would shrink the first one's share of those pages mid-run, and
/// with it the growth (seen in CI: 2.1 KB per process for an RSS growth of
/// 11.8 KB).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn floor(args: &[&str]) -> (bool, String, String) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_wasmtime-floor"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(stdout: &str) -> serde_json::Value {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    serde_json::from_str(lines[0]).expect("valid JSON")
}

#[test]
fn message_workloads_print_one_result_line_on_one_and_two_threads() {
    for threads in ["1", "2"] {
        for (args, unit) in [
            (&["pingpong", "rounds=2000"][..], "roundtrips/s"),
            (&["ring", "procs=50", "laps=20"][..], "msgs/s"),
            (&["idle", "n=200"][..], "bytes/proc"),
        ] {
            let mut all = args.to_vec();
            all.extend(["--threads", threads, "--max-processes", "300"]);
            let (ok, stdout, stderr) = floor(&all);
            assert!(ok, "{all:?}: {stderr}");
            let v = json(&stdout);
            assert_eq!(v["system"], "wasmtime-floor");
            assert_eq!(v["workload"], args[0]);
            assert_eq!(v["unit"], unit);
            assert!(v["value"].as_f64().unwrap() > 0.0, "{v}");
            if args[0] == "idle" {
                // A waiting instance holds at least its fiber stack's top page.
                assert!(v["pss_bytes_per_proc"].as_f64().unwrap() >= 4096.0, "{v}");
            }
        }
    }
}

#[test]
fn spawn_instantiates_the_module_it_is_given() {
    let dir = std::env::temp_dir().join(format!("floor-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("m.wat");
    std::fs::write(
        &module,
        r#"(module (import "env" "f" (func)) (memory 2) (table 4 funcref)
             (data (i32.const 16) "hello"))"#,
    )
    .unwrap();
    let m = module.to_str().unwrap();
    let (ok, stdout, stderr) = floor(&["spawn", "n=500", "--max-processes", "64", "--module", m]);
    assert!(ok, "{stderr}");
    let v = json(&stdout);
    assert_eq!(v["unit"], "us/spawn");
    assert!(v["value"].as_f64().unwrap() > 0.0);

    // Uncalled instances kept alive: each holds at least its table and
    // written data page.
    let (ok, stdout, stderr) = floor(&["idle", "n=300", "--max-processes", "400", "--module", m]);
    assert!(ok, "{stderr}");
    assert!(json(&stdout)["pss_bytes_per_proc"].as_f64().unwrap() >= 4096.0);

    // A module whose memory is larger than a slot's is refused: an error,
    // not a result.
    std::fs::write(&module, "(module (memory 2000))").unwrap();
    let (ok, stdout, stderr) = floor(&["spawn", "n=10", "--max-memory", "2M", "--module", m]);
    assert!(!ok && stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("exceeds the limit"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn touch_pages_makes_each_process_write_that_many_pages_of_its_memory() {
    let idle = |touch: &str| {
        let args = [
            "idle",
            "n=300",
            "--max-processes",
            "400",
            "--touch-pages",
            touch,
        ];
        let (ok, stdout, stderr) = floor(&args);
        assert!(ok, "{args:?}: {stderr}");
        json(&stdout)
    };
    // Touched before the first wait: 64 pages more per waiting process.
    let (plain, touched) = (idle("0"), idle("64"));
    assert!(plain.get("touch_pages").is_none(), "{plain}");
    assert_eq!(touched["touch_pages"], 64.0);
    let pss = |v: &serde_json::Value| v["pss_bytes_per_proc"].as_f64().unwrap();
    assert!(
        pss(&touched) - pss(&plain) >= 60.0 * 4096.0,
        "{plain} vs {touched}"
    );
    // Every page of the 17 Wasm pages can be touched, at each message.
    let args = ["ring", "procs=20", "laps=5", "--touch-pages", "272"];
    let (ok, stdout, stderr) = floor(&args);
    assert!(ok, "{stderr}");
    assert_eq!(json(&stdout)["touch_pages"], 272.0);
    let (ok, _, stderr) = floor(&["ring", "--touch-pages", "273"]);
    assert!(!ok && stderr.contains("273"), "{stderr}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let (ok, _, stderr) = floor(&["spawn", "n=10"]);
    assert!(!ok && stderr.contains("--module"), "{stderr}");
    let (ok, _, stderr) = floor(&["idle", "n=10", "hibernate=1"]);
    assert!(!ok && stderr.contains("no hibernation"), "{stderr}");
    let (ok, _, stderr) = floor(&["ring", "hops=3"]);
    assert!(!ok && stderr.contains("unknown parameter"), "{stderr}");
    let (ok, _, stderr) = floor(&["fanin"]);
    assert!(!ok && stderr.contains("invalid value"), "{stderr}");
}
