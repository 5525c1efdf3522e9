//! Which disks a wipe may touch. Reads /sys/block, mountinfo, /proc/swaps
//! and the command line through `root`, and gives every device either a
//! place in the plan or the list of reasons it is skipped, each skip
//! classed as policy (not a target: excluded, live medium, USB, remote
//! storage, not a disk) or blocking (a disk that should be erased and
//! cannot be: read-only, mounted, held, ...; fails a wipe task). Pure
//! reads: devices are only opened read-only, to look for cluster file
//! system signatures.

use crate::blockdev::scan::{dev_name, Disk, Transport};
use crate::options::{Kind, Options, Spec};
use crate::root::{dir_names, read_trim, Root};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Env var of the VM suite and the live image's own tests: real (non-loop)
/// disks may be erased when it is `1`, besides in a booted live image.
pub const ALLOW_REAL_ENV: &str = "SPEEDISO_WIPE_ALLOW_REAL";
/// Env var for tests: a comma-separated list of device paths; when set, no
/// other device is ever selected, whatever `--all` says.
pub const TEST_ALLOW_ENV: &str = "SPEEDISO_WIPE_TEST_ALLOW";

/// What the caller asks to be selected.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Explicit `--device` paths; empty with `all` means every disk.
    pub devices: Vec<String>,
    pub all: bool,
    /// Exclusions, USB and remote storage (`speediso.wipe.*`).
    pub targets: Targets,
    /// Test restriction (`SPEEDISO_WIPE_TEST_ALLOW`): only these paths.
    pub test_allow: Option<Vec<String>>,
    /// Whether real (non-loop) disks may be erased on this machine.
    pub real_allowed: bool,
}

/// Which disks a destructive step may pick beyond the safe default:
/// `speediso.wipe.exclude`, `.usb` and `.remote`, which the wipe and the
/// install target both honour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// `speediso.wipe.exclude`: serials, WWNs or paths.
    pub exclude: Vec<String>,
    pub usb: bool,
    pub remote: bool,
    /// `speediso.wipe.logical_volumes`: overwrite RAID logical volumes,
    /// certified as logical only (the drives behind are not reached).
    pub logical_volumes: bool,
}

/// The declarations of `Targets`' options, in the wipe's and the
/// install's `OPTIONS`.
pub const EXCLUDE: Spec = Spec::cmdline(
    "wipe.exclude",
    Kind::List,
    "disks never to wipe: serials, WWNs or paths, comma-separated",
);
pub const USB: Spec = Spec::cmdline("wipe.usb", Kind::Bool, "also wipe USB disks");
pub const REMOTE: Spec = Spec::cmdline(
    "wipe.remote",
    Kind::Bool,
    "also wipe remote (FC, iSCSI, NVMe-oF) and shared (multipath, cluster file system) storage",
);

pub const LOGICAL_VOLUMES: Spec = Spec::cmdline(
    "wipe.logical_volumes",
    Kind::Bool,
    "also overwrite RAID controllers' logical volumes; their certificates say the physical drives were not reached (a logical Clear at most)",
);

impl Targets {
    pub fn from_options(o: &Options) -> Targets {
        Targets {
            exclude: o
                .get("wipe.exclude")
                .map(|s| {
                    s.split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            usb: o.flag("wipe.usb"),
            remote: o.flag("wipe.remote"),
            logical_volumes: o.flag("wipe.logical_volumes"),
        }
    }
}

impl Request {
    /// Exclusions, USB and remote storage as configured.
    pub fn with_targets(mut self, t: &Targets) -> Request {
        self.targets = t.clone();
        self
    }

    /// USB disks are not selected, whatever `speediso.wipe.usb` says
    /// (install targets).
    pub fn no_usb(mut self) -> Request {
        self.targets.usb = false;
        self
    }

    /// Fill the environment-driven fields the way production does.
    pub fn with_env(mut self) -> Request {
        self.test_allow = std::env::var(TEST_ALLOW_ENV).ok().map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        });
        self.real_allowed = real_disks_allowed();
        self
    }
}

/// Why a loop device nobody named is no target.
const UNNAMED_LOOP: &str = "loop device not named with --device or in the test restriction (a file of the running system, not a disk)";

/// Whether a skip is a choice or a failure to do what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SkipClass {
    /// Not a target: excluded by the operator, the live medium, USB when
    /// not asked for, remote storage, not a disk at all, outside the test
    /// restriction.
    Policy,
    /// A disk that should have been erased and cannot be (read-only,
    /// mounted, swap, held, the method cannot handle it, ...). A wipe task
    /// with one fails, after erasing the rest.
    Blocking,
}

/// One reason a device is skipped, with its class.
pub type Reason = (SkipClass, String);

/// One device the wipe will not touch, and every reason why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The path as named (or `/dev/NAME`).
    pub device: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<Disk>,
    pub reasons: Vec<String>,
    /// `policy` when any reason is a policy one (the device is no target
    /// anyway), else `blocking`.
    pub class: SkipClass,
    /// What is on it (`inventory::identify::contents`), filled by the plan.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contents: Vec<crate::inventory::identify::Content>,
}

impl Skipped {
    pub fn new(device: String, disk: Option<Disk>, reasons: Vec<Reason>) -> Skipped {
        let class = if reasons.iter().any(|(c, _)| *c == SkipClass::Policy) {
            SkipClass::Policy
        } else {
            SkipClass::Blocking
        };
        Skipped {
            device,
            disk,
            reasons: reasons.into_iter().map(|(_, r)| r).collect(),
            class,
            contents: Vec::new(),
        }
    }

    pub fn is_blocking(&self) -> bool {
        self.class == SkipClass::Blocking
    }
}

/// The result of selection: disks that may be erased, and the rest.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Selection {
    pub eligible: Vec<Disk>,
    pub skipped: Vec<Skipped>,
    /// The stacks on eligible disks to stop before the erase, top-down.
    pub release: Vec<super::stack::Stack>,
}

