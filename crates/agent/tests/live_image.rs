//! The live image's build pieces in kickstart-snippets/: the kickstart is
//! valid for RHEL 9 (pykickstart's ksvalidator), the dracut script is clean
//! (bash -n, shellcheck), and the Foreman templates, rendered with Ruby's ERB
//! and sample host parameters, give a kernel command line that speediso's own
//! parser turns into the intended task and options.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The tool's path, or `None` (skip) when it is missing; with
/// SPEEDISO_REQUIRE_TOOLS=1 (CI) a missing tool fails the test.
fn require_tool(name: &str, path: &Path) -> Option<PathBuf> {
    let found = if path.components().count() > 1 {
        path.is_file().then(|| path.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(path))
                .find(|f| f.is_file())
        })
    };
    if found.is_none() {
        let msg = format!(
            "{name} not found ({}); run scripts/setup.sh (tests/apt/vm.txt, tests/pip/vm.txt)",
            path.display()
        );
        speediso_testsupport::missing(&msg);
    }
    found
}

fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ksvalidator() -> Option<PathBuf> {
    require_tool(
        "ksvalidator (pykickstart)",
        &repo().join("target/pyenv/bin/ksvalidator"),
    )
}

#[test]
fn kickstart_validates_for_rhel9() {
    let Some(ksv) = ksvalidator() else { return };
    let ks = repo().join("kickstart-snippets/speediso.ks");
    let (rc, out, err) = output(Command::new(&ksv).arg("-v").arg("RHEL9").arg(&ks));
    assert_eq!(rc, 0, "ksvalidator rejected speediso.ks:\n{out}\n{err}");

    // The validator really checks: the same file with a typo in a command
    // is refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.ks");
    let text = std::fs::read_to_string(&ks).unwrap();
    for (from, to) in [
        ("\nfirewall --disabled", "\nfirewal --disabled"),
        ("--size 4096", "--size big"),
    ] {
        assert!(text.contains(from));
        std::fs::write(&bad, text.replace(from, to)).unwrap();
        let (rc, _, _) = output(Command::new(&ksv).arg("-v").arg("RHEL9").arg(&bad));
        assert_ne!(rc, 0, "ksvalidator accepted a kickstart with {to:?}");
    }
}

#[test]
fn kickstart_carries_what_speediso_needs() {
    let ks = std::fs::read_to_string(repo().join("kickstart-snippets/speediso.ks")).unwrap();
    let packages: Vec<&str> = ks
        .split("%packages")
        .nth(1)
        .and_then(|s| s.split("%end").next())
        .expect("a %packages section")
        .lines()
        .skip(1)
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    for p in [
        "@core",
        "kernel",
        "dracut-live",
        "dracut-network",
        "pciutils",
        "hwdata",
        "nvme-cli",
        "smartmontools",
        "hdparm",
        "sg3_utils",
        "openssh-server",
        "kexec-tools",
        "iperf3",
        "util-linux",
    ] {
        assert!(packages.contains(&p), "%packages lacks {p}: {packages:?}");
    }
    assert!(ks.contains("%packages --excludedocs"));
    // %post installs the agent, units and tasks where the units expect them,
    // enables a unit that exists in units/, and stamps the build.
    for needle in [
        "/usr/bin/speediso",
        "/usr/lib/systemd/system",
        "/usr/lib/speediso/tasks",
        "systemctl enable speediso-dispatch.service speediso-ssh-keys.service",
        "/etc/modules-load.d/speediso-ipmi.conf",
        "SPEEDISO_BUILD",
        "/etc/motd",
    ] {
        assert!(ks.contains(needle), "speediso.ks lacks {needle:?}");
    }
    assert!(repo().join("units/speediso-dispatch.service").is_file());
    let unit = std::fs::read_to_string(repo().join("units/speediso@.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/speediso run %i"));
    // Root's keys are in place before sshd takes a login, and an inline key
    // waits for no network.
    let keys = std::fs::read_to_string(repo().join("units/speediso-ssh-keys.service")).unwrap();
    for needle in [
        "ExecStart=/usr/bin/speediso ssh-keys install\n",
        "Before=ssh.service sshd.service",
        "ConditionKernelCommandLine=speediso.ssh_key\n",
        "Type=oneshot",
    ] {
        assert!(
            keys.contains(needle),
            "speediso-ssh-keys.service lacks {needle:?}"
        );
    }
    assert!(!keys.contains("network-online"), "{keys}");
}

