//! `speediso health` on the hand-made trees of fixtures/health/ (see its
//! README): the verdict, every finding (severity, check, component,
//! evidence, threshold) and the exit status; the human form; options from
//! the command line and a task file; and one run on this machine.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_speediso");

fn fixture(case: &str) -> PathBuf {
    let p = speediso_testsupport::repo_path("fixtures/health").join(case);
    assert!(p.is_dir(), "{} is missing", p.display());
    p
}

fn health(root: &std::path::Path, cmdline: &str, json: bool) -> Output {
    let mut c = Command::new(BIN);
    c.arg("--root")
        .arg(root)
        .args(["--cmdline", cmdline, "health"]);
    if json {
        c.arg("--json");
    }
    c.env_remove("SPEEDISO")
        .env(
            "SPEEDISO_RUN_DIR",
            std::env::temp_dir().join("speediso-health-test-run"),
        )
        .output()
        .unwrap()
}

/// The report and the exit status for a case.
fn report(case: &str, cmdline: &str) -> (Value, i32) {
    let out = health(&fixture(case), cmdline, true);
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{case}: {e}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out.status.code().unwrap())
}

type Row<'a> = (&'a str, &'a str, &'a str, &'a str, Option<&'a str>);

/// Every finding as (severity, check, component, evidence, threshold).
fn rows(v: &Value) -> Vec<(String, String, String, String, Option<String>)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            // Sources are the machine's paths, never the fixture's.
            let src = s("source");
            assert!(src.starts_with('/') && !src.contains("fixtures"), "{f}");
            (
                s("severity"),
                s("check"),
                s("component"),
                s("evidence"),
                f["threshold"].as_str().map(String::from),
            )
        })
        .collect()
}

fn assert_case(case: &str, cmdline: &str, verdict: &str, rc: i32, want: &[Row]) {
    let (v, code) = report(case, cmdline);
    assert_eq!(v["verdict"], verdict, "{case}: {v:#}");
    assert_eq!(code, rc, "{case}: exit status");
    let want: Vec<(String, String, String, String, Option<String>)> = want
        .iter()
        .map(|(a, b, c, d, e)| {
            (
                a.to_string(),
                b.to_string(),
                c.to_string(),
                d.to_string(),
                e.map(String::from),
            )
        })
        .collect();
    assert_eq!(rows(&v), want, "{case}");
    let n = |s: &str| want.iter().filter(|r| r.0 == s).count();
    assert_eq!(v["counts"]["fail"], n("fail"));
    assert_eq!(v["counts"]["warn"], n("warn"));
    assert_eq!(v["counts"]["info"], n("info"));
}

#[test]
fn clean_machine_passes_and_says_what_it_checked() {
    assert_case("clean", "", "pass", 0, &[]);
    let (v, _) = report("clean", "");
    let checked: Vec<(&str, &str)> = v["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        checked,
        [
            ("edac", "pass"),
            ("mce", "pass"),
            ("throttle", "pass"),
            ("hwmon", "pass"),
            ("pcie", "pass"),
            ("gpu", "skipped"),
            ("nic", "pass"),
            ("disk", "pass"),
            ("expect", "skipped"),
        ]
    );
    assert_eq!(v["thresholds"]["max_nic_drops"], 1000);
    assert_eq!(v["thresholds"]["max_carrier_changes"], 4);
    assert!(v["expect"]["memory_gib"].is_null());
}

#[test]
fn ecc_errors_name_the_dimm() {
    assert_case(
        "ecc",
        "",
        "fail",
        1,
        &[
            ("fail", "edac", "mc1", "ue_count = 1", Some("> 0")),
            (
                "warn",
                "edac",
                "CPU0_DIMM_A1 (mc0/dimm0)",
                "dimm_ce_count = 3",
                Some("> 0"),
            ),
            (
                "warn",
                "edac",
                "DIMM_C1 (mc2/csrow0)",
                "ce_count = 5",
                Some("> 0"),
            ),
        ],
    );
    // A higher threshold: the corrected ones are within it (5 is not above 5).
    assert_case(
        "ecc",
        "speediso.health.max_corrected_errors=5",
        "fail",
        1,
        &[("fail", "edac", "mc1", "ue_count = 1", Some("> 0"))],
    );
    let (v, _) = report("ecc", "");
    assert_eq!(
        v["findings"][1]["source"],
        "/sys/devices/system/edac/mc/mc0/dimm0/dimm_ce_count"
    );
}