/// May real disks be erased here? Only in the booted live image (the real
/// /proc/cmdline has `root=live:`, never the one given by `--cmdline`), or
/// when the VM suite says so. Everywhere else only loop devices are erased,
/// so a developer's or CI machine's disks are never at risk.
pub fn real_disks_allowed() -> bool {
    if std::env::var(ALLOW_REAL_ENV).as_deref() == Ok("1") {
        return true;
    }
    std::fs::read_to_string("/proc/cmdline")
        .map(|c| {
            crate::cmdline::parse(&c)
                .get("root")
                .and_then(|p| p.value.as_deref())
                .is_some_and(|v| v.starts_with("live:"))
        })
        .unwrap_or(false)
}

/// Everything read once from /proc and /sys that the checks need.
struct SysState {
    /// Disk name → disk.
    disks: BTreeMap<String, Disk>,
    /// Partition name → its disk.
    part_of: BTreeMap<String, String>,
    /// `major:minor` → disk or partition name.
    by_devno: BTreeMap<String, String>,
    /// Disk name → reasons found by scanning mounts, swaps, multipath,
    /// cmdline.
    found: BTreeMap<String, BTreeSet<Reason>>,
    /// Disk name → "sda1 is held by md127" for each of it with holders.
    held: BTreeMap<String, Vec<String>>,
    usage: crate::blockdev::usage::Usage,
}

impl SysState {
    fn read(root: &Root) -> SysState {
        let mut st = SysState {
            disks: BTreeMap::new(),
            part_of: BTreeMap::new(),
            by_devno: BTreeMap::new(),
            found: BTreeMap::new(),
            held: BTreeMap::new(),
            usage: Default::default(),
        };
        for d in crate::blockdev::scan::disks(root) {
            let n = d.name.clone();
            st.by_devno.insert(d.devno.clone(), n.clone());
            for p in &d.partitions {
                st.part_of.insert(p.clone(), n.clone());
                if let Some(dn) = read_trim(&d.sys_path.join(p).join("dev")) {
                    st.by_devno.insert(dn, p.clone());
                }
            }
            st.disks.insert(n, d);
        }
        st.scan(root);
        st
    }

    /// The disk a kernel name (disk or partition) belongs to.
    fn disk_of(&self, name: &str) -> Option<String> {
        if self.disks.contains_key(name) {
            return Some(name.to_string());
        }
        self.part_of.get(name).cloned()
    }

    fn note(&mut self, name: &str, class: SkipClass, why: String) {
        if let Some(d) = self.disk_of(name) {
            self.found.entry(d).or_default().insert((class, why));
        }
    }

    /// Mounts, swaps, holders, the live medium and loop backing files.
    fn scan(&mut self, root: &Root) {
        use crate::blockdev::usage::{root_arg_device, Usage, LIVE_MEDIUM};
        use SkipClass::{Blocking, Policy};
        let usage = Usage::read(root);
        let mut notes: Vec<(String, SkipClass, String)> = Vec::new();
        let mut held: Vec<(String, String)> = Vec::new();
        for d in self.disks.values() {
            let u = usage.of(&d.sys_path, &d.name, &d.devno);
            let mut note = |class, why| notes.push((d.name.clone(), class, why));
            for (who, m) in &u.mounts {
                note(
                    Blocking,
                    if *who == d.name {
                        format!("mounted at {}", m.mountpoint)
                    } else {
                        format!("partition {who} mounted at {}", m.mountpoint)
                    },
                );
                if m.mountpoint == LIVE_MEDIUM {
                    note(Policy, format!("live medium (mounted at {LIVE_MEDIUM})"));
                }
            }
            for (_, src) in &u.swaps {
                note(Blocking, format!("swap ({src})"));
            }
            // Holders: dm, md, LVM and bcache sit on top of the disk or one
            // of its partitions. Kept apart: a stack that may be released
            // is no reason (see `stack`).
            for (who, hs) in &u.holders {
                held.push((
                    d.name.clone(),
                    format!("{who} is held by {}", hs.join(", ")),
                ));
                // A dm-multipath map over the disk: it is one path of a
                // LUN that other hosts may share.
                for h in hs {
                    let uuid = read_trim(&root.at("/sys/block").join(h).join("dm/uuid"));
                    if let Some(u) = uuid.filter(|u| u.starts_with("mpath-")) {
                        note(
                            Blocking,
                            format!(
                                "a path of dm-multipath device {h} (dm uuid {u}): shared storage"
                            ),
                        );
                    }
                }
            }
            // A loop device's backing file lives on some mounted disk: that
            // disk backs it (the live image's squashfs, or anything else).
            if let Some(file) = &d.backing_file {
                let on = usage.backing_mount(file);
                if let Some(n) = on.and_then(|m| self.by_devno.get(&m.devno)) {
                    if *n != d.name {
                        notes.push((
                            n.clone(),
                            Blocking,
                            format!("holds the backing file of /dev/{} ({file})", d.name),
                        ));
                    }
                }
            }
        }
        // The live medium named by root= (live:CDLABEL=, UUID=, /dev/...).
        if let Ok(c) = crate::cmdline::read(root) {
            if let Some(v) = crate::cmdline::parse(&c)
                .get("root")
                .and_then(|p| p.value.clone())
            {
                if let Some(n) = root_arg_device(root, &v) {
                    notes.push((
                        n,
                        Policy,
                        format!("live medium or root file system (root={v})"),
                    ));
                }
            }
        }
        for (name, class, why) in notes {
            self.note(&name, class, why);
        }
        for (name, why) in held {
            self.held.entry(name).or_default().push(why);
        }
        self.usage = usage;
    }
}

