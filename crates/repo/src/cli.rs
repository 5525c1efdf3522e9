//! The `speediso-repo` command line: argument definitions, one handler per
//! subcommand, human and JSON output. `src/bin/speediso-repo.rs` calls `run`.

use super::{fsops, PublishOpts, DEFAULT_KEEP};
use anyhow::Result;
use clap::{Parser, Subcommand};
use speediso_proto::exit;
use std::path::{Path, PathBuf};
use std::time::Duration;

const AFTER_HELP: &str = "\
Layout of the repository root:
  builds/<job>/<N>/<file>         build N of a job, complete and immutable
  builds/<job>/<N>/manifest.json  size and SHA-256 of every file
  builds/<job>/current -> <N>     the live build: one rename switches every name
  <file> -> builds/<job>/current/<file>   the unversioned names clients fetch
  .live/<file> -> ../builds/<job>/current  used by the nginx config (deploy/nginx/)

Publishing and rolling back never leave a missing or half-written file behind
an unversioned name, even when killed: the build is copied and fsync'd under
a hidden name first, and links change only by rename(2).

Examples:
  speediso-repo publish --root /srv/speediso/repo --job speedtest --build 42 \\
      out/vmlinuz out/initrd out/speedtest.squashfs out/speedtest.iso
  speediso-repo rollback --root /srv/speediso/repo --job speedtest
  speediso-repo rollback --root /srv/speediso/repo --job speedtest --to 42
  speediso-repo list --root /srv/speediso/repo --json
  speediso-repo verify --root /srv/speediso/repo

Exit status: 0 success, 1 failure (or verify found a problem), 2 bad arguments.";

