//! The one way to run an external tool: logs the argv, closes stdin, keeps
//! the tail of stderr and names the command in the error.

use anyhow::{bail, Context, Result};
use std::process::{Command, Stdio};

/// How much of stderr an error keeps.
const STDERR_TAIL: usize = 4096;

/// Run `argv` to completion and return its stdout. A non-zero exit is an
/// error that names the command and quotes the end of its stderr.
pub fn run(argv: &[&str]) -> Result<String> {
    let o = output(argv)?;
    if !o.status.success() {
        bail!(
            "{} failed ({}): {}",
            argv.join(" "),
            o.status,
            o.stderr_tail
        );
    }
    Ok(o.stdout)
}

/// What a finished command left: its status, stdout, and the end of stderr.
pub struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr_tail: String,
}

/// Run `argv` to completion whatever its exit status (for tools that report
/// a failed test with both a document on stdout and a non-zero status).
pub fn output(argv: &[&str]) -> Result<Output> {
    let (prog, args) = argv.split_first().context("empty command")?;
    tracing::debug!(?argv, "running");
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {}", argv.join(" ")))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let mut start = err.len().saturating_sub(STDERR_TAIL);
    while !err.is_char_boundary(start) {
        start += 1;
    }
    Ok(Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr_tail: err[start..].trim().to_string(),
    })
}

/// Is `prog` an executable file in a directory of PATH?
pub fn on_path(prog: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join(prog))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}
