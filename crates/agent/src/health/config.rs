//! The health check's options: what the machine is expected to have
//! (`speediso.expect.*`, written from Foreman host parameters by the PXE
//! template) and the thresholds each counter is held to. Each is a kernel
//! command line key and a task-file step key; the command line wins, as it
//! is the host's own (a task file gives the task's default).

use crate::options::{Kind, Options, Spec};
use anyhow::{bail, Result};
use serde::Serialize;

/// How far each counter may go before it is a WARN. Defaults in
/// `Thresholds::default`, documented in `OPTIONS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// Corrected ECC errors per DIMM (or memory controller) above this warn.
    pub max_corrected_errors: u64,
    /// CPU core or package throttle events above this warn.
    pub max_throttle_count: u64,
    /// PCIe AER correctable errors per device above this warn.
    pub max_aer_correctable: u64,
    /// NIC rx_errors, tx_errors, rx_crc_errors above this warn.
    pub max_nic_errors: u64,
    /// NIC rx_dropped, tx_dropped above this warn.
    pub max_nic_drops: u64,
    /// NIC carrier changes above this warn.
    pub max_carrier_changes: u64,
    /// NVMe percentage of rated endurance used at or above this warns.
    pub max_percentage_used: u64,
    /// ATA reallocated, pending, offline-uncorrectable and reported
    /// uncorrectable sectors (raw) above this warn.
    pub max_bad_sectors: u64,
    /// GPU correctable (single-bit) ECC errors, volatile or aggregate,
    /// above this warn.
    pub max_gpu_correctable: u64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            max_corrected_errors: 0,
            max_throttle_count: 0,
            max_aer_correctable: 0,
            max_nic_errors: 0,
            // Drivers count frames for unknown protocols and VLANs, and a
            // ring full at boot, as drops: a few are normal.
            max_nic_drops: 1000,
            // A link brought up once counts 2 (down at probe, then up);
            // two bring-ups are normal in a PXE boot.
            max_carrier_changes: 4,
            // Drives are rated to 100%; 90% leaves time to order one.
            max_percentage_used: 90,
            max_bad_sectors: 0,
            max_gpu_correctable: 0,
        }
    }
}

/// What was ordered; `None`: not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Expect {
    pub cpu_threads: Option<u64>,
    pub memory_gib: Option<u64>,
    pub disk_count: Option<u64>,
    pub nic_count: Option<u64>,
    /// DIMMs populated (SMBIOS type 17 with a size).
    pub dimm_count: Option<u64>,
    /// Every counted disk at least this big, in GB (10^9 bytes, as drives
    /// are sold).
    pub disk_min_gb: Option<u64>,
    /// Every NIC with a link at this speed or faster, in Mb/s.
    pub nic_speed_mbps: Option<u64>,
    /// GPUs as `inventory::gpus::is_gpu` defines them: display and 3D
    /// controllers (PCI 0302, 0380), NVIDIA/AMD/Intel VGA and accelerators
    /// (0300, 1200); a BMC's VGA is no GPU.
    pub gpu_count: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub thresholds: Thresholds,
    pub expect: Expect,
    /// Save this report as a snapshot of this name (task files only).
    pub snapshot: Option<String>,
    /// Report what is new since the snapshot of this name (task files only).
    pub compare: Option<String>,
}

const BIG: u64 = 1 << 48;

