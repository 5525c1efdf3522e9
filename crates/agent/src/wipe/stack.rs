//! The block-device stacks a customer's OS leaves on its disks, and
//! releasing them before the erase. With `mdadm` and `lvm2` in the image,
//! udev assembles md arrays and activates volume groups at boot; every
//! member disk is then "held by md127" and could not be erased. A stack
//! (md, device-mapper: LVM, dm-crypt, plain dm; bcache) whose every member
//! lies on disks this wipe erases, and that nothing mounts, swaps on or
//! holds open, is stopped top-down before the erase, as ironic-python-agent
//! and MAAS do. Any other stack is left alone and its disks are skipped
//! with the reason (`select` decides; this module finds and releases).

use crate::blockdev::usage::Usage;
use crate::root::{dir_names, read_trim, Root};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// What a virtual block device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerKind {
    /// An md array (`/sys/block/mdN/md`).
    Md,
    /// A device-mapper device: LVM, dm-crypt, multipath, plain dm.
    Dm,
    /// A bcache device (`bcacheN`) over a backing device.
    Bcache,
    /// A bcache cache set registered on a partition or disk (no block
    /// device of its own; named by its set UUID).
    BcacheSet,
}

/// One virtual device of a stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layer {
    /// Kernel name (`md127`, `dm-0`, `bcache0`) or the cache set's UUID.
    pub name: String,
    pub kind: LayerKind,
    /// `major:minor` (empty for a cache set).
    pub devno: String,
    /// What it is, for people: "md RAID1 /dev/md127 (metadata 1.2)",
    /// "LVM logical volume vg0/data (dm-0)".
    pub what: String,
    /// The devices it lies on (kernel names: disks, partitions, layers).
    pub lower: Vec<String>,
}

/// A connected set of virtual devices and the disks beneath them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stack {
    /// Top-down: every layer comes before each layer it lies on (the
    /// release order).
    pub layers: Vec<Layer>,
    /// The whole disks it lies on, sorted.
    pub disks: Vec<String>,
}

impl Stack {
    /// One line: "LVM logical volume vg0/data (dm-0) on md RAID1 /dev/md127
    /// (metadata 1.2) on nvme0n1p1, sda1".
    pub fn summary(&self) -> String {
        let leaves: BTreeSet<&str> = self
            .layers
            .iter()
            .flat_map(|l| l.lower.iter())
            .filter(|n| !self.layers.iter().any(|l| &l.name == *n))
            .map(String::as_str)
            .collect();
        format!(
            "{} on {}",
            self.layers
                .iter()
                .map(|l| l.what.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            leaves.into_iter().collect::<Vec<_>>().join(", ")
        )
    }

    pub fn names(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.name.clone()).collect()
    }
}

/// Whether `/sys/block/NAME` is a virtual device (md, dm, bcache), not a disk.
pub fn is_layer(root: &Root, name: &str) -> bool {
    kind_of(root, name).is_some()
}

/// The kind of the device `/sys/block/NAME`, if it is a virtual one.
fn kind_of(root: &Root, name: &str) -> Option<LayerKind> {
    let sys = root.at("/sys/block").join(name);
    if name.starts_with("dm-") || sys.join("dm").is_dir() {
        Some(LayerKind::Dm)
    } else if name.starts_with("md")
        && (sys.join("md").is_dir() || name[2..].parse::<u32>().is_ok())
    {
        Some(LayerKind::Md)
    } else if name.starts_with("bcache") {
        Some(LayerKind::Bcache)
    } else {
        None
    }
}

/// The dm device's role, by its uuid prefix (what libdevmapper's users
/// write there) and name.
fn dm_what(name: &str, dm_name: &str, uuid: &str) -> String {
    if uuid.starts_with("LVM-") {
        // vg-lv, with '-' inside either name doubled.
        let mut vg = String::new();
        let mut lv = String::new();
        let mut cur = &mut vg;
        let mut it = dm_name.chars().peekable();
        let mut split = false;
        while let Some(c) = it.next() {
            if c == '-' && !split {
                if it.peek() == Some(&'-') {
                    it.next();
                    cur.push('-');
                } else {
                    split = true;
                    cur = &mut lv;
                }
            } else if c == '-' && it.peek() == Some(&'-') {
                it.next();
                cur.push('-');
            } else {
                cur.push(c);
            }
        }
        format!("LVM logical volume {vg}/{lv} ({name})")
    } else if let Some(rest) = uuid.strip_prefix("CRYPT-") {
        let t = rest.split('-').next().unwrap_or("");
        format!("dm-crypt {t} mapping {dm_name} ({name})")
    } else if uuid.starts_with("mpath-") {
        format!("dm-multipath map {dm_name} ({name})")
    } else if uuid.starts_with("part") {
        format!("partition mapping {dm_name} ({name})")
    } else {
        format!("device-mapper device {dm_name} ({name})")
    }
}