/// Whether `ex` (a serial, a WWN in any common spelling, or a /dev path)
/// names `d`. Also the install target selector (`serial=`, `wwn=`).
pub fn matches_exclude(d: &Disk, root: &Root, ex: &str) -> bool {
    let norm = |s: &str| {
        s.trim()
            .to_ascii_lowercase()
            .trim_start_matches("0x")
            .to_string()
    };
    if d.serial.as_deref().is_some_and(|s| norm(s) == norm(ex)) {
        return true;
    }
    if let Some(w) = &d.wwn {
        let w = norm(w);
        let e = norm(ex);
        let strip = |s: &str| {
            s.trim_start_matches("eui.")
                .trim_start_matches("naa.")
                .trim_start_matches("wwn-")
                .to_string()
        };
        if w == e || strip(&w) == strip(&e) {
            return true;
        }
    }
    ex.starts_with("/dev/") && dev_name(root, ex) == d.name
}

/// Every reason `d` must not be erased, given what was scanned. `named`:
/// the operator named it (`--device`), or the test restriction lists it.
fn reasons_for(d: &Disk, st: &SysState, req: &Request, root: &Root, named: bool) -> Vec<Reason> {
    use SkipClass::{Blocking, Policy};
    let mut r: Vec<Reason> = Vec::new();
    if let Some(allow) = &req.test_allow {
        if !allow.iter().any(|a| dev_name(root, a) == d.name) {
            r.push((
                Policy,
                format!("not in {TEST_ALLOW_ENV} (test restriction)"),
            ));
        }
    }
    if d.transport == Transport::Other && !d.test_target {
        r.push((Policy, "not a disk (device-mapper, md, zram, ram, optical or network device; wipe the disks beneath instead)".into()));
    }
    if let Some(user) = emmc_boot_area(d) {
        r.push((
            Policy,
            format!("eMMC hardware boot partition of /dev/{user} (boot firmware, read-only by default; the user area is /dev/{user})"),
        ));
    }
    if d.transport == Transport::Loop && d.backing_file.is_none() {
        r.push((Policy, "loop device without a backing file".into()));
    }
    if !d.is_loop() && !d.test_target && !req.real_allowed {
        r.push((Blocking, format!(
            "a real disk, and this is not the booted live image (real disks are erased only there, or with {ALLOW_REAL_ENV}=1)"
        )));
    }
    if d.size_bytes == 0 {
        r.push((Blocking, "zero size (no medium?)".into()));
    }
    if d.read_only {
        r.push((Blocking, "read-only (ro=1)".into()));
    }
    if let Some(what) = bmc_virtual_media(d.vendor.as_deref(), d.model.as_deref()) {
        // Never, not even with wipe.usb=1: it is the BMC's image of an
        // operator's ISO or floppy file, not this machine's storage.
        r.push((
            Policy,
            format!("BMC virtual media ({what}): the management controller's emulated drive"),
        ));
    } else if d.transport == Transport::Usb && !req.targets.usb {
        r.push((
            Policy,
            "USB disk (set speediso.wipe.usb=1 to include)".into(),
        ));
    } else if d.transport != Transport::Usb && !req.targets.usb && d.removable {
        r.push((
            Policy,
            "removable media (sysfs removable=1: a card reader or a USB bridge not seen as USB; set speediso.wipe.usb=1 to include)".into(),
        ));
    }
    if let Some(ex) = req
        .targets
        .exclude
        .iter()
        .find(|e| matches_exclude(d, root, e))
    {
        r.push((Policy, format!("excluded by speediso.wipe.exclude ({ex})")));
    }
    if let Some(f) = st.found.get(&d.name) {
        r.extend(f.iter().cloned());
    }
    if !req.targets.remote {
        r.extend(remote_evidence(root, d, st));
        // Reading the disk is for disks that are still targets.
        if !r.iter().any(|(c, _)| *c == Policy) {
            r.extend(cluster_signatures(root, d));
        }
    }
    // A loop device nobody named is a file of the running system (the
    // live image's squashfs, an overlay), not a disk of this machine:
    // whatever keeps it from being erased is no failure.
    if d.is_loop() && !named && !r.is_empty() {
        r.push((Policy, UNNAMED_LOOP.into()));
    }
    r
}

/// The emulated drives of baseboard management controllers, by the
/// vendor and model strings their firmware reports (iDRAC, iLO, XClarity,
/// Supermicro/ATEN, AMI MegaRAC, OpenBMC, Cisco CIMC, Avocent). A plain
/// "Virtual Disk" (Hyper-V, VMware) is a real disk of a VM and is not one.
pub fn bmc_virtual_media(vendor: Option<&str>, model: Option<&str>) -> Option<String> {
    let v = vendor.unwrap_or("").trim();
    let m = model.unwrap_or("").trim();
    let (vl, ml) = (v.to_ascii_lowercase(), m.to_ascii_lowercase());
    let bmc_vendor = [
        "idrac",
        "ilo",
        "hp ilo",
        "ami",
        "american megatrends",
        "aten",
        "avocent",
        "cisco",
        "lenovo",
        "ibm",
        "supermicro",
        "openbmc",
        "insyde",
    ]
    .iter()
    .any(|x| vl == *x || vl.starts_with(&format!("{x} ")));
    let virtual_model = ml.starts_with("virtual")
        || ml.contains("virtual cd")
        || ml.contains("virtual floppy")
        || ml.contains("virtual media")
        || ml.contains("virtual hdisk")
        || ml.contains("vkvm");
    let known_model = [
        "virtual floppy",
        "virtual cdrom",
        "virtual cd/dvd",
        "virtual hdisk",
        "virtual media",
        "vkvm",
        "lcd drive",
        "file-stor gadget",
    ]
    .iter()
    .any(|x| ml.contains(x));
    if (bmc_vendor && virtual_model)
        || (known_model && !matches!(vl.as_str(), "msft" | "vmware" | "vmware," | "qemu"))
    {
        Some(format!("{v} {m}").trim().to_string())
    } else {
        None
    }
}