#[test]
fn shell_scripts_are_clean() {
    let Some(sc) = require_tool("shellcheck", Path::new("shellcheck")) else {
        return;
    };
    let mut scripts = vec![repo().join("kickstart-snippets/dracut-initramfs.sh")];
    for entry in std::fs::read_dir(repo().join("tests/vm")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "sh") {
            scripts.push(p);
        }
    }
    for s in &scripts {
        let (rc, out, err) = output(Command::new("bash").arg("-n").arg(s));
        assert_eq!(rc, 0, "bash -n {}:\n{out}{err}", s.display());
        let (rc, out, err) = output(Command::new(&sc).arg("-x").arg(s));
        assert_eq!(rc, 0, "shellcheck {}:\n{out}{err}", s.display());
    }
}

#[test]
fn dracut_script_checks_its_arguments() {
    let script = repo().join("kickstart-snippets/dracut-initramfs.sh");
    let (rc, _, err) = output(Command::new(&script).arg("6.1.0-1-amd64"));
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("usage"), "{err}");
    let (rc, _, err) = output(Command::new(&script).args(["6.1.0-1-amd64", "12 3"]));
    assert_eq!(rc, 2, "{err}");
    let (rc, _, err) = output(
        Command::new(&script)
            .args(["0.0-none", "42"])
            .env("SPEEDISO_KMODDIR", "/nonexistent"),
    );
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("no kernel modules"), "{err}");
}

/// Render one template with these host parameters; (status, stdout, stderr).
fn render(template: &str, params: &Value) -> Option<(i32, String, String)> {
    let ruby = require_tool("ruby", Path::new("ruby"))?;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("params.json");
    std::fs::write(&p, params.to_string()).unwrap();
    let ks = repo().join("kickstart-snippets");
    Some(output(
        Command::new(ruby)
            .arg(ks.join("test/render.rb"))
            .arg(ks.join(format!("foreman-{template}.erb")))
            .arg(&p),
    ))
}

/// The kernel arguments a rendered template passes: the rest of the
/// APPEND (pxelinux), linux (grub2) or kernel (iPXE) line.
fn kernel_line(template: &str, rendered: &str) -> String {
    let key = match template {
        "pxelinux" => "APPEND ",
        "grub2" => "linux ",
        "ipxe" => "kernel ",
        _ => unreachable!(),
    };
    let lines: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(key))
        .collect();
    assert_eq!(lines.len(), 1, "one {key:?} line in:\n{rendered}");
    // pxelinux/grub2 name the kernel or initrd first; speediso ignores both.
    lines[0][key.len()..].to_string()
}

fn dry_run(line: &str) -> (Value, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_speediso"))
        .env_remove("SPEEDISO")
        .env_remove("SPEEDISO_TASKS_DIR")
        .args(["dispatch", "--dry-run", "--json", "--cmdline", line])
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON for {line:?}: {e}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out.status.code().unwrap_or(-1))
}

const TEMPLATES: [&str; 3] = ["pxelinux", "grub2", "ipxe"];

fn base_params(task: &str) -> Value {
    json!({
        "livesystem_url": "http://mirror-fra1.example.net/speedtest",
        "live_squash": "speedtest-1234.squashfs",
        "hk_speedtest_autotask": task,
    })
}