#[test]
fn throttling_and_sensors_beyond_their_limits() {
    assert_case(
        "thermal",
        "",
        "fail",
        1,
        &[
            (
                "fail",
                "hwmon",
                "coretemp temp3 (Core 1)",
                "temp3_input = 101000 (101.0 °C)",
                Some("temp3_crit_alarm = 1"),
            ),
            (
                "warn",
                "throttle",
                "package 0 (CPU 0)",
                "package_throttle_count = 7",
                Some("> 0"),
            ),
            (
                "warn",
                "throttle",
                "CPU 1",
                "core_throttle_count = 12",
                Some("> 0"),
            ),
            (
                "warn",
                "hwmon",
                "coretemp temp2 (Core 0)",
                "temp2_input = 91000 (91.0 °C)",
                Some("max 90.0 °C (temp2_max)"),
            ),
            (
                "warn",
                "hwmon",
                "nct6779 fan1",
                "fan1_input = 150 (150 RPM)",
                Some("min 300 RPM (fan1_min)"),
            ),
        ],
    );
}

#[test]
fn pcie_aer_errors_and_links_trained_down() {
    let link = "current_link_speed = 8.0 GT/s, current_link_width = 4, max_link_speed = 16.0 GT/s, max_link_width = 16";
    let gpu = "current_link_speed = 2.5 GT/s, current_link_width = 16, max_link_speed = 16.0 GT/s, max_link_width = 16";
    assert_case(
        "pcie",
        "",
        "fail",
        1,
        &[
            (
                "fail",
                "pcie",
                "0000:01:00.0",
                "aer_dev_nonfatal: total 2 (CmpltTO 2)",
                Some("> 0"),
            ),
            (
                "fail",
                "pcie",
                "0000:3b:00.0",
                "aer_dev_fatal: total 1 (DLP 1)",
                Some("> 0"),
            ),
            (
                "warn",
                "pcie",
                "0000:3a:00.0",
                "aer_dev_correctable: total 4 (BadTLP 3, BadDLLP 1)",
                Some("> 0"),
            ),
            (
                "warn",
                "pcie",
                "0000:3b:00.0",
                link,
                Some("at least 16.0 GT/s x16"),
            ),
            (
                "info",
                "pcie",
                "0000:18:00.0",
                gpu,
                Some("at least 16.0 GT/s x16"),
            ),
        ],
    );
    let (v, _) = report("pcie", "");
    assert_eq!(
        v["findings"][3]["message"],
        "link trained at 8.0 GT/s x4 of 16.0 GT/s x16"
    );
}

