//! `burnin.gpu`: the GPUs under load, judged by the tools GPU fleets trust.
//! NVIDIA DCGM's `dcgmi diag -r LEVEL -j` when it is in the image (its JSON
//! parsed into typed results, every test's status per GPU kept), else
//! `gpu_burn SECONDS` (each GPU's `OK`/`FAULTY` verdict), else a finding
//! that says the image has no GPU stress tool. The task's health snapshots
//! before and after (`health`, its `gpu` check) give the ECC and remap
//! comparison.
//!
//! Machines without a GPU (`inventory::gpus::addresses`) skip the step.
//! Under a fixture root the tools' output comes from captures at the root:
//! `dcgmi-diag.json`, `gpu-burn.txt`.

use crate::events::Progress;
use crate::module::{Module, StepContext};
use crate::options::{Kind, Options, Spec};
use crate::root::Root;
use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::Value;
use speediso_proto::units::parse_duration;
use std::time::{Duration, Instant};

pub const NAME: &str = "burnin.gpu";
const DCGMI_CAPTURE: &str = "/dcgmi-diag.json";
const GPU_BURN_CAPTURE: &str = "/gpu-burn.txt";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `dcgmi diag -r` level: 1 quick, 2 medium, 3 long, 4 extended.
    pub level: u8,
    /// How long gpu_burn runs (when DCGM is not in the image).
    pub duration: Duration,
}

pub const OPTIONS: &[Spec] = &[
    Spec::cmdline(
        "burnin.gpu_level",
        Kind::Int(1, 4),
        "burnin.gpu: dcgmi diag level, 1 quick (about a minute) to 4 extended (default 2)",
    )
    .step("level")
    .flag("level"),
    Spec::cmdline(
        "burnin.gpu_duration",
        Kind::Duration,
        "burnin.gpu: how long gpu_burn runs when DCGM is not in the image (default 10m)",
    )
    .step("duration")
    .flag("duration"),
];

impl Config {
    /// The command line wins over the step (the host's own, from Foreman).
    pub fn new(step: &toml::Table, options: &Options) -> Result<Config> {
        let level = match (options.get("burnin.gpu_level"), step.get("level")) {
            (Some(v), _) => v
                .parse()
                .ok()
                .filter(|l| (1..=4).contains(l))
                .ok_or_else(|| {
                    anyhow::anyhow!("speediso.burnin.gpu_level={v:?}: expected 1 to 4")
                })?,
            (None, None) => 2,
            (None, Some(toml::Value::Integer(n))) if (1..=4).contains(n) => *n as u8,
            (None, Some(v)) => bail!("{NAME} option level = {v}: expected 1 to 4"),
        };
        let bad = |v: &dyn std::fmt::Display| {
            anyhow::anyhow!("{NAME} option duration = {v}: expected a duration like 10m")
        };
        let duration = match (options.get("burnin.gpu_duration"), step.get("duration")) {
            (Some(v), _) => parse_duration(v)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| bad(&v))?,
            (None, None) => Duration::from_secs(600),
            (None, Some(toml::Value::String(s))) => parse_duration(s)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| bad(s))?,
            (None, Some(v)) => return Err(bad(v)),
        };
        Ok(Config { level, duration })
    }
}

/// One test's result for one GPU (or for the system, `gpu` null).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TestResult {
    pub category: String,
    pub test: String,
    /// The tool's GPU id (DCGM's or gpu_burn's index).
    pub gpu: Option<String>,
    /// pass, fail, warn, skip (the tool's word, lowercased).
    pub status: String,
    /// The tool's warnings and information, joined.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// pass, fail, warn (no tool, or nothing judged), skipped (no GPU).
    pub verdict: &'static str,
    /// dcgmi, gpu_burn or null.
    pub tool: Option<&'static str>,
    pub gpus: Vec<String>,
    pub results: Vec<TestResult>,
    pub note: Option<String>,
    pub seconds: f64,
}

