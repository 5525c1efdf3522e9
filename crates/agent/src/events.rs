//! The bus that fans the one event stream (its schema is
//! `speediso_proto::events`, re-exported here) out to sinks: console, JSON
//! lines, journal, sd_notify, state file, report endpoint. Nothing else in
//! the agent prints progress on its own.

pub use speediso_proto::events::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}
