//! `burnin.selftest`: the disks' own self-tests, started and polled with
//! progress: NVMe Device Self-test (short or extended, the whole
//! controller) and ATA SMART self-tests (off-line mode), on every disk
//! `health` reads SMART from (NVMe, SATA, SCSI disks that answer ATA
//! PASS-THROUGH), in parallel. Commands and logs are `health::smart`.
//!
//! Outcomes per disk: `passed`, `failed` (the step fails, naming the
//! serial, the device's words and the first failing LBA), `aborted`,
//! `refused` (the disk declined the command), `unsupported` (NVMe OACS bit
//! 4 clear, no ATA SMART), `timed out`. Only `passed` counts as a pass: a
//! refused or unsupported test is a warning that says so.

use crate::events::Progress;
use crate::health::disks::{component, smart_disks};
use crate::health::smart::{self, Logs, SelfTestEntry};
use crate::module::{Module, StepContext};
use crate::options::{Kind, Options, Spec};
use crate::root::Root;
use anyhow::{bail, Result};
use serde::Serialize;
use speediso_proto::units::parse_duration;
use std::time::{Duration, Instant};

pub const NAME: &str = "burnin.selftest";

/// Which self-test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind2 {
    Short,
    Extended,
}

impl Kind2 {
    fn parse(s: &str) -> Option<Kind2> {
        match s {
            "short" => Some(Kind2::Short),
            "extended" => Some(Kind2::Extended),
            _ => None,
        }
    }
    /// NVMe STC and ATA off-line subroutine alike: 1 short, 2 extended.
    fn code(self) -> u8 {
        match self {
            Kind2::Short => 1,
            Kind2::Extended => 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub kind: Kind2,
    /// Give up waiting for one disk's test after this long.
    pub wait: Duration,
    /// Only these device paths (the ad-hoc `--disk`); empty: every disk.
    pub disks: Vec<String>,
    /// Seconds between polls.
    pub poll: Duration,
}

pub const OPTIONS: &[Spec] = &[
    Spec::cmdline(
        "burnin.selftest",
        Kind::Choice(&["short", "extended"]),
        "burnin.selftest: which disk self-test to run (default short)",
    )
    .step("kind")
    .flag("kind"),
    Spec::cmdline(
        "burnin.selftest_wait",
        Kind::Duration,
        "burnin.selftest: longest wait for one disk's test (default 30m short, 24h extended)",
    )
    .step("wait")
    .flag("wait"),
];

impl Config {
    pub fn new(step: &toml::Table, options: &Options) -> Result<Config> {
        let text = |key: &str, cmd: &str| -> Result<Option<String>> {
            if let Some(v) = options.get(cmd) {
                return Ok(Some(v.to_string()));
            }
            match step.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => bail!("{NAME} option {key} = {v}: expected a string"),
            }
        };
        let kind = match text("kind", "burnin.selftest")? {
            None => Kind2::Short,
            Some(s) => Kind2::parse(&s).ok_or_else(|| {
                anyhow::anyhow!("{NAME} option kind = {s:?}: expected short or extended")
            })?,
        };
        let wait = match text("wait", "burnin.selftest_wait")? {
            None => match kind {
                Kind2::Short => Duration::from_secs(30 * 60),
                Kind2::Extended => Duration::from_secs(24 * 3600),
            },
            Some(s) => match parse_duration(&s) {
                Some(d) if !d.is_zero() => d,
                _ => bail!("{NAME} option wait = {s:?}: expected a duration like 30m"),
            },
        };
        Ok(Config {
            kind,
            wait,
            disks: Vec::new(),
            poll: Duration::from_secs(5),
        })
    }
}

/// One disk's test.
#[derive(Debug, Clone, Serialize)]
pub struct DiskResult {
    pub disk: String,
    pub path: String,
    pub serial: Option<String>,
    pub kind: Kind2,
    /// passed, failed, aborted, refused, unsupported, timed out.
    pub outcome: String,
    pub detail: String,
    pub failing_lba: Option<u64>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// pass (every disk passed), warn (some could not be tested), fail.
    pub verdict: &'static str,
    pub kind: Kind2,
    pub disks: Vec<DiskResult>,
}

/// What a poll says: still running (percent done), or the newest entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    Running(u8),
    Done(SelfTestEntry),
}

