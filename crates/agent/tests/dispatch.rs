//! The built binary's `dispatch --dry-run --json` against real PXE APPEND
//! lines (pxelinux/Foreman style), plus `run`, `tasks` and `status`.

use serde_json::Value;
use std::process::Command;

fn speediso() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_speediso"));
    // Isolate from the machine: no SPEEDISO from the environment, no state
    // in the real /run, no task files from /etc.
    c.env_remove("SPEEDISO")
        .env_remove("SPEEDISO_TASKS_DIR")
        .env_remove("INVOCATION_ID")
        .env_remove("NOTIFY_SOCKET");
    c
}

fn dry_run(line: &str, env: Option<&str>) -> (Value, i32) {
    let mut c = speediso();
    c.args(["dispatch", "--dry-run", "--json", "--cmdline", line]);
    if let Some(e) = env {
        c.env("SPEEDISO", e);
    }
    let out = c.output().expect("running speediso");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON for {line:?}: {e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out.status.code().unwrap_or(-1))
}

/// A Foreman PXELinux template's APPEND line, with `extra` spliced in.
fn foreman(extra: &str) -> String {
    format!(
        "BOOT_IMAGE=boot/speedtest/vmlinuz initrd=boot/speedtest/initrd.img \
         root=live:http://mirror-fra1.example.net/speedtest/speedtest.squashfs \
         rd.live.image rd.live.overlay.overlayfs=1 rd.neednet=1 ip=dhcp noeject \
         modprobe.blacklist=nouveau,radeon rd.driver.blacklist=nouveau nomodeset \
         console=tty0 console=ttyS1,115200n8 BOOTIF=01-52-54-00-12-34-56 \
         {extra}"
    )
}

