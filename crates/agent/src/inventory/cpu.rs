//! CPU model, topology, caches and NUMA nodes from /proc/cpuinfo and
//! /sys/devices/system/{cpu,node}. Counts follow lscpu: `threads` is the
//! number of present logical CPUs (lscpu's "CPU(s)").

use super::sysfs::{dir_names, parse_cpu_list, read_trim, read_u64};
use crate::root::Root;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Cpu {
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub family: Option<u32>,
    pub model_id: Option<u32>,
    pub stepping: Option<u32>,
    pub sockets: u32,
    /// Physical cores in all sockets.
    pub cores: u32,
    /// Logical CPUs present (lscpu "CPU(s)").
    pub threads: u32,
    pub online: u32,
    pub threads_per_core: Option<u32>,
    /// Current clock of the first CPU as /proc/cpuinfo reports it.
    pub mhz: Option<f64>,
    /// From cpufreq; `null` where there is no cpufreq (most VMs).
    pub mhz_max: Option<f64>,
    pub flags: Vec<String>,
    pub caches: Vec<Cache>,
    pub numa_nodes: Vec<NumaNode>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cache {
    /// `L1d`, `L1i`, `L2`, `L3` as lscpu names them.
    pub name: String,
    pub level: u32,
    #[serde(rename = "type")]
    pub kind: String,
    /// Size of one instance.
    pub size_bytes: u64,
    pub instances: u32,
    pub total_bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NumaNode {
    pub id: u32,
    pub cpus: String,
    pub memory_bytes: Option<u64>,
}

/// `32K`, `1024K`, `32M` (sysfs cache sizes) in bytes.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1024),
        b'M' => (&s[..s.len() - 1], 1024 * 1024),
        b'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// The fields of the first processor block of /proc/cpuinfo.
fn first_block(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !m.is_empty() {
                break;
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            m.entry(k.trim().to_string())
                .or_insert_with(|| v.trim().to_string());
        }
    }
    m
}

pub fn collect(root: &Root) -> Cpu {
    let cpuinfo = std::fs::read_to_string(root.at("/proc/cpuinfo")).unwrap_or_default();
    let b = first_block(&cpuinfo);
    let get = |k: &str| b.get(k).filter(|v| !v.is_empty()).cloned();
    let sys = root.at("/sys/devices/system/cpu");
    let present = read_trim(&sys.join("present"))
        .map(|s| parse_cpu_list(&s))
        .unwrap_or_default();
    let online = read_trim(&sys.join("online"))
        .map(|s| parse_cpu_list(&s))
        .unwrap_or_default();
    // Without sysfs (unusual), count processor blocks.
    let counted = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count() as u32;
    let threads = if present.is_empty() {
        counted
    } else {
        present.len() as u32
    };

    let mut packages = BTreeSet::new();
    let mut cores = BTreeSet::new();
    let mut caches: BTreeMap<(u32, String), (u64, BTreeSet<String>)> = BTreeMap::new();
    for cpu in &online {
        let dir = sys.join(format!("cpu{cpu}"));
        let t = dir.join("topology");
        let pkg = read_u64(&t.join("physical_package_id")).unwrap_or(0);
        let die = read_u64(&t.join("die_id")).unwrap_or(0);
        let core = read_u64(&t.join("core_id")).unwrap_or(*cpu as u64);
        packages.insert(pkg);
        cores.insert((pkg, die, core));
        let cdir = dir.join("cache");
        for idx in dir_names(&cdir).iter().filter(|n| n.starts_with("index")) {
            let i = cdir.join(idx);
            let (Some(level), Some(kind), Some(size)) = (
                read_u64(&i.join("level")),
                read_trim(&i.join("type")),
                read_trim(&i.join("size")).and_then(|s| parse_size(&s)),
            ) else {
                continue;
            };
            let shared = read_trim(&i.join("shared_cpu_map")).unwrap_or_else(|| cpu.to_string());
            let e = caches
                .entry((level as u32, kind))
                .or_insert((size, BTreeSet::new()));
            e.1.insert(shared);
        }
    }
    let caches = caches
        .into_iter()
        .map(|((level, kind), (size, shared))| {
            let suffix = match kind.as_str() {
                "Data" => "d",
                "Instruction" => "i",
                _ => "",
            };
            let instances = shared.len() as u32;
            Cache {
                name: format!("L{level}{suffix}"),
                level,
                kind,
                size_bytes: size,
                instances,
                total_bytes: size * instances as u64,
            }
        })
        .collect();

    let node_dir = root.at("/sys/devices/system/node");
    let numa_nodes = dir_names(&node_dir)
        .iter()
        .filter_map(|n| {
            let id: u32 = n.strip_prefix("node")?.parse().ok()?;
            let d = node_dir.join(n);
            let mem = std::fs::read_to_string(d.join("meminfo"))
                .ok()
                .and_then(|m| {
                    m.lines()
                        .find(|l| l.contains("MemTotal:"))
                        .and_then(|l| l.split_whitespace().rev().nth(1)?.parse::<u64>().ok())
                })
                .map(|kb| kb * 1024);
            Some(NumaNode {
                id,
                cpus: read_trim(&d.join("cpulist")).unwrap_or_default(),
                memory_bytes: mem,
            })
        })
        .collect::<Vec<_>>();
    let mut numa_nodes = numa_nodes;
    numa_nodes.sort_by_key(|n| n.id);

    let n_cores = cores.len() as u32;
    let flags = get("flags")
        .or_else(|| get("Features"))
        .map(|f| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    Cpu {
        model: get("model name")
            .or_else(|| get("Processor"))
            .or_else(|| get("cpu model")),
        vendor: get("vendor_id").or_else(|| get("CPU implementer")),
        family: get("cpu family").and_then(|s| s.parse().ok()),
        model_id: get("model").and_then(|s| s.parse().ok()),
        stepping: get("stepping").and_then(|s| s.parse().ok()),
        sockets: packages.len().max(1) as u32,
        cores: if n_cores == 0 { threads } else { n_cores },
        threads,
        online: if online.is_empty() {
            threads
        } else {
            online.len() as u32
        },
        threads_per_core: (n_cores > 0).then(|| (online.len() as u32).div_ceil(n_cores)),
        mhz: get("cpu MHz").and_then(|s| s.parse().ok()),
        mhz_max: read_u64(&sys.join("cpu0/cpufreq/cpuinfo_max_freq"))
            .map(|khz| khz as f64 / 1000.0),
        flags,
        caches,
        numa_nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32K"), Some(32768));
        assert_eq!(parse_size("32768K\n"), Some(32 << 20));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn first_cpuinfo_block() {
        let b = first_block("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu vme\n\nprocessor\t: 1\nmodel name\t: other\n");
        assert_eq!(b["model name"], "AMD EPYC");
        assert_eq!(b["flags"], "fpu vme");
    }
}
