//! `speediso dispatch`: the boot-time entry point. Resolves the task the
//! boot asked for, starts `speediso@<task>.service` through systemd, waits
//! for the job and applies the task's `after=` (poweroff/reboot) on success.
//! A missing or bad task starts nothing and is reported as `dispatch_rejected`.

use crate::events::{Body, Bus};
use crate::plan::{Plan, Rejection};
use crate::run::exit;
use crate::systemd::{JobResult, Systemd};
use crate::tasks::After;
use serde_json::json;
use std::time::Duration;

/// The `--dry-run --json` document.
pub fn dry_run_json(plan: &Result<Plan, Rejection>) -> serde_json::Value {
    match plan {
        Ok(p) => json!({
            "task": p.task.name,
            "unit": p.unit(),
            "source": p.source,
            "description": p.task.description,
            "steps": p.step_ids(),
            "destructive": p.task.destructive,
            "after": p.after.as_str(),
            "time_limit_s": p.task.time_limit.map(|d| d.as_secs()),
            "options": p.options,
            "warnings": p.warnings,
            "rejected": null,
        }),
        Err(r) => json!({
            "task": null,
            "unit": null,
            "source": null,
            "description": null,
            "steps": [],
            "destructive": false,
            "after": "stay",
            "time_limit_s": null,
            "options": {},
            "warnings": [],
            "rejected": { "value": r.value, "reason": r.reason },
        }),
    }
}

/// Exit status for a rejected plan: no task at all is a normal rescue boot
/// (0); a task that was given but is bad is an error (2), so the dispatch
/// unit shows as failed.
pub fn rejection_status(r: &Rejection) -> i32 {
    if r.value.is_none() {
        exit::SUCCESS
    } else {
        exit::USAGE
    }
}

/// Report a rejection: one `dispatch_rejected` event (the console and the
/// report endpoint say the same thing).
pub fn reject(bus: &Bus, r: &Rejection) -> i32 {
    bus.emit(
        None,
        Body::DispatchRejected {
            value: r.value.clone(),
            reason: r.reason.clone(),
            known_tasks: r.known_tasks.clone(),
        },
    );
    rejection_status(r)
}

/// The systemd target that carries out `after=`. An installer kernel loaded
/// by the install module turns a reboot into systemd's kexec.target, which
/// shuts down like a reboot (the report spool drains) and then jumps into it.
pub fn after_target(after: After, kexec_loaded: bool) -> Option<&'static str> {
    match after {
        After::Stay => None,
        After::Poweroff => Some("poweroff.target"),
        After::Reboot if kexec_loaded => Some("kexec.target"),
        After::Reboot => Some("reboot.target"),
    }
}

