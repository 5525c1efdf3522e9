//! The human renderings shared by the agent's console and journal and the
//! collector's pages: one line per event, byte counts and durations.

use crate::events::{Body, Event};

/// One line of text for an event, shared by the console, journal and
/// sd_notify sinks so they all say the same thing.
pub fn describe(ev: &Event) -> String {
    let step = ev
        .step
        .as_deref()
        .map(|s| format!("[{s}] "))
        .unwrap_or_default();
    let task = ev.task.as_deref().unwrap_or("-");
    match &ev.body {
        Body::RunStarted {
            steps,
            destructive,
            after,
            ..
        } => format!(
            "task {task} started: steps {}{}, after={after}",
            if steps.is_empty() {
                "(none)".to_string()
            } else {
                steps.join(", ")
            },
            if *destructive { " (DESTRUCTIVE)" } else { "" }
        ),
        Body::StepStarted { module } => format!("{step}started ({module})"),
        Body::Progress {
            percent,
            bytes,
            total_bytes,
            rate,
            eta_s,
            message,
        } => {
            let mut parts = Vec::new();
            if let Some(m) = message {
                parts.push(m.clone());
            }
            if let Some(p) = percent {
                parts.push(format!("{p:5.1}%"));
            }
            match (bytes, total_bytes) {
                (Some(b), Some(t)) => {
                    parts.push(format!("{} / {}", human_bytes(*b), human_bytes(*t)))
                }
                (Some(b), None) => parts.push(human_bytes(*b)),
                _ => {}
            }
            if let Some(r) = rate {
                parts.push(format!("{}/s", human_bytes(*r as u64)));
            }
            if let Some(e) = eta_s {
                parts.push(format!("ETA {}", human_duration(*e)));
            }
            format!("{step}{}", parts.join("  "))
        }
        Body::Result { data } => {
            let summary = summarize(data);
            format!("{step}result: {summary}")
        }
        Body::Log { message, .. } => format!("{step}{message}"),
        Body::Warning { message } => format!("{step}WARNING: {message}"),
        Body::StepFinished {
            outcome,
            duration_ms,
            error,
        } => match error {
            Some(e) => format!(
                "{step}{} after {}: {e}",
                outcome.as_str(),
                human_duration(*duration_ms as f64 / 1000.0)
            ),
            None => format!(
                "{step}{} in {}",
                outcome.as_str(),
                human_duration(*duration_ms as f64 / 1000.0)
            ),
        },
        Body::RunFinished {
            outcome,
            exit_status,
            duration_ms,
            error,
        } => format!(
            "task {task} {} (exit {exit_status}) in {}{}",
            outcome.as_str(),
            human_duration(*duration_ms as f64 / 1000.0),
            error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
        Body::DispatchRejected { value, reason, .. } => match value {
            Some(v) => {
                format!("task {v:?} rejected: {reason}; nothing was run, staying up for SSH")
            }
            None => format!("{reason}; nothing was run, staying up for SSH"),
        },
    }
}

/// A short one-line summary of a result object: its top-level scalar
/// fields, and the length of arrays.
fn summarize(data: &serde_json::Value) -> String {
    match data {
        serde_json::Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .take(12)
                .map(|(k, v)| match v {
                    serde_json::Value::Array(a) => format!("{k}: {} items", a.len()),
                    serde_json::Value::Object(_) => format!("{k}: {{…}}"),
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect();
            parts.join(", ")
        }
        other => other.to_string(),
    }
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    if secs < 1.0 {
        return format!("{} ms", (secs * 1000.0).round() as u64);
    }
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let s = secs.round() as u64;
    if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s / 60) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_duration(0.25), "250 ms");
        assert_eq!(human_duration(75.0), "1m15s");
        assert_eq!(human_duration(7300.0), "2h01m");
    }
}