/// The GPU server (4 H100 with nvidia-smi's report written to the
/// documented schema, fixtures/README.gpu.md): one GPU missing against
/// the order, the x8 link, uncorrectable ECC errors, a row-remap failure,
/// a pending remap, correctable errors and HW thermal slowdown at idle;
/// each GPU named by address, serial and UUID.
#[test]
fn gpu_server_findings() {
    let name = |bus: &str, n: u32| {
        format!(
            "0000:{bus}:00.0 (serial 165412300000{n}, GPU-8a1f0c3e-5b2d-4c7a-9e61-0d3f2b1a7c0{n})"
        )
    };
    let (g2a, gab, gba) = (name("2a", 2), name("ab", 3), name("ba", 4));
    let x8 = "current_link_speed = 32.0 GT/s, current_link_width = 8, max_link_speed = 32.0 GT/s, max_link_width = 16";
    let want: Vec<Row> = vec![
        (
            "fail",
            "gpu",
            &g2a,
            "current_link_width = 8, max_link_width = 16, upstream port max_link_width = 16",
            Some("x16"),
        ),
        (
            "fail",
            "gpu",
            &gab,
            "ecc_errors uncorrectable: volatile 2, aggregate 2",
            Some("> 0"),
        ),
        (
            "fail",
            "gpu",
            &gba,
            "remapped_rows: failure Yes, uncorrectable 8, correctable 3",
            Some("failure = No"),
        ),
        (
            "fail",
            "expect",
            "GPUs",
            "0000:18:00.0, 0000:2a:00.0, 0000:ab:00.0, 0000:ba:00.0",
            Some("= 5 (speediso.expect.gpu_count)"),
        ),
        (
            "warn",
            "pcie",
            "0000:2a:00.0",
            x8,
            Some("at least 32.0 GT/s x16"),
        ),
        (
            "warn",
            "gpu",
            &gab,
            "remapped_rows: pending Yes",
            Some("pending = No"),
        ),
        (
            "warn",
            "gpu",
            &gba,
            "ecc_errors correctable: volatile 7, aggregate 7",
            Some("> 0 (max_gpu_correctable)"),
        ),
        (
            "warn",
            "gpu",
            &gba,
            "active clock throttle reasons: gpu_idle, hw_thermal_slowdown",
            Some("none of hw_slowdown, hw_thermal_slowdown, hw_power_brake_slowdown, sw_thermal_slowdown"),
        ),
    ];
    assert_case("gpu", "speediso.expect.gpu_count=5", "fail", 1, &want);
    let (v, _) = report("gpu", "speediso.expect.gpu_count=5");
    let messages: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        &messages[..4],
        [
            "link trained at x8 of x16",
            "2 uncorrectable (double-bit) ECC error(s)",
            "row remapping failed: a memory row could not be remapped (replace the GPU)",
            "expected 5 GPUs, found 4",
        ]
    );
    assert_eq!(v["checked"][5]["check"], "gpu");
    assert_eq!(
        v["checked"][5]["summary"],
        "4 GPU(s), 4 with nvidia-smi's report"
    );
    // The count matches the order; a raised threshold drops the
    // correctable finding.
    let (v, _) = report(
        "gpu",
        "speediso.expect.gpu_count=4 speediso.health.max_gpu_correctable=7",
    );
    assert_eq!(v["thresholds"]["max_gpu_correctable"], 7);
    assert_eq!(v["checked"][8]["status"], "pass", "{v:#}");
    assert_eq!(rows(&v).len(), want.len() - 2, "{v:#}");
}

/// nvidia-smi's report unusable: "unreadable" (WARN), never a PASS about
/// ECC; no report at all: an info line. The sysfs findings stay.
#[test]
fn gpu_server_without_a_usable_nvidia_smi_report() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("gpu");
    assert!(Command::new("cp")
        .arg("-a")
        .arg(fixture("gpu"))
        .arg(&copy)
        .status()
        .unwrap()
        .success());
    std::fs::write(
        copy.join("nvidia-smi-q-x.xml"),
        "<nvidia_smi_log><gpu>\u{1}",
    )
    .unwrap();
    let gpu_rows = |v: &Value| -> Vec<(String, String, String)> {
        rows(v)
            .into_iter()
            .filter(|r| r.1 == "gpu")
            .map(|r| (r.0, r.2, r.4.unwrap_or_default()))
            .collect()
    };
    let read = |root: &std::path::Path| -> Value {
        serde_json::from_slice(&health(root, "", true).stdout).unwrap()
    };
    let v = read(&copy);
    assert_eq!(
        gpu_rows(&v),
        [
            ("fail".into(), "0000:2a:00.0".into(), "x16".into()),
            ("warn".into(), "nvidia-smi".into(), String::new()),
        ]
    );
    let f = &v["findings"].as_array().unwrap()[2];
    assert_eq!(f["message"], "unreadable", "{v:#}");
    assert_eq!(f["source"], "/nvidia-smi-q-x.xml");
    assert!(f["evidence"].as_str().unwrap().contains("not XML"), "{f}");
    std::fs::remove_file(copy.join("nvidia-smi-q-x.xml")).unwrap();
    let v = read(&copy);
    assert_eq!(
        gpu_rows(&v),
        [
            ("fail".into(), "0000:2a:00.0".into(), "x16".into()),
            ("info".into(), "nvidia-smi".into(), String::new()),
        ]
    );
}

