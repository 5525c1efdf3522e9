//! The own prober against `blkid -p` on a corpus: for every type whose
//! tool is installed, an image made by the real tool (mkfs, mkswap,
//! mksquashfs, cryptsetup, make-bcache, pvcreate on a loop device over a
//! temp file), and for the formats without a tool here (MD superblocks,
//! ZFS, VMFS, Ceph BlueStore, BitLocker) a minimal image crafted from the
//! on-disk format. TYPE, LABEL, UUID and VERSION must be blkid's, and at
//! least 25 distinct types must be covered. A missing tool skips its
//! case, and fails under SPEEDISO_REQUIRE_TOOLS=1 (tests/apt/inventory.txt
//! has the packages).

mod md_superblock;
use md_superblock::md_superblock;
use speediso::inventory::fsprobe;
use speediso_testsupport::{have_tool, sized_file};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const HINT: &str = "install tests/apt/inventory.txt";

/// `blkid -p -o export` of a file, unescaped.
fn blkid(path: &Path) -> BTreeMap<String, String> {
    let out = Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(path)
        .output()
        .expect("running blkid");
    speediso::inventory::identify::parse_export(&String::from_utf8_lossy(&out.stdout))
}

fn ours(path: &Path) -> Option<fsprobe::FsInfo> {
    let f = std::fs::File::open(path).unwrap();
    let size = f.metadata().unwrap().len();
    fsprobe::probe_file(&f, size)
}

struct Corpus {
    dir: tempfile::TempDir,
    covered: BTreeSet<String>,
    skipped: Vec<String>,
    wrong: Vec<String>,
    n: usize,
}

impl Corpus {
    fn new() -> Corpus {
        Corpus {
            dir: tempfile::tempdir().unwrap(),
            covered: BTreeSet::new(),
            skipped: Vec::new(),
            wrong: Vec::new(),
            n: 0,
        }
    }

    fn have(&mut self, tool: &str) -> bool {
        let ok = have_tool(tool, HINT);
        if !ok {
            self.skipped.push(tool.to_string());
        }
        ok
    }

    /// A new sparse image of `size` bytes.
    fn image(&mut self, size: u64) -> std::path::PathBuf {
        self.n += 1;
        let p = self.dir.path().join(format!("img{}", self.n));
        sized_file(&p, size);
        p
    }

    /// Compare ours with blkid's on `img`, which must be `want`.
    fn check(&mut self, what: &str, img: &Path, want: &str) {
        let b = blkid(img);
        let got = ours(img);
        let theirs = |k: &str| b.get(k).cloned();
        if theirs("TYPE").as_deref() != Some(want) {
            self.wrong
                .push(format!("{what}: blkid says {b:?}, the case expects {want}"));
            return;
        }
        let Some(got) = got else {
            self.wrong
                .push(format!("{what}: nothing found; blkid says {b:?}"));
            return;
        };
        let pairs = [
            ("TYPE", Some(got.kind.clone())),
            ("LABEL", got.label.clone()),
            ("UUID", got.uuid.clone()),
            ("VERSION", got.version.clone()),
        ];
        for (k, v) in pairs {
            if v != theirs(k) {
                self.wrong
                    .push(format!("{what}: {k} ours {v:?}, blkid {:?}", theirs(k)));
            }
        }
        eprintln!("{what}: {got:?}");
        self.covered.insert(want.to_string());
    }

    /// Run `argv` with the image path appended, then compare.
    fn mkfs(&mut self, size: u64, argv: &[&str], want: &str) {
        if !self.have(argv[0]) {
            return;
        }
        let img = self.image(size);
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]).arg(&img);
        let out = cmd.output().unwrap();
        if !out.status.success() {
            self.wrong.push(format!(
                "{argv:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            return;
        }
        self.check(&argv.join(" "), &img, want);
    }

    /// Write crafted bytes and compare.
    fn crafted(&mut self, what: &str, bytes: &[(u64, Vec<u8>)], size: u64, want: &str) {
        let img = self.image(size);
        let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        use std::os::unix::fs::FileExt;
        for (off, b) in bytes {
            f.write_all_at(b, *off).unwrap();
        }
        drop(f);
        self.check(what, &img, want);
    }
}

