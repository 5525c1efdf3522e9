//! Raw inputs (environment, kernel command line, task files) become a
//! validated `Plan` before anything runs. A plan is either runnable or a
//! `Rejection` that names the bad value and says what would have been valid.

use crate::cmdline::Cmdline;
use crate::tasks::{self, After, Catalog, TaskDef};
use serde::Serialize;
use std::collections::BTreeMap;

/// The kinds of value a known `speediso.*` key takes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Any string, including empty.
    Text,
    /// A non-empty string.
    NonEmpty,
    /// http:// or https:// URL.
    HttpUrl,
    /// http(s):// or file:// URL.
    FetchUrl,
    /// 0/1, true/false, yes/no, on/off.
    Bool,
    /// stay | poweroff | reboot.
    After,
    /// host:port, [v6]:port, or host (default port applied later).
    HostPort,
    /// 64 hex digits.
    Sha256,
    /// 90s, 30m, 4h, or seconds.
    Duration,
    /// An integer in the inclusive range.
    Int(u64, u64),
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// Comma-separated non-empty items.
    List,
    /// full | off | sample:FRACTION with 0 < FRACTION <= 1.
    Verify,
}

/// Wipe methods, by the names `--method` and `speediso.wipe.method=` take.
pub const WIPE_METHODS: &[&str] = &[
    "auto",
    "nvme-sanitize-crypto",
    "nvme-sanitize-block",
    "nvme-format-crypto",
    "nvme-format",
    "ata-sanitize-crypto",
    "ata-sanitize-block",
    "ata-sanitize-overwrite",
    "ata-secure-erase",
    "discard",
    "zero",
    "random",
    "quick",
];

/// Every `speediso.<key>` this build understands, with its kind and a line
/// of help. The one place to add an option.
const KNOWN: &[(&str, Kind, &str)] = &[
    (
        "task",
        Kind::Text,
        "the task to run (same as systemd.setenv=SPEEDISO=)",
    ),
    (
        "after",
        Kind::After,
        "override the task's after: stay, poweroff or reboot",
    ),
    (
        "report",
        Kind::HttpUrl,
        "report endpoint base URL; events go to URL/v1/events",
    ),
    (
        "token",
        Kind::NonEmpty,
        "bearer token for the report endpoint (a secret: shown as *** everywhere)",
    ),
    (
        "ca",
        Kind::NonEmpty,
        "pinned CA bundle: a path, or URL-safe base64 of a PEM",
    ),
    (
        "insecure",
        Kind::Bool,
        "allow plain http:// to a non-loopback report endpoint",
    ),
    (
        "spool.drain",
        Kind::Duration,
        "how long to wait for undelivered events before poweroff/reboot",
    ),
    (
        "foreman",
        Kind::HttpUrl,
        "Foreman URL to upload discovery facts to",
    ),
    (
        "log",
        Kind::Choice(&["error", "warn", "info", "debug", "trace"]),
        "agent log level",
    ),
    (
        "wipe.method",
        Kind::Choice(WIPE_METHODS),
        "wipe method; auto picks the strongest the disk supports",
    ),
    (
        "wipe.verify",
        Kind::Verify,
        "verification after wiping: full, off or sample:FRACTION",
    ),
    (
        "wipe.exclude",
        Kind::List,
        "disks never to wipe: serials, WWNs or paths, comma-separated",
    ),
    ("wipe.usb", Kind::Bool, "also wipe USB disks"),
    (
        "wipe.remote",
        Kind::Bool,
        "also wipe remote (FC, iSCSI, NVMe-oF) and shared (multipath, cluster file system) storage",
    ),
    (
        "wipe.blank",
        Kind::Bool,
        "overwrite with zeros after a firmware erase",
    ),
    ("wipe.passes", Kind::Int(1, 35), "overwrite passes"),
    (
        "wipe.key",
        Kind::NonEmpty,
        "Ed25519 key that signs certificates: a path, or an https:// URL fetched with the token and kept in RAM",
    ),
    (
        "wipe.operator",
        Kind::NonEmpty,
        "certificate: who performs the sanitization (NIST SP 800-88 App. G)",
    ),
    (
        "wipe.validator",
        Kind::NonEmpty,
        "certificate: who validates the sanitization",
    ),
    (
        "wipe.organization",
        Kind::NonEmpty,
        "certificate: the organisation responsible",
    ),
    (
        "wipe.asset_tag",
        Kind::NonEmpty,
        "certificate: the asset tag (default: the chassis asset tag from SMBIOS)",
    ),
    (
        "wipe.destination",
        Kind::NonEmpty,
        "certificate: where the media goes next (reuse, resale, recycle, destroy, return)",
    ),
    (
        "wipe.poweroff_undelivered",
        Kind::Bool,
        "power off or reboot even while erasure certificates are undelivered (default: stay up and keep sending)",
    ),
    (
        "inventory.pci_ids",
        Kind::NonEmpty,
        "pci.ids file for PCI names (default: /usr/share/hwdata, /usr/share/misc)",
    ),
    (
        "inventory.smart",
        Kind::Bool,
        "ask smartctl for disk SMART health in the inventory step (default on)",
    ),
    ("net.server", Kind::HostPort, "iperf3 server, host[:port]"),
    (
        "net.http",
        Kind::HttpUrl,
        "URL to time a download from (the mirror)",
    ),
    (
        "net.streams",
        Kind::Int(1, 128),
        "parallel TCP streams for the network test",
    ),
    ("net.duration", Kind::Duration, "network test duration"),
    (
        "net.mode",
        Kind::Choice(&["forward", "reverse", "bidir"]),
        "iperf3 direction: forward (upload), reverse (download) or bidir",
    ),
    (
        "bench.duration",
        Kind::Duration,
        "duration of each CPU/memory/disk benchmark",
    ),
    (
        "install.image",
        Kind::FetchUrl,
        "disk image to write (raw, .gz, .xz, .zst)",
    ),
    (
        "install.sha256",
        Kind::Sha256,
        "SHA-256 of the image as served",
    ),
    (
        "install.target",
        Kind::NonEmpty,
        "target disk: a path, serial=, wwn= or smallest",
    ),
    (
        "install.kernel",
        Kind::FetchUrl,
        "installer kernel to kexec",
    ),
    (
        "install.initrd",
        Kind::FetchUrl,
        "installer initrd to kexec",
    ),
    (
        "install.append",
        Kind::Text,
        "installer kernel command line",
    ),
    (
        "install.kernel_sha256",
        Kind::Sha256,
        "SHA-256 of the installer kernel (optional)",
    ),
    (
        "install.initrd_sha256",
        Kind::Sha256,
        "SHA-256 of the installer initrd (optional)",
    ),
    (
        "install.insecure",
        Kind::Bool,
        "allow an image without sha256",
    ),
];