/// Expected outcome of one table case.
enum Want {
    /// Plan for this task, with these option keys present.
    Task(&'static str),
    /// Rejected; the reason contains this text; the rejected value is this.
    Rejected(Option<&'static str>, &'static str),
}

#[test]
fn dispatch_table() {
    let long_junk = "x".repeat(4096);
    let big_line = foreman(&format!("systemd.setenv=SPEEDISO=inventory {long_junk}"));
    let junk_line = format!("{long_junk} {long_junk}=\"{long_junk}");
    let cases: Vec<(String, Option<&str>, Want)> = vec![
        // What Foreman's template writes today.
        (
            foreman("systemd.setenv=SPEEDISO=inventory"),
            None,
            Want::Task("inventory"),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=speedtest"),
            None,
            Want::Task("speedtest"),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=rescue"),
            None,
            Want::Task("rescue"),
        ),
        // The alternative key.
        (
            foreman("speediso.task=inventory"),
            None,
            Want::Task("inventory"),
        ),
        // systemd.setenv wins over speediso.task.
        (
            foreman("speediso.task=rescue systemd.setenv=SPEEDISO=inventory"),
            None,
            Want::Task("inventory"),
        ),
        // The environment wins over the command line.
        (
            foreman("systemd.setenv=SPEEDISO=inventory"),
            Some("rescue"),
            Want::Task("rescue"),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=inventory"),
            Some(""),
            Want::Rejected(Some(""), "empty task name"),
        ),
        // Repeated key: last one wins.
        (
            foreman("systemd.setenv=SPEEDISO=rescue systemd.setenv=SPEEDISO=inventory"),
            None,
            Want::Task("inventory"),
        ),
        (
            foreman("speediso.task=inventory speediso.task=rescue"),
            None,
            Want::Task("rescue"),
        ),
        // Other setenv variables do not count.
        (
            foreman(
                "systemd.setenv=LANG=C systemd.setenv=SPEEDISO=inventory systemd.setenv=TERM=vt100",
            ),
            None,
            Want::Task("inventory"),
        ),
        // Quoted words.
        (
            foreman("\"systemd.setenv=SPEEDISO=inventory\""),
            None,
            Want::Task("inventory"),
        ),
        (
            foreman("systemd.setenv=\"SPEEDISO=inventory\""),
            None,
            Want::Task("inventory"),
        ),
        (
            foreman("speediso.task=\"rescue\""),
            None,
            Want::Task("rescue"),
        ),
        (
            foreman("speediso.install.append=\"inst.ks=http://f/ks a=b\" speediso.task=rescue"),
            None,
            Want::Task("rescue"),
        ),
        // After `--` everything belongs to init.
        (
            foreman("-- systemd.setenv=SPEEDISO=inventory"),
            None,
            Want::Rejected(None, "no task given"),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=rescue -- systemd.setenv=SPEEDISO=inventory"),
            None,
            Want::Task("rescue"),
        ),
        // No task at all.
        (foreman(""), None, Want::Rejected(None, "no task given")),
        (String::new(), None, Want::Rejected(None, "no task given")),
        // Empty values.
        (
            foreman("systemd.setenv=SPEEDISO="),
            None,
            Want::Rejected(Some(""), "empty task name"),
        ),
        (
            foreman("systemd.setenv=SPEEDISO"),
            None,
            Want::Rejected(Some(""), "empty task name"),
        ),
        (
            foreman("speediso.task="),
            None,
            Want::Rejected(Some(""), "empty task name"),
        ),
        // Unknown and malformed values.
        (
            foreman("systemd.setenv=SPEEDISO=k7Jq2"),
            None,
            Want::Rejected(Some("k7Jq2"), "malformed task name"),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=stresstest"),
            None,
            Want::Rejected(
                Some("stresstest"),
                "unknown task 'stresstest'; known tasks: burnin, decommission, inventory",
            ),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=Inventory"),
            None,
            Want::Rejected(Some("Inventory"), "malformed task name"),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=inventory;reboot"),
            None,
            Want::Rejected(Some("inventory;reboot"), "malformed"),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=$(reboot)"),
            None,
            Want::Rejected(Some("$(reboot)"), "malformed"),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=`id`|sh&"),
            None,
            Want::Rejected(Some("`id`|sh&"), "malformed"),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=../../etc/passwd"),
            None,
            Want::Rejected(Some("../../etc/passwd"), "malformed"),
        ),
        (
            foreman(&format!("systemd.setenv=SPEEDISO={}", "a".repeat(33))),
            None,
            Want::Rejected(None, "malformed task name"),
        ),
        // A 4 KiB word of junk beside a good task.
        (big_line, None, Want::Task("inventory")),
        (junk_line, None, Want::Rejected(None, "no task given")),
        // Bad option values reject the plan, naming key and value.
        (
            foreman("systemd.setenv=SPEEDISO=rescue speediso.after=sometime"),
            None,
            Want::Rejected(Some("rescue"), "bad value \"sometime\" for speediso.after"),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=rescue speediso.report=ftp://x/"),
            None,
            Want::Rejected(Some("rescue"), "speediso.report"),
        ),
        // The install module checks its options at plan time.
        (
            foreman("systemd.setenv=SPEEDISO=lininstall"),
            None,
            Want::Rejected(Some("lininstall"), "set speediso.install.image="),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=lininstall speediso.install.image=http://repo/os.raw.zst"),
            None,
            Want::Rejected(Some("lininstall"), "needs speediso.install.sha256="),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=lininstall speediso.install.kernel=http://f/vmlinuz"),
            None,
            Want::Rejected(Some("lininstall"), "needs speediso.install.initrd="),
        ),
        (
            foreman(
                "systemd.setenv=SPEEDISO=lininstall speediso.install.image=http://repo/os.raw.zst speediso.install.sha256=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            None,
            Want::Task("lininstall"),
        ),
        (
            foreman(
                "systemd.setenv=SPEEDISO=wipe speediso.wipe.method=zero speediso.wipe.exclude=S1",
            ),
            None,
            Want::Task("wipe"),
        ),
        (
            foreman("systemd.setenv=SPEEDISO=decommission speediso.wipe.method=fast"),
            None,
            Want::Rejected(Some("decommission"), "speediso.wipe.method"),
        ),
    ];
    assert!(cases.len() >= 30);
    for (line, env, want) in &cases {
        let (v, rc) = dry_run(line, *env);
        let short: String = line
            .chars()
            .rev()
            .take(80)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        match want {
            Want::Task(t) => {
                // A task whose module has not landed yet is rejected for
                // that reason, and only that one.
                if let Some(reason) = v["rejected"]["reason"].as_str() {
                    assert!(
                        reason.contains("is not available in this build"),
                        "…{short}: {v}"
                    );
                    continue;
                }
                assert_eq!(v["task"], *t, "…{short}: {v}");
                assert_eq!(v["unit"], format!("speediso@{t}.service"), "…{short}");
                assert_eq!(rc, 0, "…{short}");
                assert!(v["steps"].is_array() && v["warnings"].is_array());
            }
            Want::Rejected(value, reason) => {
                assert!(v["task"].is_null(), "…{short}: {v}");
                assert!(v["unit"].is_null());
                let got = v["rejected"]["reason"].as_str().unwrap_or_default();
                assert!(
                    got.contains(reason),
                    "…{short}: reason {got:?} lacks {reason:?}"
                );
                if let Some(val) = value {
                    assert_eq!(v["rejected"]["value"], *val, "…{short}");
                }
                let want_rc = if v["rejected"]["value"].is_null() {
                    0
                } else {
                    2
                };
                assert_eq!(rc, want_rc, "…{short}");
            }
        }
    }
}

#[test]
fn dry_run_fields_and_warnings() {
    let (v, rc) = dry_run(
        &foreman("systemd.setenv=SPEEDISO=rescue speediso.colour=blue speediso.after=poweroff speediso.report=https://collector.example.net speediso.token=abc"),
        None,
    );
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["task"], "rescue");
    assert_eq!(
        v["after"], "poweroff",
        "speediso.after overrides the task's"
    );
    assert_eq!(v["destructive"], false);
    assert_eq!(v["steps"], serde_json::json!([]));
    assert_eq!(v["options"]["report"], "https://collector.example.net");
    // Set, but never shown (audit item 1).
    assert_eq!(v["options"]["token"], "***");
    assert!(v["options"].get("colour").is_none());
    let w = v["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1);
    assert!(w[0].as_str().unwrap().contains("speediso.colour"));
    assert!(v["rejected"].is_null());
}

#[test]
fn rejected_dispatch_emits_event_and_starts_nothing() {
    let run_dir = tempfile::tempdir().unwrap();
    let out = speediso()
        .args([
            "dispatch",
            "--json",
            "--cmdline",
            &foreman("systemd.setenv=SPEEDISO=stresstest"),
        ])
        .env("SPEEDISO_RUN_DIR", run_dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let line = String::from_utf8(out.stdout).unwrap();
    let ev: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(ev["type"], "dispatch_rejected");
    assert_eq!(ev["value"], "stresstest");
    assert_eq!(ev["seq"], 0);
    assert_eq!(ev["host"]["boot_mac"], "52:54:00:12:34:56");
    assert!(ev["known_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "rescue"));
    // The state file says the same, for `speediso status`.
    let st: Value =
        serde_json::from_slice(&std::fs::read(run_dir.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(st["outcome"], "rejected");

    // Readable form on the console.
    let out = speediso()
        .args(["dispatch", "--cmdline", "systemd.setenv=SPEEDISO="])
        .env("SPEEDISO_RUN_DIR", run_dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("empty task name"), "{text}");
    assert!(text.contains("staying up for SSH"), "{text}");
    let out = speediso()
        .args(["status", "--cmdline", "systemd.setenv=SPEEDISO="])
        .env("SPEEDISO_RUN_DIR", run_dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("REJECTED"), "{text}");
    assert!(
        text.contains("last run:") && text.contains("rejected"),
        "{text}"
    );
}

#[test]
fn run_rescue_emits_ordered_events() {
    let run_dir = tempfile::tempdir().unwrap();
    let out = speediso()
        .args([
            "run",
            "rescue",
            "--json",
            "--cmdline",
            "quiet speediso.zzz=1",
        ])
        .env("SPEEDISO_RUN_DIR", run_dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let evs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["run_started", "warning", "run_finished"]);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e["seq"], i as u64);
        assert_eq!(e["v"], 1);
        assert_eq!(e["run_id"], evs[0]["run_id"]);
        assert_eq!(e["task"], "rescue");
    }
    assert_eq!(evs[2]["outcome"], "success");
    let out = speediso()
        .args(["status", "--json", "--cmdline", "speediso.task=rescue"])
        .env("SPEEDISO_RUN_DIR", run_dir.path())
        .output()
        .unwrap();
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["boot_task"], "rescue");
    assert_eq!(st["state"]["outcome"], "success");
    assert_eq!(st["state"]["run_id"], evs[0]["run_id"]);
}

/// A destructive task (from a task file, so this test does not depend on the
/// wipe module) refuses unless the boot asked for it or `--confirm` names it.
#[test]
fn destructive_guard() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("scrub.toml"),
        "name = 'scrub'\ndescription = 'test'\ndestructive = true\ntime_limit = '1m'\nafter = 'stay'\nsteps = []\n",
    )
    .unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let run = |line: &str, extra: &[&str]| {
        let mut c = speediso();
        c.args(["run", "scrub", "--json", "--cmdline", line])
            .args(extra)
            .env("SPEEDISO_TASKS_DIR", dir.path())
            .env("SPEEDISO_RUN_DIR", run_dir.path());
        c.output().unwrap()
    };
    // Booted for inventory: `systemctl start speediso@scrub` must refuse.
    let out = run("systemd.setenv=SPEEDISO=inventory", &[]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\"outcome\":\"refused\""), "{text}");
    assert!(!text.contains("run_started"), "nothing may start: {text}");
    // Confirming another task does not count.
    assert_eq!(run("", &["--confirm", "wipe"]).status.code(), Some(3));
    // Booted for it, or confirmed by name: runs.
    assert_eq!(
        run("systemd.setenv=SPEEDISO=scrub", &[]).status.code(),
        Some(0)
    );
    assert_eq!(run("", &["--confirm", "scrub"]).status.code(), Some(0));
}

#[test]
fn tasks_lists_every_shipped_task() {
    let out = speediso()
        .args(["tasks", "--json", "--cmdline", ""])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for n in [
        "decommission",
        "inventory",
        "lininstall",
        "rescue",
        "speedtest",
        "wipe",
    ] {
        assert!(names.contains(&n), "{names:?}");
    }
    let out = speediso()
        .args(["tasks", "--cmdline", ""])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("decommission") && text.contains("poweroff"),
        "{text}"
    );
}