#[test]
fn nic_counters_above_their_thresholds() {
    assert_case(
        "nic",
        "",
        "warn",
        0,
        &[
            (
                "warn",
                "nic",
                "eno1",
                "statistics/rx_errors = 17",
                Some("> 0"),
            ),
            (
                "warn",
                "nic",
                "eno1",
                "statistics/rx_crc_errors = 17",
                Some("> 0"),
            ),
            ("warn", "nic", "eno2", "carrier_changes = 9", Some("> 4")),
            (
                "warn",
                "nic",
                "eno2",
                "statistics/tx_dropped = 5000",
                Some("> 1000"),
            ),
        ],
    );
    assert_case(
        "nic",
        "speediso.health.max_nic_errors=17 speediso.health.max_carrier_changes=9 \
         speediso.health.max_nic_drops=5000",
        "pass",
        0,
        &[],
    );
}

#[test]
fn machine_checks_from_the_kernel_log() {
    let t = Some("an uncorrected machine check (MCi_STATUS.UC) fails; a corrected one warns");
    assert_case(
        "mce",
        "",
        "fail",
        1,
        &[
            (
                "fail",
                "mce",
                "CPU 5",
                "mce: [Hardware Error]: CPU 5: Machine Check: 0 Bank 5: be00000000800400",
                t,
            ),
            (
                "warn",
                "mce",
                "kernel log",
                "mce: [Hardware Error]: Machine check events logged",
                t,
            ),
            (
                "warn",
                "mce",
                "CPU 2",
                "mce: [Hardware Error]: CPU 2: Machine Check: 0 Bank 7: 8c00004000010090",
                t,
            ),
        ],
    );
}

/// Bad input: every unreadable or garbage value is a WARN that says so,
/// none a panic and none a silent PASS.
#[test]
fn garbage_is_unreadable_not_healthy() {
    assert_case(
        "garbage",
        "",
        "warn",
        0,
        &[
            (
                "warn",
                "edac",
                "CPU0_DIMM_B1 (mc0/dimm1)",
                "\"\" is not a number",
                None,
            ),
            ("warn", "throttle", "CPU 2", "\"-1\" is not a number", None),
            (
                "warn",
                "hwmon",
                "coretemp temp1 (Package id 0)",
                "\"abc\" is not a number",
                None,
            ),
            (
                "warn",
                "hwmon",
                "coretemp temp2 (Core 0)",
                "\"hot\" is not a number",
                None,
            ),
            (
                "warn",
                "pcie",
                "0000:3b:00.0",
                "line \"BadTLP \\u{1}\\u{2} junk\" is not \"NAME COUNT\"",
                None,
            ),
            ("warn", "nic", "eno1", "missing", None),
            ("warn", "nic", "eno1", "\"lots\" is not a number", None),
            (
                "warn",
                "disk",
                NVME,
                "Get Log Page 02h: 6 bytes back, want 512",
                None,
            ),
            (
                "warn",
                "disk",
                SATA,
                "SMART READ DATA: the device rejected the command (no capture)",
                None,
            ),
        ],
    );
    let (v, _) = report("garbage", "");
    for f in v["findings"].as_array().unwrap() {
        assert_eq!(f["message"], "unreadable", "{f}");
    }
}

/// An empty tree: nothing to read is "skipped" with info lines, a PASS
/// that claims nothing about memory ECC.
#[test]
fn an_empty_root_checks_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = health(dir.path(), "", true);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "pass");
    let statuses: Vec<&str> = v["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["skipped"; 9]);
    let info: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(info, ["edac", "mce"]);
    assert!(v["findings"][0]["message"]
        .as_str()
        .unwrap()
        .contains("memory errors are not checked"));
}

