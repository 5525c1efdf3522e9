//! `health`: "what is wrong with this machine?" in one verdict (PASS, WARN
//! or FAIL) with findings, each naming the component, the evidence (the
//! value read and the file it came from) and the threshold it broke. Every
//! signal is read under the root (`crate::root::Root`), so fixture trees
//! stand in for machines; nothing here writes or needs a disk, and the one
//! tool run is nvidia-smi (`gpus`, on the machine only).
//!
//! One file a signal: `edac` (ECC memory errors), `mce` (machine checks in
//! the kernel log), `throttle` (CPU thermal throttling), `hwmon` (sensors
//! against their own limits), `pcie` (AER counters, link training), `gpus`
//! (GPU links, and ECC, row remapping and throttling from nvidia-smi), `nics`
//! (error, drop and carrier counters), `disks` (NVMe and ATA SMART read
//! natively, through `smart`), `expect` (what was ordered:
//! `speediso.expect.*`). `config` holds the options and thresholds; `read`
//! the readers that tell "absent" from "unreadable". A value that cannot be
//! read is a WARN finding that says so, never a silent PASS.

pub mod config;
pub mod disks;
pub mod edac;
pub mod expect;
pub mod gpus;
pub mod hwmon;
pub mod mce;
pub mod nics;
pub mod pcie;
pub mod read;
pub mod smart;
pub mod snapshot;
pub mod throttle;

pub use config::{Config, Expect, Thresholds};

use crate::module::{Module, StepContext};
use crate::options::{Options, Spec};
use crate::root::Root;
use anyhow::{bail, Result};
use serde::Serialize;

/// The module name, as task files write it.
pub const NAME: &str = "health";

/// How bad one finding is. `info` never changes the verdict: it says what
/// could not be checked here (no EDAC driver, no kernel log) or what looks
/// odd but is usually harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Fail,
}

impl Severity {
    pub fn word(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Fail => "FAIL",
        }
    }
}

/// The machine's verdict: the worst severity among the findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

/// One thing found. `source` is the file as it is on the machine
/// (`/sys/...`, without a fixture root), or several joined by `, `.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// The check that found it: `edac`, `mce`, `throttle`, `hwmon`,
    /// `pcie`, `gpu`, `nic`, `disk`, `expect`, `change` (new since a snapshot).
    pub check: &'static str,
    /// What it is about: a DIMM label (`CPU0_DIMM_A1 (mc0/dimm0)`), a PCI
    /// address, a NIC name, `CPU 3`, `coretemp temp1 (Package id 0)`.
    pub component: String,
    /// One line for a person.
    pub message: String,
    /// The value read, as `file = value` or the kernel log line.
    pub evidence: String,
    pub source: String,
    /// The limit it was held to (`> 0`, `crit 95.0 °C`); `null` for an
    /// unreadable value or an info line.
    pub threshold: Option<String>,
}

impl Finding {
    pub fn new(
        severity: Severity,
        check: &'static str,
        component: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            severity,
            check,
            component: component.into(),
            message: message.into(),
            evidence: String::new(),
            source: String::new(),
            threshold: None,
        }
    }

    pub fn evidence(mut self, e: impl Into<String>) -> Finding {
        self.evidence = e.into();
        self
    }

    pub fn source(mut self, s: impl Into<String>) -> Finding {
        self.source = s.into();
        self
    }

    pub fn threshold(mut self, t: impl Into<String>) -> Finding {
        self.threshold = Some(t.into());
        self
    }

    /// A value that could not be read or made sense of: a WARN, so a
    /// broken sensor never reads as a healthy one.
    pub fn unreadable(
        check: &'static str,
        component: impl Into<String>,
        abs: &str,
        why: &str,
    ) -> Finding {
        Finding::new(Severity::Warn, check, component, "unreadable")
            .evidence(why.to_string())
            .source(abs)
    }
}

/// What one check looked at, so a PASS says what it is made of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checked {
    pub check: &'static str,
    /// `pass`, `warn`, `fail` (its worst finding) or `skipped` (nothing to
    /// read here: see `summary`).
    pub status: &'static str,
    /// What was read: `2 memory controllers, 4 DIMMs`.
    pub summary: String,
}

/// What a check returns: its findings and a line on what it read.
#[derive(Debug, Default)]
pub struct Out {
    pub findings: Vec<Finding>,
    pub summary: String,
    /// Nothing to read on this machine (no EDAC, no sensors).
    pub skipped: bool,
}

/// The health report: the `result` of a `health` step and the document
/// `speediso health --json` prints. Stable JSON (keys in this order):
///
/// ```json
/// {
///   "verdict": "pass" | "warn" | "fail",
///   "counts": {"fail": 0, "warn": 1, "info": 1},
///   "findings": [{"severity": "warn", "check": "edac",
///                 "component": "CPU0_DIMM_A1 (mc0/dimm0)",
///                 "message": "3 corrected memory errors",
///                 "evidence": "dimm_ce_count = 3",
///                 "source": "/sys/devices/system/edac/mc/mc0/dimm0/dimm_ce_count",
///                 "threshold": "> 0"}],
///   "checked": [{"check": "edac", "status": "warn", "summary": "..."}],
///   "thresholds": {"max_corrected_errors": 0, ...},
///   "expect": {"cpu_threads": null, "memory_gib": 512, ...}
/// }
/// ```
///
/// Findings are sorted worst first, then in check order; `checked` has one
/// entry per check in the order edac, mce, throttle, hwmon, pcie, gpu,
/// nic, disk, expect (and `change` when the step compared with a snapshot).
/// New keys may be added; existing ones keep their meaning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub counts: Counts,
    pub findings: Vec<Finding>,
    pub checked: Vec<Checked>,
    pub thresholds: Thresholds,
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    pub fail: usize,
    pub warn: usize,
    pub info: usize,
}

