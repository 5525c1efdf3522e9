//! Task definitions (TOML files) and the built-in step modules they name.
//!
//! A task is a named list of steps. Definitions ship inside the binary (from
//! the repo's `tasks/`), are installed to /usr/lib/speediso/tasks and can be
//! overridden from /etc/speediso/tasks. `module_for` is the one place that
//! lists the step modules.

use crate::events::StepEvents;
use crate::plan::Options;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Task definitions compiled into the binary: the fallback when nothing is
/// installed (e.g. an engineer running a fresh build).
const BUILTIN: &[(&str, &str)] = &[
    (
        "inventory",
        include_str!("../../../../tasks/inventory.toml"),
    ),
    (
        "speedtest",
        include_str!("../../../../tasks/speedtest.toml"),
    ),
    ("wipe", include_str!("../../../../tasks/wipe.toml")),
    (
        "decommission",
        include_str!("../../../../tasks/decommission.toml"),
    ),
    (
        "lininstall",
        include_str!("../../../../tasks/lininstall.toml"),
    ),
    ("rescue", include_str!("../../../../tasks/rescue.toml")),
];

/// Where installed task files live, lowest precedence first.
pub const SYSTEM_DIRS: &[&str] = &["/usr/lib/speediso/tasks", "/etc/speediso/tasks"];

/// What happens after a task finished successfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum After {
    Stay,
    Poweroff,
    Reboot,
}

impl After {
    pub fn parse(s: &str) -> Option<After> {
        match s {
            "stay" => Some(After::Stay),
            "poweroff" => Some(After::Poweroff),
            "reboot" => Some(After::Reboot),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            After::Stay => "stay",
            After::Poweroff => "poweroff",
            After::Reboot => "reboot",
        }
    }
}

/// One step of a task as written in TOML.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Built-in module name, e.g. `inventory` or `bench.disk`.
    pub module: String,
    /// Step id in events; defaults to the module name.
    #[serde(default)]
    pub id: Option<String>,
    /// Module-specific options.
    #[serde(default)]
    pub options: toml::Table,
}

impl StepDef {
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.module)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    name: String,
    description: String,
    #[serde(default)]
    destructive: bool,
    /// "90s", "30m", "4h", a number of seconds, or "0" for none.
    time_limit: toml::Value,
    after: String,
    #[serde(default)]
    steps: Vec<StepDef>,
}

/// A validated task definition.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskDef {
    pub name: String,
    pub description: String,
    pub destructive: bool,
    /// `None`: no limit.
    #[serde(serialize_with = "ser_secs")]
    pub time_limit: Option<Duration>,
    pub after: After,
    pub steps: Vec<StepDef>,
    /// Where it was read from (`builtin` or a file path).
    pub source: String,
}

fn ser_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_secs()),
        None => s.serialize_none(),
    }
}

/// Is `name` a well-formed task name (`[a-z0-9_-]{1,32}`)?
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

pub use speediso_proto::units::parse_duration;

impl TaskDef {
    /// Parse and check one task file. `stem` is the file name without
    /// `.toml`, which must equal the task's name (one name everywhere).
    pub fn from_toml(text: &str, stem: &str, source: &str) -> Result<TaskDef> {
        let f: TaskFile = toml::from_str(text).map_err(|e| anyhow!("{}", e.message()))?;
        if !valid_name(&f.name) {
            bail!("task name {:?} is not [a-z0-9_-]{{1,32}}", f.name);
        }
        if f.name != stem {
            bail!(
                "task name {:?} does not match its file name {stem:?}.toml",
                f.name
            );
        }
        let time_limit = match &f.time_limit {
            toml::Value::Integer(n) if *n >= 0 => Duration::from_secs(*n as u64),
            toml::Value::String(s) => parse_duration(s)
                .ok_or_else(|| anyhow!("time_limit {s:?} is not a duration like 90s, 30m, 4h"))?,
            v => bail!("time_limit {v} is not a duration like \"90s\", \"30m\", \"4h\""),
        };
        let after = After::parse(&f.after)
            .ok_or_else(|| anyhow!("after {:?} is not one of stay, poweroff, reboot", f.after))?;
        let mut ids = std::collections::BTreeSet::new();
        for step in &f.steps {
            if !MODULES.contains(&step.module.as_str()) {
                bail!(
                    "unknown module '{}'; known: {}",
                    step.module,
                    MODULES.join(", ")
                );
            }
            if !ids.insert(step.id().to_string()) {
                bail!("step id '{}' appears twice; give one an `id`", step.id());
            }
            if DESTRUCTIVE_MODULES.contains(&step.module.as_str()) && !f.destructive {
                bail!(
                    "step '{}' uses destructive module '{}' but the task is not marked destructive = true",
                    step.id(),
                    step.module
                );
            }
        }
        Ok(TaskDef {
            name: f.name,
            description: f.description,
            destructive: f.destructive,
            time_limit: (!time_limit.is_zero()).then_some(time_limit),
            after,
            steps: f.steps,
            source: source.to_string(),
        })
    }
}

