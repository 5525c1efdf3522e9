//! The state files under the run directory that `speediso status` reads:
//! `state.json`, the task run's (the boot's, or `speediso run`), and
//! `adhoc.json`, the last command run by hand (`speediso bench`, `wipe`,
//! `install`, `health`), kept apart so an engineer's command never hides
//! the task's state. Each holds the run, its last events and its results. Rewritten atomically (temp file + rename) so a reader never sees
//! half a file; progress updates are throttled to one write a second.

use crate::events::{Body, Event, Sink};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const STATE_FILE: &str = "state.json";
/// The state file of the last ad-hoc command.
pub const ADHOC_FILE: &str = "adhoc.json";
/// How many recent events the state file keeps.
pub const KEEP_EVENTS: usize = 50;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub run_id: String,
    pub task: Option<String>,
    pub started: Option<String>,
    pub finished: Option<String>,
    /// `running`, or the run's outcome.
    pub outcome: String,
    /// Latest result per step.
    pub results: BTreeMap<String, serde_json::Value>,
    /// Most recent events, oldest first.
    pub events: VecDeque<Event>,
}

pub struct StateFile {
    dir: PathBuf,
    file: &'static str,
    state: State,
    last_write: Option<Instant>,
}

impl StateFile {
    /// The task run's state sink, writing `state.json` into `dir`,
    /// created if needed. `None` (with a debug log) when the directory
    /// cannot be created, e.g. not root.
    pub fn new(dir: &Path) -> Option<StateFile> {
        StateFile::named(dir, STATE_FILE)
    }

    /// An ad-hoc command's state sink (`adhoc.json`).
    pub fn adhoc(dir: &Path) -> Option<StateFile> {
        StateFile::named(dir, ADHOC_FILE)
    }

    fn named(dir: &Path, file: &'static str) -> Option<StateFile> {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::debug!("no state file: creating {}: {e}", dir.display());
            return None;
        }
        Some(StateFile {
            dir: dir.to_path_buf(),
            file,
            state: State {
                outcome: "running".into(),
                ..Default::default()
            },
            last_write: None,
        })
    }

    fn write(&mut self) {
        let tmp = self.dir.join(format!(".{}.tmp", self.file));
        let res = serde_json::to_vec_pretty(&self.state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|_| std::fs::rename(&tmp, self.dir.join(self.file)));
        if let Err(e) = res {
            tracing::debug!("writing state file in {}: {e}", self.dir.display());
        }
        self.last_write = Some(Instant::now());
    }
}

impl Sink for StateFile {
    fn event(&mut self, ev: &Event) {
        let st = &mut self.state;
        st.run_id.clone_from(&ev.run_id);
        st.task.clone_from(&ev.task);
        match &ev.body {
            Body::RunStarted { .. } => st.started = Some(ev.ts.clone()),
            Body::Result { data } => {
                let step = ev.step.clone().unwrap_or_else(|| "-".into());
                st.results.insert(step, data.clone());
            }
            Body::RunFinished { outcome, .. } => {
                st.finished = Some(ev.ts.clone());
                st.outcome = outcome.as_str().into();
            }
            Body::DispatchRejected { .. } => {
                st.finished = Some(ev.ts.clone());
                st.outcome = "rejected".into();
            }
            _ => {}
        }
        // Results can be large (a full inventory); the results map holds them,
        // the event list keeps a marker.
        let mut kept = ev.clone();
        if let Body::Result { .. } = kept.body {
            kept.body = Body::Result {
                data: serde_json::json!({"see": "results"}),
            };
        }
        let is_progress = matches!(ev.body, Body::Progress { .. });
        // Consecutive progress of the same step replaces the previous one.
        if is_progress {
            if let Some(last) = st.events.back() {
                if matches!(last.body, Body::Progress { .. }) && last.step == ev.step {
                    st.events.pop_back();
                }
            }
        }
        st.events.push_back(kept);
        while st.events.len() > KEEP_EVENTS {
            st.events.pop_front();
        }
        let due = self
            .last_write
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if !is_progress || due {
            self.write();
        }
    }

    fn close(&mut self, _deadline: Duration) {
        self.write();
    }
}

/// Read the task run's state file from `dir`, if there is one.
pub fn read(dir: &Path) -> anyhow::Result<Option<State>> {
    read_file(dir, STATE_FILE)
}

/// Read the last ad-hoc command's state file from `dir`, if there is one.
pub fn read_adhoc(dir: &Path) -> anyhow::Result<Option<State>> {
    read_file(dir, ADHOC_FILE)
}

fn read_file(dir: &Path, file: &str) -> anyhow::Result<Option<State>> {
    use anyhow::Context;
    let path = dir.join(file);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}
