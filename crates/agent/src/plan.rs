//! Raw inputs (environment, kernel command line, task files) become a
//! validated `Plan` before anything runs. A plan is either runnable or a
//! `Rejection` that names the bad value and says what would have been valid.

use crate::cmdline::Cmdline;
use crate::options::Options;
use crate::options::{Kind, Spec};
use crate::registry;
use crate::tasks::{self, After, Catalog, TaskDef};
use serde::Serialize;
use std::collections::BTreeMap;

/// The options of the run itself (the modules declare theirs): read by
/// the dispatcher, the runner and the report sinks.
pub const RUN_OPTIONS: &[Spec] = &[
    Spec::cmdline(
        "task",
        Kind::Text,
        "the task to run (same as systemd.setenv=SPEEDISO=)",
    ),
    Spec::cmdline(
        "after",
        Kind::After,
        "override the task's after: stay, poweroff or reboot",
    ),
    Spec::cmdline(
        "report",
        Kind::HttpUrl,
        "report endpoint base URL; events go to URL/v1/events",
    ),
    Spec::cmdline(
        "token",
        Kind::NonEmpty,
        "bearer token for the report endpoint (a secret: shown as *** everywhere)",
    ),
    Spec::cmdline(
        "ca",
        Kind::NonEmpty,
        "pinned CA bundle: a path, or URL-safe base64 of a PEM",
    ),
    Spec::cmdline(
        "insecure",
        Kind::Bool,
        "allow plain http:// to a non-loopback report endpoint",
    ),
    Spec::cmdline(
        "spool.drain",
        Kind::Duration,
        "how long to wait for undelivered events before poweroff/reboot",
    ),
    Spec::cmdline(
        "foreman",
        Kind::HttpUrl,
        "Foreman URL to upload discovery facts to",
    ),
    Spec::cmdline(
        "ssh_key",
        Kind::SshKeys,
        "SSH public keys for root: URL-safe base64 of authorized_keys lines (several: comma-separated, or the option repeated), or an http(s) URL ending in #sha256=<hex>; installed before sshd starts (speediso-ssh-keys.service)",
    ),
    Spec::cmdline(
        "wipe.poweroff_undelivered",
        Kind::Bool,
        "power off or reboot even while erasure certificates are undelivered (default: stay up and keep sending)",
    ),
];

/// Every `speediso.*` key: the run's, then each module's (a key several
/// modules read, like `bench.duration`, once), with the modules that read
/// it.
pub fn known_options() -> Vec<(&'static Spec, Vec<&'static str>)> {
    let mut out: Vec<(&'static Spec, Vec<&'static str>)> =
        RUN_OPTIONS.iter().map(|s| (s, vec![])).collect();
    for m in registry::MODULES {
        for s in m.options().iter().filter(|s| s.key.is_some()) {
            match out.iter_mut().find(|(o, _)| o.key == s.key) {
                Some((_, users)) => users.push(m.name()),
                None => out.push((s, vec![m.name()])),
            }
        }
    }
    out
}

/// Where the task name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskSource {
    /// The process environment (`SPEEDISO=`), set by systemd from
    /// `systemd.setenv=` or by a person.
    Environment,
    /// `systemd.setenv=SPEEDISO=` on the kernel command line.
    SystemdSetenv,
    /// `speediso.task=` on the kernel command line.
    SpeedisoTask,
    /// Named on speediso's own command line (`speediso run TASK`).
    Argument,
}

/// The task name the boot asked for: environment first, then
/// `systemd.setenv=SPEEDISO=`, then `speediso.task=` (last one wins within
/// each). `None` when none of them is present.
pub fn boot_task(env: Option<&str>, cmdline: &Cmdline) -> Option<(String, TaskSource)> {
    if let Some(v) = env {
        return Some((v.to_string(), TaskSource::Environment));
    }
    if let Some(v) = cmdline.setenv("SPEEDISO") {
        return Some((v.to_string(), TaskSource::SystemdSetenv));
    }
    cmdline.get("speediso.task").map(|p| {
        (
            p.value.clone().unwrap_or_default(),
            TaskSource::SpeedisoTask,
        )
    })
}

/// Why a plan was rejected.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rejection {
    /// The rejected task value; `None` when no task was given at all.
    pub value: Option<String>,
    pub reason: String,
    #[serde(skip)]
    pub known_tasks: Vec<String>,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.reason)
    }
}

impl std::error::Error for Rejection {}

/// A validated, runnable plan.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Plan {
    pub task: TaskDef,
    pub source: TaskSource,
    /// The task's `after`, or `speediso.after=` when given.
    pub after: After,
    pub options: Options,
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn unit(&self) -> String {
        unit_name(&self.task.name)
    }
    pub fn step_ids(&self) -> Vec<String> {
        self.task.steps.iter().map(|s| s.id().to_string()).collect()
    }
}

