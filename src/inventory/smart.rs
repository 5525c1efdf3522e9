//! SMART health summary through `smartctl --json`, for NVMe, SATA and SAS
//! disks. Absent whenever smartctl is missing, the device does not answer,
//! or smartctl exits non-zero (its exit status is a bit mask that also
//! flags logged errors; rather than guess, nothing is reported).

use super::disks::Disk;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Smart {
    /// smartctl's overall health self-assessment.
    pub passed: bool,
    pub temperature_c: Option<i64>,
    pub power_on_hours: Option<u64>,
    /// NVMe: percentage of rated endurance used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage_used: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_errors: Option<u64>,
    pub source: &'static str,
}

/// Parse `smartctl -j -H -A` output.
pub fn parse(json: &str) -> Option<Smart> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let passed = v.pointer("/smart_status/passed")?.as_bool()?;
    let nvme = v.get("nvme_smart_health_information_log");
    Some(Smart {
        passed,
        temperature_c: v.pointer("/temperature/current").and_then(|t| t.as_i64()),
        power_on_hours: v.pointer("/power_on_time/hours").and_then(|t| t.as_u64()),
        percentage_used: nvme
            .and_then(|n| n.get("percentage_used"))
            .and_then(|x| x.as_u64()),
        media_errors: nvme
            .and_then(|n| n.get("media_errors"))
            .and_then(|x| x.as_u64()),
        source: "smartctl",
    })
}

/// Ask smartctl about a disk whose transport can answer SMART.
pub fn query(d: &Disk) -> Option<Smart> {
    let t = d.transport.as_deref()?;
    if !matches!(t, "nvme" | "sata" | "ata" | "sas" | "scsi") {
        return None;
    }
    match crate::cmd::run(&["smartctl", "-j", "-H", "-A", &d.path]) {
        Ok(out) => parse(&out),
        Err(e) => {
            tracing::debug!("no SMART for {}: {e:#}", d.path);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvme_and_sata_json() {
        let nvme = r#"{"smart_status":{"passed":true},"temperature":{"current":38},
            "power_on_time":{"hours":1234},
            "nvme_smart_health_information_log":{"percentage_used":3,"media_errors":0}}"#;
        let s = parse(nvme).unwrap();
        assert!(s.passed);
        assert_eq!(s.temperature_c, Some(38));
        assert_eq!(s.power_on_hours, Some(1234));
        assert_eq!(s.percentage_used, Some(3));
        let sata = r#"{"smart_status":{"passed":false},"temperature":{"current":41}}"#;
        let s = parse(sata).unwrap();
        assert!(!s.passed);
        assert_eq!(s.percentage_used, None);
        // No health verdict: nothing, rather than a guess.
        assert_eq!(parse(r#"{"device":{}}"#), None);
        assert_eq!(parse("not json"), None);
    }
}
