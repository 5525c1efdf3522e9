//! Health before and after a burn-in: a `health` step with `snapshot =
//! "NAME"` saves its findings in the run directory; a later step of the
//! same run with `compare = "NAME"` reports every finding that was not
//! there before (a counter that rose changes its finding's message, so it
//! counts as new) under the check `change`. New ECC, machine check, PCIe,
//! disk and GPU findings are a FAIL there whatever their own severity: hardware
//! that degrades under load fails its burn-in. Others (throttling, a sensor
//! over max, NIC errors) keep their severity.

use super::{Finding, Out, Report, Severity};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Checks whose new findings fail a burn-in.
const DEGRADED: &[&str] = &["edac", "mce", "pcie", "disk", "gpu"];

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Key {
    check: String,
    component: String,
    message: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    run_id: String,
    name: String,
    verdict: String,
    findings: Vec<Key>,
}

fn file(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("health-snapshot-{name}.json"))
}

fn key(f: &Finding) -> Key {
    Key {
        check: f.check.to_string(),
        component: f.component.clone(),
        message: f.message.clone(),
    }
}

/// Save `r` as snapshot `name` of run `run_id`.
pub fn save(run_dir: &Path, run_id: &str, name: &str, r: &Report) -> Result<()> {
    let s = Saved {
        run_id: run_id.into(),
        name: name.into(),
        verdict: r.verdict.word().into(),
        findings: r.findings.iter().map(key).collect(),
    };
    let p = file(run_dir, name);
    std::fs::create_dir_all(run_dir)
        .and_then(|_| std::fs::write(&p, serde_json::to_vec_pretty(&s)?))
        .with_context(|| format!("saving the health snapshot {}", p.display()))
}

/// What is new in `now` since snapshot `name` of this run.
pub fn compare(run_dir: &Path, run_id: &str, name: &str, now: &Report) -> Out {
    let p = file(run_dir, name);
    let mut out = Out::default();
    let saved: Saved = match std::fs::read(&p)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            out.findings.push(
                Finding::new(
                    Severity::Warn,
                    "change",
                    "burn-in",
                    format!(
                        "no snapshot '{name}' to compare with: nothing before/after can be said"
                    ),
                )
                .evidence(e)
                .source(p.display().to_string()),
            );
            out.summary = format!("snapshot '{name}' missing");
            return out;
        }
    };
    if saved.run_id != run_id {
        out.findings.push(
            Finding::new(
                Severity::Warn,
                "change",
                "burn-in",
                format!("snapshot '{name}' is from another run: not compared"),
            )
            .evidence(format!("its run_id = {}", saved.run_id))
            .source(p.display().to_string()),
        );
        out.summary = format!("snapshot '{name}' from another run");
        return out;
    }
    for f in now.findings.iter().filter(|f| f.severity > Severity::Info) {
        if saved.findings.contains(&key(f)) {
            continue;
        }
        let severity = if DEGRADED.contains(&f.check) {
            Severity::Fail
        } else {
            f.severity
        };
        out.findings.push(Finding {
            severity,
            check: "change",
            component: f.component.clone(),
            message: format!("new since '{name}': {} ({})", f.message, f.check),
            evidence: f.evidence.clone(),
            source: f.source.clone(),
            threshold: Some(format!("no new {} findings", f.check)),
        });
    }
    out.summary = format!(
        "compared with snapshot '{name}' ({}, {} finding(s)): {} new",
        saved.verdict,
        saved.findings.len(),
        out.findings.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Config, Report};
    use crate::root::Root;

    fn report(findings: Vec<Finding>) -> Report {
        let mut r = crate::health::collect(&Root::new("/nonexistent"), &Config::default());
        r.findings.clear();
        r.add(
            "edac",
            Out {
                findings,
                ..Default::default()
            },
        );
        r
    }

    #[test]
    fn only_new_findings_count_and_degradation_fails() {
        let dir = tempfile::tempdir().unwrap();
        let ce = |n: u32| {
            Finding::new(
                Severity::Warn,
                "edac",
                "CPU0_DIMM_A1",
                format!("{n} corrected memory errors"),
            )
        };
        let before = report(vec![ce(3)]);
        save(dir.path(), "run-1", "before", &before).unwrap();
        // Same finding: nothing new.
        let out = compare(dir.path(), "run-1", "before", &report(vec![ce(3)]));
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        // The counter rose: new, and a FAIL for ECC.
        let out = compare(dir.path(), "run-1", "before", &report(vec![ce(5)]));
        assert_eq!(out.findings.len(), 1);
        assert_eq!(out.findings[0].severity, Severity::Fail);
        assert!(out.findings[0].message.contains("5 corrected"));
        // Another run's snapshot, or none, is said, not passed.
        let out = compare(dir.path(), "run-2", "before", &report(vec![ce(5)]));
        assert_eq!(out.findings[0].severity, Severity::Warn);
        assert!(out.findings[0].message.contains("another run"));
        let out = compare(dir.path(), "run-1", "nope", &report(vec![]));
        assert!(out.findings[0].message.contains("no snapshot 'nope'"));
    }
}
