//! `speediso burnin cpu`, the built binary: a short run passes with every
//! workload checked; an answer corrupted on purpose (`--inject-error`,
//! hidden) fails through the real checker, naming the worker, its CPU, the
//! workload, the expected and the computed value; bad options exit 2.

use serde_json::Value;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_speediso");

fn burnin(cmdline: &str, args: &[&str]) -> (Output, tempfile::TempDir) {
    let run_dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--cmdline", cmdline, "burnin", "cpu"])
        .args(args)
        .env_remove("SPEEDISO")
        .env("SPEEDISO_RUN_DIR", run_dir.path())
        .output()
        .unwrap();
    (out, run_dir)
}

fn json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_short_run_passes_with_every_workload_checked() {
    let (out, run_dir) = burnin("quiet", &["--duration", "2s", "--threads", "2", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    assert_eq!(r["verdict"], "pass", "{r}");
    assert_eq!(r["threads"], 2);
    assert_eq!(r["errors_total"], 0);
    assert!(r["errors"].as_array().unwrap().is_empty());
    assert!(r["duration_s"].as_f64().unwrap() >= 2.0, "{r}");
    let names: Vec<&str> = r["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            assert!(w["ops"].as_u64().unwrap() > 0, "{w}");
            assert!(w["ops_per_s"].as_f64().unwrap() > 0.0, "{w}");
            w["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(names, ["sha256_chain", "matmul_f64", "prime_sieve"]);
    // Each worker is pinned to a CPU it may use.
    assert_eq!(r["cpus"].as_array().unwrap().len(), 2);
    // The run is recorded like any ad-hoc command's.
    let adhoc = std::fs::read_to_string(run_dir.path().join("adhoc.json")).unwrap();
    assert!(adhoc.contains("burnin.cpu"), "{adhoc}");
}

#[test]
fn an_injected_wrong_answer_fails_naming_worker_workload_expected_and_got() {
    let (out, _d) = burnin(
        "quiet",
        &[
            "--duration",
            "1s",
            "--threads",
            "2",
            "--inject-error",
            "--json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    assert_eq!(r["verdict"], "fail", "{r}");
    assert_eq!(r["errors_total"], 1, "{r}");
    let e = &r["errors"][0];
    assert_eq!(e["worker"], 0);
    assert_eq!(e["workload"], "sha256_chain");
    assert!(e["cpu"].is_u64(), "{e}");
    let (want, got) = (e["expected"].as_str().unwrap(), e["got"].as_str().unwrap());
    assert_eq!((want.len(), got.len()), (64, 64));
    // One bit flipped: the digests differ in exactly one hex digit.
    let diff = want
        .chars()
        .zip(got.chars())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(diff, 1, "{want} {got}");
    // The run's end says why it failed (stderr: the console with --json).
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("burnin.cpu FAIL") && err.contains(want),
        "{err}"
    );

    // The readable form names the same.
    let (out, _d) = burnin(
        "quiet",
        &["--duration", "1s", "--threads", "1", "--inject-error"],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("WRONG: worker 0 (CPU "))
        .unwrap_or_else(|| panic!("no WRONG line: {text}"));
    assert!(
        line.contains("sha256_chain: expected ") && line.contains(", got "),
        "{line}"
    );
}

#[test]
fn bad_options_exit_2_naming_key_and_value() {
    let (out, _d) = burnin("quiet", &["--duration", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("soon"), "{err}");
    let (out, _d) = burnin("quiet", &["--threads", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let (out, _d) = burnin("speediso.burnin.cpu_duration=soon", &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("burnin.cpu_duration") && err.contains("soon"),
        "{err}"
    );
    // The kernel option is the default when no flag is given.
    let (out, _d) = burnin(
        "speediso.burnin.cpu_duration=1s",
        &["--json", "--threads", "1"],
    );
    assert_eq!(out.status.code(), Some(0));
    let d = json(&out)["duration_s"].as_f64().unwrap();
    assert!((1.0..2.0).contains(&d), "{d}");
}

#[test]
fn help_teaches_and_hides_the_injection() {
    let out = Command::new(BIN)
        .args(["burnin", "cpu", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("--duration") && text.contains("--threads"),
        "{text}"
    );
    assert!(text.contains("wrong answer"), "{text}");
    assert!(!text.contains("inject"), "{text}");
}