/// For an eMMC hardware boot partition (`mmcblk0boot0`), its device's
/// user area (`mmcblk0`). The kernel lists them in /sys/block with
/// force_ro set; they hold the boot firmware, not the user's data.
fn emmc_boot_area(d: &Disk) -> Option<String> {
    if d.transport != Transport::Mmc {
        return None;
    }
    let (user, part) = d.name.split_once("boot")?;
    (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())).then(|| user.to_string())
}

/// The hint every remote/shared refusal ends with.
const REMOTE_HINT: &str = "set speediso.wipe.remote=1 to erase it";

/// Evidence in /sys that `d` is storage of another machine (FC, iSCSI,
/// NVMe over Fabrics: policy) or reachable by several paths (multipath
/// LUN, NVMe namespace behind several controllers: blocking, since it may
/// be this server's own dual-ported disk or another host's data; the
/// operator decides with speediso.wipe.exclude or speediso.wipe.remote).
fn remote_evidence(root: &Root, d: &Disk, st: &SysState) -> Vec<Reason> {
    use SkipClass::{Blocking, Policy};
    let mut r: Vec<Reason> = Vec::new();
    let real = std::fs::canonicalize(&d.sys_path).unwrap_or_else(|_| d.sys_path.clone());
    let segs: Vec<String> = real
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    let class_dir = |class: &str, name: &str| root.at("/sys/class").join(class).join(name);
    if matches!(d.transport, Transport::Scsi | Transport::Ata) {
        let host = segs.iter().find(|s| {
            s.strip_prefix("host")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
        if let Some(rport) = segs.iter().find(|s| s.starts_with("rport-")) {
            r.push((Policy, format!("remote storage: Fibre Channel LUN (remote port {rport} in its sysfs path); {REMOTE_HINT}")));
        } else if let Some(h) = host.filter(|h| class_dir("fc_host", h).exists()) {
            r.push((Policy, format!("remote storage: Fibre Channel LUN (SCSI {h} is in /sys/class/fc_host); {REMOTE_HINT}")));
        }
        if let Some(sess) = segs.iter().find(|s| {
            s.strip_prefix("session")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        }) {
            let target = read_trim(&class_dir("iscsi_session", sess).join("targetname"))
                .map(|t| format!(", target {t}"))
                .unwrap_or_default();
            r.push((
                Policy,
                format!("remote storage: iSCSI LUN ({sess}{target}); {REMOTE_HINT}"),
            ));
        } else if let Some(h) = host.filter(|h| class_dir("iscsi_host", h).exists()) {
            r.push((Policy, format!("remote storage: iSCSI LUN (SCSI {h} is in /sys/class/iscsi_host); {REMOTE_HINT}")));
        }
    }
    if d.transport == Transport::Nvme {
        let ctrls = nvme_controllers(root, d);
        for c in &ctrls {
            let t = read_trim(&class_dir("nvme", c).join("transport"));
            if let Some(t) = t.filter(|t| NVME_FABRICS.contains(&t.as_str())) {
                let nqn = read_trim(&class_dir("nvme", c).join("subsysnqn"))
                    .map(|n| format!(", subsystem {n}"))
                    .unwrap_or_default();
                r.push((Policy, format!("remote storage: NVMe over Fabrics (controller {c} transport={t}{nqn}); {REMOTE_HINT}")));
            }
        }
        if ctrls.len() > 1 {
            r.push((Blocking, format!(
                "shared storage: NVMe namespace reachable through {} controllers ({}), a multipath or shared namespace; {REMOTE_HINT}",
                ctrls.len(),
                ctrls.join(", ")
            )));
        }
    }
    // Two block devices with one WWID are two paths to one LUN or namespace.
    if let Some(w) = d.wwn.as_deref().filter(|_| d.transport != Transport::Other) {
        let same: Vec<String> = st
            .disks
            .values()
            .filter(|o| o.transport != Transport::Other && o.wwn.as_deref() == Some(w))
            .map(|o| format!("/dev/{}", o.name))
            .collect();
        if same.len() > 1 {
            r.push((
                Blocking,
                format!(
                    "shared storage: one of {} paths to the same LUN (wwid {w}: {}); {REMOTE_HINT}",
                    same.len(),
                    same.join(", ")
                ),
            ));
        }
    }
    r
}

/// `/sys/class/nvme/*/transport` values of NVMe over Fabrics (the kernel's
/// `nvmf_transport_ops` names); `pcie` (and Apple's) are local.
const NVME_FABRICS: &[&str] = &["tcp", "rdma", "fc", "loop"];

/// The NVMe controllers through which namespace `d` is reached: its
/// `device` when that is a controller, else (a native-multipath head,
/// whose `device` is the subsystem) the controllers of its `multipath/`
/// paths (`nvme0c1n1` is namespace 1 through controller nvme1), else the
/// subsystem's controllers.
pub fn nvme_controllers(root: &Root, d: &Disk) -> Vec<String> {
    let is_ctrl = |n: &str| {
        n.strip_prefix("nvme")
            .is_some_and(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut v: Vec<String> = Vec::new();
    let dev = std::fs::canonicalize(d.sys_path.join("device")).ok();
    if let Some(dev) = &dev {
        if dev.join("transport").exists() {
            if let Some(n) = dev.file_name() {
                v.push(n.to_string_lossy().to_string());
            }
        }
    }
    if v.is_empty() {
        for p in dir_names(&d.sys_path.join("multipath")) {
            // nvme<subsys>c<ctrl>n<ns>
            if let Some((_, rest)) = p.split_once('c') {
                if let Some((c, _)) = rest.split_once('n') {
                    if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) {
                        v.push(format!("nvme{c}"));
                    }
                }
            }
        }
    }
    if v.is_empty() {
        if let Some(dev) = dev.filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("nvme-subsys"))
        }) {
            v = dir_names(&dev).into_iter().filter(|n| is_ctrl(n)).collect();
        }
    }
    if v.is_empty() {
        // No device link to go by: nvme<ctrl>n<ns> names its controller.
        if let Some((c, _)) = d.name.strip_prefix("nvme").and_then(|x| x.split_once('n')) {
            let c = format!("nvme{c}");
            if is_ctrl(&c) && root.at("/sys/class/nvme").join(&c).exists() {
                v.push(c);
            }
        }
    }
    v.sort();
    v.dedup();
    v
}