/// All task definitions visible to this process, by name.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    pub tasks: BTreeMap<String, TaskDef>,
    /// Task files that could not be loaded: task name (file stem) → error.
    /// A broken file hides the definition it would have overridden, so a
    /// typo in /etc never silently runs the shipped task instead.
    pub broken: BTreeMap<String, String>,
}

impl Catalog {
    /// Built-in tasks, then each directory in order (later ones override).
    /// Missing directories are skipped.
    pub fn load(dirs: &[PathBuf]) -> Catalog {
        let mut cat = Catalog::default();
        for (stem, text) in BUILTIN {
            match TaskDef::from_toml(text, stem, "builtin") {
                Ok(t) => {
                    cat.tasks.insert(t.name.clone(), t);
                }
                Err(e) => {
                    cat.broken
                        .insert(stem.to_string(), format!("builtin: {e:#}"));
                }
            }
        }
        for dir in dirs {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for path in files {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default();
                let res = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))
                    .and_then(|text| TaskDef::from_toml(&text, &stem, &path.display().to_string()));
                match res {
                    Ok(t) => {
                        cat.broken.remove(&stem);
                        cat.tasks.insert(stem, t);
                    }
                    Err(e) => {
                        cat.tasks.remove(&stem);
                        cat.broken
                            .insert(stem, format!("{}: {e:#}", path.display()));
                    }
                }
            }
        }
        cat
    }

    pub fn names(&self) -> Vec<String> {
        self.tasks.keys().cloned().collect()
    }
}

/// Directories to read task files from: the system ones, then any given
/// explicitly (`--tasks-dir` or `SPEEDISO_TASKS_DIR`).
pub fn default_dirs(extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = SYSTEM_DIRS.iter().map(PathBuf::from).collect();
    dirs.extend(extra.iter().cloned());
    dirs
}

/// What a running step gets from the runner.
/// The run's time limit, shared by the runner and the steps. A step that
/// learns how long its work will take (a wipe, from its disks' sizes and
/// methods) raises it, so a fixed task limit never kills an erase that is
/// going as fast as the hardware allows; it is never lowered.
#[derive(Clone, Debug, Default)]
pub struct Deadline(std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl Deadline {
    pub fn new(at: Option<std::time::Instant>) -> Deadline {
        Deadline(std::sync::Arc::new(std::sync::Mutex::new(at)))
    }

    /// The current limit (`None`: none).
    pub fn get(&self) -> Option<std::time::Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make the limit at least `from_now` away; returns the new limit when
    /// it was raised, `None` when it already was far enough (or unlimited).
    pub fn at_least(&self, from_now: Duration) -> Option<std::time::Instant> {
        let mut d = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let want = std::time::Instant::now() + from_now;
        match *d {
            Some(cur) if cur < want => {
                *d = Some(want);
                Some(want)
            }
            _ => None,
        }
    }
}

pub struct StepContext<'a> {
    /// Root for /proc, /sys and /dev reads (`/` in production).
    pub root: &'a Path,
    /// Validated `speediso.*` options (command line, then flags).
    pub options: &'a Options,
    /// The step's own options from the task file.
    pub step_options: &'a toml::Table,
    pub events: StepEvents,
    /// True when the boot command line (or an explicit confirmation) asked
    /// for this task, so its destructive steps may act.
    pub destructive_allowed: bool,
    /// The run's time limit, which the step may raise.
    pub deadline: Deadline,
}

/// A built-in step module. One trait, one registry (`module_for`).
pub trait Module: Send + Sync {
    fn name(&self) -> &'static str;
    /// The keys of a task file step's `options` table this module reads.
    /// Any other key rejects the task before anything runs, naming the
    /// key, the step and the file (`plan::build`), so a misspelt option is
    /// never silently ignored. A module that reads none returns `&[]`.
    fn step_keys(&self) -> &'static [&'static str];
    /// Check the step's options before anything in the task runs.
    fn check(&self, _step_options: &toml::Table, _options: &Options) -> Result<()> {
        Ok(())
    }
    /// Do the work; the returned JSON goes out as the step's `result` event.
    fn run(&self, ctx: &StepContext) -> Result<serde_json::Value>;
}