/// A disk that can run a self-test: the device (`Logs`), or a scripted
/// fake in unit tests.
pub trait Tester {
    /// Err: the reason it cannot be tested, and whether that is
    /// `unsupported` (true) or `refused`.
    fn start(&self, kind: Kind2) -> Result<(), (bool, String)>;
    fn poll(&self) -> Result<Poll, String>;
}

struct Nvme<'a>(&'a Logs);
struct Ata<'a>(&'a Logs);

impl Tester for Nvme<'_> {
    fn start(&self, kind: Kind2) -> Result<(), (bool, String)> {
        let id = self.0.nvme_identify().map_err(|e| (false, e))?;
        if !smart::nvme_self_test_supported(&id) {
            return Err((
                true,
                "Device Self-test not supported (OACS bit 4 clear)".into(),
            ));
        }
        self.0.nvme_self_test(kind.code()).map_err(|e| (false, e))
    }
    fn poll(&self) -> Result<Poll, String> {
        let b = self
            .0
            .nvme_log(smart::LID_SELF_TEST, smart::SELF_TEST_LOG_LEN)?;
        let t = smart::parse_nvme_self_tests(&b);
        match (t.running, t.newest) {
            (Some((_, pct)), _) => Ok(Poll::Running(pct)),
            (None, Some(e)) => Ok(Poll::Done(e)),
            (None, None) => Err("no self-test running and none logged".into()),
        }
    }
}

impl Tester for Ata<'_> {
    fn start(&self, kind: Kind2) -> Result<(), (bool, String)> {
        self.0
            .ata_smart(smart::SMART_READ_DATA, 0)
            .map_err(|e| (true, format!("no ATA SMART: {e}")))?;
        self.0.ata_self_test(kind.code()).map_err(|e| (false, e))
    }
    fn poll(&self) -> Result<Poll, String> {
        let d = self.0.ata_smart(smart::SMART_READ_DATA, 0)?;
        let (status, left) = smart::ata_self_test_status(&d);
        if status == 15 {
            return Ok(Poll::Running(100u8.saturating_sub(left * 10)));
        }
        let log = self.0.ata_smart(smart::SMART_READ_LOG, 0x06)?;
        match smart::parse_ata_self_test_log(&log) {
            Some(e) => Ok(Poll::Done(e)),
            None => {
                let (outcome, words) = smart::ata_status_words(status);
                Ok(Poll::Done(SelfTestEntry {
                    kind: String::new(),
                    outcome,
                    result: words.into(),
                    power_on_hours: None,
                    failing_lba: None,
                }))
            }
        }
    }
}

/// Start the test on `t` and poll it every `poll` until it ends or `wait`
/// passes; `tick` gets the percent done.
pub fn run_one(
    t: &dyn Tester,
    kind: Kind2,
    poll: Duration,
    wait: Duration,
    tick: &dyn Fn(u8),
) -> (String, String, Option<u64>) {
    if let Err((unsupported, why)) = t.start(kind) {
        let o = if unsupported {
            "unsupported"
        } else {
            "refused"
        };
        return (o.into(), why, None);
    }
    let t0 = Instant::now();
    let mut errors = 0;
    loop {
        std::thread::sleep(poll);
        match t.poll() {
            Ok(Poll::Running(p)) => tick(p),
            // A test that ends between two polls is never seen running:
            // the first poll comes `poll` after the start, so the newest
            // entry is ours.
            Ok(Poll::Done(e)) => {
                tick(100);
                return (e.outcome.to_string(), e.result, e.failing_lba);
            }
            Err(e) => {
                errors += 1;
                if errors >= 5 {
                    return (
                        "refused".into(),
                        format!("polling failed 5 times: {e}"),
                        None,
                    );
                }
            }
        }
        if t0.elapsed() > wait {
            return (
                "timed out".into(),
                format!("still running after {} s", wait.as_secs()),
                None,
            );
        }
    }
}

