//! The superblock prober against blkid: images made by the real mkfs
//! tools (on temporary files, never a real disk), probed by
//! `speediso::inventory::fsprobe` and by `blkid -p`; type, label and UUID
//! must agree.

mod md_superblock;
use md_superblock::md_superblock;
use speediso::inventory::fsprobe;
use speediso_testsupport::{output_ok, sized_file};
use std::path::Path;
use std::process::Command;

/// Is `tool` installed? Missing: a failure under SPEEDISO_REQUIRE_TOOLS=1
/// (CI), else a skip with a message.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    found
        || speediso_testsupport::missing(&format!(
            "{tool} is required; install tests/apt/inventory.txt"
        ))
}

fn sh(argv: &[&str]) {
    output_ok(Command::new(argv[0]).args(&argv[1..]));
}

/// blkid's TYPE, LABEL and UUID for a file (`-o export`, unescaped).
fn blkid(path: &Path) -> (Option<String>, Option<String>, Option<String>) {
    let out = Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |k: &str| {
        text.lines().find_map(|l| {
            let v = l.strip_prefix(k)?.strip_prefix('=')?;
            let mut s = String::new();
            let mut esc = false;
            for c in v.chars() {
                if !esc && c == '\\' {
                    esc = true;
                    continue;
                }
                esc = false;
                s.push(c);
            }
            Some(s)
        })
    };
    (get("TYPE"), get("LABEL"), get("UUID"))
}

fn ours(path: &Path) -> Option<fsprobe::FsInfo> {
    let f = std::fs::File::open(path).unwrap();
    let size = f.metadata().unwrap().len();
    fsprobe::probe_file(&f, size)
}

/// Make an image of `size` bytes with `mkfs` (the path is appended), then
/// compare. Returns our result for extra asserts.
fn check(size: u64, mkfs: &[&str], want_type: &str) -> Option<fsprobe::FsInfo> {
    if !have(mkfs[0]) || !have("blkid") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    sized_file(&img, size);
    let mut argv: Vec<&str> = mkfs.to_vec();
    let p = img.to_str().unwrap();
    argv.push(p);
    sh(&argv);
    let (t, l, u) = blkid(&img);
    let got = ours(&img).unwrap_or_else(|| panic!("{mkfs:?}: nothing found; blkid says {t:?}"));
    assert_eq!(t.as_deref(), Some(want_type), "blkid type for {mkfs:?}");
    assert_eq!(Some(got.kind.clone()), t, "type for {mkfs:?}");
    assert_eq!(got.label, l, "label for {mkfs:?}");
    assert_eq!(got.uuid, u, "uuid for {mkfs:?}");
    Some(got)
}

#[test]
fn ext2_ext3_ext4() {
    check(16 << 20, &["mkfs.ext2", "-q", "-F", "-L", "old"], "ext2");
    check(16 << 20, &["mkfs.ext3", "-q", "-F", "-L", "mid"], "ext3");
    let f = check(
        32 << 20,
        &["mkfs.ext4", "-q", "-F", "-L", "my root"],
        "ext4",
    );
    if let Some(f) = f {
        assert_eq!(f.label.as_deref(), Some("my root"));
    }
    // No label at all.
    check(16 << 20, &["mkfs.ext4", "-q", "-F"], "ext4");
}

#[test]
fn xfs() {
    check(320 << 20, &["mkfs.xfs", "-q", "-f", "-L", "xdata"], "xfs");
}

#[test]
fn vfat_12_16_32() {
    check(4 << 20, &["mkfs.vfat", "-F", "12", "-n", "TINY"], "vfat");
    check(32 << 20, &["mkfs.vfat", "-F", "16", "-n", "BOOT"], "vfat");
    let f = check(64 << 20, &["mkfs.vfat", "-F", "32", "-n", "EFI"], "vfat");
    if let Some(f) = f {
        assert_eq!(f.label.as_deref(), Some("EFI"));
        assert_eq!(f.uuid.as_ref().map(|u| u.len()), Some(9));
    }
    // No label: blkid reports none, and neither do we.
    check(64 << 20, &["mkfs.vfat", "-F", "32"], "vfat");
}

#[test]
fn swap() {
    check(16 << 20, &["mkswap", "-L", "swp"], "swap");
    check(16 << 20, &["mkswap"], "swap");
}

#[test]
fn btrfs() {
    check(
        256 << 20,
        &["mkfs.btrfs", "-q", "-f", "-L", "pool"],
        "btrfs",
    );
}

#[test]
fn luks2() {
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), "not a secret").unwrap();
    let f = check(
        32 << 20,
        &[
            "cryptsetup",
            "luksFormat",
            "--batch-mode",
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--label",
            "vault",
            "--key-file",
            key.path().to_str().unwrap(),
        ],
        "crypto_LUKS",
    );
    if let Some(f) = f {
        assert_eq!(f.label.as_deref(), Some("vault"));
        assert_eq!(f.uuid.as_ref().map(|u| u.len()), Some(36));
    }
}

