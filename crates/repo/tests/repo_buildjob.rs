//! deploy/build-job.sh: shellcheck-clean, numbers the build, writes the
//! SPEEDISO_BUILD motd line into an image tree, publishes with speediso-repo.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_speediso-repo");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/build-job.sh");

fn have_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    found
        || speediso_testsupport::missing(&format!(
            "{tool} is required; install the Debian package listed in tests/apt/repo.txt"
        ))
}

/// The script with a clean CI environment plus `env`.
fn script(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("bash");
    c.arg(SCRIPT).args(args);
    for k in [
        "SPEEDISO_BUILD_NUMBER",
        "BUILD_NUMBER",
        "CI_PIPELINE_IID",
        "GITHUB_RUN_NUMBER",
        "SPEEDISO_JOB",
        "SPEEDISO_REPO_ROOT",
        "SPEEDISO_REPO_SSH",
        "SPEEDISO_REPO_BIN",
        "SPEEDISO_FILES",
        "SPEEDISO_KEEP",
    ] {
        c.env_remove(k);
    }
    c.envs(env.iter().copied());
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn build_job_script_is_shellcheck_clean() {
    if !have_tool("shellcheck") {
        return;
    }
    let out = Command::new("shellcheck").arg(SCRIPT).output().unwrap();
    assert!(out.status.success(), "shellcheck: {}", text(&out));
}

#[test]
fn build_number_comes_from_the_ci_and_is_checked() {
    let out = script(&["number"], &[("BUILD_NUMBER", "12")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "12");
    let out = script(
        &["number"],
        &[("BUILD_NUMBER", "12"), ("SPEEDISO_BUILD_NUMBER", "40")],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "40");
    let out = script(&["number"], &[("CI_PIPELINE_IID", "5")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    let out = script(&["number"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no build number"), "{}", text(&out));
    let out = script(&["number"], &[("BUILD_NUMBER", "12a")]);
    assert!(
        !out.status.success() && text(&out).contains("'12a' is not a positive integer"),
        "{}",
        text(&out)
    );
}

#[test]
fn motd_line_is_written_once_and_build_is_published() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(
        rootfs.join("etc/motd"),
        "Welcome to SpeedTest\nSPEEDISO_BUILD=speedtest-6 (built earlier)\n",
    )
    .unwrap();
    let env = [("SPEEDISO_BUILD_NUMBER", "7")];
    let out = script(&["motd", rootfs.to_str().unwrap()], &env);
    assert!(out.status.success(), "{}", text(&out));
    let motd = fs::read_to_string(rootfs.join("etc/motd")).unwrap();
    assert!(motd.starts_with("Welcome to SpeedTest\n"), "{motd}");
    let lines: Vec<_> = motd
        .lines()
        .filter(|l| l.starts_with("SPEEDISO_BUILD="))
        .collect();
    assert_eq!(lines.len(), 1, "{motd}");
    assert!(
        lines[0].starts_with("SPEEDISO_BUILD=speedtest-7 (built 20"),
        "{motd}"
    );
    let stamp = fs::read_to_string(rootfs.join("etc/speediso-build")).unwrap();
    assert!(
        stamp.starts_with("SPEEDISO_BUILD=speedtest-7\nSPEEDISO_BUILT=20"),
        "{stamp}"
    );
    let out = script(&["motd", tmp.path().join("nope").to_str().unwrap()], &env);
    assert!(
        !out.status.success() && text(&out).contains("nope/etc does not exist"),
        "{}",
        text(&out)
    );

    // Publish the build's outputs through the real speediso-repo.
    let outdir = tmp.path().join("out");
    fs::create_dir(&outdir).unwrap();
    let repo = tmp.path().join("repo");
    fs::create_dir(&repo).unwrap();
    for name in ["vmlinuz", "initrd", "speedtest.squashfs"] {
        fs::write(outdir.join(name), format!("build 7 {name}")).unwrap();
    }
    let env = [
        ("SPEEDISO_BUILD_NUMBER", "7"),
        ("SPEEDISO_REPO_BIN", BIN),
        ("SPEEDISO_REPO_ROOT", repo.to_str().unwrap()),
    ];
    let out = script(&["publish", outdir.to_str().unwrap()], &env);
    assert!(!out.status.success(), "published without the ISO");
    assert!(
        text(&out).contains("speedtest.iso is missing"),
        "{}",
        text(&out)
    );
    assert!(!repo.join("builds/speedtest/7").exists());
    fs::write(outdir.join("speedtest.iso"), "build 7 iso").unwrap();
    let out = script(&["publish", outdir.to_str().unwrap()], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read_to_string(repo.join("speedtest.squashfs")).unwrap(),
        "build 7 speedtest.squashfs"
    );
    assert_eq!(
        fs::canonicalize(repo.join("vmlinuz")).unwrap(),
        fs::canonicalize(repo.join("builds/speedtest/7/vmlinuz")).unwrap()
    );
    assert!(Path::new(&repo.join("builds/speedtest/7/manifest.json")).is_file());
}