fn layer(root: &Root, name: &str, kind: LayerKind) -> Layer {
    let sys = root.at("/sys/block").join(name);
    let lower = dir_names(&sys.join("slaves"));
    let devno = read_trim(&sys.join("dev")).unwrap_or_default();
    let what = match kind {
        LayerKind::Md => {
            let level = read_trim(&sys.join("md/level")).unwrap_or_else(|| "md".into());
            let meta = read_trim(&sys.join("md/metadata_version"));
            format!(
                "md {} /dev/{name}{}",
                level.to_uppercase(),
                meta.map(|m| format!(" (metadata {m})")).unwrap_or_default()
            )
        }
        LayerKind::Dm => dm_what(
            name,
            &read_trim(&sys.join("dm/name")).unwrap_or_default(),
            &read_trim(&sys.join("dm/uuid")).unwrap_or_default(),
        ),
        LayerKind::Bcache => format!("bcache device /dev/{name}"),
        LayerKind::BcacheSet => format!("bcache cache set {name}"),
    };
    Layer {
        name: name.to_string(),
        kind,
        devno,
        what,
        lower,
    }
}

/// The stacks on `disks` (kernel names of whole disks; `part_of` maps
/// their partitions to them). Virtual devices in `ignore` (the test
/// suite's named dm targets) are not layers.
pub fn find(
    root: &Root,
    disks: &BTreeSet<String>,
    part_of: &BTreeMap<String, String>,
    ignore: &BTreeSet<String>,
) -> Vec<Stack> {
    let disk_of = |n: &str| {
        if disks.contains(n) {
            Some(n.to_string())
        } else {
            part_of.get(n).cloned()
        }
    };
    // Every virtual device and bcache cache set, with its lower devices.
    let mut layers: BTreeMap<String, Layer> = BTreeMap::new();
    for n in dir_names(&root.at("/sys/block")) {
        if ignore.contains(&n) {
            continue;
        }
        if let Some(k) = kind_of(root, &n) {
            layers.insert(n.clone(), layer(root, &n, k));
        }
    }
    for d in disks {
        for (n, dir) in with_partitions(root, d) {
            let set = dir.join("bcache/set");
            if let Some(uuid) = std::fs::read_link(&set)
                .ok()
                .and_then(|t| t.file_name().map(|f| f.to_string_lossy().to_string()))
            {
                let l = layers.entry(uuid.clone()).or_insert_with(|| Layer {
                    name: uuid.clone(),
                    kind: LayerKind::BcacheSet,
                    devno: String::new(),
                    what: format!("bcache cache set {uuid}"),
                    lower: vec![],
                });
                l.lower.push(n);
            }
        }
    }
    // Connected components over layers, joined through shared lower
    // devices and shared disks (a disk with two stacks is released with
    // both or neither).
    let mut parent: BTreeMap<String, String> =
        layers.keys().map(|k| (k.clone(), k.clone())).collect();
    fn up(p: &mut BTreeMap<String, String>, x: &str) -> String {
        let mut r = x.to_string();
        while p[&r] != r {
            r = p[&r].clone();
        }
        p.insert(x.to_string(), r.clone());
        r
    }
    let mut by_disk: BTreeMap<String, String> = BTreeMap::new();
    let names: Vec<String> = layers.keys().cloned().collect();
    for n in &names {
        for low in layers[n].lower.clone() {
            let key = if layers.contains_key(&low) {
                Some(low.clone())
            } else {
                disk_of(&low).map(|d| by_disk.entry(d).or_insert_with(|| n.clone()).clone())
            };
            if let Some(k) = key {
                let (a, b) = (up(&mut parent, n), up(&mut parent, &k));
                if a != b {
                    parent.insert(a, b);
                }
            }
        }
    }
    let mut comps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in &names {
        let r = up(&mut parent, n);
        comps.entry(r).or_default().push(n.clone());
    }
    let mut out = Vec::new();
    for members in comps.into_values() {
        // The disks beneath, through lower devices recursively.
        let mut ds: BTreeSet<String> = BTreeSet::new();
        for m in &members {
            for low in &layers[m].lower {
                if let Some(d) = disk_of(low) {
                    ds.insert(d);
                }
            }
        }
        if ds.is_empty() {
            continue;
        }
        // Depth: 0 for a layer only on disks; one more than its highest
        // lower layer otherwise. Release the deepest first.
        let mut depth: BTreeMap<String, usize> = BTreeMap::new();
        fn depth_of(
            n: &str,
            layers: &BTreeMap<String, Layer>,
            memo: &mut BTreeMap<String, usize>,
            seen: &mut BTreeSet<String>,
        ) -> usize {
            if let Some(d) = memo.get(n) {
                return *d;
            }
            if !seen.insert(n.to_string()) {
                return 0;
            }
            let d = layers[n]
                .lower
                .iter()
                .filter(|l| layers.contains_key(*l))
                .map(|l| depth_of(l, layers, memo, seen) + 1)
                .max()
                .unwrap_or(0);
            memo.insert(n.to_string(), d);
            d
        }
        for m in &members {
            depth_of(m, &layers, &mut depth, &mut BTreeSet::new());
        }
        let mut ls: Vec<Layer> = members.iter().map(|m| layers[m].clone()).collect();
        ls.sort_by(|a, b| {
            depth[&b.name]
                .cmp(&depth[&a.name])
                .then(a.name.cmp(&b.name))
        });
        out.push(Stack {
            layers: ls,
            disks: ds.into_iter().collect(),
        });
    }
    out
}

