//! A command run by hand is a run like a task's (issue #14): `speediso
//! bench cpu` with a report endpoint reaches the real collector with the
//! same events a task step has, and `--json` stdout stays one document.

use serde_json::Value;
use speediso_testsupport::collector::*;
use speediso_testsupport::output_ok;
use std::process::Command;

#[test]
fn a_benchmark_by_hand_reaches_the_report_endpoint_as_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(&tmp.path().join("collector"), None, &[]);
    let run_dir = tmp.path().join("run");
    let out = output_ok(
        Command::new(speediso_testsupport::bin("speediso"))
            .args([
                "--cmdline",
                &format!("speediso.report={} speediso.token={TOKEN}", c.url()),
                "bench",
                "cpu",
                "--duration",
                "1s",
                "--json",
            ])
            .env("SPEEDISO_RUN_DIR", &run_dir)
            .env_remove("SPEEDISO"),
    );
    // stdout: the result document alone.
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["max_prime"], 10000);
    let runs = c.get("/v1/runs?task=bench");
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["outcome"], "success");
    let run_id = runs[0]["run_id"].as_str().unwrap();
    let evs: Vec<Value> = c
        .stored_lines(run_id)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"run_started"), "{types:?}");
    assert_eq!(types.last(), Some(&"run_finished"), "{types:?}");
    for t in ["step_started", "result", "step_finished"] {
        assert!(types.contains(&t), "{t} missing: {types:?}");
    }
    let result = evs.iter().find(|e| e["type"] == "result").unwrap();
    assert_eq!(result["step"], "bench.cpu");
    // The stored result is the document stdout printed.
    assert_eq!(result["data"]["primes_per_event"], doc["primes_per_event"]);
}
