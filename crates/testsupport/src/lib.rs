//! Shared by every integration test of the workspace, written once:
//! - `missing`/`have_tool`: the skip-or-fail gate. A test that needs a tool,
//!   root or a kernel feature it does not have skips with a `SKIP:` line,
//!   or fails when `SPEEDISO_REQUIRE_TOOLS=1` (CI), so CI can never pass a
//!   test by skipping it;
//! - `bin`: a binary of the workspace, also from another crate's tests;
//! - `REPO`: the repository root (fixtures, tasks, units, scripts);
//! - `output_ok`/`assert_success`: a command that must succeed;
//!   `sized_file`: a sparse image; `free_port`: a loopback port;
//! - `loops`: loop devices over temp files the test creates and removes;
//! - `soft_aes`: AES-128 in plain arithmetic, what a CPU without AES-NI
//!   computes (checks the wipe's AES stream);
//! - `collector` (feature `collector`): the real collector on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod images;
pub mod loops;
pub mod soft_aes;

#[cfg(feature = "collector")]
pub mod collector;

/// The repository root: `crates/testsupport/../..`.
pub const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `REPO` joined with `rel`.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(REPO).join(rel)
}

/// Whether tests must fail rather than skip when something is missing.
pub fn required() -> bool {
    std::env::var("SPEEDISO_REQUIRE_TOOLS").as_deref() == Ok("1")
}

/// Something a test needs is missing: panics under
/// `SPEEDISO_REQUIRE_TOOLS=1`, else prints `SKIP: {what}` and returns
/// `false`, so a test reads `if !have_tool(..) { return; }`.
#[track_caller]
pub fn missing(what: &str) -> bool {
    if required() {
        panic!("{what} (SPEEDISO_REQUIRE_TOOLS=1)");
    }
    eprintln!("SKIP: {what}");
    false
}

/// Is `tool` on PATH (or in /usr/sbin, /sbin)?
pub fn on_path(tool: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .any(|d| Path::new(d).join(tool).is_file())
}

/// `tool` is installed, or `missing("{tool} is required; {hint}")`.
#[track_caller]
pub fn have_tool(tool: &str, hint: &str) -> bool {
    on_path(tool) || missing(&format!("{tool} is required; {hint}"))
}

/// The path of the workspace binary `name` (`speediso`,
/// `speediso-collector`, `speediso-repo`) next to this test executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`). A
/// `cargo test` of the workspace builds every binary before any test runs;
/// `cargo test -p <one crate>` builds only that crate's, so then build the
/// others first (the panic says how).
pub fn bin(name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")) {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test executable under target/<profile>/deps");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is not built: run `cargo test` at the workspace root, or `cargo build --bin {name}` first",
        p.display()
    );
    p
}

/// Runs `cmd` to its end and returns its output; panics naming the command,
/// with its exit status, stdout and stderr, unless it exits 0.
#[track_caller]
pub fn output_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert_success(&out, &format!("{cmd:?}"));
    out
}

/// Panics unless `out` (of the command `what`) is an exit 0, with its exit
/// status, stdout and stderr.
#[track_caller]
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Create (or truncate) `path` as a file of `len` bytes, none written: a
/// sparse image for a loop device or a prober.
pub fn sized_file(path: &Path, len: u64) {
    std::fs::File::create(path)
        .and_then(|f| f.set_len(len))
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
}

/// Write the partition table `script` (sfdisk's input format) into the
/// image file `image`, without asking any kernel to reread it.
pub fn sfdisk(image: &Path, script: &str) {
    use std::io::Write;
    let mut child = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(image)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("running sfdisk: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "sfdisk failed on {} for {script}",
        image.display()
    );
}

/// A self-signed P-256 certificate `dir/NAME.pem` with its key
/// `dir/NAME.key`, valid 2 days, CN=NAME, with each of `extensions` added
/// (`-addext`): a CA's constraints or a server's subjectAltName.
pub fn openssl_self_signed(dir: &Path, name: &str, extensions: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", &format!("/CN={name}")]);
    for e in extensions {
        cmd.args(["-addext", e]);
    }
    cmd.arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.pem")));
    output_ok(&mut cmd);
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, then released),
/// for a server the test starts next.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// The entry of `device` in a wipe plan's `skipped` list (`speediso wipe
/// --plan --json`, or the wipe step's result), if it is there.
pub fn skipped<'a>(plan: &'a serde_json::Value, device: &str) -> Option<&'a serde_json::Value> {
    plan["skipped"]
        .as_array()?
        .iter()
        .find(|s| s["device"] == device)
}