/// Why the stack must not be released, judged on the stack alone (its
/// members' own eligibility is `select`'s): a layer is mounted, swap,
/// a multipath map (shared storage), or open (device-mapper's open count
/// above what the stack's own layers account for).
pub fn in_use(root: &Root, s: &Stack, usage: &Usage) -> Vec<String> {
    let mut why = Vec::new();
    for l in &s.layers {
        if l.kind == LayerKind::BcacheSet {
            continue;
        }
        let sys = root.at("/sys/block").join(&l.name);
        let u = usage.of(&sys, &l.name, &l.devno);
        for (_, m) in &u.mounts {
            why.push(format!("{} is mounted at {}", l.what, m.mountpoint));
        }
        for (_, sw) in &u.swaps {
            why.push(format!("{} is swap ({sw})", l.what));
        }
        let holders = dir_names(&sys.join("holders"));
        let foreign: Vec<&String> = holders
            .iter()
            .filter(|h| !s.layers.iter().any(|l| &l.name == *h))
            .collect();
        if !foreign.is_empty() {
            why.push(format!(
                "{} is held by {}",
                l.what,
                foreign
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if l.kind == LayerKind::Dm
            && read_trim(&sys.join("dm/uuid")).is_some_and(|u| u.starts_with("mpath-"))
        {
            why.push(format!("{} is a dm-multipath map: shared storage", l.what));
        }
        if l.kind == LayerKind::Dm && root.is_system() {
            if let Some((ma, mi)) = split_devno(&l.devno) {
                if let Ok(n) = crate::sys::dm::dm_open_count(&root.at("/dev"), ma, mi) {
                    let inside = holders.len() as i32;
                    if n > inside {
                        why.push(format!(
                            "{} is open ({n} opener(s), {inside} of them layers of this stack)",
                            l.what
                        ));
                    }
                }
            }
        }
    }
    why
}

fn split_devno(d: &str) -> Option<(u32, u32)> {
    let (a, b) = d.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// How a layer is stopped. The system's (`System`) uses the ioctls of
/// `sys::dm` and bcache's sysfs files; unit tests use a fake.
pub trait Releaser {
    fn release(&self, root: &Root, l: &Layer) -> Result<()>;
}

/// The running machine.
pub struct System;

impl Releaser for System {
    fn release(&self, root: &Root, l: &Layer) -> Result<()> {
        let busy = |e: std::io::Error| {
            if e.raw_os_error() == Some(libc::EBUSY) {
                anyhow!("busy: something still has it open ({e})")
            } else {
                anyhow!(e)
            }
        };
        match l.kind {
            LayerKind::Dm => {
                let (ma, mi) = split_devno(&l.devno)
                    .ok_or_else(|| anyhow!("no device number for {}", l.name))?;
                crate::sys::dm::dm_remove(&root.at("/dev"), ma, mi)
                    .map_err(busy)
                    .context("device-mapper remove")
            }
            LayerKind::Md => crate::sys::dm::md_stop(&root.at("/dev").join(&l.name))
                .map_err(busy)
                .context("md STOP_ARRAY"),
            LayerKind::Bcache => {
                std::fs::write(root.at("/sys/block").join(&l.name).join("bcache/stop"), "1")
                    .context("writing bcache/stop")
            }
            LayerKind::BcacheSet => {
                std::fs::write(root.at("/sys/fs/bcache").join(&l.name).join("stop"), "1")
                    .context("writing the cache set's stop")
            }
        }
    }
}

/// The stack over `s.disks` as it is now: layers udev added since the
/// plan (an LVM volume group activated a moment after its array was
/// assembled) are included, top-down, and it must still be unused.
pub fn refresh(root: &Root, s: &Stack) -> Result<Stack> {
    let disks: BTreeSet<String> = crate::blockdev::scan::names(root)
        .into_iter()
        .filter(|n| !is_layer(root, n))
        .collect();
    let mut part_of = BTreeMap::new();
    for d in &disks {
        for (p, _) in with_partitions(root, d).into_iter().skip(1) {
            part_of.insert(p, d.clone());
        }
    }
    let now: Vec<Stack> = find(root, &disks, &part_of, &BTreeSet::new())
        .into_iter()
        .filter(|n| n.disks.iter().any(|d| s.disks.contains(d)))
        .collect();
    let mut out = match now.len() {
        // Gone already (stopped by someone else): nothing to do.
        0 => Stack {
            layers: vec![],
            disks: s.disks.clone(),
        },
        1 => now.into_iter().next().unwrap_or_else(|| s.clone()),
        _ => bail!("the stack now spans several groups of disks; left alone"),
    };
    let extra: Vec<&String> = out.disks.iter().filter(|d| !s.disks.contains(d)).collect();
    if !extra.is_empty() {
        bail!(
            "since the plan, the stack also lies on {}, which this wipe does not erase; left alone",
            extra
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let busy = in_use(root, &out, &Usage::read(root));
    if !busy.is_empty() {
        bail!("since the plan: {}; left alone", busy.join("; "));
    }
    out.disks = s.disks.clone();
    Ok(out)
}

/// Whether the layer still sits on anything. A stopped md array can stay
/// in /sys/block a while, empty (the kernel frees it once its last opener,
/// often udev's probe, closes it), so what counts is that it has no lower
/// devices left.
fn present(root: &Root, l: &Layer) -> bool {
    match l.kind {
        LayerKind::BcacheSet => root.at("/sys/fs/bcache").join(&l.name).exists(),
        _ => {
            let sys = root.at("/sys/block").join(&l.name);
            sys.exists() && !dir_names(&sys.join("slaves")).is_empty()
        }
    }
}

/// Stop every layer of `s`, top-down, each gone before the next is
/// stopped; then every disk of the stack and its partitions must be free
/// of holders. `timeout` bounds each wait. The first failure ends it,
/// saying which layer and why.
pub fn release(root: &Root, s: &Stack, r: &dyn Releaser, timeout: Duration) -> Result<()> {
    for l in &s.layers {
        if !present(root, l) {
            continue;
        }
        r.release(root, l)
            .with_context(|| format!("stopping {}", l.what))?;
        let t0 = Instant::now();
        while present(root, l) {
            if t0.elapsed() > timeout {
                bail!(
                    "{} was stopped but is still there after {} s",
                    l.what,
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let t0 = Instant::now();
    loop {
        let held = held(root, &s.disks);
        if held.is_empty() {
            return Ok(());
        }
        if t0.elapsed() > timeout {
            bail!("after stopping the stack, still held: {}", held.join("; "));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The disk `d` (first) and each of its partitions: kernel name and
/// sysfs directory.
fn with_partitions(root: &Root, d: &str) -> Vec<(String, std::path::PathBuf)> {
    let sys = root.at("/sys/block").join(d);
    let mut devs = vec![(d.to_string(), sys.clone())];
    for p in dir_names(&sys) {
        if sys.join(&p).join("partition").exists() {
            devs.push((p.clone(), sys.join(&p)));
        }
    }
    devs
}

/// "sda1 by md127" for each disk or partition of `disks` with holders.
fn held(root: &Root, disks: &[String]) -> Vec<String> {
    let mut v = Vec::new();
    for d in disks {
        for (n, dir) in with_partitions(root, d) {
            let hs = dir_names(&dir.join("holders"));
            if !hs.is_empty() {
                v.push(format!("{n} by {}", hs.join(", ")));
            }
        }
    }
    v
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::path::Path;

    fn mk(p: &Path, files: &[(&str, &str)]) {
        for (f, v) in files {
            let f = p.join(f);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, v).unwrap();
        }
    }

    /// `/sys/block/NAME` with partitions, and `VIRT` layers over `lower`.
    pub(crate) fn disk_with_parts(root: &Root, name: &str, parts: &[&str]) {
        let sys = root.at("/sys/block").join(name);
        std::fs::create_dir_all(sys.join("holders")).unwrap();
        for (i, p) in parts.iter().enumerate() {
            mk(
                &sys.join(p),
                &[("partition", &format!("{}\n", i + 1)), ("dev", "259:9")],
            );
            std::fs::create_dir_all(sys.join(p).join("holders")).unwrap();
        }
    }

    /// Layer `name` over `lower` (disk or partition names, or layers):
    /// its slaves, and itself among each lower device's holders.
    pub(crate) fn virt(
        root: &Root,
        name: &str,
        devno: &str,
        lower: &[(&str, &str)],
        attrs: &[(&str, &str)],
    ) {
        let sys = root.at("/sys/block").join(name);
        mk(&sys, &[("dev", devno)]);
        mk(&sys, attrs);
        std::fs::create_dir_all(sys.join("holders")).unwrap();
        for (low, under) in lower {
            std::fs::create_dir_all(sys.join("slaves").join(low)).unwrap();
            // `under` is the /sys/block path of the lower device.
            std::fs::create_dir_all(root.at("/sys/block").join(under).join("holders").join(name))
                .unwrap();
        }
    }

    /// md127 (RAID1 over nvme0n1p1 and sda1) under LVM vg0/data (dm-0).
    pub(crate) fn raid_lvm(root: &Root) {
        disk_with_parts(root, "nvme0n1", &["nvme0n1p1"]);
        disk_with_parts(root, "sda", &["sda1"]);
        disk_with_parts(root, "sdb", &[]);
        virt(
            root,
            "md127",
            "9:127",
            &[("nvme0n1p1", "nvme0n1/nvme0n1p1"), ("sda1", "sda/sda1")],
            &[("md/level", "raid1"), ("md/metadata_version", "1.2")],
        );
        virt(
            root,
            "dm-0",
            "253:0",
            &[("md127", "md127")],
            &[("dm/name", "vg0-my--data"), ("dm/uuid", "LVM-abcdef")],
        );
    }

    fn names() -> (BTreeSet<String>, BTreeMap<String, String>) {
        let disks: BTreeSet<String> = ["nvme0n1", "sda", "sdb"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let part_of: BTreeMap<String, String> = [("nvme0n1p1", "nvme0n1"), ("sda1", "sda")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        (disks, part_of)
    }

    #[test]
    fn an_md_array_under_lvm_is_one_stack_released_top_down() {
        let t = tempfile::tempdir().unwrap();
        let r = Root::new(t.path());
        raid_lvm(&r);
        let (disks, part_of) = names();
        let s = find(&r, &disks, &part_of, &BTreeSet::new());
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].names(), ["dm-0", "md127"]);
        assert_eq!(s[0].disks, ["nvme0n1", "sda"]);
        assert_eq!(
            s[0].summary(),
            "LVM logical volume vg0/my-data (dm-0), md RAID1 /dev/md127 (metadata 1.2) on nvme0n1p1, sda1"
        );
        assert!(in_use(&r, &s[0], &Usage::default()).is_empty());
        // Mounted: in use, with what and where.
        let u = Usage::parse(
            &r,
            "30 1 253:0 / /srv rw - ext4 /dev/mapper/vg0-my--data rw\n",
            "",
        );
        assert_eq!(
            in_use(&r, &s[0], &u),
            ["LVM logical volume vg0/my-data (dm-0) is mounted at /srv"]
        );
    }

    /// What the kernel does when a layer stops: the holder links of `l`
    /// beneath it go (on disks, partitions and layers alike).
    fn let_go(root: &Root, l: &Layer) {
        let block = root.at("/sys/block");
        for low in &l.lower {
            let _ = std::fs::remove_dir_all(block.join(low).join("holders").join(&l.name));
            for d in dir_names(&block) {
                let _ =
                    std::fs::remove_dir_all(block.join(&d).join(low).join("holders").join(&l.name));
            }
        }
    }

    struct Fake {
        calls: RefCell<Vec<String>>,
        refuse: Option<&'static str>,
        root: std::path::PathBuf,
    }

    impl Releaser for Fake {
        fn release(&self, root: &Root, l: &Layer) -> Result<()> {
            self.calls.borrow_mut().push(l.name.clone());
            if self.refuse == Some(l.name.as_str()) {
                bail!("busy: something still has it open (Device or resource busy)");
            }
            // What the kernel does: the layer goes, and with it its holder
            // links beneath.
            assert_eq!(root.path(), self.root);
            std::fs::remove_dir_all(root.at("/sys/block").join(&l.name)).unwrap();
            let_go(root, l);
            Ok(())
        }
    }

    #[test]
    fn release_goes_top_down_and_frees_the_disks() {
        let t = tempfile::tempdir().unwrap();
        let r = Root::new(t.path());
        raid_lvm(&r);
        let (disks, part_of) = names();
        let s = find(&r, &disks, &part_of, &BTreeSet::new()).remove(0);
        let f = Fake {
            calls: RefCell::new(vec![]),
            refuse: None,
            root: t.path().to_path_buf(),
        };
        release(&r, &s, &f, Duration::from_secs(2)).unwrap();
        assert_eq!(*f.calls.borrow(), ["dm-0", "md127"]);
        assert!(held(&r, &s.disks).is_empty());
    }

    #[test]
    fn a_busy_layer_stops_the_release_and_says_which() {
        let t = tempfile::tempdir().unwrap();
        let r = Root::new(t.path());
        raid_lvm(&r);
        let (disks, part_of) = names();
        let s = find(&r, &disks, &part_of, &BTreeSet::new()).remove(0);
        let f = Fake {
            calls: RefCell::new(vec![]),
            refuse: Some("md127"),
            root: t.path().to_path_buf(),
        };
        let e = format!(
            "{:#}",
            release(&r, &s, &f, Duration::from_secs(2)).unwrap_err()
        );
        assert!(
            e.contains("stopping md RAID1 /dev/md127 (metadata 1.2): busy"),
            "{e}"
        );
        assert_eq!(*f.calls.borrow(), ["dm-0", "md127"]);
    }

    #[test]
    fn a_layer_that_stays_after_its_stop_is_a_failure() {
        struct Deaf;
        impl Releaser for Deaf {
            fn release(&self, _: &Root, _: &Layer) -> Result<()> {
                Ok(())
            }
        }
        let t = tempfile::tempdir().unwrap();
        let r = Root::new(t.path());
        raid_lvm(&r);
        let (disks, part_of) = names();
        let s = find(&r, &disks, &part_of, &BTreeSet::new()).remove(0);
        let e = release(&r, &s, &Deaf, Duration::from_millis(300)).unwrap_err();
        assert!(e.to_string().contains("still there after"), "{e}");
    }

    #[test]
    fn refresh_takes_in_a_layer_udev_added_since_the_plan() {
        let t = tempfile::tempdir().unwrap();
        let r = Root::new(t.path());
        raid_lvm(&r);
        let (disks, part_of) = names();
        let full = find(&r, &disks, &part_of, &BTreeSet::new()).remove(0);
        // The plan saw the array before LVM was activated on it.
        let planned = Stack {
            layers: vec![full.layers[1].clone()],
            disks: full.disks.clone(),
        };
        let now = refresh(&r, &planned).unwrap();
        assert_eq!(now.names(), ["dm-0", "md127"]);
        // Mounted since: left alone, saying so.
        mk(
            &r.at("/proc/self"),
            &[(
                "mountinfo",
                "30 1 253:0 / /srv rw - ext4 /dev/mapper/vg0-my--data rw\n",
            )],
        );
        let e = refresh(&r, &planned).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "since the plan: LVM logical volume vg0/my-data (dm-0) is mounted at /srv"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_stopped_array_that_lingers_without_members_is_gone() {
        struct Empties;
        impl Releaser for Empties {
            fn release(&self, root: &Root, l: &Layer) -> Result<()> {
                // What md does: the members are let go, the node stays.
                let sys = root.at("/sys/block").join(&l.name);
                std::fs::remove_dir_all(sys.join("slaves")).unwrap();
                let_go(root, l);
                Ok(())
            }
        }
        let t = tempfile::tempdir().unwrap();
        let r = Root::new(t.path());
        raid_lvm(&r);
        let (disks, part_of) = names();
        let s = find(&r, &disks, &part_of, &BTreeSet::new()).remove(0);
        release(&r, &s, &Empties, Duration::from_secs(2)).unwrap();
        assert!(r.at("/sys/block/md127").exists());
    }

    #[test]
    fn two_stacks_sharing_a_disk_are_one_and_bcache_sets_count() {
        let t = tempfile::tempdir().unwrap();
        let r = Root::new(t.path());
        raid_lvm(&r);
        // sda also has sda2 under a dm-crypt mapping; sdb carries a bcache
        // cache set, and sdc backs bcache0.
        disk_with_parts(&r, "sda", &["sda1", "sda2"]);
        virt(
            &r,
            "dm-1",
            "253:1",
            &[("sda2", "sda/sda2")],
            &[
                ("dm/name", "luks-1234"),
                ("dm/uuid", "CRYPT-LUKS2-1234-luks-1234"),
            ],
        );
        std::fs::create_dir_all(r.at("/sys/fs/bcache/5e7-uuid")).unwrap();
        std::fs::create_dir_all(r.at("/sys/block/sdb/bcache")).unwrap();
        std::os::unix::fs::symlink(
            r.at("/sys/fs/bcache/5e7-uuid"),
            r.at("/sys/block/sdb/bcache/set"),
        )
        .unwrap();
        disk_with_parts(&r, "sdc", &[]);
        virt(&r, "bcache0", "252:0", &[("sdc", "sdc")], &[]);
        let (mut disks, mut part_of) = names();
        disks.insert("sdc".into());
        part_of.insert("sda2".into(), "sda".into());
        let s = find(&r, &disks, &part_of, &BTreeSet::new());
        let got: Vec<(Vec<String>, Vec<String>)> =
            s.iter().map(|s| (s.names(), s.disks.clone())).collect();
        assert_eq!(
            got,
            [
                (vec!["5e7-uuid".to_string()], vec!["sdb".to_string()]),
                (vec!["bcache0".to_string()], vec!["sdc".to_string()]),
                (
                    vec!["dm-0".to_string(), "dm-1".to_string(), "md127".to_string()],
                    vec!["nvme0n1".to_string(), "sda".to_string()]
                ),
            ]
        );
        assert!(s[2]
            .summary()
            .contains("dm-crypt LUKS2 mapping luks-1234 (dm-1)"));
        assert_eq!(s[0].layers[0].what, "bcache cache set 5e7-uuid");
        // A test's own dm target is no layer.
        let ig: BTreeSet<String> = ["bcache0".to_string()].into();
        assert_eq!(find(&r, &disks, &part_of, &ig).len(), 2);
    }

    #[test]
    fn a_multipath_map_or_a_foreign_holder_is_in_use() {
        let t = tempfile::tempdir().unwrap();
        let r = Root::new(t.path());
        disk_with_parts(&r, "sdb", &[]);
        virt(
            &r,
            "dm-3",
            "253:3",
            &[("sdb", "sdb")],
            &[("dm/name", "mpatha"), ("dm/uuid", "mpath-3600")],
        );
        let disks: BTreeSet<String> = ["sdb".to_string()].into();
        let s = find(&r, &disks, &BTreeMap::new(), &BTreeSet::new()).remove(0);
        assert_eq!(
            in_use(&r, &s, &Usage::default()),
            ["dm-multipath map mpatha (dm-3) is a dm-multipath map: shared storage"]
        );
    }

    #[test]
    fn lvm_names_are_unescaped() {
        assert_eq!(
            dm_what("dm-2", "my--vg-root--fs", "LVM-x"),
            "LVM logical volume my-vg/root-fs (dm-2)"
        );
        assert_eq!(
            dm_what("dm-2", "plain", ""),
            "device-mapper device plain (dm-2)"
        );
    }
}