fn le32(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// MD superblocks: 0.90 (end, 64 KiB aligned), 1.0 (end), 1.1 (start),
/// 1.2 (4 KiB), as mdadm writes them (this kernel has no md to let
/// mdadm --create write them itself).
fn md(c: &mut Corpus) {
    let size = 8u64 << 20;
    for (version, off) in [
        ("0.90", (size & !0xffff) - 0x10000),
        ("1.0", (size & !0xfff) - 0x2000),
        ("1.1", 0),
        ("1.2", 4096),
    ] {
        let sb = md_superblock(version, off);
        c.crafted(
            &format!("md {version}"),
            &[(off, sb)],
            size,
            "linux_raid_member",
        );
    }
}

/// A ZFS vdev label: an XDR nvlist (name, pool_guid, guid) at 16 KiB and
/// four uberblocks in label 0's ring at 128 KiB.
fn zfs(c: &mut Corpus) {
    let mut nv = vec![0u8; 12];
    nv[0] = 1; // XDR encoding, big-endian
    let mut pair = |name: &str, ty: u32, val: &[u8]| {
        let nlen = name.len();
        let mut p = Vec::new();
        let padded = (nlen + 3) & !3;
        let size = 12 + padded + 8 + val.len();
        p.extend((size as u32).to_be_bytes());
        p.extend(0u32.to_be_bytes());
        p.extend((nlen as u32).to_be_bytes());
        p.extend(name.as_bytes());
        p.resize(12 + padded, 0);
        p.extend(ty.to_be_bytes());
        p.extend(1u32.to_be_bytes());
        p.extend(val);
        nv.extend(p);
    };
    pair("version", 8, &5000u64.to_be_bytes());
    let mut s = (4u32).to_be_bytes().to_vec();
    s.extend(b"tank");
    pair("name", 9, &s);
    pair("pool_guid", 8, &1234567890123456789u64.to_be_bytes());
    pair("guid", 8, &42u64.to_be_bytes());
    nv.extend([0u8; 8]);
    let mut parts = vec![(16u64 << 10, nv)];
    for i in 0..4u64 {
        let mut ub = 0x00ba_b10cu64.to_le_bytes().to_vec();
        ub.extend(5000u64.to_le_bytes());
        ub.extend((i + 1).to_le_bytes());
        parts.push(((128 << 10) + i * 1024, ub));
    }
    c.crafted("zfs vdev label", &parts, 64 << 20, "zfs_member");
}

/// VMFS: the volume header at 1 MiB (with its LVM-style UUID text at
/// +532) and, on another image, the file system header at 2 MiB.
fn vmfs(c: &mut Corpus) {
    let mut vol = le32(0xc001_d00d);
    vol.extend(le32(14));
    vol.resize(130, 0);
    vol.extend((0x20..0x30).collect::<Vec<u8>>());
    vol.resize(532, 0);
    vol.extend(b"5e2f1b0a-8c1d2e3f-4a5b-001122334455");
    c.crafted(
        "VMFS volume",
        &[(1 << 20, vol)],
        8 << 20,
        "VMFS_volume_member",
    );
    let mut fs = le32(0x2fab_f15e);
    fs.extend(le32(14));
    fs.push(6);
    fs.extend((0x40..0x50).collect::<Vec<u8>>());
    fs.extend(le32(0));
    fs.extend(b"datastore1");
    c.crafted("VMFS file system", &[(2 << 20, fs)], 8 << 20, "VMFS");
}

/// Ceph BlueStore: the OSD label at 0.
fn bluestore(c: &mut Corpus) {
    let lbl = b"bluestore block device\n0b9ec5b4-2b6a-4a34-9dc4-1d2f9ee6d1a7\n".to_vec();
    c.crafted("bluestore", &[(0, lbl)], 8 << 20, "ceph_bluestore");
}

/// BitLocker (Windows 7 and later): "-FVE-FS-" OEM id, the FVE metadata
/// block where the header says, version 2.
fn bitlocker(c: &mut Corpus) {
    let mut bs = b"\xeb\x58\x90-FVE-FS-".to_vec();
    bs.resize(512, 0);
    bs[11..13].copy_from_slice(&512u16.to_le_bytes());
    bs[13] = 8;
    bs[176..184].copy_from_slice(&(1u64 << 20).to_le_bytes());
    bs[510] = 0x55;
    bs[511] = 0xaa;
    let mut fve = b"-FVE-FS-".to_vec();
    fve.extend(64u16.to_le_bytes());
    fve.extend(2u16.to_le_bytes());
    c.crafted(
        "BitLocker",
        &[(0, bs), (1 << 20, fve)],
        8 << 20,
        "BitLocker",
    );
}

/// LVM2: pvcreate needs a block device, so a loop device over a temp
/// file; the file is compared after the device is gone.
fn lvm(c: &mut Corpus) {
    if !c.have("pvcreate") || !speediso_testsupport::loops::ready("lvm2 pv", &["losetup"]) {
        return;
    }
    let l = speediso_testsupport::loops::Loop::new(64 << 20, 0);
    let out = Command::new("pvcreate")
        .args([
            "-y",
            "-q",
            "--config",
            "devices{obtain_device_list_from_udev=0} activation{udev_sync=0 udev_rules=0}",
            &l.dev,
        ])
        .env("DM_DISABLE_UDEV", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "pvcreate: {out:?}");
    let img = c.dir.path().join("pv.img");
    std::fs::write(&img, l.bytes()).unwrap();
    drop(l);
    c.check("pvcreate", &img, "LVM2_member");
}

/// Images built from a directory (squashfs, cramfs, erofs, ISO 9660).
fn from_dir(c: &mut Corpus) {
    let src = c.dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello.txt"), "hello").unwrap();
    let s = src.to_str().unwrap().to_string();
    let cases: [(&str, Vec<String>, &str); 4] = [
        (
            "mksquashfs",
            vec![s.clone(), "OUT".into(), "-noappend".into(), "-quiet".into()],
            "squashfs",
        ),
        (
            "mkfs.cramfs",
            vec!["-n".into(), "speedcram".into(), s.clone(), "OUT".into()],
            "cramfs",
        ),
        (
            "mkfs.erofs",
            vec![
                "--quiet".into(),
                "-U".into(),
                "0b9ec5b4-2b6a-4a34-9dc4-1d2f9ee6d1a7".into(),
                "OUT".into(),
                s.clone(),
            ],
            "erofs",
        ),
        (
            "xorriso",
            vec![
                "-as".into(),
                "mkisofs".into(),
                "-quiet".into(),
                "-V".into(),
                "SPEEDISO_LIVE".into(),
                "-o".into(),
                "OUT".into(),
                s.clone(),
            ],
            "iso9660",
        ),
    ];
    for (tool, args, want) in cases {
        if !c.have(tool) {
            continue;
        }
        c.n += 1;
        let img = c.dir.path().join(format!("img{}", c.n));
        let args: Vec<String> = args
            .into_iter()
            .map(|a| {
                if a == "OUT" {
                    img.display().to_string()
                } else {
                    a
                }
            })
            .collect();
        let out = Command::new(tool).args(&args).output().unwrap();
        if !out.status.success() {
            c.wrong.push(format!(
                "{tool} {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        c.check(tool, &img, want);
    }
}

fn luks(c: &mut Corpus) {
    if !c.have("cryptsetup") {
        return;
    }
    let key = c.dir.path().join("key");
    std::fs::write(&key, "not a secret").unwrap();
    let key = key.display().to_string();
    for (ty, extra) in [("luks1", vec![]), ("luks2", vec!["--label", "vault"])] {
        let mut argv = vec![
            "cryptsetup",
            "luksFormat",
            "--batch-mode",
            "--type",
            ty,
            "--pbkdf-force-iterations",
            "1000",
            "--key-file",
            &key,
        ];
        if ty == "luks2" {
            argv.extend(["--pbkdf", "pbkdf2"]);
        }
        argv.extend(extra);
        c.mkfs(32 << 20, &argv, "crypto_LUKS");
    }
}

#[test]
fn own_probes_equal_blkid_on_a_corpus() {
    if !have_tool("blkid", HINT) {
        return;
    }
    let mut c = Corpus::new();
    let m = 1u64 << 20;
    c.mkfs(16 * m, &["mkfs.ext2", "-q", "-F", "-L", "old"], "ext2");
    c.mkfs(16 * m, &["mkfs.ext3", "-q", "-F", "-L", "mid"], "ext3");
    c.mkfs(32 * m, &["mkfs.ext4", "-q", "-F", "-L", "my root"], "ext4");
    c.mkfs(320 * m, &["mkfs.xfs", "-q", "-f", "-L", "xdata"], "xfs");
    c.mkfs(256 * m, &["mkfs.btrfs", "-q", "-f", "-L", "pool"], "btrfs");
    c.mkfs(4 * m, &["mkfs.vfat", "-F", "12", "-n", "TINY"], "vfat");
    c.mkfs(32 * m, &["mkfs.vfat", "-F", "16", "-n", "BOOT"], "vfat");
    c.mkfs(64 * m, &["mkfs.vfat", "-F", "32", "-n", "EFI"], "vfat");
    c.mkfs(64 * m, &["mkfs.exfat", "-L", "Exchange"], "exfat");
    c.mkfs(64 * m, &["mkfs.exfat"], "exfat");
    c.mkfs(
        64 * m,
        &["mkntfs", "-F", "-Q", "-L", "Windows data"],
        "ntfs",
    );
    c.mkfs(64 * m, &["mkntfs", "-F", "-Q"], "ntfs");
    c.mkfs(16 * m, &["mkswap", "-L", "swp"], "swap");
    c.mkfs(128 * m, &["mkfs.f2fs", "-q", "-f", "-l", "flash"], "f2fs");
    c.mkfs(64 * m, &["mkfs.jfs", "-q", "-L", "jfsvol"], "jfs");
    c.mkfs(
        64 * m,
        &["mkfs.reiserfs", "-q", "-f", "-l", "reiser"],
        "reiserfs",
    );
    c.mkfs(64 * m, &["make-bcache", "-B"], "bcache");
    c.mkfs(64 * m, &["make-bcache", "-C"], "bcache");
    c.mkfs(
        160 * m,
        &["mkfs.nilfs2", "-q", "-f", "-L", "nilvol"],
        "nilfs2",
    );
    c.mkfs(16 * m, &["mkfs.minix", "-1"], "minix");
    c.mkfs(16 * m, &["mkfs.minix", "-2"], "minix");
    c.mkfs(16 * m, &["mkfs.minix", "-3"], "minix");
    c.mkfs(64 * m, &["mkudffs", "--label=udfvol"], "udf");
    c.mkfs(
        64 * m,
        &["mkfs.gfs2", "-O", "-p", "lock_nolock", "-t", "clu:fsname"],
        "gfs2",
    );
    c.mkfs(
        64 * m,
        &["mkfs.ocfs2", "-q", "-F", "-L", "ocfsvol"],
        "ocfs2",
    );
    luks(&mut c);
    from_dir(&mut c);
    lvm(&mut c);
    md(&mut c);
    zfs(&mut c);
    vmfs(&mut c);
    bluestore(&mut c);
    bitlocker(&mut c);
    assert!(
        c.wrong.is_empty(),
        "differs from blkid:\n{}",
        c.wrong.join("\n")
    );
    eprintln!("{} types: {:?}", c.covered.len(), c.covered);
    if c.skipped.is_empty() {
        assert!(
            c.covered.len() >= 25,
            "only {} types covered: {:?}",
            c.covered.len(),
            c.covered
        );
    }
}

/// On the running machine `identify` asks the image's blkid (source
/// `blkid`); under a fixture root, or for what blkid finds no type on,
/// the own probe answers (source `probe`). Same values either way.
#[test]
fn identify_asks_blkid_on_the_live_system_only() {
    use speediso::inventory::identify::identify;
    use speediso::root::Root;
    if !have_tool("mkfs.ext4", HINT)
        || !have_tool("blkid", HINT)
        || !speediso_testsupport::loops::ready("identify", &["losetup"])
    {
        return;
    }
    let l = speediso_testsupport::loops::Loop::new(32 << 20, 0);
    speediso_testsupport::output_ok(
        Command::new("mkfs.ext4").args(["-q", "-F", "-L", "live", &l.dev]),
    );
    let name = l.dev.trim_start_matches("/dev/");
    let live = identify(&Root::system(), name, l.size()).unwrap().unwrap();
    assert_eq!(live.source, "blkid");
    assert_eq!(live.label.as_deref(), Some("live"));
    // A fixture root whose /dev holds the image: the own probe, same answer.
    let fx = tempfile::tempdir().unwrap();
    std::fs::create_dir(fx.path().join("dev")).unwrap();
    std::fs::copy(&l.file, fx.path().join("dev").join(name)).unwrap();
    let fixture = identify(&Root::new(fx.path()), name, l.size())
        .unwrap()
        .unwrap();
    assert_eq!(fixture.source, "probe");
    assert_eq!(
        (
            &fixture.kind,
            &fixture.label,
            &fixture.uuid,
            &fixture.version
        ),
        (&live.kind, &live.label, &live.uuid, &live.version)
    );
}
