//! `speediso burnin memory` run as a built binary: a clean run passes and
//! counts every byte it wrote and checked; a bit flipped through the
//! module's own injection point (`--inject-flip`) is found by the real
//! checker and FAILs the run with the word's offset, values and (as root)
//! its physical address; a bad option exits 2 naming it. Not timed:
//! benches/memtest.sh compares speed with memtester.

use serde_json::Value;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_speediso");
const MIB: u64 = 1 << 20;

fn burnin(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["--cmdline", "quiet", "burnin", "memory"])
        .args(args)
        .env_remove("SPEEDISO")
        .env(
            "SPEEDISO_RUN_DIR",
            std::env::temp_dir().join(format!("speediso-burnin-test-{}", std::process::id())),
        )
        .output()
        .expect("running speediso")
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Is this process root (uid 0), so /proc/self/pagemap gives frame numbers?
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        == Some("0")
}

#[test]
fn a_clean_run_passes_and_counts_every_byte() {
    let out = burnin(&["--size", "64M", "--json"]);
    let v = report(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["size_bytes"], 64 * MIB);
    assert_eq!(v["passes_done"], 1);
    let patterns = v["patterns"].as_array().unwrap().len() as u64;
    assert_eq!(patterns, 10, "{v:#}");
    assert!(
        v["bytes_verified"].as_u64().unwrap() >= 64 * MIB * patterns,
        "{v:#}"
    );
    assert_eq!(v["bytes_written"], v["bytes_verified"]);
    assert_eq!(v["mismatch_count"], 0);
    assert_eq!(v["mismatches"], serde_json::json!([]));
    assert!(v["write_mbps"].as_f64().unwrap() > 0.0);
    assert!(v["verify_mbps"].as_f64().unwrap() > 0.0);
    assert!(v["threads"].as_u64().unwrap() >= 1);
    assert!(v["locked"].is_boolean());
    assert!(v.get("injected_word").is_none(), "{v:#}");
}

#[test]
fn an_injected_flip_fails_the_run_naming_the_word() {
    let out = burnin(&["--size", "64M", "--json", "--inject-flip", "12345"]);
    let v = report(&out);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["mismatch_count"], 1, "{v:#}");
    assert_eq!(v["injected_word"], 12345);
    let m = &v["mismatches"][0];
    assert_eq!(m["word_index"], 12345);
    assert_eq!(m["virtual_offset"], 12345 * 8);
    assert_eq!(m["pattern"], "zeros");
    assert_eq!(m["expected"], "0x0000000000000000");
    assert_eq!(m["actual"], "0x0000000000000001");
    assert_eq!(m["xor"], "0x0000000000000001");
    assert_eq!(m["bits"], serde_json::json!([0]));
    let va = m["virtual_address"].as_str().unwrap();
    assert!(va.starts_with("0x"), "{m:#}");
    if is_root() {
        let pa = m["physical_address"]
            .as_str()
            .unwrap_or_else(|| panic!("no physical address as root: {m:#}"));
        let n = u64::from_str_radix(pa.trim_start_matches("0x"), 16).unwrap();
        assert!(n > 0, "{m:#}");
        // Same offset in the page as the virtual address.
        let v = u64::from_str_radix(va.trim_start_matches("0x"), 16).unwrap();
        assert_eq!(n % 4096, v % 4096, "{m:#}");
    } else {
        assert!(m["physical_address"].is_null(), "{m:#}");
        let why = m["physical_address_unavailable"].as_str().unwrap();
        assert!(why.contains("CAP_SYS_ADMIN"), "{why}");
    }
    // The readable form says the same.
    let out = burnin(&["--size", "8M", "--inject-flip", "12345"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("memory test: FAIL"), "{text}");
    assert!(text.contains("pass 1 zeros: offset 0x181c8"), "{text}");
    assert!(
        text.contains("expected 0x0000000000000000 read 0x0000000000000001"),
        "{text}"
    );
}

#[test]
fn bad_options_exit_2_naming_the_value() {
    let out = burnin(&["--size", "garbage"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("garbage") && err.contains("--size"), "{err}");
    let out = burnin(&["--share", "0.99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0.99"));
    // More than the machine has is refused before anything runs.
    let out = burnin(&["--size", "64T"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("size 67108864 MiB is more than 0.98 of MemAvailable"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args([
            "--cmdline",
            "speediso.burnin.memory_share=lots",
            "burnin",
            "memory",
        ])
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("speediso.burnin.memory_share") && err.contains("lots"),
        "{err}"
    );
}
