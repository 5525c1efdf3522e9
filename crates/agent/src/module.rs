//! The module trait and what a running step gets: a leaf that every step
//! module implements and the runner drives, importing nothing above it.
//!
//! A module declares its options (`OPTIONS`), turns them into its typed
//! `Config` once (`configure`: the plan calls it to validate before
//! anything runs; the runner to run), and runs with that config in its
//! `StepContext`. The registry (`crate::registry`) lists the modules.

use crate::events::{HostId, StepEvents};
use crate::options::{Options, Spec};
use crate::root::Root;
use anyhow::Result;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A built-in step module.
pub trait Module: Send + Sync + 'static {
    /// Its settings, from its options.
    type Config: Send;
    /// The name task files use (`bench.disk`).
    const NAME: &'static str;
    /// Every option it reads: `speediso.*` keys, task-file step keys, the
    /// flags of its ad-hoc command. A step key not declared here rejects
    /// the task before anything runs (`plan::build`), naming the key, the
    /// step and the file; `speediso tasks --options` lists them all.
    const OPTIONS: &'static [Spec];
    /// Does the module change data on disks? A task that uses one must be
    /// marked `destructive = true`.
    const DESTRUCTIVE: bool = false;

    /// The typed config from the step's task-file options and the
    /// validated `speediso.*` options; an error names the bad value.
    fn configure(step: &toml::Table, options: &Options) -> Result<Self::Config>;

    /// Do the work; the returned JSON goes out as the step's `result` event.
    fn run(ctx: &StepContext<Self::Config>) -> Result<serde_json::Value>;
}

/// What a running step gets from the runner.
pub struct StepContext<'a, C> {
    /// Root for /proc, /sys, /dev and /run reads (`/` in production).
    pub root: &'a Root,
    /// The runtime directory: state, spool, certificates.
    pub run_dir: &'a Path,
    /// The module's settings.
    pub config: &'a C,
    pub events: StepEvents,
    /// True when the boot command line (or an explicit confirmation) asked
    /// for this task, so its destructive steps may act.
    pub destructive_allowed: bool,
    /// The run's time limit, which the step may raise.
    pub deadline: Deadline,
}

impl<C> StepContext<'_, C> {
    /// The machine the step runs on, as every event names it.
    pub fn host(&self) -> &HostId {
        self.events.host()
    }
}

/// The run's time limit, shared by the runner and the steps. A step that
/// learns how long its work will take (a wipe, from its disks' sizes and
/// methods) raises it, so a fixed task limit never kills an erase that is
/// going as fast as the hardware allows; it is never lowered.
#[derive(Clone, Debug, Default)]
pub struct Deadline(Arc<Mutex<Option<Instant>>>);

impl Deadline {
    pub fn new(at: Option<Instant>) -> Deadline {
        Deadline(Arc::new(Mutex::new(at)))
    }

    /// The current limit (`None`: none).
    pub fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make the limit at least `from_now` away; returns the new limit when
    /// it was raised, `None` when it already was far enough (or unlimited).
    pub fn at_least(&self, from_now: Duration) -> Option<Instant> {
        let mut d = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let want = Instant::now() + from_now;
        match *d {
            Some(cur) if cur < want => {
                *d = Some(want);
                Some(want)
            }
            _ => None,
        }
    }
}