/// Read every signal under `root` and judge it.
pub fn collect(root: &Root, cfg: &Config) -> Report {
    let t = &cfg.thresholds;
    let outs: Vec<(&'static str, Out)> = vec![
        ("edac", edac::check(root, t)),
        ("mce", mce::check(root)),
        ("throttle", throttle::check(root, t)),
        ("hwmon", hwmon::check(root)),
        ("pcie", pcie::check(root, t)),
        ("gpu", gpus::check(root, t)),
        ("nic", nics::check(root, t)),
        ("disk", disks::check(root, t)),
        ("expect", expect::check(root, &cfg.expect)),
    ];
    let mut r = Report {
        verdict: Verdict::Pass,
        counts: Counts::default(),
        findings: Vec::new(),
        checked: Vec::new(),
        thresholds: cfg.thresholds.clone(),
        expect: cfg.expect.clone(),
    };
    for (check, out) in outs {
        r.add(check, out);
    }
    r
}

impl Report {
    /// Add one check's findings and its `checked` line, and judge again.
    pub fn add(&mut self, check: &'static str, out: Out) {
        let worst = out.findings.iter().map(|f| f.severity).max();
        self.checked.push(Checked {
            check,
            status: match worst {
                Some(Severity::Fail) => "fail",
                Some(Severity::Warn) => "warn",
                _ if out.skipped => "skipped",
                _ => "pass",
            },
            summary: out.summary,
        });
        self.findings.extend(out.findings);
        // Stable: within a severity the checks keep their order.
        self.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let count = |s| self.findings.iter().filter(|f| f.severity == s).count();
        self.counts = Counts {
            fail: count(Severity::Fail),
            warn: count(Severity::Warn),
            info: count(Severity::Info),
        };
        self.verdict = if self.counts.fail > 0 {
            Verdict::Fail
        } else if self.counts.warn > 0 {
            Verdict::Warn
        } else {
            Verdict::Pass
        };
    }
}

/// The human form: the verdict, each finding with its evidence, then what
/// each check read.
pub fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "HEALTH {}  ({} fail, {} warn, {} info)",
        r.verdict.word(),
        r.counts.fail,
        r.counts.warn,
        r.counts.info
    );
    for f in &r.findings {
        let _ = writeln!(
            o,
            "{}  {:<8} {}: {}",
            f.severity.word(),
            f.check,
            f.component,
            f.message
        );
        let mut ev = f.evidence.clone();
        if !f.source.is_empty() {
            if !ev.is_empty() {
                ev.push_str("  ");
            }
            let _ = write!(ev, "[{}]", f.source);
        }
        if !ev.is_empty() {
            let _ = writeln!(o, "                {ev}");
        }
        if let Some(t) = &f.threshold {
            let _ = writeln!(o, "                threshold: {t}");
        }
    }
    let _ = writeln!(o, "checked:");
    for c in &r.checked {
        let _ = writeln!(
            o,
            "  {:<8} {:<7} {}",
            c.check,
            c.status.to_uppercase(),
            c.summary
        );
    }
    o
}

/// One line for the step log.
pub fn summary(r: &Report) -> String {
    let mut s = format!(
        "health {}: {} fail, {} warn",
        r.verdict.word(),
        r.counts.fail,
        r.counts.warn
    );
    if let Some(f) = r.findings.first().filter(|f| f.severity > Severity::Info) {
        s.push_str(&format!(" (worst: {}: {})", f.component, f.message));
    }
    s
}

/// The `health` step: a FAIL verdict fails the step (after its report went
/// out as the step's result); WARN and PASS succeed.
pub struct Health;

impl Module for Health {
    type Config = Config;
    const NAME: &'static str = NAME;
    const OPTIONS: &'static [Spec] = config::OPTIONS;

    fn configure(step: &toml::Table, options: &Options) -> Result<Config> {
        Config::new(step, options)
    }

    fn run(ctx: &StepContext<Config>) -> Result<serde_json::Value> {
        let mut r = collect(ctx.root, ctx.config);
        let run_id = ctx.events.run_id();
        if let Some(name) = &ctx.config.compare {
            let out = snapshot::compare(ctx.run_dir, run_id, name, &r);
            r.add("change", out);
        }
        if let Some(name) = &ctx.config.snapshot {
            snapshot::save(ctx.run_dir, run_id, name, &r)?;
            ctx.events.log(format!(
                "health snapshot '{name}' saved for a later comparison"
            ));
        }
        ctx.events.log(summary(&r));
        for f in r.findings.iter().filter(|f| f.severity > Severity::Info) {
            ctx.events.warn(format!(
                "{} {}: {}: {} ({})",
                f.severity.word(),
                f.check,
                f.component,
                f.message,
                f.evidence
            ));
        }
        let data = serde_json::to_value(&r)?;
        if r.verdict == Verdict::Fail {
            ctx.events
                .emit(crate::events::Body::Result { data: data.clone() });
            let fails: Vec<String> = r
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Fail)
                .map(|f| format!("{}: {}", f.component, f.message))
                .collect();
            bail!("health FAIL: {}", fails.join("; "));
        }
        Ok(data)
    }
}