#[test]
fn templates_render_the_task_and_every_set_option() {
    let mut params = base_params("rescue");
    let extra = json!({
        "speediso_report": "https://collector.example.net/speediso",
        "speediso_token": "s3cr3t-token",
        "speediso_after": "poweroff",
        "speediso_wipe_method": "auto",
        "speediso_wipe_verify": "sample:0.01",
        "speediso_wipe_exclude": "S3Z9NB0K123456,/dev/sdz",
        "speediso_install_image": "https://mirror.example.net/images/rocky9.raw.zst",
        "speediso_install_append": "console=ttyS1,115200 inst.ks=http://ks.example.net/a b",
        // Not set: an empty parameter writes no option.
        "speediso_net_server": "",
    });
    for (k, v) in extra.as_object().unwrap() {
        params[k] = v.clone();
    }
    for t in TEMPLATES {
        let Some((rc, out, err)) = render(t, &params) else {
            return;
        };
        assert_eq!(rc, 0, "{t}: {err}");
        let line = kernel_line(t, &out);
        assert!(
            line.contains(
                "root=live:http://mirror-fra1.example.net/speedtest/speedtest-1234.squashfs"
            ),
            "{t}: {line}"
        );
        assert!(!line.contains("speediso.net.server"), "{t}: {line}");
        assert!(line.contains("speediso.token=s3cr3t-token"), "{t}: {line}");
        let (plan, rc) = dry_run(&line);
        assert_eq!(rc, 0, "{t}: {plan:#}");
        assert_eq!(plan["task"], "rescue", "{t}: {plan:#}");
        assert_eq!(plan["source"], "systemd_setenv", "{t}: {plan:#}");
        assert_eq!(plan["after"], "poweroff", "{t}: {plan:#}");
        assert_eq!(
            plan["options"],
            json!({
                "report": "https://collector.example.net/speediso",
                // The template wrote it; the plan never shows it.
                "token": "***",
                "after": "poweroff",
                "wipe.method": "auto",
                "wipe.verify": "sample:0.01",
                "wipe.exclude": "S3Z9NB0K123456,/dev/sdz",
                "install.image": "https://mirror.example.net/images/rocky9.raw.zst",
                "install.append": "console=ttyS1,115200 inst.ks=http://ks.example.net/a b",
            }),
            "{t}: {line}"
        );
        assert_eq!(plan["warnings"], json!([]), "{t}: {plan:#}");
    }
}

#[test]
fn templates_without_options_write_none() {
    for t in TEMPLATES {
        let Some((rc, out, err)) = render(t, &base_params("rescue")) else {
            return;
        };
        assert_eq!(rc, 0, "{t}: {err}");
        let line = kernel_line(t, &out);
        assert!(!line.contains("speediso."), "{t}: {line}");
        assert!(
            line.contains("systemd.setenv=SPEEDISO=rescue"),
            "{t}: {line}"
        );
        let (plan, rc) = dry_run(&line);
        assert_eq!((plan["task"].clone(), rc), (json!("rescue"), 0), "{plan:#}");
        assert_eq!(plan["options"], json!({}), "{t}: {plan:#}");
    }
}

#[test]
fn templates_pass_bad_tasks_through_to_a_rejection() {
    let inventory_built = speediso::registry::module_for("inventory").is_ok();
    for t in TEMPLATES {
        // Empty: what a host with the parameter cleared gets.
        let Some((rc, out, err)) = render(t, &base_params("")) else {
            return;
        };
        assert_eq!(rc, 0, "{t}: {err}");
        let line = kernel_line(t, &out);
        assert!(
            line.split_whitespace()
                .any(|w| w == "systemd.setenv=SPEEDISO="),
            "{t}: {line}"
        );
        let (plan, rc) = dry_run(&line);
        assert_eq!(rc, 2, "{t}: an empty task must be rejected: {plan:#}");
        assert_eq!(plan["task"], Value::Null, "{t}: {plan:#}");
        assert_eq!(plan["rejected"]["value"], "", "{t}: {plan:#}");

        // A typo.
        let (_, out, _) = render(t, &base_params("inventroy")).unwrap();
        let (plan, rc) = dry_run(&kernel_line(t, &out));
        assert_eq!(rc, 2, "{t}: {plan:#}");
        assert_eq!(plan["rejected"]["value"], "inventroy", "{t}: {plan:#}");
        let reason = plan["rejected"]["reason"].as_str().unwrap();
        assert!(reason.contains("inventroy"), "{t}: {reason}");

        // The real task: planned when the module is in this build, else
        // rejected by name (nothing pretends to run it).
        let (_, out, _) = render(t, &base_params("inventory")).unwrap();
        let (plan, rc) = dry_run(&kernel_line(t, &out));
        if inventory_built {
            assert_eq!((plan["task"].clone(), rc), (json!("inventory"), 0));
        } else {
            assert_eq!(rc, 2, "{plan:#}");
            let reason = plan["rejected"]["reason"].as_str().unwrap();
            assert!(reason.contains("not available in this build"), "{reason}");
        }
    }
}