#[test]
fn expected_hardware_fails_naming_expected_and_found() {
    let ok = "speediso.expect.cpu_threads=4 speediso.expect.memory_gib=64 \
              speediso.expect.disk_count=2 speediso.expect.nic_count=1";
    assert_case("clean", ok, "pass", 0, &[]);
    let (v, _) = report("clean", ok);
    assert_eq!(v["expect"]["memory_gib"], 64);
    assert_eq!(v["checked"][8]["status"], "pass");
    let bad = "speediso.expect.cpu_threads=8 speediso.expect.memory_gib=128 \
               speediso.expect.disk_count=3 speediso.expect.nic_count=2";
    assert_case(
        "clean",
        bad,
        "fail",
        1,
        &[
            (
                "fail",
                "expect",
                "CPU",
                "4 present logical CPUs",
                Some("= 8 (speediso.expect.cpu_threads)"),
            ),
            (
                "fail",
                "expect",
                "memory",
                "MemTotal = 65766688 kB",
                Some("121.1 to 128 GiB (speediso.expect.memory_gib=128, less 5% + 0.5 GiB the kernel and firmware keep)"),
            ),
            (
                "fail",
                "expect",
                "disks",
                "nvme0n1, sda",
                Some("= 3 (speediso.expect.disk_count)"),
            ),
            (
                "fail",
                "expect",
                "NICs",
                "eno1",
                Some("= 2 (speediso.expect.nic_count)"),
            ),
        ],
    );
    let (v, _) = report("clean", bad);
    let msgs: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        msgs,
        [
            "expected 8 CPU threads, found 4",
            "expected 128 GiB of memory, found 62.7 GiB",
            "expected 3 disks, found 2",
            "expected 2 NICs, found 1",
        ]
    );
    // More memory than ordered is the wrong machine too.
    let (v, rc) = report("clean", "speediso.expect.memory_gib=32");
    assert_eq!((v["verdict"].as_str(), rc), (Some("fail"), 1));
    // A malformed value is a usage error naming the key.
    let out = health(&fixture("clean"), "speediso.expect.memory_gib=lots", true);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("speediso.expect.memory_gib"), "{err}");
}

