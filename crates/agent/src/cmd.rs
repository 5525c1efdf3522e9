//! The one way to run an external tool: logs the argv, closes stdin, keeps
//! the tail of stderr and names the command in the error.

use anyhow::{bail, Context, Result};
use std::process::{Command, Stdio};

/// How much of stderr an error keeps.
const STDERR_TAIL: usize = 4096;

/// Run `argv` to completion and return its stdout. A non-zero exit is an
/// error that names the command and quotes the end of its stderr.
pub fn run(argv: &[&str]) -> Result<String> {
    let (prog, args) = argv.split_first().context("empty command")?;
    tracing::debug!(?argv, "running");
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {}", argv.join(" ")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let mut start = err.len().saturating_sub(STDERR_TAIL);
        while !err.is_char_boundary(start) {
            start += 1;
        }
        let tail = &err[start..];
        bail!(
            "{} failed ({}): {}",
            argv.join(" "),
            out.status,
            tail.trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