fn id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `dcgmi diag -j`: `{"DCGM GPU Diagnostic": {"test_categories": [{category,
/// tests: [{name, results: [{gpu_id | gpu_ids | entity_id, status,
/// warnings: [{warning}], info}]}]}]}}` (DCGM 2 and 3; DCGM 4 names the
/// top `DCGM Diagnostic`). Err: not such a document.
pub fn parse_dcgmi(text: &str) -> Result<Vec<TestResult>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let top = v
        .get("DCGM GPU Diagnostic")
        .or_else(|| v.get("DCGM Diagnostic"))
        .ok_or("no \"DCGM GPU Diagnostic\" document")?;
    let cats = top["test_categories"]
        .as_array()
        .ok_or("no test_categories")?;
    let mut out = Vec::new();
    for c in cats {
        let category = c["category"].as_str().unwrap_or("?").to_string();
        for t in c["tests"].as_array().into_iter().flatten() {
            let test = t["name"].as_str().unwrap_or("?").to_string();
            for r in t["results"].as_array().into_iter().flatten() {
                let mut detail: Vec<String> = r["warnings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|w| w["warning"].as_str().or(w.as_str()).map(String::from))
                    .collect();
                if let Some(i) = r["info"].as_str() {
                    detail.push(i.to_string());
                }
                for i in r["info"].as_array().into_iter().flatten() {
                    detail.extend(i.as_str().map(String::from));
                }
                out.push(TestResult {
                    category: category.clone(),
                    test: test.clone(),
                    gpu: ["gpu_id", "gpu_ids", "entity_id"]
                        .iter()
                        .find_map(|k| id(&r[*k])),
                    status: r["status"].as_str().unwrap_or("?").to_lowercase(),
                    detail: detail.join("; "),
                });
            }
        }
    }
    if out.is_empty() {
        return Err("no test results".into());
    }
    Ok(out)
}

/// gpu_burn's summary lines: `GPU 0: OK`, `GPU 1: FAULTY`.
pub fn parse_gpu_burn(text: &str) -> Result<Vec<TestResult>, String> {
    let v: Vec<TestResult> = text
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("GPU ")?;
            let (n, verdict) = rest.split_once(':')?;
            let n: u32 = n.trim().parse().ok()?;
            let status = match verdict.trim() {
                "OK" => "pass",
                "FAULTY" => "fail",
                _ => return None,
            };
            Some(TestResult {
                category: "stress".into(),
                test: "gpu_burn".into(),
                gpu: Some(n.to_string()),
                status: status.into(),
                detail: String::new(),
            })
        })
        .collect();
    if v.is_empty() {
        return Err("no \"GPU N: OK\" or \"GPU N: FAULTY\" line".into());
    }
    Ok(v)
}

/// What a tool produced: its stdout (whatever its exit status, as dcgmi
/// exits non-zero when a test failed), from the machine or the capture.
/// While the tool runs (minutes: dcgmi -j prints nothing before its end),
/// `tick` hears how long it has been running every 10 s.
fn tool_output(
    root: &Root,
    argv: &[&str],
    capture: &str,
    every: Duration,
    tick: &dyn Fn(&str),
) -> Option<Result<String, String>> {
    if root.is_system() {
        if !crate::cmd::on_path(argv[0]) {
            return None;
        }
        let t0 = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let res = std::thread::scope(|s| {
            s.spawn(move || {
                let _ = tx.send(
                    crate::cmd::output(argv)
                        .map(|o| o.stdout)
                        .map_err(|e| format!("{e:#}")),
                );
            });
            loop {
                match rx.recv_timeout(every) {
                    Ok(r) => break r,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => tick(&format!(
                        "{}: running for {} s",
                        argv.join(" "),
                        t0.elapsed().as_secs()
                    )),
                    Err(_) => break Err(format!("{} ended without an answer", argv[0])),
                }
            }
        });
        Some(res)
    } else {
        std::fs::read_to_string(root.at(capture)).ok().map(Ok)
    }
}

/// A tool to try: its name, argv, capture file and output parser.
type Attempt<'a> = (
    &'static str,
    Vec<&'a str>,
    &'static str,
    fn(&str) -> Result<Vec<TestResult>, String>,
);