/// Every option, in `speediso tasks --options` order.
pub const OPTIONS: &[Spec] = &[
    Spec::cmdline(
        "expect.cpu_threads",
        Kind::Int(1, 100_000),
        "health: logical CPUs the machine must have (FAIL otherwise)",
    )
    .step("cpu_threads"),
    Spec::cmdline(
        "expect.memory_gib",
        Kind::Int(1, 1 << 24),
        "health: installed memory in GiB; MemTotal may be up to 5% + 0.5 GiB below it (FAIL otherwise)",
    )
    .step("memory_gib"),
    Spec::cmdline(
        "expect.disk_count",
        Kind::Int(0, 100_000),
        "health: whole disks (not loop, ram, zram, optical, dm, md, nbd or removable) (FAIL otherwise)",
    )
    .step("disk_count"),
    Spec::cmdline(
        "expect.nic_count",
        Kind::Int(0, 100_000),
        "health: NICs with a device behind them (FAIL otherwise)",
    )
    .step("nic_count"),
    Spec::cmdline(
        "expect.dimm_count",
        Kind::Int(0, 100_000),
        "health: populated DIMMs (SMBIOS memory devices with a size) (FAIL otherwise, naming the empty slots)",
    )
    .step("dimm_count"),
    Spec::cmdline(
        "expect.disk_min_gb",
        Kind::Int(1, BIG),
        "health: every counted disk at least this many GB (10^9 bytes, as sold) (FAIL naming a smaller one)",
    )
    .step("disk_min_gb"),
    Spec::cmdline(
        "expect.nic_speed_mbps",
        Kind::Int(1, 10_000_000),
        "health: every NIC with a link negotiated at least this speed, Mb/s (FAIL naming a slower one)",
    )
    .step("nic_speed_mbps"),
    Spec::cmdline(
        "expect.gpu_count",
        Kind::Int(0, 100_000),
        "health: GPUs: 3D and display controllers (PCI 0302, 0380), NVIDIA/AMD/Intel VGA and accelerators (0300, 1200), not a BMC's VGA (FAIL otherwise)",
    )
    .step("gpu_count"),
    Spec::cmdline(
        "expect.gpus",
        Kind::Int(0, 100_000),
        "health: the same as speediso.expect.gpu_count (the name in DESIGN.md); gpu_count wins when both are given",
    )
    .step("gpus"),
    Spec::cmdline(
        "health.max_corrected_errors",
        Kind::Int(0, BIG),
        "health: corrected ECC errors per DIMM above this warn (default 0)",
    )
    .step("max_corrected_errors"),
    Spec::cmdline(
        "health.max_throttle_count",
        Kind::Int(0, BIG),
        "health: CPU core/package thermal throttle events above this warn (default 0)",
    )
    .step("max_throttle_count"),
    Spec::cmdline(
        "health.max_aer_correctable",
        Kind::Int(0, BIG),
        "health: PCIe AER correctable errors per device above this warn (default 0)",
    )
    .step("max_aer_correctable"),
    Spec::cmdline(
        "health.max_nic_errors",
        Kind::Int(0, BIG),
        "health: NIC rx/tx/CRC errors above this warn (default 0)",
    )
    .step("max_nic_errors"),
    Spec::cmdline(
        "health.max_nic_drops",
        Kind::Int(0, BIG),
        "health: NIC rx/tx drops above this warn (default 1000)",
    )
    .step("max_nic_drops"),
    Spec::cmdline(
        "health.max_carrier_changes",
        Kind::Int(0, BIG),
        "health: NIC carrier changes above this warn (default 4: a link brought up twice)",
    )
    .step("max_carrier_changes"),
    Spec::cmdline(
        "health.max_percentage_used",
        Kind::Int(1, 255),
        "health: NVMe endurance used (percent) at or above this warns (default 90)",
    )
    .step("max_percentage_used"),
    Spec::cmdline(
        "health.max_bad_sectors",
        Kind::Int(0, BIG),
        "health: ATA reallocated/pending/uncorrectable sectors above this warn (default 0)",
    )
    .step("max_bad_sectors"),
    Spec::cmdline(
        "health.max_gpu_correctable",
        Kind::Int(0, BIG),
        "health: GPU correctable (single-bit) ECC errors above this warn (default 0)",
    )
    .step("max_gpu_correctable"),
    Spec::step_only(
        "snapshot",
        Kind::NonEmpty,
        "health: save this report under a name ([a-z0-9_-]) for a later step's `compare` (burn-in: before)",
    ),
    Spec::step_only(
        "compare",
        Kind::NonEmpty,
        "health: report every finding that is new since the named snapshot of this run (burn-in: after); new ECC, MCE, PCIe and disk findings FAIL",
    ),
];

