//! All D-Bus code: systemd's Manager API (org.freedesktop.systemd1) behind a
//! small trait, so the dispatcher is unit-tested against a fake and run
//! against real systemd in the VM suite.

use anyhow::{anyhow, Context, Result};
use std::sync::mpsc;
use std::time::Duration;
use zbus::zvariant::OwnedObjectPath;

/// How a systemd job ended (the `result` of the JobRemoved signal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    Done,
    Failed,
    Canceled,
    Timeout,
    Dependency,
    Skipped,
    Other(String),
}

impl JobResult {
    pub fn parse(s: &str) -> JobResult {
        match s {
            "done" => JobResult::Done,
            "failed" => JobResult::Failed,
            "canceled" => JobResult::Canceled,
            "timeout" => JobResult::Timeout,
            "dependency" => JobResult::Dependency,
            "skipped" => JobResult::Skipped,
            other => JobResult::Other(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            JobResult::Done => "done",
            JobResult::Failed => "failed",
            JobResult::Canceled => "canceled",
            JobResult::Timeout => "timeout",
            JobResult::Dependency => "dependency",
            JobResult::Skipped => "skipped",
            JobResult::Other(s) => s,
        }
    }
}

/// A unit's state as `systemctl status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnitState {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
}

/// A started job that can be waited for.
pub trait Job: Send {
    /// The job's object path, for messages.
    fn path(&self) -> &str;
    /// Block until the job is removed, or `timeout` passes.
    fn wait(self: Box<Self>, timeout: Option<Duration>) -> Result<JobResult>;
}

/// What speediso needs from systemd.
pub trait Systemd {
    /// StartUnit(unit, mode) with a JobRemoved subscription already in place,
    /// so a job that finishes at once is not missed.
    fn start_unit(&self, unit: &str, mode: &str) -> Result<Box<dyn Job>>;
    fn unit_state(&self, unit: &str) -> Result<UnitState>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_async = false
)]
trait Manager {
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn subscribe(&self) -> zbus::Result<()>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: zbus::zvariant::ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_async = false
)]
trait Unit {
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
}

/// How long the dispatcher waits for systemd to answer on the bus.
pub const BUS_WAIT: Duration = Duration::from_secs(180);

/// D-Bus errors that mean "systemd is not on the bus yet", not "no".
pub fn transient(error_name: &str) -> bool {
    matches!(
        error_name,
        "org.freedesktop.DBus.Error.TimedOut"
            | "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner"
            | "org.freedesktop.DBus.Error.NoReply"
    )
}

/// The real thing: systemd on the system bus.
pub struct SystemBus {
    conn: zbus::blocking::Connection,
    /// Subscribe() is per client: a second call on the same connection fails
    /// with AlreadySubscribed (seen in the VM suite when after=poweroff
    /// started poweroff.target after the task's unit).
    subscribed: std::sync::atomic::AtomicBool,
}

