//! Task definitions (TOML files) and the built-in step modules they name.
//!
//! A task is a named list of steps. Definitions ship inside the binary (from
//! the repo's `tasks/`), are installed to /usr/lib/speediso/tasks and can be
//! overridden from /etc/speediso/tasks. The modules a step names are the
//! registry's (`crate::registry`).

use crate::registry;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
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
    ("burnin", include_str!("../../../../tasks/burnin.toml")),
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

use speediso_proto::units::parse_duration;

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
            let module = registry::module_for(&step.module)?;
            if !ids.insert(step.id().to_string()) {
                bail!("step id '{}' appears twice; give one an `id`", step.id());
            }
            if module.destructive() && !f.destructive {
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
}