#[test]
fn iso9660() {
    if !have("xorriso") || !have("blkid") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    std::fs::create_dir(&content).unwrap();
    std::fs::write(content.join("hello.txt"), "hi").unwrap();
    let img = dir.path().join("img.iso");
    sh(&[
        "xorriso",
        "-as",
        "mkisofs",
        "-quiet",
        "-V",
        "SPEEDISO_LIVE",
        "-o",
        img.to_str().unwrap(),
        content.to_str().unwrap(),
    ]);
    let (t, l, u) = blkid(&img);
    let got = ours(&img).unwrap();
    assert_eq!(t.as_deref(), Some("iso9660"));
    assert_eq!(Some(got.kind), t);
    assert_eq!(got.label.as_deref(), Some("SPEEDISO_LIVE"));
    assert_eq!(got.label, l);
    assert_eq!(got.uuid, u);

    // Joliet with a label the primary descriptor cannot hold (lower case),
    // and creation and modification times that differ: blkid takes the
    // Joliet label and the modification time.
    let img2 = dir.path().join("joliet.iso");
    sh(&[
        "xorriso",
        "-report_about",
        "SORRY",
        "-outdev",
        img2.to_str().unwrap(),
        "-joliet",
        "on",
        "-volid",
        "Speediso live 1",
        "-volume_date",
        "c",
        "2024010203040500",
        "-volume_date",
        "m",
        "2025060708091000",
        "-map",
        content.to_str().unwrap(),
        "/",
    ]);
    let (t, l, u) = blkid(&img2);
    let got = ours(&img2).unwrap();
    assert_eq!(t.as_deref(), Some("iso9660"));
    assert_eq!(got.label, l, "Joliet label");
    assert_eq!(got.uuid, u, "time stamp UUID");
    assert!(
        got.uuid.as_deref().unwrap_or("").starts_with("2025-06-07"),
        "{got:?}"
    );

    // Hand-made: an upper-case primary label and a Joliet one that says
    // more; an unset modification time. blkid must agree with us.
    let (v, _) = speediso_testsupport::images::joliet_iso();
    let img3 = dir.path().join("synthetic.iso");
    std::fs::write(&img3, &v).unwrap();
    let (t, l, u) = blkid(&img3);
    let got = ours(&img3).unwrap();
    assert_eq!(t.as_deref(), Some("iso9660"));
    assert_eq!(got.label.as_deref(), Some("Speediso Live"));
    assert_eq!(got.label, l);
    assert_eq!(got.uuid, u);
}

/// MD RAID superblocks written by hand (this kernel may have no md driver,
/// so mdadm cannot create one), checked by blkid as well.
#[test]
fn md_raid_superblocks() {
    if !have("blkid") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let size = 8usize << 20;
    // 1.2: at 4 KiB; 1.0: near the end; 0.90: 64 KiB-aligned at the end.
    for (version, off) in [
        ("1.2", 4096usize),
        ("1.0", (size & !0xfff) - 0x2000),
        ("0.90", (size & !0xffff) - 0x10000),
    ] {
        let mut v = vec![0u8; size];
        v[off..off + 512].copy_from_slice(&md_superblock(version, off as u64));
        let img = dir.path().join(format!("md{version}"));
        std::fs::write(&img, &v).unwrap();
        let (t, l, u) = blkid(&img);
        let got = ours(&img).unwrap_or_else(|| panic!("md {version} not found"));
        assert_eq!(
            t.as_deref(),
            Some("linux_raid_member"),
            "blkid, md {version}"
        );
        assert_eq!(Some(got.kind), t, "md {version}");
        assert_eq!(got.label, l, "md {version}");
        assert_eq!(got.uuid, u, "md {version}");
    }
}

/// An LVM2 PV made by pvcreate on a loop device over a temp file (root
/// only); the file is probed after the loop device is gone.
#[test]
fn lvm2_pv() {
    if !have("pvcreate") || !have("losetup") || !have("blkid") {
        return;
    }
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        speediso_testsupport::missing("lvm2_pv needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("pv.img");
    sized_file(&img, 64 << 20);
    let out = output_ok(Command::new("losetup").args(["--find", "--show"]).arg(&img));
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(dev.starts_with("/dev/loop"), "not a loop device: {dev}");
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").args(["-d", &self.0]).status();
        }
    }
    let guard = Detach(dev.clone());
    output_ok(
        Command::new("pvcreate")
            .args([
                "-y",
                "-q",
                "--config",
                "devices{obtain_device_list_from_udev=0} activation{udev_sync=0 udev_rules=0}",
                &dev,
            ])
            .env("DM_DISABLE_UDEV", "1"),
    );
    drop(guard);
    let (t, _, u) = blkid(&img);
    let got = ours(&img).unwrap();
    assert_eq!(t.as_deref(), Some("LVM2_member"));
    assert_eq!(Some(got.kind), t);
    assert_eq!(got.uuid, u);
}

#[test]
fn blank_and_unknown_images_have_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("zeros");
    sized_file(&img, 4 << 20);
    assert_eq!(ours(&img), None);
    std::fs::write(&img, vec![0x5au8; 1 << 20]).unwrap();
    assert_eq!(ours(&img), None);
}