impl SystemBus {
    pub fn connect() -> Result<SystemBus> {
        let conn = zbus::blocking::Connection::system()
            .context("connecting to the system D-Bus (is systemd running?)")?;
        Ok(SystemBus {
            conn,
            subscribed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn subscribe_once(&self, manager: &ManagerProxy<'_>) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.subscribed.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Early in a slow boot the bus is up before systemd has joined it:
        // the bus then tries to activate systemd1 and answers TimedOut or
        // ServiceUnknown (seen in the VM suite under TCG: "Failed to
        // activate service 'org.freedesktop.systemd1': timed out"). Those
        // answers are retried until BUS_WAIT has passed, anything else is
        // an error at once.
        let start = std::time::Instant::now();
        loop {
            match manager.subscribe() {
                Ok(()) => break,
                Err(zbus::Error::MethodError(name, _, _))
                    if name.as_str() == "org.freedesktop.systemd1.AlreadySubscribed" =>
                {
                    break
                }
                Err(zbus::Error::MethodError(name, msg, _))
                    if transient(name.as_str()) && start.elapsed() < BUS_WAIT =>
                {
                    tracing::warn!(
                        "systemd is not on the bus yet ({name}: {}); trying again",
                        msg.unwrap_or_default()
                    );
                    std::thread::sleep(Duration::from_secs(2));
                }
                Err(e) => return Err(e).context("subscribing to systemd signals"),
            }
        }
        self.subscribed.store(true, Ordering::SeqCst);
        Ok(())
    }
}

struct BusJob {
    path: String,
    rx: mpsc::Receiver<Result<JobResult>>,
}

impl Job for BusJob {
    fn path(&self) -> &str {
        &self.path
    }
    fn wait(self: Box<Self>, timeout: Option<Duration>) -> Result<JobResult> {
        let res = match timeout {
            Some(t) => self
                .rx
                .recv_timeout(t)
                .map_err(|_| anyhow!("job {} did not finish within {}s", self.path, t.as_secs()))?,
            None => self
                .rx
                .recv()
                .map_err(|_| anyhow!("lost the D-Bus connection waiting for {}", self.path))?,
        };
        res
    }
}

impl Systemd for SystemBus {
    fn start_unit(&self, unit: &str, mode: &str) -> Result<Box<dyn Job>> {
        let manager = ManagerProxy::new(&self.conn).context("creating systemd manager proxy")?;
        self.subscribe_once(&manager)?;
        let signals = manager
            .receive_job_removed()
            .context("listening for JobRemoved")?;
        let path = manager
            .start_unit(unit, mode)
            .with_context(|| format!("StartUnit {unit} ({mode})"))?
            .to_string();
        let (tx, rx) = mpsc::channel();
        let want = path.clone();
        // The signal iterator blocks; a thread turns it into a channel that
        // can be waited on with a timeout.
        std::thread::spawn(move || {
            for sig in signals {
                let Ok(args) = sig.args() else { continue };
                if args.job().as_str() == want {
                    let _ = tx.send(Ok(JobResult::parse(args.result())));
                    return;
                }
            }
            let _ = tx.send(Err(anyhow!(
                "D-Bus signal stream ended before {want} finished"
            )));
        });
        Ok(Box::new(BusJob { path, rx }))
    }

    fn unit_state(&self, unit: &str) -> Result<UnitState> {
        let manager = ManagerProxy::new(&self.conn)?;
        let path = manager
            .load_unit(unit)
            .with_context(|| format!("LoadUnit {unit}"))?;
        let u = UnitProxy::builder(&self.conn)
            .path(path)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()?;
        Ok(UnitState {
            load_state: u.load_state()?,
            active_state: u.active_state()?,
            sub_state: u.sub_state()?,
        })
    }
}

#[cfg(test)]
pub mod fake {
    //! A fake systemd for dispatcher tests: records calls, answers with a
    //! configured job result.
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    pub struct FakeSystemd {
        pub started: Arc<Mutex<Vec<(String, String)>>>,
        pub result: Arc<Mutex<Option<JobResult>>>,
        pub fail_start: Option<String>,
    }

    struct FakeJob(Option<JobResult>);
    impl Job for FakeJob {
        fn path(&self) -> &str {
            "/org/freedesktop/systemd1/job/1"
        }
        fn wait(self: Box<Self>, _t: Option<Duration>) -> Result<JobResult> {
            self.0.clone().ok_or_else(|| anyhow!("job did not finish"))
        }
    }

    impl Systemd for FakeSystemd {
        fn start_unit(&self, unit: &str, mode: &str) -> Result<Box<dyn Job>> {
            if let Some(e) = &self.fail_start {
                return Err(anyhow!("{e}"));
            }
            self.started
                .lock()
                .unwrap()
                .push((unit.to_string(), mode.to_string()));
            Ok(Box::new(FakeJob(self.result.lock().unwrap().clone())))
        }
        fn unit_state(&self, _unit: &str) -> Result<UnitState> {
            Ok(UnitState {
                load_state: "loaded".into(),
                active_state: "inactive".into(),
                sub_state: "dead".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::transient;

    /// systemd not yet on the bus is waited for; a refusal is not.
    #[test]
    fn bus_errors_that_are_retried() {
        for n in [
            "org.freedesktop.DBus.Error.TimedOut",
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
            "org.freedesktop.DBus.Error.NoReply",
        ] {
            assert!(transient(n), "{n}");
        }
        for n in [
            "org.freedesktop.DBus.Error.AccessDenied",
            "org.freedesktop.systemd1.NoSuchUnit",
            "org.freedesktop.DBus.Error.InvalidArgs",
        ] {
            assert!(!transient(n), "{n}");
        }
    }
}