/// Cluster file system and shared volume signatures on the disk or its
/// partitions (VMFS, GFS/GFS2, OCFS2, Ceph BlueStore; GPT types of GPFS
/// NSDs and Ceph OSDs), read through `root`'s /dev. Blocking: the disk may
/// be shared with other hosts, or be this server's own; the operator says
/// which (speediso.wipe.exclude, or speediso.wipe.remote=1 to erase it).
fn cluster_signatures(root: &Root, d: &Disk) -> Vec<Reason> {
    use crate::inventory::fsprobe;
    let mut r: Vec<Reason> = Vec::new();
    let mut devs = vec![(d.name.clone(), d.size_bytes)];
    for p in &d.partitions {
        let size = read_trim(&d.sys_path.join(p).join("size"))
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            * 512;
        devs.push((p.clone(), size));
    }
    for (i, (n, size)) in devs.iter().enumerate() {
        let path = root.at("/dev").join(n);
        let Ok(f) = std::fs::File::open(&path) else {
            continue;
        };
        let size = if *size > 0 {
            *size
        } else {
            f.metadata().map(|m| m.len()).unwrap_or(0)
        };
        let mut rd = fsprobe::reader(&f);
        if let Some(fs) = fsprobe::probe(&mut rd, size) {
            if let Some((_, what)) = fsprobe::CLUSTER_FS.iter().find(|(k, _)| *k == fs.kind) {
                r.push((
                    SkipClass::Blocking,
                    format!(
                        "shared storage: /dev/{n} carries {} ({what}); {REMOTE_HINT}",
                        fs.kind
                    ),
                ));
            }
        }
        if i == 0 {
            let sector = d.logical_block_size.max(512) as u64;
            if let Some(t) = fsprobe::partitions(&mut rd, sector) {
                for e in &t.entries {
                    let ty = e.type_id.to_ascii_lowercase();
                    if let Some((_, what)) =
                        fsprobe::CLUSTER_PART_TYPES.iter().find(|(g, _)| *g == ty)
                    {
                        r.push((SkipClass::Blocking, format!(
                            "shared storage: partition {} of /dev/{n} has GPT type {ty} ({what}); {REMOTE_HINT}",
                            e.number
                        )));
                    }
                }
            }
        }
    }
    r
}

