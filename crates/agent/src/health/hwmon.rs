//! hwmon sensors against their own limits: /sys/class/hwmon/hwmon*/ with
//! `name` (the chip) and, per sensor, `*_input` and `*_label` with the
//! limits the chip or firmware set. Temperatures (`temp*`, millidegrees
//! Celsius): at or above `_crit`, or `_alarm`/`_crit_alarm` = 1, FAIL; at or
//! above `_max` (or `_max_alarm`) WARN. Fans (`fan*`, RPM): `_alarm` FAIL,
//! below `_min` WARN. Voltages (`in*`, millivolts): `_alarm`, at or beyond
//! `_lcrit`/`_crit`, FAIL; below `_min` or above `_max` WARN. A limit of 0
//! is "not set" (drivers write 0 for none). A sensor whose input cannot be
//! read or parsed warns as unreadable; ENODATA (the driver's "no reading
//! now") is an info line. Attributes under hwmon*/device/ (pre-3.x
//! drivers) are not read.

use super::read::{self, Val};
use super::{Finding, Out, Severity};
use crate::root::Root;

const BASE: &str = "/sys/class/hwmon";
const CHECK: &str = "hwmon";

/// The kinds of sensor read, by attribute prefix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Temp,
    Fan,
    In,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Temp => "temp",
            Kind::Fan => "fan",
            Kind::In => "in",
        }
    }
}

/// A raw value in the person's unit: `85.0 °C`, `1200 RPM`, `12.096 V`.
pub fn human(kind: Kind, raw: i64) -> String {
    match kind {
        Kind::Temp => format!("{:.1} °C", raw as f64 / 1000.0),
        Kind::Fan => format!("{raw} RPM"),
        Kind::In => format!("{:.3} V", raw as f64 / 1000.0),
    }
}

/// The sensors of one chip: (kind, `temp1`) for each `*_input`, in order.
fn sensors(root: &Root, dir: &str) -> Vec<(Kind, u64, String)> {
    let mut v: Vec<(Kind, u64, String)> = crate::root::dir_names(&root.at(dir))
        .into_iter()
        .filter_map(|n| {
            let s = n.strip_suffix("_input")?;
            [Kind::Temp, Kind::Fan, Kind::In].into_iter().find_map(|k| {
                let i: u64 = s.strip_prefix(k.prefix())?.parse().ok()?;
                Some((k, i, s.to_string()))
            })
        })
        .collect();
    v.sort_by_key(|(k, i, _)| (k.prefix(), *i));
    v
}