/// Every module name a task file may use.
pub const MODULES: &[&str] = &[
    "inventory",
    "bench.cpu",
    "bench.memory",
    "bench.disk",
    "bench.net",
    "wipe",
    "install",
];

/// Modules that change data on disks.
pub const DESTRUCTIVE_MODULES: &[&str] = &["wipe", "install"];

/// Why `module_for` could not give a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleError {
    Unknown(String),
    NotAvailable(String),
}

impl std::fmt::Display for ModuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModuleError::Unknown(m) => {
                write!(f, "unknown module '{m}'; known: {}", MODULES.join(", "))
            }
            ModuleError::NotAvailable(m) => {
                write!(f, "module '{m}' is not available in this build")
            }
        }
    }
}

impl std::error::Error for ModuleError {}

/// The one place that maps module names to implementations.
pub fn module_for(name: &str) -> Result<Box<dyn Module>, ModuleError> {
    match name {
        "inventory" => Ok(Box::new(crate::inventory::Inventory)),
        "bench.net" => Ok(Box::new(crate::netbench::NetBench)),
        "wipe" => Ok(Box::new(crate::wipe::Wipe)),
        "install" => Ok(Box::new(crate::install::Install)),
        "bench.cpu" => Ok(Box::new(crate::bench::cpu::BenchCpu)),
        "bench.memory" => Ok(Box::new(crate::bench::memory::BenchMemory)),
        "bench.disk" => Ok(Box::new(crate::bench::disk::BenchDisk)),
        n if MODULES.contains(&n) => Err(ModuleError::NotAvailable(n.to_string())),
        n => Err(ModuleError::Unknown(n.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tasks_load() {
        let cat = Catalog::load(&[]);
        assert!(cat.broken.is_empty(), "{:?}", cat.broken);
        for n in [
            "inventory",
            "speedtest",
            "wipe",
            "decommission",
            "lininstall",
            "rescue",
        ] {
            assert!(cat.tasks.contains_key(n), "missing {n}");
        }
        assert!(cat.tasks["wipe"].destructive);
        assert!(!cat.tasks["inventory"].destructive);
        assert_eq!(cat.tasks["decommission"].after, After::Poweroff);
        assert_eq!(cat.tasks["rescue"].time_limit, None);
        assert_eq!(
            cat.tasks["inventory"].time_limit,
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn override_and_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("inventory.toml"),
            "name='inventory'\ndescription='mine'\ntime_limit=5\nafter='poweroff'\n[[steps]]\nmodule='inventory'\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("wipe.toml"),
            "name='wipe'\nnot toml at all[",
        )
        .unwrap();
        let cat = Catalog::load(&[dir.path().to_path_buf()]);
        assert_eq!(cat.tasks["inventory"].description, "mine");
        assert_eq!(cat.tasks["inventory"].after, After::Poweroff);
        assert!(!cat.tasks.contains_key("wipe"));
        assert!(cat.broken["wipe"].contains("wipe.toml"));
    }

    #[test]
    fn task_file_errors_name_the_problem() {
        let cases = [
            ("name='x'\ndescription=''\ntime_limit=1\nafter='stay'\n[[steps]]\nmodule='nope'", "unknown module 'nope'; known: inventory"),
            ("name='x'\ndescription=''\ntime_limit=1\nafter='later'", "after \"later\""),
            ("name='x'\ndescription=''\ntime_limit='soon'\nafter='stay'", "time_limit \"soon\""),
            ("name='y'\ndescription=''\ntime_limit=1\nafter='stay'", "does not match"),
            ("name='x'\ndescription=''\ntime_limit=1\nafter='stay'\n[[steps]]\nmodule='wipe'", "not marked destructive"),
            ("name='x'\ndescription=''\ntime_limit=1\nafter='stay'\nbogus=1", "unknown field"),
            ("name='x'\ndescription=''\ntime_limit=1\nafter='stay'\n[[steps]]\nmodule='inventory'\n[[steps]]\nmodule='inventory'", "appears twice"),
        ];
        for (text, want) in cases {
            let err = TaskDef::from_toml(text, "x", "test")
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn module_registry_errors() {
        assert_eq!(
            module_for("nope").err().unwrap().to_string(),
            format!("unknown module 'nope'; known: {}", MODULES.join(", "))
        );
    }
}