/// speediso-repo: deliver numbered image builds on the central repository
/// server, with atomic "latest" links and instant rollback.
#[derive(Debug, Parser)]
#[command(name = "speediso-repo", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy a build in, make it live, prune old builds.
    ///
    /// The files are copied into builds/<job>/<N>/ (each written under a
    /// temp name, fsync'd, renamed), a manifest with sizes and SHA-256 is
    /// written, the unversioned names at the root switch to the new build
    /// in one rename(2), and builds beyond --keep are removed (never the
    /// live one, nor the one live just before). Running it again with the
    /// same build number and the same files finishes an interrupted
    /// publish; the same number with other files is refused.
    Publish {
        /// The repository root (it must exist).
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        /// Build job name, e.g. speedtest: builds go to builds/<job>/.
        #[arg(long, value_name = "NAME")]
        job: String,
        /// Build number from the build job (a positive integer).
        #[arg(long, value_name = "N")]
        build: u64,
        /// How many builds of the job to keep.
        #[arg(long, value_name = "COUNT", default_value_t = DEFAULT_KEEP)]
        keep: usize,
        /// Wait this long for another publish or rollback to finish.
        #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration_arg)]
        lock_timeout: Duration,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// The build's files; each one's name becomes an unversioned name
        /// at the root (vmlinuz, initrd, speedtest.squashfs, ...).
        #[arg(required = true, value_name = "FILES")]
        files: Vec<PathBuf>,
    },
    /// Point the unversioned names at the previous build, or at build --to.
    ///
    /// Instant: one rename(2). Without --to, the newest build older than
    /// the live one; --to N also rolls forward again. The target's files
    /// are checked for presence and size (run verify for checksums).
    Rollback {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        #[arg(long, value_name = "NAME")]
        job: String,
        /// Make build N live (it must still be kept).
        #[arg(long, value_name = "N")]
        to: Option<u64>,
        #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration_arg)]
        lock_timeout: Duration,
        #[arg(long)]
        json: bool,
    },
    /// Builds per job, which one is live, their manifests.
    List {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        /// Print everything, manifests included, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check that every link resolves and every file matches its manifest.
    ///
    /// Reads every file of every kept build; exits 1 when something is
    /// wrong. Leftovers of an interrupted run are warnings.
    Verify {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    // Milliseconds too, for tests; the rest is the agent's duration syntax.
    let ms = s.trim().strip_suffix("ms").and_then(|n| n.parse().ok());
    ms.map(Duration::from_millis)
        .or_else(|| speediso_proto::units::parse_duration(s))
        .ok_or_else(|| format!("{s:?} is not a duration like 500ms, 90s or 5m"))
}

/// Run the parsed command line; returns the exit status.
pub fn run(cli: Cli) -> Result<i32> {
    fsops::check_crash_env()?;
    let json = match &cli.command {
        Command::Publish { json, .. }
        | Command::Rollback { json, .. }
        | Command::List { json, .. }
        | Command::Verify { json, .. } => *json,
    };
    let result = run_command(cli.command);
    if let (true, Err(e)) = (json, &result) {
        // Machines reading stdout get the failure too; main still prints it
        // on stderr for people.
        print_json(&serde_json::json!({ "ok": false, "error": format!("{e:#}") }))?;
    }
    result
}

fn run_command(command: Command) -> Result<i32> {
    match command {
        Command::Publish {
            root,
            job,
            build,
            keep,
            lock_timeout,
            json,
            files,
        } => {
            let r = super::publish(&PublishOpts {
                root,
                job,
                build,
                files,
                keep,
                lock_timeout,
            })?;
            report(json, &r, print_publish)?;
            Ok(exit::SUCCESS)
        }
        Command::Rollback {
            root,
            job,
            to,
            lock_timeout,
            json,
        } => {
            let r = super::rollback(&root, &job, to, lock_timeout)?;
            report(json, &r, |r| {
                if r.changed {
                    println!("{}: live build {} -> {}", r.job, r.from, r.to);
                } else {
                    println!("{}: build {} was already live (links checked)", r.job, r.to);
                }
            })?;
            Ok(exit::SUCCESS)
        }
        Command::List { root, json } => {
            report(json, &super::list(&root)?, print_list)?;
            Ok(exit::SUCCESS)
        }
        Command::Verify { root, json } => {
            let r = super::verify(&root)?;
            report(json, &r, |r| {
                for w in &r.warnings {
                    println!("warning: {w}");
                }
                for e in &r.errors {
                    println!("error: {e}");
                }
                let verdict = if r.ok { "ok" } else { "FAILED" };
                println!(
                    "verify {}: {verdict}: {} files checked, {} errors, {} warnings",
                    root.display(),
                    r.files_checked,
                    r.errors.len(),
                    r.warnings.len()
                );
            })?;
            Ok(if r.ok { exit::SUCCESS } else { exit::FAILED })
        }
    }
}

/// A command's result on stdout: JSON with `--json`, else as `human`
/// writes it for people.
fn report<T: serde::Serialize>(json: bool, r: &T, human: impl FnOnce(&T)) -> Result<()> {
    if json {
        print_json(r)?;
    } else {
        human(r);
    }
    Ok(())
}

fn print_publish(r: &super::PublishReport) {
    let how = if r.reused {
        "already there, relinked"
    } else {
        "copied"
    };
    let prev = build_or_none(r.previous);
    println!(
        "{}: build {} {how}; live build {prev} -> {}",
        r.job, r.build, r.build
    );
    for f in &r.manifest.files {
        println!("  {:<24} {:>14} bytes  sha256 {}", f.name, f.size, f.sha256);
    }
    if !r.pruned.is_empty() {
        println!("  pruned: {}", join(&r.pruned));
    }
    println!("  kept: {}", join(&r.kept));
}

fn print_list(r: &super::ListReport) {
    if r.jobs.is_empty() {
        println!(
            "no builds under {}",
            Path::new(&r.root).join(super::BUILDS).display()
        );
    }
    for j in &r.jobs {
        let live = build_or_none(j.live);
        println!(
            "{}  (live: {live}; names: {})",
            j.job,
            if j.links.is_empty() {
                "none".into()
            } else {
                j.links.join(" ")
            }
        );
        for b in &j.builds {
            let mark = if b.live { "*" } else { " " };
            match (&b.manifest, &b.error) {
                (Some(m), _) => {
                    let bytes: u64 = m.files.iter().map(|f| f.size).sum();
                    println!(
                        "  {mark} {:>6}  {} files, {bytes} bytes, published {}",
                        b.build,
                        m.files.len(),
                        utc(m.published_unix)
                    );
                }
                (None, Some(e)) => println!("  {mark} {:>6}  unreadable: {e}", b.build),
                (None, None) => println!("  {mark} {:>6}", b.build),
            }
        }
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC` (days-to-civil, H. Hinnant),
/// without a date crate for one line of output.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// A build number, or `none`.
fn build_or_none(build: Option<u64>) -> String {
    build.map_or_else(|| "none".into(), |b| b.to_string())
}

fn join(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("500ms", Some(Duration::from_millis(500))),
            ("0s", Some(Duration::ZERO)),
            ("90s", Some(Duration::from_secs(90))),
            ("5m", Some(Duration::from_secs(300))),
            ("120", Some(Duration::from_secs(120))),
            ("fast", None),
            ("-1s", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration_arg(s).ok(), want, "{s}");
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_795_653_194), "2026-11-26 00:33 UTC");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