pub fn run(root: &Root, cfg: &Config, tick: &dyn Fn(&str)) -> Report {
    let t0 = Instant::now();
    let gpus = crate::inventory::gpus::addresses(root);
    let mut r = Report {
        verdict: "skipped",
        tool: None,
        gpus: gpus.clone(),
        results: Vec::new(),
        note: None,
        seconds: 0.0,
    };
    if gpus.is_empty() {
        r.note = Some("no GPU on this machine".into());
        return r;
    }
    let level = cfg.level.to_string();
    let secs = cfg.duration.as_secs().to_string();
    let attempts: [Attempt; 2] = [
        (
            "dcgmi",
            vec!["dcgmi", "diag", "-r", &level, "-j"],
            DCGMI_CAPTURE,
            parse_dcgmi,
        ),
        (
            "gpu_burn",
            vec!["gpu_burn", &secs],
            GPU_BURN_CAPTURE,
            parse_gpu_burn,
        ),
    ];
    for (tool, argv, capture, parse) in attempts {
        tick(&format!("{} on {} GPU(s)", argv.join(" "), gpus.len()));
        let Some(out) = tool_output(root, &argv, capture, Duration::from_secs(10), tick) else {
            continue;
        };
        r.tool = Some(tool);
        match out.and_then(|t| parse(&t)) {
            Ok(results) => {
                r.verdict = if results.iter().any(|x| x.status == "fail") {
                    "fail"
                } else if results.iter().any(|x| x.status == "pass") {
                    "pass"
                } else {
                    "warn"
                };
                r.results = results;
            }
            Err(e) => {
                r.verdict = "warn";
                r.note = Some(format!("{}: no usable result: {e}", argv.join(" ")));
            }
        }
        r.seconds = (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        return r;
    }
    r.verdict = "warn";
    r.note = Some(
        "no GPU stress tool in this image (neither dcgmi nor gpu_burn): the GPUs were not loaded"
            .into(),
    );
    r
}

pub struct BurninGpu;

impl Module for BurninGpu {
    type Config = Config;
    const NAME: &'static str = NAME;
    const OPTIONS: &'static [Spec] = OPTIONS;

    fn configure(step: &toml::Table, options: &Options) -> Result<Config> {
        Config::new(step, options)
    }

    fn run(ctx: &StepContext<Config>) -> Result<serde_json::Value> {
        let ev = &ctx.events;
        let r = run(ctx.root, ctx.config, &|m| {
            ev.progress(Progress {
                message: Some(m.to_string()),
                ..Default::default()
            })
        });
        if let Some(n) = &r.note {
            if r.verdict == "skipped" {
                ev.log(format!("{NAME}: {n}"));
            } else {
                ev.warn(format!("{NAME}: {n}"));
            }
        }
        let data = serde_json::to_value(&r)?;
        if r.verdict == "fail" {
            ev.emit(crate::events::Body::Result { data });
            let bad: Vec<String> = r
                .results
                .iter()
                .filter(|x| x.status == "fail")
                .map(|x| {
                    format!(
                        "GPU {} {} ({})",
                        x.gpu.as_deref().unwrap_or("?"),
                        x.test,
                        x.detail
                    )
                })
                .collect();
            bail!("GPU burn-in FAIL: {}", bad.join("; "));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DCGM3: &str = r#"{"DCGM GPU Diagnostic": {"test_categories": [
        {"category": "Deployment", "tests": [{"name": "Denylist", "results": [{"status": "Pass"}]}]},
        {"category": "Hardware", "tests": [{"name": "GPU Memory", "results": [
            {"gpu_ids": "0", "status": "Pass"},
            {"gpu_ids": "1", "status": "Fail", "warnings": [{"warning": "Error using CUDA API", "error_id": 41}]}]}]}],
        "version": "3.3.5"}}"#;

    #[test]
    fn dcgmi_json_of_dcgm_3_and_4() {
        let r = parse_dcgmi(DCGM3).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].gpu, None);
        assert_eq!(
            (r[2].gpu.as_deref(), r[2].status.as_str()),
            (Some("1"), "fail")
        );
        assert_eq!(r[2].detail, "Error using CUDA API");
        let dcgm4 = r#"{"DCGM Diagnostic": {"test_categories": [{"category": "Stress",
            "tests": [{"name": "targeted_stress", "results": [
            {"entity_group": "GPU", "entity_id": 3, "status": "Skip", "info": "not supported"}]}]}]}}"#;
        let r = parse_dcgmi(dcgm4).unwrap();
        assert_eq!(
            (r[0].gpu.as_deref(), r[0].status.as_str()),
            (Some("3"), "skip")
        );
        assert_eq!(r[0].detail, "not supported");
        for bad in [
            "",
            "{}",
            "[1]",
            r#"{"DCGM GPU Diagnostic": {"test_categories": []}}"#,
        ] {
            assert!(parse_dcgmi(bad).is_err(), "{bad}");
        }
    }

    /// A tool that exits non-zero with a document (as dcgmi does when a
    /// test failed) is read; its progress is heard while it runs; a tool
    /// not on PATH is `None`.
    #[test]
    fn a_tool_is_read_whatever_its_status_with_progress() {
        let heard = std::sync::Mutex::new(Vec::new());
        let out = tool_output(
            &Root::system(),
            &["sh", "-c", "sleep 0.5; echo '{\"doc\": 1}'; exit 3"],
            "/none",
            Duration::from_millis(100),
            &|m| heard.lock().unwrap().push(m.to_string()),
        );
        assert_eq!(out, Some(Ok("{\"doc\": 1}\n".to_string())));
        let heard = heard.lock().unwrap();
        assert!(heard.len() >= 2, "{heard:?}");
        assert!(heard[0].contains("running for"), "{heard:?}");
        let none = tool_output(
            &Root::system(),
            &["speediso-no-such-tool"],
            "/none",
            Duration::from_millis(100),
            &|_| {},
        );
        assert_eq!(none, None);
    }

    #[test]
    fn gpu_burn_summary() {
        let t = "100.0%  proc'd: 1234 (5678 Gflop/s) - 1230 (5600 Gflop/s)   errors: 0 - 17\n\
                 Tested 2 GPUs:\n\tGPU 0: OK\n\tGPU 1: FAULTY\n";
        let r = parse_gpu_burn(t).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].status, "fail");
        assert!(parse_gpu_burn("Couldn't init a GPU").is_err());
    }

    #[test]
    fn options_name_key_and_value() {
        let c = Config::new(&toml::Table::new(), &Options::default()).unwrap();
        assert_eq!((c.level, c.duration.as_secs()), (2, 600));
        let o = Options::from_pairs([("burnin.gpu_level", "1")]);
        let step: toml::Table = toml::from_str("level = 3\nduration = '2m'").unwrap();
        let c = Config::new(&step, &o).unwrap();
        assert_eq!((c.level, c.duration.as_secs()), (1, 120));
        for bad in ["level = 9", "duration = 'soon'", "level = 'x'"] {
            let step: toml::Table = toml::from_str(bad).unwrap();
            let e = format!("{:#}", Config::new(&step, &Options::default()).unwrap_err());
            assert!(e.contains(bad.split(' ').next().unwrap()), "{bad}: {e}");
        }
    }
}
