//! The versioned event stream every speediso run emits: one JSON object per
//! event, the same on the console's `--json`, in the report spool and in the
//! collector. The agent produces it (its `Bus`), the collector stores and
//! renders it; neither may change it alone (bump `EVENT_VERSION`).

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};
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

/// Every event `type`, in the order of a run: what `Body::type_name`
/// gives, what the collector indexes, what the journal has message ids for.
pub const TYPES: &[&str] = &[
    "run_started",
    "step_started",
    "progress",
    "result",
    "log",
    "warning",
    "step_finished",
    "run_finished",
    "dispatch_rejected",
];

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
    uuid_text(&b)
}

/// 16 bytes (fewer are zero-padded) in the 8-4-4-4-12 lowercase form.
pub fn uuid_text(b: &[u8]) -> String {
    let h: String = (0..16)
        .map(|i| format!("{:02x}", b.get(i).copied().unwrap_or(0)))
        .collect();
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
    use std::time::Duration;

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
