//! `speediso burnin scan` on loop devices (root only), the built binary:
//! a clean device reads whole; a device-mapper device with an error
//! segment reports exactly that segment's LBAs as unreadable. Every test
//! makes its own temp files, loop and dm devices and removes them in drop
//! guards; the scan only ever reads, and only the devices named.

use serde_json::Value;
use speediso_testsupport::loops::{self, Dm, Loop};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_speediso");
const MIB: u64 = 1 << 20;

/// Root and the tools, or skip (fail under SPEEDISO_REQUIRE_TOOLS=1).
fn ready(tools: &[&str]) -> bool {
    loops::ready("burnin scan loop-device test", tools)
}

fn scan(disks: &[&str], json: bool) -> Output {
    let run_dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(BIN);
    c.args(["--cmdline", "quiet", "burnin", "scan"]);
    for d in disks {
        c.args(["--disk", d]);
    }
    if json {
        c.arg("--json");
    }
    c.env_remove("SPEEDISO")
        .env("SPEEDISO_RUN_DIR", run_dir.path())
        .output()
        .unwrap()
}

fn report(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_clean_loop_device_reads_whole() {
    if !ready(&["losetup"]) {
        return;
    }
    let l = Loop::new(256 * MIB, 0x5a);
    let before = l.bytes();
    let out = scan(&[&l.dev], true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&out);
    assert_eq!(r["verdict"], "pass", "{r}");
    let d = &r["disks"][0];
    assert_eq!(r["disks"].as_array().unwrap().len(), 1);
    assert_eq!(d["path"], l.dev.as_str());
    assert_eq!(d["size_bytes"], 256 * MIB);
    assert_eq!(d["bytes_read"], 256 * MIB);
    assert!(d["unreadable"].as_array().unwrap().is_empty(), "{d}");
    assert!(d["mb_per_s"].as_f64().unwrap() > 0.0, "{d}");
    // Read-only: not a byte changed.
    assert!(l.bytes() == before, "the scan changed the device");
    // The readable form.
    let out = scan(&[&l.dev], false);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "{}: {} of {} bytes read",
            l.dev,
            256 * MIB,
            256 * MIB
        )),
        "{text}"
    );
}

#[test]
fn a_path_that_is_no_disk_is_a_bad_option() {
    let out = scan(&["/dev/speediso-no-such-disk"], true);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/dev/speediso-no-such-disk"), "{err}");
}

#[test]
fn dm_error_segment_is_reported_as_exactly_its_lbas() {
    if !ready(&["losetup", "dmsetup", "device-mapper"]) {
        return;
    }
    let under = Loop::new(64 * MIB, 0x33);
    let total = under.size() / 512;
    // Not aligned to the 1 MiB reads and spanning two of them, so the
    // range is found by narrowing down, not by a lucky piece boundary.
    let (bad_start, bad_len) = (20_000u64, 3_000u64);
    let table = format!(
        "0 {bad_start} linear {dev} 0\n{bad_start} {bad_len} error\n{rest_start} {rest} linear {dev} {rest_start}",
        dev = under.dev,
        rest_start = bad_start + bad_len,
        rest = total - bad_start - bad_len
    );
    let name = format!("speediso-test-scan-{}", std::process::id());
    // Removed before the loop device beneath (declared after it).
    let dm = Dm::create(&name, &table);
    let dm_dev = dm.path();
    let out = scan(&[&dm_dev, &under.dev], true);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&out);
    assert_eq!(r["verdict"], "fail", "{r}");
    let d = &r["disks"][0];
    assert_eq!(d["path"], dm_dev.as_str());
    assert_eq!(d["verdict"], "fail");
    let bad = d["unreadable"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{d}");
    assert_eq!(bad[0]["lba"], bad_start, "{d}");
    assert_eq!(bad[0]["count"], bad_len, "{d}");
    assert!(
        bad[0]["error"].as_str().unwrap().contains("os error 5"),
        "{d}"
    );
    assert_eq!(d["bytes_read"], under.size() - bad_len * 512);
    assert!(d["error"].is_null(), "{d}");
    // The disk beneath, scanned in the same run, is clean.
    assert_eq!(r["disks"][1]["verdict"], "pass", "{r}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("LBA {bad_start} +{bad_len} unreadable")),
        "{err}"
    );
}