/// Run the self-tests on every disk (or `cfg.disks`) under `root`.
pub fn run(root: &Root, cfg: &Config, progress: &(dyn Fn(&str, u8) + Sync)) -> Report {
    let disks: Vec<_> = smart_disks(root)
        .into_iter()
        .filter(|d| {
            cfg.disks.is_empty() || cfg.disks.iter().any(|p| d.path.to_string_lossy() == *p)
        })
        .collect();
    let results: Vec<DiskResult> = std::thread::scope(|s| {
        let handles: Vec<_> = disks
            .iter()
            .map(|d| {
                s.spawn(move || {
                    let t0 = Instant::now();
                    let name = component(d);
                    let (outcome, detail, lba) = match Logs::open(root, &d.name) {
                        Err(e) => ("refused".to_string(), e, None),
                        Ok(logs) => {
                            let tick = |p: u8| progress(&name, p);
                            if d.transport == crate::blockdev::scan::Transport::Nvme {
                                run_one(&Nvme(&logs), cfg.kind, cfg.poll, cfg.wait, &tick)
                            } else {
                                run_one(&Ata(&logs), cfg.kind, cfg.poll, cfg.wait, &tick)
                            }
                        }
                    };
                    DiskResult {
                        disk: d.name.clone(),
                        path: d.path.to_string_lossy().into(),
                        serial: d.serial.clone(),
                        kind: cfg.kind,
                        outcome,
                        detail,
                        failing_lba: lba,
                        seconds: (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                    }
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let verdict = if results.iter().any(|r| r.outcome == "failed") {
        "fail"
    } else if results.is_empty() || results.iter().any(|r| r.outcome != "passed") {
        "warn"
    } else {
        "pass"
    };
    Report {
        verdict,
        kind: cfg.kind,
        disks: results,
    }
}

/// One line a disk, for people.
pub fn render(r: &Report) -> String {
    let kind = match r.kind {
        Kind2::Short => "short",
        Kind2::Extended => "extended",
    };
    let mut o = format!(
        "SELF-TEST {} ({kind} test, {} disk(s))\n",
        r.verdict.to_uppercase(),
        r.disks.len()
    );
    if r.disks.is_empty() {
        o.push_str("  no NVMe, SATA or SAS disks to test\n");
    }
    for d in &r.disks {
        o.push_str(&format!(
            "  {:<10} {:<14} {:<11} {}{} ({:.0} s)\n",
            d.disk,
            d.serial.as_deref().unwrap_or("-"),
            d.outcome,
            d.detail,
            d.failing_lba
                .map(|l| format!(", first failing LBA {l}"))
                .unwrap_or_default(),
            d.seconds
        ));
    }
    o
}

pub struct SelfTest;

impl Module for SelfTest {
    type Config = Config;
    const NAME: &'static str = NAME;
    const OPTIONS: &'static [Spec] = OPTIONS;

    fn configure(step: &toml::Table, options: &Options) -> Result<Config> {
        Config::new(step, options)
    }

    fn run(ctx: &StepContext<Config>) -> Result<serde_json::Value> {
        let ev = &ctx.events;
        let r = run(ctx.root, ctx.config, &|disk, pct| {
            ev.progress(Progress {
                percent: Some(pct as f64),
                message: Some(format!("{disk}: self-test {pct}%")),
                ..Default::default()
            })
        });
        for d in r.disks.iter().filter(|d| d.outcome != "passed") {
            ev.warn(format!(
                "{} ({}): self-test {}: {}",
                d.serial.as_deref().unwrap_or(&d.disk),
                d.path,
                d.outcome,
                d.detail
            ));
        }
        let data = serde_json::to_value(&r)?;
        if r.verdict == "fail" {
            ev.emit(crate::events::Body::Result { data });
            let bad: Vec<String> = r
                .disks
                .iter()
                .filter(|d| d.outcome == "failed")
                .map(|d| format!("{} ({})", d.serial.as_deref().unwrap_or(&d.disk), d.detail))
                .collect();
            bail!("disk self-test failed: {}", bad.join("; "));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Fake {
        start: Result<(), (bool, String)>,
        polls: Mutex<Vec<Result<Poll, String>>>,
    }
    impl Tester for Fake {
        fn start(&self, _: Kind2) -> Result<(), (bool, String)> {
            self.start.clone()
        }
        fn poll(&self) -> Result<Poll, String> {
            let mut p = self.polls.lock().unwrap();
            if p.len() > 1 {
                p.remove(0)
            } else {
                p[0].clone()
            }
        }
    }

    fn entry(outcome: &'static str, lba: Option<u64>) -> SelfTestEntry {
        SelfTestEntry {
            kind: "short".into(),
            outcome,
            result: "words".into(),
            power_on_hours: None,
            failing_lba: lba,
        }
    }

    #[test]
    fn polled_to_the_end_with_progress() {
        let f = Fake {
            start: Ok(()),
            polls: Mutex::new(vec![
                Ok(Poll::Running(10)),
                Err("busy".into()),
                Ok(Poll::Running(60)),
                Ok(Poll::Done(entry("failed", Some(77)))),
            ]),
        };
        let seen = Mutex::new(Vec::new());
        let r = run_one(
            &f,
            Kind2::Short,
            Duration::ZERO,
            Duration::from_secs(60),
            &|p| seen.lock().unwrap().push(p),
        );
        assert_eq!(r, ("failed".into(), "words".into(), Some(77)));
        assert_eq!(*seen.lock().unwrap(), [10, 60, 100]);
    }

    #[test]
    fn refusals_timeouts_and_broken_polls_are_never_a_pass() {
        let refused = Fake {
            start: Err((false, "ABORTED COMMAND".into())),
            polls: Mutex::new(vec![Ok(Poll::Running(0))]),
        };
        let r = run_one(
            &refused,
            Kind2::Short,
            Duration::ZERO,
            Duration::ZERO,
            &|_| {},
        );
        assert_eq!(r.0, "refused");
        assert!(r.1.contains("ABORTED"));
        let unsupported = Fake {
            start: Err((true, "OACS".into())),
            polls: Mutex::new(vec![Ok(Poll::Running(0))]),
        };
        let r = run_one(
            &unsupported,
            Kind2::Short,
            Duration::ZERO,
            Duration::ZERO,
            &|_| {},
        );
        assert_eq!(r.0, "unsupported");
        let stuck = Fake {
            start: Ok(()),
            polls: Mutex::new(vec![Ok(Poll::Running(5))]),
        };
        let r = run_one(
            &stuck,
            Kind2::Short,
            Duration::from_millis(1),
            Duration::from_millis(5),
            &|_| {},
        );
        assert_eq!(r.0, "timed out");
        let broken = Fake {
            start: Ok(()),
            polls: Mutex::new(vec![Err("gone".into())]),
        };
        let r = run_one(
            &broken,
            Kind2::Short,
            Duration::ZERO,
            Duration::from_secs(9),
            &|_| {},
        );
        assert_eq!(r.0, "refused");
        assert!(r.1.contains("gone"));
    }

    #[test]
    fn options_name_key_and_value() {
        let c = Config::new(&toml::Table::new(), &Options::default()).unwrap();
        assert_eq!((c.kind, c.wait.as_secs()), (Kind2::Short, 1800));
        let step: toml::Table = toml::from_str("kind = 'extended'").unwrap();
        let c = Config::new(&step, &Options::default()).unwrap();
        assert_eq!((c.kind, c.wait.as_secs()), (Kind2::Extended, 86400));
        for bad in ["kind = 'long'", "wait = 'soon'", "kind = 3"] {
            let step: toml::Table = toml::from_str(bad).unwrap();
            let e = format!("{:#}", Config::new(&step, &Options::default()).unwrap_err());
            assert!(e.contains(bad.split(' ').next().unwrap()), "{bad}: {e}");
        }
    }
}