pub fn check(root: &Root) -> Out {
    let mut out = Out::default();
    let chips = read::numbered(root, BASE, "hwmon");
    let mut n_sensors = 0;
    for (_, hw) in &chips {
        let dir = format!("{BASE}/{hw}");
        let chip = read::text(root, &format!("{dir}/name"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| hw.clone());
        for (kind, _, s) in sensors(root, &dir) {
            n_sensors += 1;
            if let Some(f) = sensor(root, &dir, &chip, kind, &s) {
                out.findings.push(f);
            }
        }
    }
    if chips.is_empty() {
        out.skipped = true;
        out.summary = format!("no hwmon chips in {BASE}: sensors not checked");
    } else {
        out.summary = format!("{} chip(s), {n_sensors} sensor(s)", chips.len());
    }
    out
}

/// The finding for one sensor, if any.
fn sensor(root: &Root, dir: &str, chip: &str, kind: Kind, s: &str) -> Option<Finding> {
    let label = read::text(root, &format!("{dir}/{s}_label"))
        .ok()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty());
    let component = match &label {
        Some(l) => format!("{chip} {s} ({l})"),
        None => format!("{chip} {s}"),
    };
    let input_abs = format!("{dir}/{s}_input");
    let input = match read::num::<i64>(root, &input_abs) {
        Val::Ok(v) => v,
        // The chip went away mid-read.
        Val::Absent => return None,
        Val::NoData => {
            return Some(
                Finding::new(
                    Severity::Info,
                    CHECK,
                    component,
                    "no reading (the driver says the sensor has no data)",
                )
                .source(input_abs),
            )
        }
        Val::Bad(why) => return Some(Finding::unreadable(CHECK, component, &input_abs, &why)),
    };
    let mut bad: Vec<(String, String)> = Vec::new();
    // A limit: `None` when absent or 0 (not set); an unreadable one is
    // a finding of its own.
    let mut limit = |suffix: &str| -> Option<i64> {
        let abs = format!("{dir}/{s}_{suffix}");
        match read::num::<i64>(root, &abs) {
            Val::Ok(0) | Val::Absent | Val::NoData => None,
            Val::Ok(v) => Some(v),
            Val::Bad(why) => {
                bad.push((abs, why));
                None
            }
        }
    };
    let shown = human(kind, input);
    let evidence = format!("{s}_input = {input} ({shown})");
    // (severity, message, threshold) of the worst condition.
    let mut worst: Option<(Severity, String, String)> = None;
    let mut hit = |sev: Severity, msg: String, thr: String| {
        if worst.as_ref().is_none_or(|(w, _, _)| sev > *w) {
            worst = Some((sev, msg, thr));
        }
    };
    let alarms: &[(&str, Severity)] = match kind {
        Kind::Temp => &[
            ("alarm", Severity::Fail),
            ("crit_alarm", Severity::Fail),
            ("max_alarm", Severity::Warn),
        ],
        Kind::Fan => &[("alarm", Severity::Fail), ("min_alarm", Severity::Warn)],
        Kind::In => &[
            ("alarm", Severity::Fail),
            ("lcrit_alarm", Severity::Fail),
            ("crit_alarm", Severity::Fail),
            ("min_alarm", Severity::Warn),
            ("max_alarm", Severity::Warn),
        ],
    };
    for &(a, sev) in alarms {
        if limit(a) == Some(1) {
            hit(
                sev,
                format!("{a} set by the chip at {shown}"),
                format!("{s}_{a} = 1"),
            );
        }
    }
    // The limits each kind has, how the value breaks it, and how bad that
    // is: temperatures at or above crit/max; fans below min; voltages at
    // or beyond lcrit/crit, below min or above max.
    use std::cmp::Ordering::{Equal, Greater, Less};
    let limits: &[(&str, &[std::cmp::Ordering], Severity, &str)] = match kind {
        Kind::Temp => &[
            (
                "crit",
                &[Greater, Equal],
                Severity::Fail,
                "at or above critical",
            ),
            ("max", &[Greater, Equal], Severity::Warn, "at or above max"),
        ],
        Kind::Fan => &[("min", &[Less], Severity::Warn, "below min")],
        Kind::In => &[
            (
                "lcrit",
                &[Less, Equal],
                Severity::Fail,
                "at or below critical",
            ),
            (
                "crit",
                &[Greater, Equal],
                Severity::Fail,
                "at or above critical",
            ),
            ("min", &[Less], Severity::Warn, "below min"),
            ("max", &[Greater], Severity::Warn, "above max"),
        ],
    };
    for &(name, broken, sev, words) in limits {
        if let Some(l) = limit(name).filter(|&l| broken.contains(&input.cmp(&l))) {
            hit(
                sev,
                format!("{shown}, {words}"),
                format!("{name} {} ({s}_{name})", human(kind, l)),
            );
        }
    }
    if let Some((sev, msg, thr)) = worst {
        return Some(
            Finding::new(sev, CHECK, component, msg)
                .evidence(evidence)
                .source(input_abs)
                .threshold(thr),
        );
    }
    // No limit broken, but one could not be read: the sensor is not
    // known to be fine.
    bad.into_iter()
        .next()
        .map(|(abs, why)| Finding::unreadable(CHECK, component, &abs, &why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(human(Kind::Temp, 85000), "85.0 °C");
        assert_eq!(human(Kind::Temp, -5500), "-5.5 °C");
        assert_eq!(human(Kind::Temp, 97125), "97.1 °C");
        assert_eq!(human(Kind::Fan, 1200), "1200 RPM");
        assert_eq!(human(Kind::In, 12096), "12.096 V");
        assert_eq!(human(Kind::In, 850), "0.850 V");
    }
}