/// Exclusion entries that name no block device under `root` (a typo, or a
/// disk that is not there): the plan is rejected rather than silently
/// wiping what the operator meant to keep.
pub fn check_excludes(root: &Root, exclude: &[String]) -> anyhow::Result<()> {
    if exclude.is_empty() {
        return Ok(());
    }
    let st = SysState::read(root);
    let missing: Vec<&String> = exclude
        .iter()
        .filter(|e| !st.disks.values().any(|d| matches_exclude(d, root, e)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let disks: Vec<String> = st
        .disks
        .values()
        .filter(|d| d.transport != Transport::Other)
        .map(|d| {
            let mut s = d.path.display().to_string();
            let ids: Vec<String> = [("serial", &d.serial), ("wwn", &d.wwn)]
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
                .collect();
            if !ids.is_empty() {
                s.push_str(&format!(" ({})", ids.join(", ")));
            }
            s
        })
        .collect();
    anyhow::bail!(
        "speediso.wipe.exclude: {} match{} no disk; refusing to go on (disks: {})",
        missing
            .iter()
            .map(|m| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        if missing.len() == 1 { "es" } else { "" },
        if disks.is_empty() {
            "none".to_string()
        } else {
            disks.join("; ")
        }
    )
}

/// A dm device the test allow list names whose every slave is a loop
/// device (dm-error fault injection).
fn is_test_dm(d: &Disk, req: &Request, root: &Root) -> bool {
    let Some(allow) = &req.test_allow else {
        return false;
    };
    let slaves = dir_names(&d.sys_path.join("slaves"));
    d.name.starts_with("dm-")
        && allow.iter().any(|a| dev_name(root, a) == d.name)
        && !slaves.is_empty()
        && slaves.iter().all(|s| s.starts_with("loop"))
}

/// Select the disks `req` asks for. Explicit devices that are partitions or
/// not block devices are skipped with the reason; with `all`, every whole
/// block device is considered.
pub fn select(root: &Root, req: &Request) -> anyhow::Result<Selection> {
    check_excludes(root, &req.targets.exclude)?;
    let st = SysState::read(root);
    let mut sel = Selection::default();
    let mut names: Vec<(String, String)> = Vec::new();
    if req.devices.is_empty() && req.all {
        for d in st.disks.keys() {
            names.push((format!("/dev/{d}"), d.clone()));
        }
    }
    for dev in &req.devices {
        let n = dev_name(root, dev);
        if let Some(disk) = st.part_of.get(&n) {
            sel.skipped.push(Skipped::new(
                dev.clone(),
                None,
                vec![(
                    SkipClass::Blocking,
                    format!("partition {n} of /dev/{disk}, not a whole disk (name the disk)"),
                )],
            ));
        } else if !st.disks.contains_key(&n) {
            sel.skipped.push(Skipped::new(
                dev.clone(),
                None,
                vec![(
                    SkipClass::Blocking,
                    "not a block device listed in /sys/block".into(),
                )],
            ));
        } else if !names.iter().any(|(_, x)| *x == n) {
            names.push((dev.clone(), n));
        }
    }
    let mut cands: Vec<(String, Disk, Vec<Reason>, bool)> = Vec::new();
    for (shown, n) in names {
        let mut d = st.disks[&n].clone();
        d.test_target = is_test_dm(&d, req, root);
        let named = req.devices.iter().any(|x| dev_name(root, x) == n)
            || req
                .test_allow
                .as_ref()
                .is_some_and(|a| a.iter().any(|x| dev_name(root, x) == n));
        let reasons = reasons_for(&d, &st, req, root, named);
        cands.push((shown, d, reasons, named));
    }
    // The stacks on the disks (md, LVM, dm, bcache), and which of them
    // may be released: every disk beneath is one this wipe erases, and
    // nothing mounts, swaps on or holds the stack.
    let (plain, layers): (Vec<&Disk>, Vec<&Disk>) = st
        .disks
        .values()
        .partition(|d| !super::stack::is_layer(root, &d.name));
    let ignore: BTreeSet<String> = layers
        .iter()
        .filter(|d| is_test_dm(d, req, root))
        .map(|d| d.name.clone())
        .collect();
    let disk_names: BTreeSet<String> = plain.iter().map(|d| d.name.clone()).collect();
    let stacks = super::stack::find(root, &disk_names, &st.part_of, &ignore);
    // A disk the wipe would erase were it not held. Never a loop device
    // nobody named: that is a file of the running system (the live
    // image's root under its dm snapshot), whose stack is not ours.
    let free: BTreeSet<String> = cands
        .iter()
        .filter(|(_, d, r, named)| r.is_empty() && (*named || !d.is_loop()))
        .map(|(_, d, _, _)| d.name.clone())
        .collect();
    let left_alone: Vec<Vec<String>> = stacks
        .iter()
        .map(|s| {
            let mut why = Vec::new();
            for m in &s.disks {
                if free.contains(m) {
                    continue;
                }
                match cands.iter().find(|(_, d, _, _)| &d.name == m) {
                    Some((_, _, r, _)) if r.is_empty() => why.push(format!(
                        "it also lies on {m}, a loop device not named with --device or in the test restriction"
                    )),
                    Some((_, _, r, _)) => why.push(format!(
                        "it also lies on {m}, which is not erased ({})",
                        r.iter()
                            .map(|(_, w)| w.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    )),
                    None => why.push(format!(
                        "it also lies on {m}, which is not selected for this wipe"
                    )),
                }
            }
            why.extend(super::stack::in_use(root, s, &st.usage));
            why
        })
        .collect();
    for (shown, d, mut reasons, named) in cands {
        if let Some(held) = st.held.get(&d.name) {
            let mine: Vec<usize> = (0..stacks.len())
                .filter(|&i| stacks[i].disks.contains(&d.name))
                .collect();
            let releasable = free.contains(&d.name)
                && !mine.is_empty()
                && mine.iter().all(|&i| left_alone[i].is_empty());
            if releasable {
                for &i in &mine {
                    if !sel.release.contains(&stacks[i]) {
                        sel.release.push(stacks[i].clone());
                    }
                }
            } else {
                for h in held {
                    reasons.push((SkipClass::Blocking, h.clone()));
                }
                for &i in &mine {
                    // A disk skipped for its own reasons needs no word on
                    // its stack beyond "held by".
                    let others: Vec<&String> = left_alone[i]
                        .iter()
                        .filter(|w| !w.starts_with(&format!("it also lies on {}, ", d.name)))
                        .collect();
                    if !others.is_empty() {
                        reasons.push((
                            SkipClass::Blocking,
                            format!(
                                "member of {}, which is left alone: {}",
                                stacks[i].summary(),
                                others
                                    .iter()
                                    .map(|s| s.as_str())
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            ),
                        ));
                    }
                }
                if d.is_loop() && !named && !reasons.iter().any(|(c, _)| *c == SkipClass::Policy) {
                    reasons.push((SkipClass::Policy, UNNAMED_LOOP.into()));
                }
            }
        }
        if reasons.is_empty() {
            sel.eligible.push(d);
        } else {
            sel.skipped.push(Skipped::new(shown, Some(d), reasons));
        }
    }
    Ok(sel)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::blockdev::scan::tests::disk;

    fn all(root: &Root) -> Selection {
        select(
            root,
            &Request {
                all: true,
                real_allowed: true,
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn a_policy_reason_makes_the_skip_a_policy_one() {
        use SkipClass::{Blocking, Policy};
        let k = Skipped::new("/dev/x".into(), None, vec![(Blocking, "ro".into())]);
        assert!(k.is_blocking());
        let k = Skipped::new(
            "/dev/x".into(),
            None,
            vec![(Blocking, "ro".into()), (Policy, "excluded".into())],
        );
        assert_eq!(k.class, Policy);
        assert_eq!(k.reasons, vec!["ro", "excluded"]);
        assert_eq!(serde_json::to_value(&k).unwrap()["class"], "policy");
    }

    #[test]
    fn scsi_hosts_of_fc_and_iscsi_transports_are_remote() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        // No rport-/session in the path: the SCSI host's class says it.
        disk(
            &Root::new(r),
            "pci0000:00/0000:00:03.0/host7/target7:0:0/7:0:0:0",
            "sdb",
            &[],
        );
        disk(
            &Root::new(r),
            "pci0000:00/0000:00:04.0/host8/target8:0:0/8:0:0:0",
            "sdc",
            &[],
        );
        disk(
            &Root::new(r),
            "pci0000:00/0000:00:05.0/host9/target9:0:0/9:0:0:0",
            "sdd",
            &[],
        );
        std::fs::create_dir_all(r.join("sys/class/fc_host/host7")).unwrap();
        std::fs::create_dir_all(r.join("sys/class/iscsi_host/host8")).unwrap();
        let s = all(&Root::new(r));
        let why = |d: &str| {
            let k = s.skipped.iter().find(|k| k.device == d).unwrap();
            assert_eq!(k.class, SkipClass::Policy, "{d}");
            k.reasons.join("; ")
        };
        assert!(why("/dev/sdb").contains("Fibre Channel LUN (SCSI host7 is in /sys/class/fc_host)"));
        assert!(why("/dev/sdc").contains("iSCSI LUN (SCSI host8 is in /sys/class/iscsi_host)"));
        assert_eq!(s.eligible.len(), 1);
        assert_eq!(s.eligible[0].name, "sdd");
        // The operator's opt-in.
        let s = select(
            &Root::new(r),
            &Request {
                all: true,
                real_allowed: true,
                targets: Targets {
                    remote: true,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.eligible.len(), 3);
    }

    #[test]
    fn nvme_controllers_of_plain_and_multipath_namespaces() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        // Plain: `device` is the controller (it has `transport`).
        let c0 = "pci0000:00/0000:00:1d.0/nvme/nvme0";
        disk(&Root::new(r), c0, "nvme0n1", &[]);
        std::fs::write(r.join("sys/devices").join(c0).join("transport"), "pcie\n").unwrap();
        std::os::unix::fs::symlink("..", r.join("sys/devices").join(c0).join("nvme0n1/device"))
            .unwrap();
        // A multipath head: its paths name the controllers.
        let sub = "virtual/nvme-subsystem/nvme-subsys1";
        disk(
            &Root::new(r),
            sub,
            "nvme1n1",
            &[("multipath/nvme1c1n1", ""), ("multipath/nvme1c4n1", "")],
        );
        // A head without path links: the subsystem's controllers.
        let sub2 = r.join("sys/devices/virtual/nvme-subsystem/nvme-subsys2");
        disk(
            &Root::new(r),
            "virtual/nvme-subsystem/nvme-subsys2",
            "nvme2n1",
            &[],
        );
        std::os::unix::fs::symlink("..", sub2.join("nvme2n1/device")).unwrap();
        for c in ["nvme2", "nvme5"] {
            std::fs::create_dir_all(sub2.join(c)).unwrap();
        }
        std::fs::write(sub2.join("subsysnqn"), "nqn.x\n").unwrap();
        let st = SysState::read(&Root::new(r));
        let c = |n: &str| nvme_controllers(&Root::new(r), &st.disks[n]);
        assert_eq!(c("nvme0n1"), vec!["nvme0"]);
        assert_eq!(c("nvme1n1"), vec!["nvme1", "nvme4"]);
        assert_eq!(c("nvme2n1"), vec!["nvme2", "nvme5"]);
    }

    #[test]
    fn emmc_boot_partitions_are_no_target() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let mmc = "platform/fe330000.mmc/mmc_host/mmc0/mmc0:0001/block";
        disk(&Root::new(r), mmc, "mmcblk0", &[]);
        disk(&Root::new(r), mmc, "mmcblk0boot0", &[("ro", "1\n")]);
        let s = all(&Root::new(r));
        assert_eq!(s.eligible.len(), 1);
        assert_eq!(s.eligible[0].name, "mmcblk0");
        let k = &s.skipped[0];
        assert_eq!(k.device, "/dev/mmcblk0boot0");
        assert_eq!(k.class, SkipClass::Policy, "{:?}", k.reasons);
        assert!(k
            .reasons
            .iter()
            .any(|x| x.contains("eMMC hardware boot partition of /dev/mmcblk0")));
    }

    #[test]
    fn an_exclusion_naming_no_disk_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        disk(
            &Root::new(r),
            "pci0000:00/ata1/host0/target0:0:0/0:0:0:0",
            "sda",
            &[("device/serial", "S1\n")],
        );
        assert!(check_excludes(&Root::new(r), &["S1".into(), "/dev/sda".into()]).is_ok());
        let e = check_excludes(&Root::new(r), &["S1".into(), "S2".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "speediso.wipe.exclude: \"S2\" matches no disk; refusing to go on (disks: /dev/sda (serial S1))"
        );
        let req = Request {
            all: true,
            targets: Targets {
                exclude: vec!["S9".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(select(&Root::new(r), &req).is_err());
    }

    #[test]
    fn bmc_virtual_media_by_vendor_and_model() {
        let yes = [
            ("iDRAC", "Virtual CD"),
            ("iDRAC", "Virtual Floppy"),
            ("HP iLO", "Virtual DVD-ROM"),
            ("AMI", "Virtual HDisk0"),
            ("ATEN", "Virtual CDROM"),
            ("Cisco", "vKVM-Mapped vHDD"),
            ("Linux", "File-Stor Gadget"),
            ("Lenovo", "Virtual Media"),
        ];
        for (v, m) in yes {
            assert!(bmc_virtual_media(Some(v), Some(m)).is_some(), "{v} {m}");
        }
        let no = [
            ("Msft", "Virtual Disk"),
            ("VMware", "Virtual disk"),
            ("ATA", "Samsung SSD 870"),
            ("QEMU", "QEMU HARDDISK"),
            ("DELL", "PERC H740P Adp"),
        ];
        for (v, m) in no {
            assert!(bmc_virtual_media(Some(v), Some(m)).is_none(), "{v} {m}");
        }
    }

    /// nvme0n1 and sda, each with one partition, under md127 (RAID1) and
    /// LVM vg0/data (dm-0); sdb a plain disk.
    fn raid_tree(r: &Root) {
        use crate::wipe::stack::tests::virt;
        disk(
            r,
            "pci0000:00/0000:00:04.0/nvme/nvme0",
            "nvme0n1",
            &[
                ("device/serial", "NVME0001\n"),
                ("nvme0n1p1/partition", "1\n"),
                ("nvme0n1p1/dev", "259:1\n"),
            ],
        );
        disk(
            r,
            "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block",
            "sda",
            &[
                ("device/serial", "SATA0002\n"),
                ("device/scsi_device/x", ""),
                ("sda1/partition", "1\n"),
                ("sda1/dev", "8:1\n"),
            ],
        );
        disk(
            r,
            "pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0/block",
            "sdb",
            &[
                ("device/serial", "SATA0003\n"),
                ("device/scsi_device/x", ""),
            ],
        );
        virt(
            r,
            "md127",
            "9:127",
            &[("nvme0n1p1", "nvme0n1/nvme0n1p1"), ("sda1", "sda/sda1")],
            &[("md/level", "raid1"), ("md/metadata_version", "1.2")],
        );
        virt(
            r,
            "dm-0",
            "253:0",
            &[("md127", "md127")],
            &[("dm/name", "vg0-data"), ("dm/uuid", "LVM-x")],
        );
    }

    const STACK: &str =
        "LVM logical volume vg0/data (dm-0), md RAID1 /dev/md127 (metadata 1.2) on nvme0n1p1, sda1";

    #[test]
    fn a_stack_on_erased_disks_only_is_released_and_its_disks_erased() {
        let t = tempfile::tempdir().unwrap();
        let r = &Root::new(t.path());
        raid_tree(r);
        let s = all(r);
        let mut names: Vec<&str> = s.eligible.iter().map(|d| d.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["nvme0n1", "sda", "sdb"], "{:?}", s.skipped);
        assert_eq!(s.release.len(), 1);
        assert_eq!(s.release[0].summary(), STACK);
        // md127 and dm-0 themselves are no targets.
        for v in ["/dev/md127", "/dev/dm-0"] {
            let k = s.skipped.iter().find(|k| k.device == v).unwrap();
            assert_eq!(k.class, SkipClass::Policy, "{v}");
        }
    }

    #[test]
    fn a_stack_touching_an_excluded_disk_is_left_alone_and_fails_the_other() {
        let t = tempfile::tempdir().unwrap();
        let r = &Root::new(t.path());
        raid_tree(r);
        let s = select(
            r,
            &Request {
                all: true,
                real_allowed: true,
                targets: Targets {
                    exclude: vec!["SATA0002".into()],
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        assert!(s.release.is_empty());
        let names: Vec<&str> = s.eligible.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["sdb"]);
        let nv = s
            .skipped
            .iter()
            .find(|k| k.device == "/dev/nvme0n1")
            .unwrap();
        assert!(nv.is_blocking());
        assert_eq!(nv.reasons, [
            "nvme0n1p1 is held by md127".to_string(),
            format!("member of {STACK}, which is left alone: it also lies on sda, which is not erased (excluded by speediso.wipe.exclude (SATA0002))"),
        ]);
        let sa = s.skipped.iter().find(|k| k.device == "/dev/sda").unwrap();
        assert_eq!(sa.class, SkipClass::Policy);
        assert_eq!(
            sa.reasons[0],
            "excluded by speediso.wipe.exclude (SATA0002)"
        );
        // Only naming one member: the other is not selected.
        let s = select(
            r,
            &Request {
                devices: vec!["/dev/sda".into()],
                real_allowed: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(s.eligible.is_empty() && s.release.is_empty());
        assert!(
            s.skipped[0].reasons[1]
                .ends_with("it also lies on nvme0n1, which is not selected for this wipe"),
            "{:?}",
            s.skipped
        );
    }

    #[test]
    fn a_mounted_stack_is_left_alone() {
        let t = tempfile::tempdir().unwrap();
        let r = &Root::new(t.path());
        raid_tree(r);
        std::fs::create_dir_all(r.at("/proc/self")).unwrap();
        std::fs::write(
            r.at("/proc/self/mountinfo"),
            "30 1 253:0 / /srv rw - ext4 /dev/mapper/vg0-data rw\n",
        )
        .unwrap();
        let s = all(r);
        assert!(s.release.is_empty());
        for d in ["/dev/nvme0n1", "/dev/sda"] {
            let k = s.skipped.iter().find(|k| k.device == d).unwrap();
            assert!(k.is_blocking());
            assert!(
                k.reasons.last().unwrap().ends_with(
                    "which is left alone: LVM logical volume vg0/data (dm-0) is mounted at /srv"
                ),
                "{:?}",
                k.reasons
            );
        }
    }

    #[test]
    fn a_stack_over_a_loop_device_nobody_named_is_not_ours() {
        use crate::wipe::stack::tests::virt;
        let t = tempfile::tempdir().unwrap();
        let r = &Root::new(t.path());
        // The live image's root: a dm snapshot over loop1.
        disk(
            r,
            "virtual/block",
            "loop1",
            &[("dev", "7:1\n"), ("loop/backing_file", "/run/rootfs.img\n")],
        );
        std::fs::create_dir_all(r.at("/sys/block/loop1/holders")).unwrap();
        virt(
            r,
            "dm-0",
            "253:0",
            &[("loop1", "loop1")],
            &[("dm/name", "live-rw")],
        );
        let s = all(r);
        assert!(s.release.is_empty(), "{:?}", s.release);
        let k = s.skipped.iter().find(|k| k.device == "/dev/loop1").unwrap();
        assert_eq!(k.class, SkipClass::Policy, "{:?}", k.reasons);
        assert!(
            k.reasons
                .iter()
                .any(|w| w.contains("loop device not named")),
            "{:?}",
            k.reasons
        );
        // Named, it is a test's disk like any other: its stack is released.
        let s = select(
            r,
            &Request {
                devices: vec!["/dev/loop1".into()],
                real_allowed: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.eligible.len(), 1, "{:?}", s.skipped);
        assert_eq!(s.release[0].names(), ["dm-0"]);
    }
}
