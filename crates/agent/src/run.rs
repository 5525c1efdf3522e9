//! Runs a validated plan's steps in order, under the task's time limit,
//! emitting run/step events. Enforces the destructive guard: a destructive
//! task runs only when the boot asked for it or a person confirmed it.

use crate::events::{Body, Bus, Outcome};
use crate::module::Deadline;
use crate::plan::Plan;
use crate::registry::{self, Running};
use crate::root::Root;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Exit statuses, documented in `--help` and the README.
/// Exit statuses, shared with the collector and repository tools.
pub use speediso_proto::exit;

/// May this destructive task run? Yes when the boot command line (or the
/// `SPEEDISO` environment systemd sets from it) asked for exactly this task,
/// or the person named it with `--confirm`.
pub fn destructive_allowed(task: &str, boot_task: Option<&str>, confirm: Option<&str>) -> bool {
    boot_task == Some(task) || confirm == Some(task)
}

fn elapsed_ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// Run `plan`'s steps, emitting events on `bus`, with `root` for device
/// reads and `run_dir` for what a step keeps (certificates). Returns the
/// exit status.
pub fn run(plan: &Plan, root: &Root, run_dir: &Path, bus: &Bus, destructive_ok: bool) -> i32 {
    let start = Instant::now();
    let task = &plan.task;
    if task.destructive && !destructive_ok {
        let msg = format!(
            "task '{}' is destructive and was not asked for by the boot command line; \
             refusing. To run it by hand, add --confirm {}",
            task.name, task.name
        );
        bus.emit(
            None,
            Body::Warning {
                message: msg.clone(),
            },
        );
        bus.emit(
            None,
            Body::RunFinished {
                outcome: Outcome::Refused,
                exit_status: exit::REFUSED,
                duration_ms: elapsed_ms(start),
                error: Some(msg),
            },
        );
        return exit::REFUSED;
    }
    bus.emit(
        None,
        Body::RunStarted {
            steps: plan.step_ids(),
            destructive: task.destructive,
            after: plan.after.as_str().into(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
        },
    );
    for w in &plan.warnings {
        bus.emit(None, Body::Warning { message: w.clone() });
    }

    // Steps run on a worker thread so the time limit holds even when a step
    // blocks in the kernel; on overrun the process reports and exits.
    let (tx, rx) = mpsc::channel::<(usize, bool)>();
    let worker_plan = plan.clone();
    let worker_root = root.clone();
    let worker_run_dir = run_dir.to_path_buf();
    let worker_bus = bus.clone();
    let deadline = Deadline::new(task.time_limit.map(|l| start + l));
    let worker_deadline = deadline.clone();
    let worker = std::thread::spawn(move || {
        let plan = worker_plan;
        for (i, step) in plan.task.steps.iter().enumerate() {
            let ev = worker_bus.step(step.id());
            let t0 = Instant::now();
            ev.emit(Body::StepStarted {
                module: step.module.clone(),
            });
            let res = registry::module_for(&step.module)
                .map_err(anyhow::Error::from)
                .and_then(|m| {
                    m.run(
                        &step.options,
                        &plan.options,
                        Running {
                            root: &worker_root,
                            run_dir: &worker_run_dir,
                            events: ev.clone(),
                            destructive_allowed: destructive_ok,
                            deadline: worker_deadline.clone(),
                        },
                    )
                });
            let ok = res.is_ok();
            match res {
                Ok(data) => {
                    ev.emit(Body::Result { data });
                    ev.emit(Body::StepFinished {
                        outcome: Outcome::Success,
                        duration_ms: elapsed_ms(t0),
                        error: None,
                    });
                }
                Err(e) => {
                    ev.emit(Body::StepFinished {
                        outcome: Outcome::Failed,
                        duration_ms: elapsed_ms(t0),
                        error: Some(format!("{e:#}")),
                    });
                }
            }
            if tx.send((i, ok)).is_err() {
                return;
            }
        }
    });

    let mut failed: Vec<String> = Vec::new();
    let mut done = 0;
    while done < task.steps.len() {
        let msg = match deadline.get() {
            Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        // A step may have raised the limit while we waited.
        if let (Err(mpsc::RecvTimeoutError::Timeout), Some(d)) = (&msg, deadline.get()) {
            if d > Instant::now() {
                continue;
            }
        }
        match msg {
            Ok((i, ok)) => {
                done += 1;
                if !ok {
                    failed.push(task.steps[i].id().to_string());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let step = task.steps[done].id();
                let limit = deadline
                    .get()
                    .map(|d| d.saturating_duration_since(start))
                    .unwrap_or_default();
                let msg = format!(
                    "time limit of {} reached during step '{step}'",
                    crate::sinks::human_duration(limit.as_secs_f64())
                );
                bus.emit(
                    Some(step),
                    Body::StepFinished {
                        outcome: Outcome::TimedOut,
                        duration_ms: elapsed_ms(start),
                        error: Some(msg.clone()),
                    },
                );
                bus.emit(
                    None,
                    Body::RunFinished {
                        outcome: Outcome::TimedOut,
                        exit_status: exit::TIMED_OUT,
                        duration_ms: elapsed_ms(start),
                        error: Some(msg),
                    },
                );
                return exit::TIMED_OUT;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                failed.push(format!("{} (worker panicked)", task.steps[done].id()));
                break;
            }
        }
    }
    let _ = worker.join();
    let (outcome, status, error) = if failed.is_empty() {
        (Outcome::Success, exit::SUCCESS, None)
    } else {
        (
            Outcome::Failed,
            exit::FAILED,
            Some(format!("failed steps: {}", failed.join(", "))),
        )
    };
    bus.emit(
        None,
        Body::RunFinished {
            outcome,
            exit_status: status,
            duration_ms: elapsed_ms(start),
            error,
        },
    );
    status
}

/// One command run by hand (a benchmark, a wipe, an install) as a run of
/// one step, with the events a task run has (run_started, step_started,
/// the step's result, step_finished, run_finished), on a bus with every
/// sink, so it reaches the console, the journal and the report endpoint
/// like a task does.
pub struct AdHoc {
    bus: Bus,
    /// The step's events; results and progress go here.
    pub step: crate::events::StepEvents,
    started: Instant,
}

impl AdHoc {
    pub fn start(bus: Bus, step: &str, module: &str, destructive: bool) -> AdHoc {
        bus.emit(
            None,
            Body::RunStarted {
                steps: vec![step.to_string()],
                destructive,
                after: "stay".into(),
                agent_version: env!("CARGO_PKG_VERSION").into(),
            },
        );
        let ev = bus.step(step);
        ev.emit(Body::StepStarted {
            module: module.to_string(),
        });
        AdHoc {
            bus,
            step: ev,
            started: Instant::now(),
        }
    }

    pub fn run_id(&self) -> &str {
        self.bus.run_id()
    }

    /// End the run with exit status `rc` (and `error` when it failed),
    /// drain the sinks, and return `rc`.
    pub fn finish(self, rc: i32, error: Option<String>) -> i32 {
        let outcome = if rc == exit::SUCCESS {
            Outcome::Success
        } else {
            Outcome::Failed
        };
        let duration_ms = elapsed_ms(self.started);
        self.step.emit(Body::StepFinished {
            outcome,
            duration_ms,
            error: error.clone(),
        });
        self.bus.emit(
            None,
            Body::RunFinished {
                outcome,
                exit_status: rc,
                duration_ms,
                error,
            },
        );
        self.bus.close(CLOSE_DEADLINE);
        rc
    }
}

/// How long to give sinks (the report spool) to drain before exiting.
pub const CLOSE_DEADLINE: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard() {
        assert!(destructive_allowed("wipe", Some("wipe"), None));
        assert!(destructive_allowed("wipe", Some("inventory"), Some("wipe")));
        assert!(!destructive_allowed("wipe", Some("inventory"), None));
        assert!(!destructive_allowed("wipe", None, Some("decommission")));
        assert!(!destructive_allowed("wipe", None, None));
    }
}
