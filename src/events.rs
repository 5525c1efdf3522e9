//! The one versioned event stream every task emits, and the bus that fans it
//! out to sinks (console, JSON lines, journal, sd_notify, state file, report
//! endpoint). Nothing else in the crate prints progress on its own.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Version of the event schema; bump on any incompatible change.
pub const EVENT_VERSION: u32 = 1;

/// Which machine an event comes from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostId {
    /// DMI system serial number, when the firmware sets a real one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// DMI system UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// MAC of the NIC the machine PXE-booted from (BOOTIF=), else the first NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// One event. Serialised as one JSON line:
/// `{v, run_id, seq, ts, host, task, step, type, ...}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub v: u32,
    pub run_id: String,
    pub seq: u64,
    /// RFC 3339 UTC with milliseconds.
    pub ts: String,
    pub host: HostId,
    /// Task name; `null` for a dispatch that found no valid task.
    pub task: Option<String>,
    /// Step id (`inventory`, `bench.cpu`, ...) for step-scoped events.
    pub step: Option<String>,
    #[serde(flatten)]
    pub body: Body,
}

/// What happened. `type` in JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    RunStarted {
        /// Step ids in order.
        steps: Vec<String>,
        destructive: bool,
        after: String,
        /// The agent's version, so results can be traced to a build.
        agent_version: String,
    },
    StepStarted {
        module: String,
    },
    Progress {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        percent: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total_bytes: Option<u64>,
        /// Bytes per second (or the unit named in `message`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eta_s: Option<f64>,
        /// What is being measured, e.g. a device path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    Result {
        /// Typed figures of the step; its shape belongs to the module.
        data: serde_json::Value,
    },
    Log {
        level: String,
        message: String,
    },
    Warning {
        message: String,
    },
    StepFinished {
        outcome: Outcome,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    RunFinished {
        outcome: Outcome,
        exit_status: i32,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    DispatchRejected {
        /// The value that was rejected (`null` when no task was given).
        value: Option<String>,
        reason: String,
        known_tasks: Vec<String>,
    },
}

impl Body {
    /// The `type` string of this body, as serialised.
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::RunStarted { .. } => "run_started",
            Body::StepStarted { .. } => "step_started",
            Body::Progress { .. } => "progress",
            Body::Result { .. } => "result",
            Body::Log { .. } => "log",
            Body::Warning { .. } => "warning",
            Body::StepFinished { .. } => "step_finished",
            Body::RunFinished { .. } => "run_finished",
            Body::DispatchRejected { .. } => "dispatch_rejected",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failed,
    TimedOut,
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Refused => "refused",
        }
    }
}

/// A consumer of events. Sinks must not fail the task: they log their own
/// trouble and carry on.
pub trait Sink: Send {
    fn event(&mut self, ev: &Event);
    /// Called once at the end of a run; `deadline` bounds any waiting
    /// (e.g. draining a report spool).
    fn close(&mut self, _deadline: Duration) {}
}

struct BusInner {
    seq: u64,
    sinks: Vec<Box<dyn Sink>>,
}

/// Stamps events with run id, sequence number and time, and hands them to
/// every sink in order. Cheap to clone; shared across step threads.
#[derive(Clone)]
pub struct Bus {
    run_id: String,
    host: HostId,
    task: Option<String>,
    inner: Arc<Mutex<BusInner>>,
}