/// `speediso@<task>.service`.
pub fn unit_name(task: &str) -> String {
    format!("speediso@{task}.service")
}

/// Validate the `speediso.*` options of a command line. Unknown keys are
/// warnings; a malformed value of a known key is an error naming both.
pub fn check_options(cmdline: &Cmdline) -> Result<(Options, Vec<String>), String> {
    let known = known_options();
    let mut opts = BTreeMap::new();
    let mut warnings = Vec::new();
    for (key, value) in cmdline.speediso_options() {
        crate::redact::register_option(&key, &value);
        // What a message may say of the value: never a secret.
        let shown = if crate::redact::is_secret_key(&key) {
            crate::redact::MASK.to_string()
        } else {
            crate::redact::text(&value).into_owned()
        };
        match known.iter().find(|(s, _)| s.key == Some(&key)) {
            None => warnings.push(format!("unknown option speediso.{key}={shown:?} ignored")),
            Some((spec, _)) => {
                if let Err(why) = spec.check(&value) {
                    return Err(format!("bad value {shown:?} for speediso.{key}: {why}"));
                }
                opts.insert(key, value);
            }
        }
    }
    Ok((Options::from_pairs(opts), warnings))
}

/// Build a plan for `requested` (a task name from wherever it came).
pub fn build(
    requested: Option<(String, TaskSource)>,
    cmdline: &Cmdline,
    catalog: &Catalog,
) -> Result<Plan, Rejection> {
    let known = catalog.names();
    // A rejection is printed and reported: never with a secret in it.
    let reject = |value: Option<String>, reason: String| Rejection {
        value,
        reason: crate::redact::text(&reason).into_owned(),
        known_tasks: known.clone(),
    };
    let Some((name, source)) = requested else {
        return Err(reject(
            None,
            format!(
                "no task given (systemd.setenv=SPEEDISO=<task> or speediso.task=<task>); known tasks: {}",
                known.join(", ")
            ),
        ));
    };
    if name.is_empty() {
        return Err(reject(
            Some(name),
            format!("empty task name; known tasks: {}", known.join(", ")),
        ));
    }
    if !tasks::valid_name(&name) {
        return Err(reject(
            Some(name.clone()),
            format!(
                "malformed task name {:?} (must match [a-z0-9_-]{{1,32}}); known tasks: {}",
                truncate(&name, 64),
                known.join(", ")
            ),
        ));
    }
    if let Some(err) = catalog.broken.get(&name) {
        return Err(reject(
            Some(name.clone()),
            format!("task '{name}' has a broken definition: {err}"),
        ));
    }
    let Some(task) = catalog.tasks.get(&name) else {
        return Err(reject(
            Some(name.clone()),
            format!("unknown task '{name}'; known tasks: {}", known.join(", ")),
        ));
    };
    let (options, warnings) =
        check_options(cmdline).map_err(|why| reject(Some(name.clone()), why))?;
    crate::report::check_options(&options).map_err(|why| reject(Some(name.clone()), why))?;
    for step in &task.steps {
        let module = registry::module_for(&step.module)
            .map_err(|e| reject(Some(name.clone()), format!("task '{name}': {e}")))?;
        let keys = registry::step_keys(module);
        if let Some(k) = step.options.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(reject(
                Some(name.clone()),
                format!(
                    "task '{name}' ({}), step '{}': unknown option '{k}' for module {}; {}",
                    task.source,
                    step.id(),
                    step.module,
                    if keys.is_empty() {
                        "it takes no step options (use speediso.* options)".to_string()
                    } else {
                        format!("known: {}", keys.join(", "))
                    }
                ),
            ));
        }
        module.check(&step.options, &options).map_err(|e| {
            reject(
                Some(name.clone()),
                format!("task '{name}', step '{}': {e:#}", step.id()),
            )
        })?;
    }
    let after = options
        .get("after")
        .and_then(After::parse)
        .unwrap_or(task.after);
    Ok(Plan {
        task: task.clone(),
        source,
        after,
        options,
        warnings,
    })
}