/// Option help, for `--help` texts and the README.
pub fn known_options() -> impl Iterator<Item = (&'static str, &'static str)> {
    KNOWN.iter().map(|(k, _, h)| (*k, *h))
}

/// Validated `speediso.*` options, by key without the prefix. Serialised
/// (and debug-printed) with secrets masked (`redact`): the values are for
/// the agent's own use, never for output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Options(pub BTreeMap<String, String>);

impl Options {
    /// The options as they may be shown: secret values and URL
    /// credentials masked.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| {
                let v = if crate::redact::is_secret_key(k) {
                    crate::redact::MASK.to_string()
                } else {
                    crate::redact::text(v).into_owned()
                };
                (k.clone(), v)
            })
            .collect()
    }
}

impl Serialize for Options {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(s)
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Options").field(&self.redacted()).finish()
    }
}

impl Options {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    /// A boolean option; absent is `false`. Values were validated.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| parse_bool(v) == Some(true))
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Check one value against its kind; `Err` says what was expected.
fn check_value(kind: Kind, v: &str) -> Result<(), String> {
    let ok = match kind {
        Kind::Text => true,
        Kind::NonEmpty => !v.is_empty(),
        Kind::HttpUrl => url_ok(v, &["http://", "https://"]),
        Kind::FetchUrl => url_ok(v, &["http://", "https://", "file://"]),
        Kind::Bool => parse_bool(v).is_some(),
        Kind::After => After::parse(v).is_some(),
        Kind::HostPort => host_port_ok(v),
        Kind::Sha256 => v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()),
        Kind::Duration => tasks::parse_duration(v).is_some(),
        Kind::Int(lo, hi) => v.parse::<u64>().is_ok_and(|n| (lo..=hi).contains(&n)),
        Kind::Choice(words) => words.contains(&v),
        Kind::List => !v.is_empty() && v.split(',').all(|s| !s.trim().is_empty()),
        Kind::Verify => {
            v == "full"
                || v == "off"
                || v.strip_prefix("sample:")
                    .and_then(|f| f.parse::<f64>().ok())
                    .is_some_and(|f| f > 0.0 && f <= 1.0)
        }
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        Kind::Text => unreachable!(),
        Kind::NonEmpty => "expected a non-empty value".into(),
        Kind::HttpUrl => "expected an http:// or https:// URL with a host".into(),
        Kind::FetchUrl => "expected an http://, https:// or file:// URL".into(),
        Kind::Bool => "expected 1/0, true/false, yes/no or on/off".into(),
        Kind::After => "expected stay, poweroff or reboot".into(),
        Kind::HostPort => "expected host[:port] with a port in 1-65535".into(),
        Kind::Sha256 => "expected 64 hex digits".into(),
        Kind::Duration => "expected a duration like 90s, 30m or 4h".into(),
        Kind::Int(lo, hi) => format!("expected an integer from {lo} to {hi}"),
        Kind::Choice(words) => format!("expected one of {}", words.join(", ")),
        Kind::List => "expected a comma-separated list of non-empty items".into(),
        Kind::Verify => "expected full, off or sample:FRACTION (0 < FRACTION <= 1)".into(),
    })
}

fn url_ok(v: &str, schemes: &[&str]) -> bool {
    let Some(rest) = schemes.iter().find_map(|s| v.strip_prefix(s)) else {
        return false;
    };
    if v.starts_with("file://") {
        return rest.starts_with('/');
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty() && !v.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn host_port_ok(v: &str) -> bool {
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return false,
            },
            None => return false,
        }
    } else {
        match v.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return false,
            None => (v, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b));
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0))
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
        match KNOWN.iter().find(|(k, _, _)| *k == key) {
            None => warnings.push(format!("unknown option speediso.{key}={shown:?} ignored")),
            Some((_, kind, _)) => {
                if let Err(why) = check_value(*kind, &value) {
                    return Err(format!("bad value {shown:?} for speediso.{key}: {why}"));
                }
                opts.insert(key, value);
            }
        }
    }
    Ok((Options(opts), warnings))
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
        let module = tasks::module_for(&step.module)
            .map_err(|e| reject(Some(name.clone()), format!("task '{name}': {e}")))?;
        let keys = module.step_keys();
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