/// Start the plan's unit and wait for its job. Prints what it does with
/// `say`. Returns the exit status.
pub fn start_and_wait(
    plan: &Plan,
    systemd: &dyn Systemd,
    wait: Option<Duration>,
    say: &mut dyn FnMut(String),
) -> i32 {
    let unit = plan.unit();
    say(format!(
        "speediso: starting {unit} ({}{})",
        plan.task.description,
        if plan.task.destructive {
            ", DESTRUCTIVE"
        } else {
            ""
        }
    ));
    let job = match systemd.start_unit(&unit, "replace") {
        Ok(j) => j,
        Err(e) => {
            say(format!("speediso: could not start {unit}: {e:#}"));
            return exit::FAILED;
        }
    };
    let result = match job.wait(wait) {
        Ok(r) => r,
        Err(e) => {
            say(format!("speediso: {unit}: {e:#}"));
            return exit::FAILED;
        }
    };
    if result != JobResult::Done {
        say(format!(
            "speediso: {unit} finished with job result '{}'; see `journalctl -u {unit}`; staying up",
            result.as_str()
        ));
        return exit::FAILED;
    }
    say(format!("speediso: {unit} finished successfully"));
    let Some(target) = after_target(plan.after, crate::install::kexec::loaded()) else {
        return exit::SUCCESS;
    };
    say(format!(
        "speediso: after={}: starting {target}",
        plan.after.as_str()
    ));
    match systemd.start_unit(target, "replace-irreversibly") {
        Ok(_) => exit::SUCCESS,
        Err(e) => {
            say(format!("speediso: could not start {target}: {e:#}"));
            exit::FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::parse;
    use crate::plan::{self, TaskSource};
    use crate::systemd::fake::FakeSystemd;
    use crate::tasks::Catalog;

    fn plan_for(task: &str, line: &str) -> Plan {
        plan::build(
            Some((task.into(), TaskSource::SystemdSetenv)),
            &parse(line),
            &Catalog::load(&[]),
        )
        .unwrap()
    }

    #[test]
    fn after_targets() {
        assert_eq!(after_target(After::Stay, true), None);
        assert_eq!(after_target(After::Poweroff, true), Some("poweroff.target"));
        assert_eq!(after_target(After::Reboot, false), Some("reboot.target"));
        assert_eq!(after_target(After::Reboot, true), Some("kexec.target"));
    }

    #[test]
    fn starts_unit_then_after_action() {
        let fake = FakeSystemd::default();
        *fake.result.lock().unwrap() = Some(JobResult::Done);
        let p = plan_for("rescue", "speediso.after=poweroff");
        let mut said = Vec::new();
        let rc = start_and_wait(&p, &fake, None, &mut |s| said.push(s));
        assert_eq!(rc, 0, "{said:?}");
        assert_eq!(
            *fake.started.lock().unwrap(),
            vec![
                ("speediso@rescue.service".to_string(), "replace".to_string()),
                (
                    "poweroff.target".to_string(),
                    "replace-irreversibly".to_string()
                )
            ]
        );
    }

    #[test]
    fn failed_decommission_does_not_power_off() {
        // A wipe step that fails (a disk it could not erase) fails the
        // unit; the task's after=poweroff must not happen then.
        let fake = FakeSystemd::default();
        *fake.result.lock().unwrap() = Some(JobResult::Failed);
        let p = plan_for("decommission", "");
        assert_eq!(p.after, After::Poweroff);
        let mut said = Vec::new();
        let rc = start_and_wait(&p, &fake, None, &mut |s| said.push(s));
        assert_eq!(rc, exit::FAILED);
        assert_eq!(
            *fake.started.lock().unwrap(),
            vec![(
                "speediso@decommission.service".to_string(),
                "replace".to_string()
            )],
            "no poweroff.target after a failure"
        );
        assert!(said.iter().any(|s| s.contains("staying up")), "{said:?}");
    }

    #[test]
    fn failed_job_stays_up() {
        let fake = FakeSystemd::default();
        *fake.result.lock().unwrap() = Some(JobResult::Failed);
        let p = plan_for("rescue", "speediso.after=reboot");
        let mut said = Vec::new();
        let rc = start_and_wait(&p, &fake, None, &mut |s| said.push(s));
        assert_eq!(rc, exit::FAILED);
        assert_eq!(
            fake.started.lock().unwrap().len(),
            1,
            "no reboot after a failure"
        );
        assert!(
            said.iter().any(|s| s.contains("job result 'failed'")),
            "{said:?}"
        );
    }

    #[test]
    fn start_error_is_reported() {
        let fake = FakeSystemd {
            fail_start: Some("Unit speediso@rescue.service not found.".into()),
            ..Default::default()
        };
        let p = plan_for("rescue", "");
        let mut said = Vec::new();
        assert_eq!(
            start_and_wait(&p, &fake, None, &mut |s| said.push(s)),
            exit::FAILED
        );
        assert!(said.iter().any(|s| s.contains("not found")), "{said:?}");
    }

    #[test]
    fn job_that_never_finishes() {
        let fake = FakeSystemd::default();
        let p = plan_for("rescue", "");
        let mut said = Vec::new();
        assert_eq!(
            start_and_wait(&p, &fake, None, &mut |s| said.push(s)),
            exit::FAILED
        );
    }
}
