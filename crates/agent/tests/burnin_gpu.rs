//! `speediso burnin gpu` on fixture trees: the GPU server of
//! fixtures/health/gpu with its `dcgmi diag -j` capture (written to DCGM 3's
//! documented layout, not captured), a copy with a gpu_burn summary
//! instead, a copy with neither tool, and a machine without a GPU.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_speediso");

fn gpu_burnin(root: &Path) -> (i32, Value) {
    let run = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--root")
        .arg(root)
        .arg("--run-dir")
        .arg(run.path())
        .args(["--cmdline", "", "burnin", "gpu", "--json"])
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    (out.status.code().unwrap(), v)
}

fn fixture(case: &str) -> std::path::PathBuf {
    speediso_testsupport::repo_path("fixtures/health").join(case)
}

/// A copy of the GPU tree to change.
fn gpu_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fixture("gpu").display()))
        .arg(dir.path())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    dir
}

#[test]
fn dcgm_diagnostics_fail_naming_the_gpu_and_test() {
    let (rc, v) = gpu_burnin(&fixture("gpu"));
    assert_eq!(rc, 1, "{v:#}");
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["tool"], "dcgmi");
    // Four H100s; the BMC's ASPEED VGA is no GPU.
    assert_eq!(v["gpus"].as_array().unwrap().len(), 4, "{v:#}");
    let fails: Vec<&Value> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "fail")
        .collect();
    assert_eq!(fails.len(), 1, "{v:#}");
    assert_eq!(fails[0]["gpu"], "2");
    assert_eq!(fails[0]["test"], "GPU Memory");
    assert!(fails[0]["detail"]
        .as_str()
        .unwrap()
        .contains("double bit ECC"));
    assert_eq!(v["results"].as_array().unwrap().len(), 10);
}

#[test]
fn gpu_burn_when_dcgm_is_absent_and_a_note_when_neither_is() {
    let dir = gpu_copy();
    std::fs::remove_file(dir.path().join("dcgmi-diag.json")).unwrap();
    std::fs::write(
        dir.path().join("gpu-burn.txt"),
        "Tested 4 GPUs:\n\tGPU 0: OK\n\tGPU 1: OK\n\tGPU 2: OK\n\tGPU 3: OK\n",
    )
    .unwrap();
    let (rc, v) = gpu_burnin(dir.path());
    assert_eq!(
        (rc, v["verdict"].as_str(), v["tool"].as_str()),
        (0, Some("pass"), Some("gpu_burn"))
    );
    std::fs::write(
        dir.path().join("gpu-burn.txt"),
        "Couldn't init a GPU test\n",
    )
    .unwrap();
    let (rc, v) = gpu_burnin(dir.path());
    assert_eq!((rc, v["verdict"].as_str()), (3, Some("warn")), "{v:#}");
    assert!(v["note"].as_str().unwrap().contains("no usable result"));
    std::fs::remove_file(dir.path().join("gpu-burn.txt")).unwrap();
    let (rc, v) = gpu_burnin(dir.path());
    assert_eq!((rc, v["verdict"].as_str()), (3, Some("warn")), "{v:#}");
    assert!(v["note"]
        .as_str()
        .unwrap()
        .contains("no GPU stress tool in this image"));
}

#[test]
fn a_machine_without_a_gpu_skips() {
    let (rc, v) = gpu_burnin(&fixture("clean"));
    assert_eq!((rc, v["verdict"].as_str()), (0, Some("skipped")), "{v:#}");
    let out = Command::new(BIN)
        .arg("--root")
        .arg(fixture("clean"))
        .args(["--cmdline", "", "burnin", "gpu", "--level", "7"])
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("level = 7"));
}

/// `speediso.expect.gpus` (DESIGN.md's name) counts the same GPUs as
/// `speediso.expect.gpu_count`: the four H100s, not the BMC's VGA.
#[test]
fn expected_gpus_by_either_name() {
    let health = |cmdline: &str| {
        let out = Command::new(BIN)
            .arg("--root")
            .arg(fixture("gpu"))
            .args(["--cmdline", cmdline, "health", "--json"])
            .env_remove("SPEEDISO")
            .env("SPEEDISO_RUN_DIR", tempfile::tempdir().unwrap().path())
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let expect: Vec<String> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["check"] == "expect")
            .map(|f| f["message"].as_str().unwrap().to_string())
            .collect();
        (v["expect"]["gpu_count"].clone(), expect)
    };
    assert_eq!(health("speediso.expect.gpus=4"), (4.into(), vec![]));
    assert_eq!(
        health("speediso.expect.gpus=8"),
        (8.into(), vec!["expected 8 GPUs, found 4".to_string()])
    );
    assert_eq!(
        health("speediso.expect.gpus=8 speediso.expect.gpu_count=4"),
        (4.into(), vec![])
    );
}