#[test]
fn template_refuses_a_value_a_cmdline_cannot_carry() {
    let mut params = base_params("rescue");
    params["speediso_install_append"] = json!("ks=\"x\"");
    for t in TEMPLATES {
        let Some((rc, _, err)) = render(t, &params) else {
            return;
        };
        assert_ne!(rc, 0, "{t}: rendered a value with a double quote");
        assert!(err.contains("speediso_install_append"), "{t}: {err}");
    }
}

/// Every option the agent knows (but the task, which is
/// hk_speedtest_autotask) can be set from a host parameter named after it
/// (`speediso.install.kernel_sha256` ← `speediso_install_kernel_sha256`):
/// a missing row silently dropped the installer checksums in the VM suite.
#[test]
fn templates_map_every_known_option() {
    let mut params = base_params("rescue");
    let keys: Vec<&str> = speediso::plan::known_options()
        .into_iter()
        .filter_map(|(s, _)| s.key)
        .filter(|k| *k != "task")
        .collect();
    for k in &keys {
        params[format!("speediso_{}", k.replace('.', "_"))] = json!(format!("v-{k}"));
    }
    for t in TEMPLATES {
        let Some((rc, out, err)) = render(t, &params) else {
            return;
        };
        assert_eq!(rc, 0, "{t}: {err}");
        let line = kernel_line(t, &out);
        let missing: Vec<&&str> = keys
            .iter()
            .filter(|k| !line.contains(&format!(" speediso.{k}=v-{k}")))
            .collect();
        assert!(
            missing.is_empty(),
            "{t}: no host parameter writes {missing:?}: {line}"
        );
    }
}

/// The optional GPU image (speediso-nvidia.ks): valid for RHEL 9 with its
/// %include of speediso.ks followed (ksvalidator -i, run where the include
/// resolves), carrying the driver, nvidia-smi, DCGM and the fabric manager;
/// a typo in it, or a missing include, is refused.
#[test]
fn gpu_kickstart_validates_with_its_include() {
    let Some(ksv) = ksvalidator() else { return };
    let dir = repo().join("kickstart-snippets");
    let check = |file: &str| {
        output(
            Command::new(&ksv)
                .current_dir(&dir)
                .args(["-i", "-v", "RHEL9", file]),
        )
    };
    let (rc, out, err) = check("speediso-nvidia.ks");
    assert_eq!(
        rc, 0,
        "ksvalidator rejected speediso-nvidia.ks:\n{out}\n{err}"
    );
    let text = std::fs::read_to_string(dir.join("speediso-nvidia.ks")).unwrap();
    for p in [
        "\nnvidia-driver\n",
        "\nnvidia-driver-cuda\n",
        "\ndatacenter-gpu-manager\n",
        "\nnvidia-fabric-manager\n",
        "\n%include speediso.ks\n",
        "\nmodule --name=nvidia-driver --stream=",
    ] {
        assert!(text.contains(p), "speediso-nvidia.ks lacks {p:?}");
    }
    let tmp = tempfile::Builder::new()
        .prefix("bad-")
        .suffix(".ks")
        .tempfile_in(&dir)
        .unwrap();
    for (from, to) in [
        ("\nmodule --name", "\nmodul --name"),
        ("%include speediso.ks", "%include no-such.ks"),
    ] {
        std::fs::write(tmp.path(), text.replace(from, to)).unwrap();
        let (rc, _, _) = check(tmp.path().file_name().unwrap().to_str().unwrap());
        assert_ne!(rc, 0, "ksvalidator accepted speediso-nvidia.ks with {to:?}");
    }
}