/// Partition tables written by sfdisk (GPT with names and GUIDs, DOS with
/// an extended partition and logical ones), read back by us, by
/// `sfdisk --json` and by blkid (PTTYPE, PTUUID).
#[test]
fn gpt_and_dos_tables_equal_sfdisk() {
    if !have("sfdisk") || !have("blkid") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scripts = [
        "label: gpt\nlabel-id: 0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9\n\
         start=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, \
         uuid=11223344-5566-4778-899A-ABBCCDDEEFF0, name=\"EFI system\"\n\
         start=10240, size=4096, type=L, name=\"root fs\"\n\
         start=16384, size=4096, type=S\n",
        "label: dos\nlabel-id: 0x1234abcd\n\
         start=2048, size=4096, type=83\n\
         start=6144, size=20480, type=5\n\
         start=8192, size=4096, type=82\n\
         start=14336, size=4096, type=8e\n",
    ];
    for script in scripts {
        let img = dir.path().join("disk.img");
        sized_file(&img, 16 << 20);
        speediso_testsupport::sfdisk(&img, script);

        let f = std::fs::File::open(&img).unwrap();
        let t = fsprobe::partitions(&mut fsprobe::reader(&f), 512).expect("a table");
        let theirs: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(
            &Command::new("sfdisk")
                .arg("--json")
                .arg(&img)
                .output()
                .unwrap()
                .stdout,
        ))
        .unwrap();
        let pt = &theirs["partitiontable"];
        assert_eq!(t.kind, pt["label"].as_str().unwrap());
        let id = pt["id"].as_str().unwrap().to_ascii_lowercase();
        assert_eq!(t.uuid.as_deref(), Some(id.trim_start_matches("0x")));
        let (bt, _, _) = blkid(&img);
        let out = Command::new("blkid")
            .args(["-p", "-o", "export"])
            .arg(&img)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(bt.is_none(), "no filesystem on the bare table");
        assert!(text.contains(&format!("PTTYPE={}", t.kind)), "{text}");
        assert!(
            text.contains(&format!("PTUUID={}", t.uuid.as_deref().unwrap())),
            "{text}"
        );
        let parts = pt["partitions"].as_array().unwrap();
        assert_eq!(t.entries.len(), parts.len(), "{t:?}");
        for (e, p) in t.entries.iter().zip(parts) {
            let node = p["node"].as_str().unwrap();
            assert!(node.ends_with(&e.number.to_string()), "{node} vs {e:?}");
            assert_eq!(e.start_lba, p["start"].as_u64().unwrap(), "{node}");
            if t.kind == "gpt" {
                assert_eq!(
                    e.uuid.as_deref(),
                    p["uuid"]
                        .as_str()
                        .map(|u| u.to_ascii_lowercase())
                        .as_deref()
                );
                assert_eq!(e.name.as_deref(), p["name"].as_str());
                assert_eq!(e.type_id, p["type"].as_str().unwrap().to_ascii_lowercase());
            } else {
                assert_eq!(e.uuid, Some(format!("1234abcd-{:02x}", e.number)));
                assert_eq!(e.type_id, format!("0x{}", p["type"].as_str().unwrap()));
            }
        }
    }
}

/// FAT labels as blkid reads them: the root directory's volume-label
/// entry, not the boot sector's copy (which tools such as Windows leave
/// stale). Boot-sector label changed, then the directory entry removed.
#[test]
fn vfat_label_comes_from_the_root_directory() {
    if !have("mkfs.vfat") || !have("blkid") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (fat, size, label_off) in [("16", 32u64 << 20, 43usize), ("32", 64 << 20, 71)] {
        let img = dir.path().join(format!("fat{fat}"));
        sized_file(&img, size);
        sh(&[
            "mkfs.vfat",
            "-F",
            fat,
            "-n",
            "DIRLBL",
            img.to_str().unwrap(),
        ]);
        let mut b = std::fs::read(&img).unwrap();
        b[label_off..label_off + 11].copy_from_slice(b"BOOTONLY   ");
        std::fs::write(&img, &b).unwrap();
        let (_, l, u) = blkid(&img);
        let got = ours(&img).unwrap();
        assert_eq!(l.as_deref(), Some("DIRLBL"), "blkid, FAT{fat}");
        assert_eq!(got.label, l, "FAT{fat}");
        assert_eq!(got.uuid, u, "FAT{fat}");
        // Delete the directory entry: no LABEL at all.
        // The entry (name + attribute 0x08), not FAT32's backup boot sector.
        let pos = b
            .windows(12)
            .position(|w| w == b"DIRLBL     \x08")
            .expect("label entry");
        b[pos] = 0xe5;
        std::fs::write(&img, &b).unwrap();
        let (_, l, _) = blkid(&img);
        assert_eq!(l, None, "blkid, FAT{fat} without the entry");
        assert_eq!(
            ours(&img).unwrap().label,
            None,
            "FAT{fat} without the entry"
        );
    }
}