/// Shorten a value for a message, marking the cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::parse;

    /// Issue #14: a task-file step option no module reads rejects the task,
    /// naming the key, the step and the file; the shipped tasks pass.
    #[test]
    fn unknown_step_options_reject_the_task_naming_key_step_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, steps: &str| {
            std::fs::write(
                dir.path().join(format!("{name}.toml")),
                format!("name='{name}'\ndescription=''\ntime_limit=60\nafter='stay'\n{steps}"),
            )
            .unwrap();
        };
        write(
            "typo",
            "[[steps]]\nmodule='bench.cpu'\noptions = { duration = 1, treads = 2 }\n",
        );
        write(
            "wipeopt",
            "destructive=true\n[[steps]]\nmodule='wipe'\noptions = { method = 'zero' }\n",
        );
        write(
            "good",
            "[[steps]]\nmodule='bench.cpu'\noptions = { duration = 1, threads = 2 }\n",
        );
        let cat = Catalog::load(&[dir.path().to_path_buf()]);
        let plan = |t: &str| {
            build(
                Some((t.to_string(), TaskSource::Argument)),
                &parse(""),
                &cat,
            )
        };
        let e = plan("typo").unwrap_err().reason;
        assert!(e.contains("unknown option 'treads'"), "{e}");
        assert!(e.contains("step 'bench.cpu'"), "{e}");
        assert!(e.contains("typo.toml"), "{e}");
        assert!(e.contains("known: duration, threads"), "{e}");
        let e = plan("wipeopt").unwrap_err().reason;
        assert!(
            e.contains("unknown option 'method'") && e.contains("takes no step options"),
            "{e}"
        );
        assert!(plan("good").is_ok());
        let shipped = Catalog::load(&[]);
        for t in shipped.names() {
            let r = build(
                Some((t.clone(), TaskSource::Argument)),
                &parse(""),
                &shipped,
            );
            if let Err(e) = r {
                assert!(!e.reason.contains("unknown option"), "{t}: {}", e.reason);
            }
        }
    }

    #[test]
    fn option_values() {
        let good = [
            "speediso.report=https://collector.example.com:8443/x",
            "speediso.report=http://127.0.0.1:9000",
            "speediso.after=poweroff",
            "speediso.wipe.verify=sample:0.05",
            "speediso.wipe.exclude=S1,/dev/sda,eui.0025",
            "speediso.net.server=iperf.example.com:5201",
            "speediso.net.server=[2001:db8::1]:5201",
            "speediso.net.server=10.0.0.1",
            "speediso.install.sha256=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "speediso.install.image=file:///srv/img.raw.zst",
            "speediso.wipe.usb=1",
            "speediso.net.duration=30s",
        ];
        for line in good {
            assert!(check_options(&parse(line)).is_ok(), "{line}");
        }
        let bad = [
            ("speediso.report=ftp://x", "speediso.report"),
            ("speediso.report=https://", "speediso.report"),
            ("speediso.after=later", "expected stay, poweroff or reboot"),
            ("speediso.wipe.verify=sample:2", "sample:FRACTION"),
            ("speediso.wipe.method=shred", "expected one of auto"),
            ("speediso.net.server=host:99999", "host[:port]"),
            ("speediso.net.server=a:b:c", "host[:port]"),
            ("speediso.install.sha256=abc", "64 hex"),
            ("speediso.wipe.usb=maybe", "expected 1/0"),
            // An empty value is not "true" (audit, low): it is rejected.
            ("speediso.wipe.usb=", "expected 1/0"),
            ("speediso.wipe.passes=0", "from 1 to 35"),
            ("speediso.token=", "non-empty"),
            ("speediso.wipe.exclude=a,,b", "comma-separated"),
        ];
        for (line, want) in bad {
            let err = check_options(&parse(line)).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
            assert!(
                err.contains(line.split_once('=').unwrap().0),
                "{line}: {err}"
            );
        }
    }

    #[test]
    fn unknown_keys_warn() {
        let (opts, warns) =
            check_options(&parse("speediso.colour=blue speediso.after=stay")).unwrap();
        assert_eq!(opts.get("after"), Some("stay"));
        assert_eq!(warns.len(), 1);
        assert!(warns[0].contains("speediso.colour"));
    }

    #[test]
    fn task_source_precedence() {
        let c = parse("speediso.task=b systemd.setenv=SPEEDISO=a");
        assert_eq!(
            boot_task(Some("e"), &c),
            Some(("e".into(), TaskSource::Environment))
        );
        assert_eq!(
            boot_task(None, &c),
            Some(("a".into(), TaskSource::SystemdSetenv))
        );
        assert_eq!(
            boot_task(None, &parse("speediso.task=b")),
            Some(("b".into(), TaskSource::SpeedisoTask))
        );
        assert_eq!(boot_task(None, &parse("quiet")), None);
    }

    #[test]
    fn a_bare_switch_is_on_an_empty_one_is_refused() {
        let (o, _) = check_options(&parse("speediso.wipe.usb speediso.wipe.blank=0")).unwrap();
        assert!(o.flag("wipe.usb"));
        assert!(!o.flag("wipe.blank"));
        assert!(check_options(&parse("speediso.wipe.usb=")).is_err());
    }
}
