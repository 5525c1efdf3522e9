//! SMART health summary through `smartctl --json`, for NVMe, SATA and SAS
//! disks. smartctl's exit status is a bit mask that is non-zero for healthy
//! disks with old logged errors too, so the verdict is taken from the JSON
//! (`smart_status.passed`), never from the status. Absent whenever
//! smartctl is missing or the device gives no verdict.

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

/// Ask smartctl about the disk at `path` when its transport (lsblk's
/// name) can answer SMART.
pub fn query(path: &str, transport: Option<&str>) -> Option<Smart> {
    let t = transport?;
    if !matches!(t, "nvme" | "sata" | "ata" | "sas" | "scsi") {
        return None;
    }
    // Through sh only to keep stdout whatever the exit mask; the device
    // path goes in as $0, unquoted nowhere.
    let script = "command -v smartctl >/dev/null || exit 1; smartctl -j -H -A \"$0\"; exit 0";
    match crate::cmd::run(&["sh", "-c", script, path]) {
        Ok(out) => parse(&out),
        Err(e) => {
            tracing::debug!("no SMART for {path}: {e:#}");
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

    /// A healthy disk with logged errors: smartctl exits 64, the verdict
    /// still comes through; virtio disks are not asked at all.
    #[test]
    fn exit_mask_does_not_hide_the_verdict() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("smartctl");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho '{\"smart_status\":{\"passed\":true},\"temperature\":{\"current\":40}}'\nexit 64\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        std::env::set_var("PATH", path);
        let s = query("/dev/nvme9n9", Some("nvme")).unwrap();
        assert!(s.passed);
        assert_eq!(s.temperature_c, Some(40));
        assert_eq!(query("/dev/nvme9n9", Some("virtio")), None);
    }
}