impl Bus {
    pub fn new(task: Option<String>, host: HostId, sinks: Vec<Box<dyn Sink>>) -> Self {
        Bus {
            run_id: new_run_id(),
            host,
            task,
            inner: Arc::new(Mutex::new(BusInner { seq: 0, sinks })),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn task(&self) -> Option<&str> {
        self.task.as_deref()
    }

    /// The host every event of this bus names.
    pub fn host(&self) -> &HostId {
        &self.host
    }

    /// Emit one event. Sequence numbers start at 0 and increase by one.
    pub fn emit(&self, step: Option<&str>, body: Body) -> Event {
        // Secrets never reach a sink, whatever a module put in its text.
        let body = redact_body(body);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let ev = Event {
            v: EVENT_VERSION,
            run_id: self.run_id.clone(),
            seq: inner.seq,
            ts: rfc3339_now(),
            host: self.host.clone(),
            task: self.task.clone(),
            step: step.map(str::to_string),
            body,
        };
        inner.seq += 1;
        for s in inner.sinks.iter_mut() {
            s.event(&ev);
        }
        ev
    }

    /// Close every sink, giving each at most `deadline`.
    pub fn close(&self, deadline: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for s in inner.sinks.iter_mut() {
            s.close(deadline);
        }
    }

    /// A handle for one step: emits with the step id filled in.
    pub fn step(&self, step: &str) -> StepEvents {
        StepEvents {
            bus: self.clone(),
            step: step.to_string(),
        }
    }
}

/// `body` with every string passed through `redact::text`. Events are
/// rare next to the work they describe (progress is throttled), so one
/// round trip through JSON each is cheap; an unchanged body is kept as is.
fn redact_body(body: Body) -> Body {
    let Ok(mut v) = serde_json::to_value(&body) else {
        return body;
    };
    if !crate::redact::json(&mut v) {
        return body;
    }
    // Fail closed: a body that cannot be rebuilt masked is not sent as is.
    serde_json::from_value(v).unwrap_or_else(|_| Body::Warning {
        message: "an event was withheld: it could not be checked for secrets".into(),
    })
}

/// The event handle a module gets: everything it says is scoped to its step.
#[derive(Clone)]
pub struct StepEvents {
    bus: Bus,
    step: String,
}

impl StepEvents {
    pub fn emit(&self, body: Body) -> Event {
        self.bus.emit(Some(&self.step), body)
    }
    pub fn log(&self, message: impl Into<String>) {
        self.emit(Body::Log {
            level: "info".into(),
            message: message.into(),
        });
    }
    pub fn warn(&self, message: impl Into<String>) {
        self.emit(Body::Warning {
            message: message.into(),
        });
    }
    pub fn progress(&self, p: Progress) {
        self.emit(Body::Progress {
            percent: p.percent,
            bytes: p.bytes,
            total_bytes: p.total_bytes,
            rate: p.rate,
            eta_s: p.eta_s,
            message: p.message,
        });
    }
    pub fn step(&self) -> &str {
        &self.step
    }
    pub fn run_id(&self) -> &str {
        self.bus.run_id()
    }

    pub fn host(&self) -> &HostId {
        self.bus.host()
    }
}

/// Builder-friendly progress figures.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub percent: Option<f64>,
    pub bytes: Option<u64>,
    pub total_bytes: Option<u64>,
    pub rate: Option<f64>,
    pub eta_s: Option<f64>,
    pub message: Option<String>,
}

/// A random UUIDv4 string.
pub fn new_run_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        // No entropy source at all is near impossible; fall back to time+pid
        // so a run id still differs between runs.
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b[..16].copy_from_slice(&(t ^ (std::process::id() as u128) << 64).to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Current time as RFC 3339 UTC with milliseconds.
pub fn rfc3339_now() -> String {
    rfc3339(SystemTime::now())
}

pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, m, day) = civil_from_days(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Arc<Mutex<Vec<Event>>>);
    impl Sink for Collect {
        fn event(&mut self, ev: &Event) {
            self.0.lock().unwrap().push(ev.clone());
        }
    }

    #[test]
    fn seq_increases_and_json_shape() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let bus = Bus::new(
            Some("inventory".into()),
            HostId::default(),
            vec![Box::new(Collect(got.clone()))],
        );
        bus.emit(None, Body::StepStarted { module: "x".into() });
        bus.step("x").warn("careful");
        let got = got.lock().unwrap();
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 1]);
        let j = serde_json::to_value(&got[1]).unwrap();
        assert_eq!(j["type"], "warning");
        assert_eq!(j["step"], "x");
        assert_eq!(j["task"], "inventory");
        assert_eq!(j["v"], EVENT_VERSION);
        let back: Event = serde_json::from_value(j).unwrap();
        assert_eq!(back, got[1]);
    }

    #[test]
    fn no_sink_sees_a_registered_secret() {
        crate::redact::register_option("token", "bus-test-token-5150");
        let got = Arc::new(Mutex::new(Vec::new()));
        let bus = Bus::new(
            None,
            HostId::default(),
            vec![Box::new(Collect(got.clone()))],
        );
        let st = bus.step("s");
        st.log("posting with bus-test-token-5150 to https://u:pw@h/");
        st.emit(Body::Result {
            data: serde_json::json!({"kernel": {"cmdline": "a speediso.token=bus-test-token-5150 b"}}),
        });
        let got = got.lock().unwrap();
        let all = serde_json::to_string(&*got).unwrap();
        assert!(!all.contains("bus-test-token-5150"), "{all}");
        assert!(!all.contains("u:pw"), "{all}");
        assert!(all.contains("speediso.token=***"), "{all}");
    }

    #[test]
    fn run_id_is_uuid_v4() {
        let id = new_run_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_run_id());
    }

    #[test]
    fn rfc3339_known_dates() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