#[test]
fn human_form_shows_verdict_severities_and_components() {
    let out = health(&fixture("ecc"), "", false);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HEALTH FAIL"), "{text}");
    for want in [
        "FAIL  edac     mc1: 1 uncorrected memory error(s)",
        "WARN  edac     CPU0_DIMM_A1 (mc0/dimm0): 3 corrected memory error(s)",
        "dimm_ce_count = 3  [/sys/devices/system/edac/mc/mc0/dimm0/dimm_ce_count]",
        "threshold: > 0",
        "edac     FAIL",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    let out = health(&fixture("clean"), "", false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HEALTH PASS"), "{text}");
    assert!(text.contains("nic      PASS    1 NIC(s): eno1"), "{text}");
    let out = health(&fixture("nic"), "", false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HEALTH WARN"), "{text}");
    assert!(
        text.contains("WARN  nic      eno2: 9 link state change(s)"),
        "{text}"
    );
}

#[test]
fn help_teaches_severities_and_exit_status() {
    let out = Command::new(BIN)
        .args(["health", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "FAIL:",
        "WARN:",
        "INFO:",
        "Exit status: 0 PASS or WARN, 1 FAIL",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}

/// As a task step: a FAIL verdict fails the step (and the run, exit 1)
/// after its report went out as the result; a WARN does not. Step keys
/// are thresholds; a table for one is refused naming it.
#[test]
fn as_a_task_step() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("tasks");
    std::fs::create_dir(&tasks).unwrap();
    std::fs::write(
        tasks.join("checkup.toml"),
        "name = 'checkup'\ndescription = 'health'\ntime_limit = '5m'\nafter = 'stay'\n\
         [[steps]]\nmodule = 'health'\noptions = { max_nic_errors = 100 }\n",
    )
    .unwrap();
    let run = |case: &str| {
        let out = Command::new(BIN)
            .arg("--root")
            .arg(fixture(case))
            .args(["run", "checkup", "--json", "--cmdline", ""])
            .arg("--tasks-dir")
            .arg(&tasks)
            .arg("--run-dir")
            .arg(dir.path().join(format!("run-{case}")))
            .env_remove("SPEEDISO")
            .output()
            .unwrap();
        let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (out.status.code().unwrap(), events)
    };
    let of = |events: &[Value], t: &str| -> Vec<Value> {
        events.iter().filter(|e| e["type"] == t).cloned().collect()
    };
    let (rc, ev) = run("ecc");
    assert_eq!(rc, 1, "{ev:#?}");
    let res = of(&ev, "result");
    assert_eq!(res.len(), 1, "{ev:#?}");
    assert_eq!(res[0]["data"]["verdict"], "fail");
    let fin = of(&ev, "step_finished");
    assert_eq!(fin[0]["outcome"], "failed", "{fin:#?}");
    assert!(
        fin[0]["error"].as_str().unwrap().contains("mc1"),
        "{fin:#?}"
    );
    // nic: WARN by default, but the step's threshold lifts the errors; the
    // drops and carrier changes still warn, and a WARN succeeds.
    let (rc, ev) = run("nic");
    assert_eq!(rc, 0, "{ev:#?}");
    let res = of(&ev, "result");
    assert_eq!(res[0]["data"]["verdict"], "warn");
    assert_eq!(res[0]["data"]["thresholds"]["max_nic_errors"], 100);
    assert_eq!(res[0]["data"]["counts"]["warn"], 2);

    std::fs::write(
        tasks.join("checkup.toml"),
        "name = 'checkup'\ndescription = 'health'\ntime_limit = '5m'\nafter = 'stay'\n\
         [[steps]]\nmodule = 'health'\noptions = { memory_gib = { x = 1 } }\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--cmdline", "speediso.task=checkup", "--tasks-dir"])
        .arg(&tasks)
        .args(["dispatch", "--dry-run"])
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("memory_gib"), "{text}");
}

/// This machine, as it is: no panic, a verdict (whichever), the exit
/// status that goes with it.
#[test]
fn this_machine_gets_a_verdict() {
    let out = health(std::path::Path::new("/"), "", true);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    let verdict = v["verdict"].as_str().unwrap();
    let rc = out.status.code().unwrap();
    match verdict {
        "pass" | "warn" => assert_eq!(rc, 0),
        "fail" => assert_eq!(rc, 1),
        other => panic!("verdict {other}"),
    }
    assert_eq!(v["checked"].as_array().unwrap().len(), 9);
    let out = health(std::path::Path::new("/"), "", false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HEALTH "), "{text}");
}

/// Issue #14: a command run by hand is a run like a task's: its events
/// reach the state sink too, in the ad-hoc state file, which
/// `speediso status` shows beside (never instead of) the task's.
#[test]
fn a_run_by_hand_is_recorded_for_status_without_hiding_the_task() {
    let run = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--root")
        .arg(fixture("ecc"))
        .arg("--run-dir")
        .arg(run.path())
        .args(["--cmdline", "", "health", "--json"])
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let status = |json: bool| {
        let mut c = Command::new(BIN);
        c.arg("--run-dir")
            .arg(run.path())
            .args(["--cmdline", "", "status"]);
        if json {
            c.arg("--json");
        }
        c.env_remove("SPEEDISO").output().unwrap()
    };
    let v: Value = serde_json::from_slice(&status(true).stdout).unwrap();
    assert!(v["state"].is_null(), "the task's state was written: {v}");
    let a = &v["adhoc"];
    assert_eq!(a["task"], "health", "{v}");
    assert_eq!(a["outcome"], "failed", "{v}");
    assert_eq!(a["results"]["health"]["verdict"], "fail", "{v}");
    let types: Vec<&str> = a["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "run_started",
            "step_started",
            "result",
            "step_finished",
            "run_finished"
        ],
        "{v}"
    );
    let text = String::from_utf8_lossy(&status(false).stdout).into_owned();
    assert!(
        text.contains("by hand:") && text.contains("health failed"),
        "{text}"
    );
    assert!(text.contains("no task run recorded"), "{text}");
}

const NVME: &str = "S4EWNX0R100123 (nvme0n1, SAMSUNG MZQLB1T9HAJR-00007)";
const SATA: &str = "S45PNA0M512345 (sda, SAMSUNG MZ7LH480)";

/// The disks' own logs (captured beside their nodes in the tree): NVMe
/// critical warning and media errors, an ATA pre-failure attribute at its
/// threshold and a failed self-test FAIL naming the serial; endurance and
/// reallocated sectors WARN.
#[test]
fn disk_smart_and_nvme_health_name_the_serial() {
    assert_case(
        "disks",
        "",
        "fail",
        1,
        &[
            (
                "fail",
                "disk",
                NVME,
                "critical_warning = 0x04, available_spare = 100% (threshold 10%), temperature = 77 °C",
                Some("critical_warning = 0"),
            ),
            ("fail", "disk", NVME, "media_errors = 2", Some("> 0")),
            (
                "fail",
                "disk",
                SATA,
                "value 51 (worst 40), raw 8812",
                Some("> 51"),
            ),
            (
                "fail",
                "disk",
                SATA,
                "at power-on hour 17500",
                Some("passed"),
            ),
            ("warn", "disk", NVME, "percentage_used = 95", Some("< 90%")),
            (
                "warn",
                "disk",
                NVME,
                "composite temperature = 77 °C",
                Some("< 70 °C"),
            ),
            ("warn", "disk", SATA, "raw 12 (value 98)", Some("<= 0")),
        ],
    );
    let (v, _) = report("disks", "");
    let msgs: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        msgs,
        [
            "NVMe critical warning: reliability degraded by media or internal errors",
            "2 media and data integrity errors",
            "pre-failure attribute Raw_Read_Error_Rate (1) at or below its threshold",
            "last extended self-test failed: failed in its read element, first failing LBA 123456",
            "95% of its rated endurance used",
            "temperature 77 °C at or above its warning threshold",
            "Reallocated_Sector_Ct (5): 12",
        ]
    );
    // The thresholds move the warnings.
    let (v, rc) = report(
        "disks",
        "speediso.health.max_percentage_used=96 speediso.health.max_bad_sectors=12",
    );
    assert_eq!((v["counts"]["warn"].as_u64(), rc), (Some(1), 1));
}

/// What was ordered, beyond counts: DIMMs (naming the empty slots), disk
/// size, NIC link speed, GPUs.
#[test]
fn expected_dimms_sizes_speeds_and_gpus() {
    let ok = "speediso.expect.dimm_count=2 speediso.expect.disk_min_gb=480 \
              speediso.expect.nic_speed_mbps=10000 speediso.expect.gpu_count=0";
    assert_case("clean", ok, "pass", 0, &[]);
    let bad = "speediso.expect.dimm_count=4 speediso.expect.disk_min_gb=960 \
               speediso.expect.nic_speed_mbps=25000 speediso.expect.gpu_count=1";
    assert_case(
        "clean",
        bad,
        "fail",
        1,
        &[
            (
                "fail",
                "expect",
                "GPUs",
                "no GPUs",
                Some("= 1 (speediso.expect.gpu_count)"),
            ),
            (
                "fail",
                "expect",
                "DIMMs",
                "populated: CPU0_DIMM_A1, CPU0_DIMM_B1; empty: CPU0_DIMM_A2, CPU0_DIMM_B2",
                Some("= 4 (speediso.expect.dimm_count)"),
            ),
            (
                "fail",
                "expect",
                SATA,
                "size = 937703088 sectors",
                Some(">= 960 GB (speediso.expect.disk_min_gb)"),
            ),
            (
                "fail",
                "expect",
                "eno1",
                "speed = 10000",
                Some(">= 25000 Mb/s (speediso.expect.nic_speed_mbps)"),
            ),
        ],
    );
    // The pcie case has a GPU (class 0300).
    let (v, _) = report("pcie", "speediso.expect.gpu_count=1");
    assert_eq!(v["checked"][8]["status"], "pass", "{v:#}");
}

/// The `burnin` task on a fixture tree: health before (saved), the
/// self-tests (a fixture cannot run one: said, not passed), health after
/// compared with the snapshot of the same run.
#[test]
fn burnin_task_compares_health_after_with_before() {
    let run = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--root")
        .arg(fixture("clean"))
        .arg("--run-dir")
        .arg(run.path())
        .args([
            "--cmdline",
            "speediso.burnin.cpu_duration=1s speediso.burnin.memory_share=0.001 \
             speediso.burnin.scan_exclude=S4EWNX0R100123,S45PNA0M512345",
            "run",
            "burnin",
            "--confirm",
            "burnin",
            "--json",
        ])
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let result = |step: &str| {
        events
            .iter()
            .find(|e| e["type"] == "result" && e["step"] == step)
            .unwrap_or_else(|| panic!("no result of {step}: {text}"))
            .clone()
    };
    let after = result("health-after");
    let change = after["data"]["checked"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "change")
        .unwrap()
        .clone();
    assert_eq!(change["status"], "pass", "{change}");
    assert!(
        change["summary"]
            .as_str()
            .unwrap()
            .starts_with("compared with snapshot 'before' (PASS, 0 finding(s)): 0 new"),
        "{change}"
    );
    assert_eq!(result("burnin.cpu")["data"]["verdict"], "pass");
    // 0.1% of the tree's MemAvailable (62 GB): about 62 MiB, tested whole.
    let mem = result("burnin.memory");
    assert_eq!(mem["data"]["verdict"], "pass", "{mem}");
    let size = mem["data"]["size_bytes"].as_u64().unwrap();
    assert!((60 << 20..=64 << 20).contains(&size), "{mem}");
    // Both disks excluded by serial: nothing scanned, said so.
    let scan = result("burnin.scan");
    assert_eq!(scan["data"]["disks"].as_array().unwrap().len(), 0, "{scan}");
    assert_eq!(scan["data"]["verdict"], "warn", "{scan}");
    let st = result("burnin.selftest");
    assert_eq!(st["data"]["verdict"], "warn", "{st}");
    for d in st["data"]["disks"].as_array().unwrap() {
        assert_eq!(d["outcome"], "refused", "{d}");
    }
    assert!(run.path().join("health-snapshot-before.json").exists());
}

/// AMD's threshold bank counters: a bank shared by several CPUs is one
/// finding, named by bank and block.
#[test]
fn amd_threshold_bank_counters() {
    assert_case(
        "mce-amd",
        "",
        "warn",
        0,
        &[(
            "warn",
            "mce",
            "MCA threshold_bank4/umc",
            "error_count = 7",
            Some("0"),
        )],
    );
    let (v, _) = report("mce-amd", "");
    assert!(v["checked"][1]["summary"]
        .as_str()
        .unwrap()
        .ends_with("; 3 AMD threshold bank counter(s)"));
}

/// `speediso burnin selftest` where no disk can run one (a fixture tree
/// cannot): each disk says why, the exit status is 3 (not a pass), and a
/// bad kind is refused naming it.
#[test]
fn selftest_by_hand_says_what_could_not_be_tested() {
    let run = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--root")
        .arg(fixture("disks"))
        .arg("--run-dir")
        .arg(run.path())
        .args(["--cmdline", "", "burnin", "selftest", "--json"])
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "warn");
    let disks: Vec<(&str, &str)> = v["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["serial"].as_str().unwrap(),
                d["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        disks,
        [("S4EWNX0R100123", "refused"), ("S45PNA0M512345", "refused")]
    );
    let out = Command::new(BIN)
        .arg("--root")
        .arg(fixture("disks"))
        .args(["--cmdline", "", "burnin", "selftest", "--kind", "long"])
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kind = \"long\""));
}