#[test]
fn broken_override_is_reported_not_silently_replaced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rescue.toml"),
        "name = 'rescue'\nsteps = 3\n",
    )
    .unwrap();
    let out = speediso()
        .args([
            "dispatch",
            "--dry-run",
            "--json",
            "--cmdline",
            "speediso.task=rescue",
        ])
        .env("SPEEDISO_TASKS_DIR", dir.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = v["rejected"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("broken definition") && reason.contains("rescue.toml"),
        "{reason}"
    );
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let Some(analyze) = which("systemd-analyze") else {
        require_tool("systemd-analyze");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_speediso");
    let units = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("units");
    let mut paths = Vec::new();
    for e in std::fs::read_dir(&units).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("/usr/bin/speediso"), "{}", p.display());
        // verify checks that ExecStart= exists; point it at the built binary.
        let dst = dir.path().join(p.file_name().unwrap());
        std::fs::write(&dst, text.replace("/usr/bin/speediso", bin)).unwrap();
        paths.push(dst);
    }
    let mut args: Vec<String> = vec!["verify".into()];
    for p in &paths {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        args.push(if name.ends_with("@.service") {
            // A template is verified through an instance.
            dir.path()
                .join(name.replace("@.", "@inventory."))
                .display()
                .to_string()
        } else {
            p.display().to_string()
        });
    }
    let out = Command::new(analyze).args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{args:?}: {stderr}"
    );
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// Missing tool: fail in CI (SPEEDISO_REQUIRE_TOOLS=1), skip elsewhere.
fn require_tool(tool: &str) {
    speediso_testsupport::missing(&format!("{tool} is required but not installed"));
}

#[test]
fn help_teaches() {
    let out = speediso().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for w in ["dispatch", "run", "tasks", "status", "Exit status"] {
        assert!(text.contains(w), "{text}");
    }
    let out = speediso().args(["tasks", "--options"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("speediso.report") && text.contains("speediso.wipe.method"),
        "{text}"
    );
    // The step options come from the modules' own declarations.
    let line = |m: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{m} ")))
            .unwrap_or_else(|| panic!("no step-options line for {m}: {text}"))
            .to_string()
    };
    assert!(
        line("bench.cpu").contains("duration, threads, max_prime, workloads"),
        "{text}"
    );
    assert!(line("inventory").contains("pci_ids, smart"), "{text}");
    assert!(line("wipe").contains("none"), "{text}");
}