impl Config {
    /// From a step's options and the command line's (which win).
    pub fn new(step: &toml::Table, options: &Options) -> Result<Config> {
        let known: Vec<&str> = OPTIONS.iter().filter_map(|s| s.step).collect();
        if let Some(k) = step.keys().find(|k| !known.contains(&k.as_str())) {
            bail!("unknown health option '{k}'; known: {}", known.join(", "));
        }
        let mut c = Config::default();
        let t = &mut c.thresholds;
        let e = &mut c.expect;
        let fields: [(&str, &mut Option<u64>); 8] = [
            ("expect.cpu_threads", &mut e.cpu_threads),
            ("expect.memory_gib", &mut e.memory_gib),
            ("expect.disk_count", &mut e.disk_count),
            ("expect.nic_count", &mut e.nic_count),
            ("expect.dimm_count", &mut e.dimm_count),
            ("expect.disk_min_gb", &mut e.disk_min_gb),
            ("expect.nic_speed_mbps", &mut e.nic_speed_mbps),
            ("expect.gpu_count", &mut e.gpu_count),
        ];
        for (key, field) in fields {
            if let Some(v) = value(step, options, key)? {
                *field = Some(v);
            }
        }
        // DESIGN.md's name for the GPU count, read (and checked) either way.
        let gpus = value(step, options, "expect.gpus")?;
        e.gpu_count = e.gpu_count.or(gpus);
        let fields: [(&str, &mut u64); 9] = [
            ("health.max_corrected_errors", &mut t.max_corrected_errors),
            ("health.max_throttle_count", &mut t.max_throttle_count),
            ("health.max_aer_correctable", &mut t.max_aer_correctable),
            ("health.max_nic_errors", &mut t.max_nic_errors),
            ("health.max_nic_drops", &mut t.max_nic_drops),
            ("health.max_carrier_changes", &mut t.max_carrier_changes),
            ("health.max_percentage_used", &mut t.max_percentage_used),
            ("health.max_bad_sectors", &mut t.max_bad_sectors),
            ("health.max_gpu_correctable", &mut t.max_gpu_correctable),
        ];
        for (key, field) in fields {
            if let Some(v) = value(step, options, key)? {
                *field = v;
            }
        }
        c.snapshot = name(step, "snapshot")?;
        c.compare = name(step, "compare")?;
        Ok(c)
    }
}

/// A snapshot name from the step: `[a-z0-9_-]{1,32}` (it names a file).
fn name(step: &toml::Table, key: &str) -> Result<Option<String>> {
    match step.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s))
            if (1..=32).contains(&s.len())
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                }) =>
        {
            Ok(Some(s.clone()))
        }
        Some(v) => {
            bail!("health option {key} = {v}: expected a name of 1-32 characters a-z, 0-9, - or _")
        }
    }
}

/// The value of the option with command line key `key`: from the command
/// line (validated by the plan), else the step's key, checked here.
fn value(step: &toml::Table, options: &Options, key: &str) -> Result<Option<u64>> {
    let spec = crate::options::by_key(OPTIONS, key).expect("declared");
    let Kind::Int(lo, hi) = spec.kind else {
        unreachable!("health options are integers")
    };
    if let Some(v) = options.get(key) {
        return match v.parse::<u64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
            _ => bail!("speediso.{key}={v:?}: expected an integer from {lo} to {hi}"),
        };
    }
    let sk = spec.step.expect("every health option has a step key");
    match step.get(sk) {
        None => Ok(None),
        Some(toml::Value::Integer(n)) if *n >= 0 && (lo..=hi).contains(&(*n as u64)) => {
            Ok(Some(*n as u64))
        }
        Some(v) => bail!("health option {sk} = {v}: expected an integer from {lo} to {hi}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_wins_over_the_step() {
        let step: toml::Table =
            toml::from_str("memory_gib = 64\nmax_nic_errors = 5\ncpu_threads = 8").unwrap();
        let o = Options::from_pairs([("expect.memory_gib", "512")]);
        let c = Config::new(&step, &o).unwrap();
        assert_eq!(c.expect.memory_gib, Some(512));
        assert_eq!(c.expect.cpu_threads, Some(8));
        assert_eq!(c.thresholds.max_nic_errors, 5);
        assert_eq!(c.thresholds.max_nic_drops, 1000);
        assert_eq!(
            Config::new(&toml::Table::new(), &Options::default()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn bad_step_values_name_the_key() {
        for text in [
            "memory_gib = 0",
            "max_nic_errors = -1",
            "nic_count = 'two'",
            "colour = 1",
        ] {
            let step: toml::Table = toml::from_str(text).unwrap();
            let key = text.split(' ').next().unwrap();
            let err = format!("{:#}", Config::new(&step, &Options::default()).unwrap_err());
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
