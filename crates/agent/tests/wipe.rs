//! Loop-device tests of `speediso wipe` (root only). Every test creates its
//! own temp files and loop devices, checks each target is a loop device it
//! created, restricts the binary to them with SPEEDISO_WIPE_TEST_ALLOW, and
//! detaches them in a drop guard. Assertions read the backing files' raw
//! bytes.

use serde_json::Value;
use speediso::root::Root;
use speediso_testsupport::skipped;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_speediso");
const MARKER: &[u8] = b"SPEEDISO-MARKER-";
const MIB: u64 = 1 << 20;

use loop_support::{sh, Dm, Loop};
use speediso_testsupport::loops as loop_support;

/// Root and the tools, or skip (fail under SPEEDISO_REQUIRE_TOOLS=1).
fn ready(tools: &[&str]) -> bool {
    loop_support::ready("wipe loop-device test", tools)
}

/// Markers on a test loop device.
trait Markers {
    fn fill_with_markers(&self, n: usize, seed: u64) -> Vec<u64>;
}

impl Markers for Loop {
    /// Fill with a non-zero background and write markers at `n` offsets
    /// (pseudo-random, 512-aligned, plus the first and last sector).
    fn fill_with_markers(&self, n: usize, seed: u64) -> Vec<u64> {
        let size = self.size();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.dev)
            .unwrap();
        let bg = vec![0x5Au8; MIB as usize];
        let mut off = 0;
        while off < size {
            let len = (size - off).min(MIB) as usize;
            f.write_all_at(&bg[..len], off).unwrap();
            off += len as u64;
        }
        let mut x = seed | 1;
        let mut offs = vec![0, size - 512];
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            offs.push((x % (size / 512)) * 512);
        }
        for &o in &offs {
            f.write_all_at(MARKER, o).unwrap();
        }
        f.sync_all().unwrap();
        offs
    }
}

struct Run {
    out: Output,
    run_dir: tempfile::TempDir,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).to_string()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).to_string()
    }
    fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    fn certs(&self) -> Vec<(PathBuf, Value)> {
        let dir = self.run_dir.path().join("certs");
        let mut v: Vec<(PathBuf, Value)> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .filter(|p| {
                        !p.file_name()
                            .unwrap()
                            .to_string_lossy()
                            .starts_with("server-")
                    })
                    .map(|p| {
                        let v =
                            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                        (p, v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
    fn cert_for(&self, dev: &str) -> Value {
        self.certs()
            .into_iter()
            .map(|(_, v)| v)
            .find(|v| v["media"]["device_path"] == dev)
            .unwrap_or_else(|| panic!("no certificate for {dev}; stdout {}", self.stdout()))
    }
}

/// Run the binary restricted to `allow`, with extra kernel options.
/// `SPEEDISO_WIPE_BIN` runs another build of it (scripts/soft-aes.sh: the
/// AES-NI binary writes, this software-AES test build checks).
/// `speediso wipe --device DEV --method METHOD EXTRA... --confirm DEV` on a
/// quiet boot line, DEV (a loop device of the test's) allowed.
fn wipe_one(dev: &str, method: &str, extra: &[&str]) -> Run {
    let mut args = vec!["wipe", "--device", dev, "--method", method];
    args.extend(extra);
    args.extend(["--confirm", dev]);
    wipe(&[dev], "quiet", &args)
}

fn wipe(allow: &[&str], cmdline: &str, args: &[&str]) -> Run {
    let run_dir = tempfile::tempdir().unwrap();
    let bin = std::env::var("SPEEDISO_WIPE_BIN").unwrap_or_else(|_| BIN.to_string());
    let out = Command::new(bin)
        .args(["--cmdline", cmdline])
        .args(args)
        .env("SPEEDISO_WIPE_TEST_ALLOW", allow.join(","))
        .env("SPEEDISO_RUN_DIR", run_dir.path())
        .env_remove("SPEEDISO_WIPE_ALLOW_REAL")
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    Run { out, run_dir }
}

fn no_marker(bytes: &[u8]) -> bool {
    !bytes.windows(MARKER.len()).any(|w| w == MARKER)
}

fn seed_of(cert: &Value) -> [u8; 32] {
    hex::decode(cert["sanitization"]["seed"].as_str().expect("seed"))
        .unwrap()
        .try_into()
        .unwrap()
}

/// The stream algorithm a certificate names (none: chacha8, the first).
fn stream_of(cert: &Value) -> speediso::wipe::stream::Algorithm {
    match cert["sanitization"]["stream"]["algorithm"].as_str() {
        None => speediso::wipe::stream::Algorithm::ChaCha8,
        Some(a) => speediso::wipe::stream::Algorithm::parse(a).expect("known algorithm"),
    }
}

/// `bytes` are the stream of `pass` that `cert` names, regenerated.
fn assert_stream(bytes: &[u8], cert: &Value, pass: u32) {
    let seed = seed_of(cert);
    let mut want = vec![0u8; bytes.len()];
    speediso::wipe::overwrite::fill_stream(stream_of(cert), &seed, pass, 0, &mut want);
    if let Some(i) = bytes.iter().zip(&want).position(|(a, b)| a != b) {
        panic!("byte {i} is not the regenerated stream of pass {pass}");
    }
}

fn verify_cert(path: &Path, key: &str) -> (i32, String) {
    let o = Command::new(BIN)
        .args(["verify-cert", path.to_str().unwrap(), "--pubkey", key])
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).to_string(),
    )
}

#[test]
fn zero_full_erases_every_marker_and_signs_a_certificate() {
    if !ready(&["losetup"]) {
        return;
    }
    let l = Loop::new(48 * MIB + 512 * 3, 0);
    l.fill_with_markers(40, 11);
    assert!(!no_marker(&l.bytes()));
    let r = wipe_one(&l.dev, "zero", &["--verify", "full"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let b = l.bytes();
    assert!(b.iter().all(|&x| x == 0), "a non-zero byte survived");
    let c = r.cert_for(&l.dev);
    assert_eq!(c["outcome"], "wiped");
    assert_eq!(c["sanitization"]["method"], "zero");
    assert_eq!(c["sanitization"]["category"], "Clear");
    assert_eq!(c["verification"]["method"], "full");
    assert_eq!(c["verification"]["result"], "passed");
    assert_eq!(c["verification"]["bytes_read"], l.size());
    assert_eq!(c["media"]["size_bytes"], l.size());
    assert_eq!(c["timing"]["bytes_written"], l.size());
    assert_eq!(c["media"]["backing_file"], l.file.to_str().unwrap());
    // The signature verifies with the reported key; a tampered copy fails.
    let key = r
        .stdout()
        .lines()
        .find_map(|x| x.strip_prefix("public key (generated): "))
        .expect("public key line")
        .trim()
        .to_string();
    let (path, _) = r.certs().into_iter().next().unwrap();
    let (code, out) = verify_cert(&path, &key);
    assert_eq!(code, 0, "{out}");
    let tampered = r.run_dir.path().join("tampered.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"wiped\"", "\"failed\"");
    std::fs::write(&tampered, text).unwrap();
    let (code, out) = verify_cert(&tampered, &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("INVALID"), "{out}");
    // A different key fails too.
    let (code, _) = verify_cert(&path, &"11".repeat(32));
    assert_eq!(code, 1);
    // The HTML rendering exists, is self-contained and names the device.
    let html = std::fs::read_to_string(path.with_extension("html")).unwrap();
    assert!(html.contains(&l.dev) && html.contains("Certificate of Sanitization"));
    assert!(!html.contains("<script") && !html.contains("http"));
}

#[test]
fn random_with_each_verify_mode_leaves_the_regenerable_stream() {
    if !ready(&["losetup"]) {
        return;
    }
    for (mode, method, fraction) in [
        ("full", "full", Some(1.0)),
        ("sample:0.25", "sample", Some(0.25)),
        ("off", "off", None),
    ] {
        let l = Loop::new(24 * MIB, 0);
        l.fill_with_markers(30, 5);
        let r = wipe_one(&l.dev, "random", &["--verify", mode]);
        assert_eq!(r.code(), 0, "{mode}: {}\n{}", r.stdout(), r.stderr());
        let b = l.bytes();
        assert!(no_marker(&b), "{mode}: a marker survived");
        let c = r.cert_for(&l.dev);
        // `wiped` only with verification on (audit item 2).
        let want = if mode == "off" {
            "wiped-unverified"
        } else {
            "wiped"
        };
        assert_eq!(c["outcome"], want, "{mode}");
        assert_stream(&b, &c, 1);
        assert_eq!(c["verification"]["method"], method, "{mode}");
        match fraction {
            Some(f) => {
                let got: f64 = c["verification"]["fraction"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((got - f).abs() < 0.05, "{mode}: fraction {got}");
                assert_eq!(c["verification"]["result"], "passed");
            }
            None => assert_eq!(c["verification"]["result"], "skipped"),
        }
    }
}

#[test]
fn two_random_passes_end_with_pass_two_and_disks_run_in_parallel() {
    if !ready(&["losetup"]) {
        return;
    }
    let a = Loop::new(16 * MIB, 0);
    let b = Loop::new(16 * MIB, 0);
    a.fill_with_markers(10, 1);
    b.fill_with_markers(10, 2);
    let r = wipe(
        &[&a.dev, &b.dev],
        "speediso.wipe.passes=2",
        &[
            "wipe",
            "--all",
            "--method",
            "random",
            "--confirm",
            &a.dev,
            &b.dev,
        ],
    );
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    for l in [&a, &b] {
        let c = r.cert_for(&l.dev);
        assert_eq!(c["sanitization"]["passes"], 2);
        assert_eq!(c["timing"]["bytes_written"], 2 * l.size());
        assert_stream(&l.bytes(), &c, 2);
    }
    // Different seeds per disk.
    assert_ne!(seed_of(&r.cert_for(&a.dev)), seed_of(&r.cert_for(&b.dev)));
}

/// Six disks at once (256 KiB I/Os at full depth, see
/// `overwrite::shape_for`): every byte of every disk is the regenerated
/// stream, verification read every byte, then zeros erase every marker.
#[test]
fn six_disks_at_once_are_erased_and_verified_byte_for_byte() {
    if !ready(&["losetup"]) {
        return;
    }
    assert_eq!(speediso::wipe::overwrite::shape_for(6).chunk, 256 << 10);
    // Sizes that are not multiples of the I/O size: the tails count too.
    let loops: Vec<Loop> = (0..6)
        .map(|i| Loop::new(12 * MIB + (i + 1) * 4096 * 3, 0))
        .collect();
    let devs: Vec<&str> = loops.iter().map(|l| l.dev.as_str()).collect();
    for (i, l) in loops.iter().enumerate() {
        l.fill_with_markers(20, 100 + i as u64);
    }
    // Every disk at once with `method`, fully verified.
    let wipe_all = |method: &str| {
        let mut args = vec!["wipe", "--all", "--method", method, "--verify", "full"];
        args.push("--confirm");
        args.extend(&devs);
        let r = wipe(&devs, "quiet", &args);
        assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
        r
    };
    let r = wipe_all("random");
    assert_eq!(r.certs().len(), 6);
    for l in &loops {
        let c = r.cert_for(&l.dev);
        assert_eq!(c["outcome"], "wiped", "{}", l.dev);
        assert_eq!(c["verification"]["result"], "passed");
        assert_eq!(c["verification"]["bytes_read"], l.size());
        assert_eq!(c["verification"]["mismatches"], 0);
        assert_eq!(c["timing"]["bytes_written"], l.size());
        assert_stream(&l.bytes(), &c, 1);
    }
    for (i, l) in loops.iter().enumerate() {
        l.fill_with_markers(20, 200 + i as u64);
    }
    let r = wipe_all("zero");
    for l in &loops {
        let c = r.cert_for(&l.dev);
        assert_eq!(c["verification"]["result"], "passed");
        assert_eq!(c["verification"]["bytes_read"], l.size());
        assert!(
            l.bytes().iter().all(|&x| x == 0),
            "{}: a non-zero byte survived",
            l.dev
        );
    }
}

/// The AES stream written with AES-NI (where this CPU has it) is checked
/// against `soft_aes`, AES in plain arithmetic as a CPU without AES
/// instructions computes it, from nothing but the certificate's fields and
/// docs/certificate.md's derivation; the forced choice and its reason are
/// in the certificate; chacha8 can be forced; a bad value is refused
/// naming key and value, with nothing erased.
#[test]
fn the_stream_algorithm_is_recorded_and_aes_regenerates_without_aes_instructions() {
    use sha2::Digest;
    use speediso_testsupport::soft_aes;
    if !ready(&["losetup"]) {
        return;
    }
    let l = Loop::new(5 * MIB + 512 * 3, 0);
    let bad = wipe(
        &[&l.dev],
        "speediso.wipe.stream=des",
        &[
            "wipe",
            "--device",
            &l.dev,
            "--method",
            "random",
            "--confirm",
            &l.dev,
        ],
    );
    let all = format!("{}{}", bad.stdout(), bad.stderr());
    assert_ne!(bad.code(), 0);
    assert!(
        all.contains("speediso.wipe.stream") && all.contains("des"),
        "{all}"
    );
    assert!(bad.certs().is_empty());
    assert!(l.bytes().iter().all(|&b| b == 0), "a refused run wrote");

    for (how, cmdline, flag, alg, reason) in [
        (
            "option",
            "speediso.wipe.stream=aes",
            None,
            "aes-128-ctr",
            "aes-128-ctr: forced by speediso.wipe.stream=aes",
        ),
        (
            "flag",
            "quiet",
            Some("chacha8"),
            "chacha8",
            "chacha8: forced by speediso.wipe.stream=chacha8",
        ),
    ] {
        l.fill_with_markers(20, 9);
        let mut args = vec![
            "wipe", "--device", &l.dev, "--method", "random", "--passes", "2",
        ];
        if let Some(f) = flag {
            args.extend(["--stream", f]);
        }
        args.extend(["--confirm", &l.dev]);
        let r = wipe(&[&l.dev], cmdline, &args);
        assert_eq!(r.code(), 0, "{how}: {}\n{}", r.stdout(), r.stderr());
        let c = r.cert_for(&l.dev);
        assert_eq!(c["sanitization"]["stream"]["algorithm"], alg, "{how}");
        assert_eq!(c["sanitization"]["stream"]["reason"], reason, "{how}");
        assert_eq!(c["verification"]["result"], "passed", "{how}");
        assert!(
            c["verification"]["expected"]
                .as_str()
                .unwrap()
                .starts_with(alg),
            "{how}: {}",
            c["verification"]["expected"]
        );
        let b = l.bytes();
        assert!(no_marker(&b), "{how}: a marker survived");
        assert_stream(&b, &c, 2);
        if alg != "aes-128-ctr" {
            continue;
        }
        // The certificate's recipe, computed without the agent's code or
        // any AES instruction: windows at the start, unaligned in the
        // middle (across a 16-byte block edge) and at the end.
        let seed = seed_of(&c);
        let mut h = sha2::Sha256::new();
        h.update(b"speediso.wipe.stream/aes-128-ctr\0");
        h.update(seed);
        h.update(2u32.to_le_bytes());
        let key: [u8; 16] = h.finalize()[..16].try_into().unwrap();
        let soft = soft_aes::Aes128::new(&key);
        let size = b.len() as u64;
        for (off, len) in [(0u64, 4096usize), (3 * MIB + 1001, 5000), (size - 777, 777)] {
            let want = soft.ctr(0, off, len);
            assert!(
                b[off as usize..off as usize + len] == want[..],
                "bytes {off}..+{len} are not AES-128-CTR of the certificate's seed, pass 2"
            );
        }
    }
}

#[test]
fn quick_clears_signature_regions_only() {
    if !ready(&["losetup"]) {
        return;
    }
    let size = 128 * MIB;
    let l = Loop::new(size, 0);
    l.fill_with_markers(0, 3);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&l.dev)
        .unwrap();
    // GPT header (LBA 1), an ext superblock (1024), MD 1.2 (4096), btrfs
    // mirror (64 MiB), the backup GPT (last sector); and one in the middle.
    let sigs = [512, 1024, 4096, 64 * MIB, size - 512, size - 33 * 512];
    for o in sigs {
        f.write_all_at(MARKER, o).unwrap();
    }
    let middle = 48 * MIB;
    f.write_all_at(MARKER, middle).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let r = wipe_one(&l.dev, "quick", &[]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let b = l.bytes();
    for o in sigs {
        assert!(
            b[o as usize..o as usize + 16].iter().all(|&x| x == 0),
            "signature at {o} survived"
        );
    }
    assert!(b[..32 * MIB as usize].iter().all(|&x| x == 0));
    assert!(b[(size - 32 * MIB) as usize..].iter().all(|&x| x == 0));
    // Quick is not a Clear: the middle is untouched, and the certificate says so.
    assert_eq!(&b[middle as usize..middle as usize + 16], MARKER);
    let c = r.cert_for(&l.dev);
    assert_eq!(c["sanitization"]["category"], "none");
    assert_eq!(c["verification"]["result"], "passed");
}

#[test]
fn without_confirm_nothing_is_erased() {
    if !ready(&["losetup"]) {
        return;
    }
    let l = Loop::new(8 * MIB, 0);
    l.fill_with_markers(5, 9);
    let before = l.bytes();
    let r = wipe(
        &[&l.dev],
        "quiet",
        &["wipe", "--device", &l.dev, "--method", "zero"],
    );
    assert_eq!(r.code(), 3, "{}\n{}", r.stdout(), r.stderr());
    assert!(r.stderr().contains("refusing"), "{}", r.stderr());
    assert!(r.stdout().contains(&l.dev));
    let r = wipe(
        &[&l.dev],
        "quiet",
        &[
            "wipe",
            "--device",
            &l.dev,
            "--method",
            "zero",
            "--confirm",
            "/dev/loop999",
        ],
    );
    assert_eq!(r.code(), 3);
    let r = wipe(
        &[&l.dev],
        "quiet",
        &["wipe", "--plan", "--device", &l.dev, "--method", "zero"],
    );
    assert_eq!(r.code(), 0);
    assert!(r.stdout().contains("WIPE PLAN"));
    assert!(l.bytes() == before, "bytes changed without confirmation");
    // A stray task run (not asked for by the boot) refuses too.
    let r = wipe(&[&l.dev], "quiet", &["run", "wipe"]);
    assert_eq!(r.code(), 3, "{}", r.stdout());
    assert!(l.bytes() == before, "bytes changed by an unconfirmed task");
}

#[test]
fn task_module_wipes_and_reports_certificates() {
    if !ready(&["losetup"]) {
        return;
    }
    let l = Loop::new(8 * MIB, 0);
    l.fill_with_markers(8, 4);
    let r = wipe(
        &[&l.dev],
        "speediso.wipe.method=zero speediso.wipe.verify=sample:0.5",
        &["run", "wipe", "--confirm", "wipe", "--json"],
    );
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert!(l.bytes().iter().all(|&x| x == 0));
    let results: Vec<Value> = r
        .stdout()
        .lines()
        .filter_map(|x| serde_json::from_str::<Value>(x).ok())
        .filter(|e| e["type"] == "result")
        .collect();
    // The disk's certificate went out as soon as the disk was done, in a
    // result of its own, then again in the step's result.
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[0]["data"]["disk"], l.dev.as_str());
    assert_eq!(results[0]["data"]["outcome"], "wiped");
    assert_eq!(
        results[0]["data"]["certificates"][0],
        results[1]["data"]["certificates"][0]
    );
    let result = &results[1];
    let certs = result["data"]["certificate_files"].as_array().unwrap();
    assert_eq!(certs.len(), 1);
    // The signed document itself travels in the result, for the collector.
    let inline = &result["data"]["certificates"][0];
    assert_eq!(inline["signature"]["algorithm"], "ed25519");
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(certs[0].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(*inline, on_disk);
    assert!(Path::new(certs[0].as_str().unwrap()).exists());
    assert_eq!(result["data"]["disks"][0]["verify"]["method"], "sample");
    let key = result["data"]["public_key"].as_str().unwrap();
    assert_eq!(verify_cert(Path::new(certs[0].as_str().unwrap()), key).0, 0);
    // The server's certificate comes last: the machine, every disk with
    // the id of its own certificate, signed by the same key.
    let all = result["data"]["certificates"].as_array().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let server = &all[1];
    assert_eq!(server["schema"], "speediso.wipe.server-certificate/1");
    assert_eq!(server["outcome"], "wiped");
    assert_eq!(server["run_id"], inline["run_id"]);
    assert_eq!(server["disks"][0]["device_path"], l.dev.as_str());
    assert_eq!(server["disks"][0]["certificate_id"], inline["id"]);
    assert_eq!(server["disks"][0]["verification"], "passed");
    assert_eq!(server["summary"]["wiped"], 1);
    let file = result["data"]["server_certificate_file"].as_str().unwrap();
    let (code, out) = verify_cert(Path::new(file), key);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK: wiped server certificate"), "{out}");
    assert!(out.contains(&format!("  {} ", l.dev)), "{out}");
    let text = std::fs::read_to_string(file)
        .unwrap()
        .replacen("\"wiped\"", "\"failed\"", 1);
    let forged = r.run_dir.path().join("forged-server.json");
    std::fs::write(&forged, text).unwrap();
    assert_eq!(verify_cert(&forged, key).0, 1);
    let html = std::fs::read_to_string(Path::new(file).with_extension("html")).unwrap();
    assert!(html.contains("Server Certificate of Sanitization") && html.contains(&l.dev));
    // Progress events carry percent and rate.
    assert!(r
        .stdout()
        .lines()
        .filter_map(|x| serde_json::from_str::<Value>(x).ok())
        .any(|e| e["type"] == "progress" && e["percent"].is_number()));
}

/// A task-style wipe (every eligible disk) beside a read-only disk: the
/// writable disk is erased, and the step and the run still fail, naming
/// the read-only one, so a decommission does not power off with it
/// untouched.
#[test]
fn task_wipe_erases_the_writable_disk_and_fails_on_a_read_only_one() {
    if !ready(&["losetup", "sha256sum"]) {
        return;
    }
    let rw = Loop::new(8 * MIB, 0);
    rw.fill_with_markers(8, 11);
    let ro = Loop::read_only(8 * MIB, 0x5A);
    let before = sha(&ro.file);
    let r = wipe(
        &[&rw.dev, &ro.dev],
        "speediso.wipe.method=zero speediso.wipe.verify=full",
        &["run", "wipe", "--confirm", "wipe", "--json"],
    );
    assert_eq!(r.code(), 1, "{}\n{}", r.stdout(), r.stderr());
    assert!(
        rw.bytes().iter().all(|&x| x == 0),
        "the writable disk is erased first"
    );
    assert_eq!(sha(&ro.file), before, "the read-only disk is untouched");
    assert_eq!(r.certs().len(), 1);
    assert_eq!(r.cert_for(&rw.dev)["outcome"], "wiped");
    let events: Vec<Value> = r
        .stdout()
        .lines()
        .filter_map(|x| serde_json::from_str::<Value>(x).ok())
        .collect();
    let step = events
        .iter()
        .find(|e| e["type"] == "step_finished")
        .expect("step_finished");
    assert_eq!(step["outcome"], "failed");
    let err = step["error"].as_str().unwrap();
    assert!(
        err.contains(&format!("{}: read-only (ro=1)", ro.dev)),
        "{err}"
    );
    let run = events
        .iter()
        .find(|e| e["type"] == "run_finished")
        .expect("run_finished");
    assert_eq!(run["outcome"], "failed");
    // The step's result still carries the erased disk's certificate, and
    // the skip's class (the disk's own result event comes first).
    let result = events
        .iter()
        .find(|e| e["type"] == "result" && e["data"]["skipped"].is_array())
        .expect("the step's result");
    let certs = result["data"]["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2);
    // The server's certificate fails: a disk that should have been erased
    // was not, and it names that disk and why.
    assert_eq!(certs[1]["outcome"], "failed");
    assert_eq!(certs[1]["summary"]["skipped_blocking"], 1);
    let named = certs[1]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["device_path"] == ro.dev.as_str())
        .expect("the read-only disk among the server certificate's skipped");
    assert_eq!(named["class"], "blocking");
    let skipped = result["data"]["skipped"].as_array().unwrap();
    let s = skipped
        .iter()
        .find(|s| s["device"] == ro.dev.as_str())
        .expect("the read-only disk is listed");
    assert_eq!(s["class"], "blocking");
}

fn sha(path: &Path) -> String {
    sh(&["sha256sum", path.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

struct Mounted(PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn all_skips_mounted_and_excluded_disks() {
    if !ready(&["losetup", "mkfs.ext4", "sha256sum", "mount"]) {
        return;
    }
    skips_under_all(false);
}

#[test]
fn all_skips_a_disk_held_by_device_mapper() {
    if !ready(&[
        "losetup",
        "mkfs.ext4",
        "sha256sum",
        "mount",
        "dmsetup",
        "device-mapper",
    ]) {
        return;
    }
    skips_under_all(true);
}

/// A target, a mounted disk, an excluded one and one that (with `dm`) is
/// held by a dm-linear device: `--all` erases only the target (and the
/// last one when it is not held), and the skipped ones keep their bytes.
fn skips_under_all(dm: bool) {
    let target = Loop::new(8 * MIB, 0);
    let mounted = Loop::new(16 * MIB, 0);
    let held = Loop::new(8 * MIB, 0);
    let excluded = Loop::new(8 * MIB, 0);
    target.fill_with_markers(4, 7);
    for l in [&held, &excluded] {
        l.fill_with_markers(4, 8);
    }
    sh(&[
        "mkfs.ext4",
        "-q",
        "-F",
        "-E",
        "lazy_itable_init=0,lazy_journal_init=0",
        &mounted.dev,
    ]);
    let mnt = tempfile::tempdir().unwrap();
    sh(&["mount", &mounted.dev, mnt.path().to_str().unwrap()]);
    let _m = Mounted(mnt.path().to_path_buf());
    let _dm = dm.then(|| {
        let dm_name = format!("speediso-test-hold-{}", std::process::id());
        let sectors = held.size() / 512;
        sh(&[
            "dmsetup",
            "create",
            &dm_name,
            "--table",
            &format!("0 {sectors} linear {} 0", held.dev),
        ]);
        Dm(dm_name)
    });
    sh(&["sync"]);
    let kept: Vec<&Loop> = if dm {
        vec![&mounted, &held, &excluded]
    } else {
        vec![&mounted, &excluded]
    };
    let sums: Vec<String> = kept.iter().map(|l| sha(&l.file)).collect();
    let allow = [&*target.dev, &*mounted.dev, &*held.dev, &*excluded.dev];
    // An exclusion that names no disk rejects the plan.
    let bad = wipe(
        &allow,
        &format!("speediso.wipe.exclude=/dev/nothing,{}", excluded.dev),
        &["wipe", "--plan", "--all", "--json"],
    );
    assert_eq!(bad.code(), 2, "{}", bad.stderr());
    assert!(
        bad.stderr().contains("\"/dev/nothing\" matches no disk"),
        "{}",
        bad.stderr()
    );
    let cmdline = format!("speediso.wipe.exclude={}", excluded.dev);
    let plan = wipe(
        &allow,
        &cmdline,
        &["wipe", "--plan", "--all", "--json", "--method", "zero"],
    );
    assert_eq!(plan.code(), 0, "{}", plan.stderr());
    let p: Value = serde_json::from_str(&plan.stdout()).unwrap();
    let mut erase: Vec<&str> = p["erase"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["disk"]["path"].as_str().unwrap())
        .collect();
    erase.sort();
    let mut confirm = vec![target.dev.as_str()];
    if !dm {
        confirm.push(held.dev.as_str());
    }
    confirm.sort();
    assert_eq!(erase, confirm);
    let reasons = |dev: &str| -> String {
        skipped(&p, dev)
            .map(|s| s["reasons"].to_string())
            .unwrap_or_else(|| panic!("{dev} not skipped"))
    };
    assert!(
        reasons(&mounted.dev).contains("mounted at"),
        "{}",
        reasons(&mounted.dev)
    );
    if dm {
        assert!(
            reasons(&held.dev).contains("held by dm-"),
            "{}",
            reasons(&held.dev)
        );
    }
    assert!(
        reasons(&excluded.dev).contains("excluded"),
        "{}",
        reasons(&excluded.dev)
    );
    // Devices outside the test's own are listed with their reasons too.
    assert!(p["skipped"].as_array().unwrap().iter().any(|s| s["reasons"]
        .to_string()
        .contains("SPEEDISO_WIPE_TEST_ALLOW")));

    // The mounted (and the held) disk is a blocking skip; the excluded one
    // is the operator's choice.
    let class = |dev: &str| -> Value { skipped(&p, dev).map(|s| s["class"].clone()).unwrap() };
    assert_eq!(class(&mounted.dev), "blocking");
    assert_eq!(class(&excluded.dev), "policy");
    if dm {
        assert_eq!(class(&held.dev), "blocking");
    }

    let mut args = vec!["wipe", "--all", "--method", "zero", "--confirm"];
    args.extend(confirm.iter().copied());
    let r = wipe(&allow, &cmdline, &args);
    // With --all, as in the task: the eligible disks are erased, and the
    // run fails because the mounted one could not be.
    assert_eq!(r.code(), 1, "{}\n{}", r.stdout(), r.stderr());
    assert!(
        r.stderr().contains(&format!("{}: mounted at", mounted.dev)),
        "{}",
        r.stderr()
    );
    assert!(!r.stderr().contains(&excluded.dev), "{}", r.stderr());
    assert!(target.bytes().iter().all(|&x| x == 0));
    sh(&["sync"]);
    let after: Vec<String> = kept.iter().map(|l| sha(&l.file)).collect();
    assert_eq!(sums, after, "a skipped disk changed");
    assert_eq!(r.certs().len(), confirm.len());
}

#[test]
fn dm_error_in_the_middle_fails_with_the_bad_range_and_spares_the_other_disk() {
    if !ready(&["losetup", "dmsetup", "device-mapper"]) {
        return;
    }
    let under = Loop::new(32 * MIB, 0);
    let healthy = Loop::new(8 * MIB, 0);
    healthy.fill_with_markers(4, 6);
    let total = under.size() / 512;
    let (bad_start, bad_len) = (20480u64, 2048u64); // 10 MiB in, 1 MiB long
    let table = format!(
        "0 {bad_start} linear {dev} 0\n{bad_start} {bad_len} error\n{rest_start} {rest} linear {dev} {rest_start}",
        dev = under.dev,
        rest_start = bad_start + bad_len,
        rest = total - bad_start - bad_len
    );
    let name = format!("speediso-test-err-{}", std::process::id());
    let _dm = Dm::create(&name, &table);
    let dm_dev = format!("/dev/mapper/{name}");
    let dm_kernel = std::fs::canonicalize(&dm_dev)
        .unwrap()
        .display()
        .to_string();
    assert!(dm_kernel.starts_with("/dev/dm-"));
    let r = wipe(
        &[&dm_dev, &healthy.dev],
        "quiet",
        &[
            "wipe",
            "--device",
            &dm_dev,
            "--device",
            &healthy.dev,
            "--method",
            "zero",
            "--confirm",
            &dm_kernel,
            &healthy.dev,
        ],
    );
    assert_eq!(r.code(), 1, "must fail: {}\n{}", r.stdout(), r.stderr());
    assert!(
        !r.stdout().contains(&format!("{dm_kernel}: WIPED")),
        "{}",
        r.stdout()
    );
    assert!(
        r.stderr().contains("FAILED") && r.stderr().contains(&dm_kernel),
        "{}",
        r.stderr()
    );
    let c = r.cert_for(&dm_kernel);
    assert_eq!(c["outcome"], "failed");
    let errs = c["errors"].as_array().unwrap();
    let write_err = errs
        .iter()
        .find(|e| e["op"] == "write")
        .unwrap_or_else(|| panic!("no write error in {errs:?}"));
    assert_eq!(write_err["lba_start"], bad_start);
    assert_eq!(write_err["lba_count"], bad_len);
    assert!(errs
        .iter()
        .all(|e| e["lba_start"].as_u64().unwrap() >= bad_start
            && e["lba_start"].as_u64().unwrap() + e["lba_count"].as_u64().unwrap()
                <= bad_start + bad_len));
    // Everything outside the bad range was still overwritten.
    let b = under.bytes();
    assert!(no_marker(&b));
    // The other disk was wiped in the same run.
    assert_eq!(r.cert_for(&healthy.dev)["outcome"], "wiped");
    assert!(healthy.bytes().iter().all(|&x| x == 0));
}

#[test]
fn discard_on_a_loop_device_reads_back_zeros() {
    if !ready(&["losetup"]) {
        return;
    }
    let l = Loop::new(8 * MIB, 0);
    l.fill_with_markers(6, 12);
    let r = wipe_one(&l.dev, "discard", &[]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert!(l.bytes().iter().all(|&x| x == 0));
    let c = r.cert_for(&l.dev);
    assert_eq!(c["sanitization"]["category"], "none");
    assert_eq!(c["verification"]["result"], "passed");
    // Markers were stamped before the discard and none survived it.
    assert_eq!(
        c["verification"]["expected"],
        "no marker written before the erase survives"
    );
    assert_eq!(c["verification"]["method"], "markers");
    assert!(
        c["verification"]["note"]
            .as_str()
            .unwrap()
            .contains("0 with a surviving marker"),
        "{}",
        c["verification"]
    );
    // With --blank a zero pass follows, verified as zeros over the whole disk.
    l.fill_with_markers(6, 13);
    let r = wipe_one(&l.dev, "discard", &["--blank"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert!(l.bytes().iter().all(|&x| x == 0));
    let c = r.cert_for(&l.dev);
    assert_eq!(c["sanitization"]["blank_after_firmware_erase"], true);
    assert_eq!(c["verification"]["expected"], "zeros");
    assert_eq!(c["verification"]["bytes_read"], l.size());
    assert_eq!(c["timing"]["bytes_written"], l.size());
}

/// A loop device over a file on a full tmpfs, with an unallocated hole:
/// writes into the hole fail (ENOSPC → I/O error), all others succeed.
/// Fields drop in order: detach, unmount, remove the directory.
struct Holey {
    lo: Loop,
    _t: TmpfsMount,
    _dir: tempfile::TempDir,
}

impl Holey {
    fn new(total_mib: u64, hole_at_mib: u64, hole_mib: u64) -> Holey {
        let dir = tempfile::tempdir().unwrap();
        let size = format!("size={}m", total_mib - hole_mib);
        sh(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &size,
            "speediso-test",
            dir.path().to_str().unwrap(),
        ]);
        let t = TmpfsMount(dir.path().to_path_buf());
        let file = dir.path().join("disk.img");
        let f = std::fs::File::create(&file).unwrap();
        f.set_len(total_mib * MIB).unwrap();
        let bg = vec![0x5Au8; MIB as usize];
        for i in 0..total_mib {
            if !(hole_at_mib..hole_at_mib + hole_mib).contains(&i) {
                f.write_all_at(&bg, i * MIB).unwrap();
            }
        }
        // The file system is now full: the hole cannot be filled.
        assert!(
            f.write_all_at(&bg[..4096], hole_at_mib * MIB).is_err(),
            "tmpfs not full"
        );
        drop(f);
        Holey {
            lo: Loop::over(&file),
            _t: t,
            _dir: dir,
        }
    }
}

struct TmpfsMount(PathBuf);
impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fault injection without device-mapper: a loop device over a file on a
/// full tmpfs, with an unallocated 1 MiB hole in the middle. Writes into
/// the hole fail (ENOSPC → I/O error); everything else succeeds.
#[test]
fn io_errors_in_the_middle_fail_the_disk_with_the_bad_range() {
    if !ready(&["losetup", "mount"]) {
        return;
    }
    let (hole, hole_len) = (10 * MIB, MIB);
    let h = Holey::new(32, 10, 1);
    let (dev, file) = (h.lo.dev.clone(), h.lo.file.clone());
    let healthy = Loop::new(8 * MIB, 0);
    healthy.fill_with_markers(3, 21);
    let r = wipe(
        &[&dev, &healthy.dev],
        "quiet",
        &[
            "wipe",
            "--device",
            &dev,
            "--device",
            &healthy.dev,
            "--method",
            "zero",
            "--confirm",
            &dev,
            &healthy.dev,
        ],
    );
    assert_eq!(r.code(), 1, "must fail: {}\n{}", r.stdout(), r.stderr());
    assert!(
        r.stdout().contains(&format!("{dev}: FAILED")),
        "{}",
        r.stdout()
    );
    assert!(r.stderr().contains(&dev), "{}", r.stderr());
    let c = r.cert_for(&dev);
    assert_eq!(c["outcome"], "failed");
    let errs: Vec<&Value> = c["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["op"] == "write")
        .collect();
    assert!(
        !errs.is_empty(),
        "no write errors recorded: {}",
        c["errors"]
    );
    let (lo, hi) = (hole / 512, (hole + hole_len) / 512);
    let mut covered = 0;
    for e in &errs {
        let (s, n) = (
            e["lba_start"].as_u64().unwrap(),
            e["lba_count"].as_u64().unwrap(),
        );
        assert!(
            s >= lo && s + n <= hi,
            "failed range {s}+{n} outside the hole {lo}..{hi}"
        );
        covered += n;
    }
    assert!(
        covered >= (hi - lo) * 9 / 10,
        "only {covered} of {} sectors reported",
        hi - lo
    );
    // Outside the hole the disk was overwritten.
    let b = std::fs::read(&file).unwrap();
    assert!(b[..hole as usize].iter().all(|&x| x == 0));
    assert!(b[(hole + hole_len) as usize..].iter().all(|&x| x == 0));
    // The healthy disk in the same run was wiped.
    assert_eq!(r.cert_for(&healthy.dev)["outcome"], "wiped");
    assert!(healthy.bytes().iter().all(|&x| x == 0));
}

/// A disk that cannot be written over most of its surface is given up on
/// after a bounded number of failed blocks, never crawled to the end, and
/// never reported wiped.
#[test]
fn a_dead_disk_is_given_up_on_and_fails() {
    if !ready(&["losetup", "mount"]) {
        return;
    }
    let h = Holey::new(40, 8, 24);
    let t0 = std::time::Instant::now();
    let r = wipe_one(&h.lo.dev, "random", &[]);
    assert_eq!(r.code(), 1, "{}\n{}", r.stdout(), r.stderr());
    let c = r.cert_for(&h.lo.dev);
    assert_eq!(c["outcome"], "failed");
    assert!(
        c["error"].as_str().unwrap().contains("gave up"),
        "{}",
        c["error"]
    );
    let failed: u64 = c["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["lba_count"].as_u64().unwrap())
        .sum();
    assert!(
        failed >= speediso::wipe::overwrite::MAX_FAILED_BLOCKS,
        "{failed}"
    );
    assert!(t0.elapsed() < std::time::Duration::from_secs(120));
}

/// A one-file key server on 127.0.0.1: answers `GET` with `body` when the
/// request carries `Bearer <token>`, 403 otherwise. Serves `max` requests.
fn key_server(token: &'static str, body: String, max: usize) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        for stream in l.incoming().take(max) {
            let mut s = stream.unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut authorized = false;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:")
                    && line.trim_end().ends_with(&format!("Bearer {token}"))
                {
                    authorized = true;
                }
            }
            let (status, b) = if authorized {
                ("200 OK", body.clone())
            } else {
                ("403 Forbidden", "no\n".to_string())
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                b.len()
            );
        }
    });
    (port, h)
}

/// Audit item 2: the certificate names its signer and the key's source in
/// the signed body, and the Appendix G people, organisation, asset and
/// destination; a key fetched at boot with the host's token signs it and
/// is written nowhere; a key server that refuses the token stops the wipe
/// before anything is erased.
#[test]
fn certificate_names_its_signer_and_a_fetched_key_never_touches_disk() {
    if !ready(&["losetup"]) {
        return;
    }
    let seed_hex = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    let public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let l = Loop::new(4 * MIB, 0);
    l.fill_with_markers(4, 9);
    let before = l.bytes();

    // Wrong token: refused before any byte is written.
    let (port, h) = key_server("right-token-1234", format!("{seed_hex}\n"), 1);
    let line = format!(
        "speediso.wipe.method=zero speediso.token=wrong-token-9876 speediso.wipe.key=http://127.0.0.1:{port}/wipe.key"
    );
    let r = wipe(&[&l.dev], &line, &["run", "wipe", "--confirm", "wipe"]);
    h.join().unwrap();
    assert_ne!(r.code(), 0, "{}", r.stdout());
    assert!(r.stdout().contains("answered 403"), "{}", r.stdout());
    assert!(r.stdout().contains("nothing erased"), "{}", r.stdout());
    assert!(
        l.bytes() == before,
        "a refused key still let the wipe write"
    );
    assert!(r.certs().is_empty());

    // The right token: signed by the served key, which is nowhere on disk.
    let (port, h) = key_server("right-token-1234", format!("{seed_hex}\n"), 1);
    let line = format!(
        "speediso.wipe.method=zero speediso.token=right-token-1234 \
         speediso.wipe.key=http://127.0.0.1:{port}/wipe.key speediso.wipe.operator=alice \
         speediso.wipe.validator=bob speediso.wipe.organization=ACME-Hosting \
         speediso.wipe.asset_tag=AT-0042 speediso.wipe.destination=resale"
    );
    let r = wipe(
        &[&l.dev],
        &line,
        &["run", "wipe", "--confirm", "wipe", "--json"],
    );
    h.join().unwrap();
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert!(l.bytes().iter().all(|&b| b == 0));
    let (path, c) = r.certs().pop().expect("a certificate");
    assert_eq!(c["schema"], "speediso.wipe.certificate/2");
    assert_eq!(c["signature"]["public_key"], public);
    assert_eq!(c["signer"]["public_key"], public);
    assert_eq!(
        c["signer"]["source"],
        format!("url:http://127.0.0.1:{port}/wipe.key")
    );
    assert_eq!(c["signer"]["key_id"].as_str().unwrap().len(), 16);
    let a = &c["attestation"];
    assert_eq!(a["performed_by"], "alice");
    assert_eq!(a["validated_by"], "bob");
    assert_eq!(a["organization"], "ACME-Hosting");
    assert_eq!(a["asset_tag"], "AT-0042");
    assert_eq!(a["post_sanitization_destination"], "resale");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(c["sanitization"]["tool"]["kernel"], kernel.trim());
    assert_eq!(verify_cert(&path, public).0, 0);
    // The secret seed is in no file the run left, nor in its output.
    let mut stack = vec![r.run_dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).to_lowercase();
                assert!(!text.contains(seed_hex), "the key is in {}", p.display());
            }
        }
    }
    assert!(!r.stdout().contains(seed_hex) && !r.stderr().contains(seed_hex));
    assert!(!r.stdout().contains("right-token-1234"));
}

/// Audit item 6: a certificate that cannot be written to the run
/// directory loses nothing: each disk's signed certificate is still in its
/// own result event, and the other disks' certificates too.
#[test]
fn an_unwritable_certificate_directory_loses_no_certificate() {
    if !ready(&["losetup"]) {
        return;
    }
    let a = Loop::new(2 * MIB, 0x11);
    let b = Loop::new(3 * MIB, 0x22);
    let run_dir = tempfile::tempdir().unwrap();
    // `certs` is a file: creating the directory and every write fail.
    std::fs::write(run_dir.path().join("certs"), b"in the way").unwrap();
    let out = Command::new(BIN)
        .args([
            "--cmdline",
            "speediso.wipe.method=zero speediso.wipe.verify=full",
            "run",
            "wipe",
            "--confirm",
            "wipe",
            "--json",
        ])
        .env("SPEEDISO_WIPE_TEST_ALLOW", format!("{},{}", a.dev, b.dev))
        .env("SPEEDISO_RUN_DIR", run_dir.path())
        .env_remove("SPEEDISO_WIPE_ALLOW_REAL")
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let evs: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let per_disk: Vec<&Value> = evs
        .iter()
        .filter(|e| e["type"] == "result" && e["data"]["disk"].is_string())
        .collect();
    assert_eq!(per_disk.len(), 2, "{stdout}");
    for dev in [&a.dev, &b.dev] {
        let e = per_disk
            .iter()
            .find(|e| e["data"]["disk"] == dev.as_str())
            .unwrap_or_else(|| panic!("no certificate event for {dev}"));
        let c = &e["data"]["certificates"][0];
        assert_eq!(c["media"]["device_path"], dev.as_str());
        assert_eq!(c["outcome"], "wiped");
        assert!(e["data"]["certificate_file"].is_null());
    }
    assert!(
        evs.iter().any(|e| e["type"] == "warning"
            && e["message"]
                .as_str()
                .unwrap_or("")
                .contains("certificate not written")),
        "{stdout}"
    );
    let last = evs.iter().rev().find(|e| e["type"] == "result").unwrap();
    // Both disks' and the server's, which could not be written either.
    let all = last["data"]["certificates"].as_array().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2]["schema"], "speediso.wipe.server-certificate/1");
    assert!(last["data"]["server_certificate_file"].is_null());
    assert!(
        evs.iter().any(|e| e["type"] == "warning"
            && e["message"]
                .as_str()
                .unwrap_or("")
                .contains("server certificate not written")),
        "{stdout}"
    );
}

/// Audit (low): the wipe step raises the task's time limit from its disks'
/// sizes and methods. A task limited to three seconds (planning, which
/// asks blkid about every disk, must fit in it on a loaded machine) still
/// completes a wipe
/// that takes longer (three passes over 1 GiB and a full read-back), where
/// a fixed limit would kill it mid-erase (exit 4, "time limit reached").
#[test]
fn the_wipe_step_raises_a_time_limit_too_short_for_its_disks() {
    if !ready(&["losetup"]) {
        return;
    }
    let l = Loop::new(1024 * MIB, 0);
    let tasks = tempfile::tempdir().unwrap();
    std::fs::write(
        tasks.path().join("quickwipe.toml"),
        "name = \"quickwipe\"\ndescription = \"a wipe with a 3 s limit\"\ndestructive = true\n\
         time_limit = \"3s\"\nafter = \"stay\"\n[[steps]]\nmodule = \"wipe\"\n",
    )
    .unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let out = Command::new(BIN)
        .arg("--tasks-dir")
        .arg(tasks.path())
        .args([
            "--cmdline",
            "speediso.wipe.method=zero speediso.wipe.passes=3",
            "run",
            "quickwipe",
            "--confirm",
            "quickwipe",
        ])
        .env("SPEEDISO_WIPE_TEST_ALLOW", &l.dev)
        .env("SPEEDISO_RUN_DIR", run_dir.path())
        .env_remove("SPEEDISO_WIPE_ALLOW_REAL")
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    let took = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        took > std::time::Duration::from_secs(3),
        "the wipe took {took:?}: too fast to prove anything on this machine"
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("time limit raised to"), "{stdout}");
    assert!(!stdout.contains("time limit of"), "{stdout}");
}

/// Plan one loop device through the library, as `speediso wipe` does.
fn plan_one(
    dev: &str,
) -> (
    speediso::wipe::Planned,
    speediso::wipe::Config,
    tempfile::TempDir,
) {
    use speediso::wipe::{select::Request, verify::VerifyMode, Config, KeySource, Method};
    let run_dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        method: Method::Zero,
        verify: VerifyMode::Full,
        passes: 1,
        stream: Default::default(),
        blank: false,
        key: KeySource::Generate,
        attestation: Default::default(),
        targets: Default::default(),
    };
    let req = Request {
        devices: vec![dev.to_string()],
        test_allow: Some(vec![dev.to_string()]),
        ..Default::default()
    };
    let mut p = speediso::wipe::plan(&Root::new(Path::new("/")), &req, &cfg).unwrap();
    assert_eq!(p.erase.len(), 1, "{dev} not planned: {:?}", p.skipped);
    (p.erase.remove(0), cfg, run_dir)
}

/// Between plan and open the planned path came to name another disk (a
/// renumbering, as after a hot-swap): the opened device's number is not
/// the planned one, the disk fails and neither disk is written.
#[test]
fn a_disk_renumbered_between_plan_and_open_is_not_written() {
    if !ready(&["losetup"]) {
        return;
    }
    let a = Loop::new(4 * MIB, 0);
    let b = Loop::new(4 * MIB, 0);
    a.fill_with_markers(3, 31);
    b.fill_with_markers(3, 32);
    let (before_a, before_b) = (a.bytes(), b.bytes());
    let (mut p, cfg, _dir) = plan_one(&a.dev);
    let planned = p.disk.devno.clone();
    // The name the plan holds now leads to the other device.
    p.disk.path = PathBuf::from(&b.dev);
    let o = speediso::wipe::wipe_disk(&p, &cfg, &Root::new(Path::new("/")), false, 1, None);
    assert_eq!(o.outcome, "failed");
    let e = o.error.unwrap();
    assert!(
        e.contains(&format!("not {planned} as planned")) && e.contains("renumbered"),
        "{e}"
    );
    assert_eq!(o.bytes_written, 0);
    assert!(
        a.bytes() == before_a && b.bytes() == before_b,
        "a disk was written"
    );
}

/// The loop device the plan chose is detached and another file attached
/// to the same /dev/loopN: same device number, another backing file (a
/// loop device's identity, as a serial is a disk's). It fails untouched.
#[test]
fn a_disk_replaced_behind_the_same_device_number_is_not_written() {
    if !ready(&["losetup"]) {
        return;
    }
    let a = Loop::new(4 * MIB, 0);
    a.fill_with_markers(3, 33);
    let (p, cfg, _dir) = plan_one(&a.dev);
    let other_dir = tempfile::tempdir().unwrap();
    let other = other_dir.path().join("other.img");
    std::fs::write(&other, vec![0x5Au8; (4 * MIB) as usize]).unwrap();
    sh(&["losetup", "-d", &a.dev]);
    // Another test may take the freed number first; then this one cannot
    // stage the swap (and must not touch that device).
    let attached = Command::new("losetup")
        .args([&a.dev, other.to_str().unwrap()])
        .status()
        .unwrap()
        .success();
    assert!(
        attached,
        "{} was taken before it could be re-attached",
        a.dev
    );
    let back = sh(&["losetup", "--noheadings", "-O", "BACK-FILE", &a.dev]);
    assert_eq!(Path::new(&back), other);
    let o = speediso::wipe::wipe_disk(&p, &cfg, &Root::new(Path::new("/")), false, 1, None);
    // `a`'s drop guard detaches the device, now over `other`.
    assert_eq!(o.outcome, "failed");
    let e = o.error.unwrap();
    assert!(e.contains("backing file") && e.contains("replaced"), "{e}");
    assert!(
        std::fs::read(&other).unwrap().iter().all(|&x| x == 0x5A),
        "the replacement was written"
    );
}

/// A disk whose hidden areas cannot be checked before the erase (here an
/// "ATA" disk that answers no ATA command: a loop device planned as if
/// IDENTIFY had answered) fails before anything is written; the disk
/// next to it is erased as usual. The refusals themselves (SET MAX
/// refused, DCO-reduced, the kernel keeping its size) are table-tested
/// against scripted drives in wipe::hidden.
#[test]
fn a_disk_whose_hidden_areas_cannot_be_checked_fails_unwritten_and_the_other_is_erased() {
    if !ready(&["losetup"]) {
        return;
    }
    let a = Loop::new(4 * MIB, 0);
    let b = Loop::new(4 * MIB, 0);
    a.fill_with_markers(3, 41);
    b.fill_with_markers(3, 42);
    let before_a = a.bytes();
    let (mut pa, cfg, _da) = plan_one(&a.dev);
    let (pb, _, _db) = plan_one(&b.dev);
    pa.caps.ata = Some(speediso::wipe::ata::AtaCaps::default());
    let root = Root::new(Path::new("/"));
    let oa = speediso::wipe::wipe_disk(&pa, &cfg, &root, false, 2, None);
    let ob = speediso::wipe::wipe_disk(&pb, &cfg, &root, false, 2, None);
    assert_eq!(oa.outcome, "failed");
    let e = oa.error.unwrap();
    assert!(
        e.contains("hidden areas")
            && e.contains("IDENTIFY DEVICE")
            && e.contains("nothing written"),
        "{e}"
    );
    assert_eq!(oa.bytes_written, 0);
    assert!(a.bytes() == before_a, "the unchecked disk was written");
    assert_eq!(ob.outcome, "wiped", "{:?}", ob.error);
    assert!(b.bytes().iter().all(|&x| x == 0));
}

/// The certificate says what was on the disk before the erase (from the
/// plan, through the image's blkid on the live system), signed with the
/// rest; `--plan` printed the same; the HTML page lists it.
#[test]
fn certificate_lists_what_was_on_the_disk_before() {
    if !ready(&["losetup", "mkfs.ext4"]) {
        return;
    }
    let l = Loop::new(16 * MIB, 0);
    sh(&[
        "mkfs.ext4",
        "-q",
        "-F",
        "-L",
        "customer",
        "-U",
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        &l.dev,
    ]);
    let plan = wipe(&[&l.dev], "quiet", &["wipe", "--plan", "--device", &l.dev]);
    assert_eq!(plan.code(), 0, "{}\n{}", plan.stdout(), plan.stderr());
    assert!(
        plan.stdout()
            .contains("on it: disk ext4 \"customer\" 1b4e28ba-2fa1-11d2-883f-0016d3cca427"),
        "{}",
        plan.stdout()
    );
    let r = wipe_one(&l.dev, "zero", &["--verify", "full"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let c = r.cert_for(&l.dev);
    assert_eq!(
        c["contents_before"],
        serde_json::json!([{"where": "disk", "type": "ext4", "label": "customer",
            "uuid": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}])
    );
    let (path, _) = r.certs().into_iter().next().unwrap();
    let html = std::fs::read_to_string(path.with_extension("html")).unwrap();
    assert!(html.contains("Contents before sanitization"), "{html}");
    assert!(html.contains("ext4 label &quot;customer&quot;"), "{html}");
    // Nothing of it is left.
    assert!(l.bytes().iter().all(|&b| b == 0));
}

/// The io_uring engine (`wipe::ring`) and its threaded fallback, driven
/// through the library on test loop devices (`open_target` refuses
/// anything but a loop device here: `real_allowed` is false).
mod engine {
    use super::*;
    use speediso::wipe::overwrite::{self, Algorithm, Failures, Pattern, Target};
    use speediso::wipe::progress::Tracker;
    use speediso::wipe::readback::Flow;
    use speediso::wipe::ring;
    use speediso::wipe::verify::{self, VerifyMode};
    use std::sync::Mutex;

    const SEED: [u8; 32] = [0x42; 32];

    fn target(l: &Loop, disks: usize) -> Target {
        assert!(
            l.dev.starts_with("/dev/loop"),
            "{} is not a loop device",
            l.dev
        );
        let mut t = overwrite::open_target(Path::new(&l.dev), false, true).unwrap();
        t.set_shape(overwrite::shape_for(disks));
        t
    }

    fn tracker() -> Tracker {
        Tracker::new("test".into(), None)
    }

    fn stream(alg: Algorithm, off: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        overwrite::fill_stream(alg, &SEED, 1, off, &mut v);
        v
    }

    /// Offsets spread pseudo-randomly over `size`, 4 KiB aligned, with
    /// the first and the last 4 KiB.
    fn offsets(size: u64, n: usize) -> Vec<u64> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut v = vec![0, size - 4096];
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x % (size / 4096) * 4096);
        }
        v
    }

    /// The ring must really run where the kernel has io_uring: a silent
    /// fallback would leave the new engine untested.
    fn ring_write(t: &Target, size: u64, p: Pattern, fails: &Mutex<Failures>) {
        assert!(
            ring::engine() == ring::Engine::Uring,
            "{:?}",
            ring::threaded_note()
        );
        let r = ring::write_range(t, 0, size, p, &tracker(), fails);
        assert!(r.is_ok(), "io_uring write failed to run");
    }

    #[test]
    fn random_overwrite_through_io_uring_is_the_stream_at_random_offsets() {
        if !ready(&["losetup"]) {
            return;
        }
        // Not a multiple of the 256 KiB I/O: the short tail counts too.
        let size = 40 * MIB + 12 * 1024;
        // One ring, and three rings sharing the disk's 16 slots.
        for (alg, lanes) in [(Algorithm::ChaCha8, 1), (Algorithm::Aes128Ctr, 3)] {
            let l = Loop::new(size, 0x5a);
            let mut t = target(&l, 6);
            assert_eq!(t.chunk, 256 << 10);
            t.lanes = lanes;
            let fails = Mutex::new(Failures::default());
            let p = Pattern::Stream {
                seed: SEED,
                pass: 1,
                alg,
            };
            ring_write(&t, size, p, &fails);
            assert!(fails.lock().unwrap().ranges.is_empty());
            let f = std::fs::File::open(&l.file).unwrap();
            for off in offsets(size, 64) {
                let mut got = vec![0u8; 4096];
                f.read_exact_at(&mut got, off).unwrap();
                assert!(got == stream(alg, off, 4096), "{alg:?}: 4 KiB at {off}");
            }
            // Every byte, to be sure no chunk was skipped or doubled.
            let all = l.bytes();
            assert!(all == stream(alg, 0, size as usize), "{alg:?}: whole disk");
        }
    }

    /// Once the target is closed the device is free at once: the rings'
    /// deferred teardown must not hold the exclusive claim, or the next
    /// pass, or the next `speediso wipe`, finds the device busy (EBUSY).
    #[test]
    fn the_device_is_free_the_moment_the_rings_are_done() {
        if !ready(&["losetup"]) {
            return;
        }
        let size = 16 * MIB;
        let l = Loop::new(size, 0);
        for round in 0..20 {
            let p = if round % 2 == 0 {
                Pattern::Zero
            } else {
                Pattern::Stream {
                    seed: SEED,
                    pass: 1,
                    alg: Algorithm::Aes128Ctr,
                }
            };
            let mut t = target(&l, 1);
            t.lanes = 2;
            let fails = Mutex::new(Failures::default());
            ring_write(&t, size, p, &fails);
            let pieces = verify::pieces(&[(0, size)], VerifyMode::Full);
            let each = |_: u64, _: &mut [u8], r: std::io::Result<()>| {
                r.unwrap();
                Flow::Continue
            };
            assert!(ring::read_pieces(&t, &pieces, &each).is_ok());
            drop(t);
            // No sleep, no retry: exactly what the next open does.
            let again = overwrite::open_target(Path::new(&l.dev), false, true);
            assert!(again.is_ok(), "round {round}: {:#}", again.err().unwrap());
        }
    }

    #[test]
    fn verification_through_io_uring_names_exactly_the_flipped_mib() {
        if !ready(&["losetup"]) {
            return;
        }
        let size = 32 * MIB;
        let l = Loop::new(size, 0);
        let mut t = target(&l, 1);
        assert_eq!(t.chunk, 1 << 20);
        // Two rings (one per core on the 2-CPU development VM).
        t.lanes = 2;
        let alg = Algorithm::ChaCha8;
        let p = Pattern::Stream {
            seed: SEED,
            pass: 1,
            alg,
        };
        let fails = Mutex::new(Failures::default());
        ring_write(&t, size, p, &fails);
        // Before the flip: the engine's verification passes.
        let r = verify::verify_pattern(&t, &[(0, size)], VerifyMode::Full, p, &tracker(), &fails);
        assert_eq!((r.result.as_str(), r.mismatches), ("passed", 0), "{r:?}");
        assert_eq!(r.bytes_read, size);
        assert!(r.note.is_none(), "{r:?}");
        // Flip one byte in the middle of MiB 20, in the backing file.
        let flip = 20 * MIB + 12345;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&l.file)
            .unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, flip).unwrap();
        f.write_all_at(&[b[0] ^ 0x10], flip).unwrap();
        f.sync_all().unwrap();
        // The ring's read-back: exactly that 1 MiB piece differs.
        let pieces = verify::pieces(&[(0, size)], VerifyMode::Full);
        let bad = Mutex::new(Vec::new());
        let seen = Mutex::new(0u64);
        let each = |a: u64, g: &mut [u8], r: std::io::Result<()>| {
            r.unwrap();
            overwrite::xor_stream(alg, &SEED, 1, a, g);
            if !verify::is_zero(g) {
                bad.lock().unwrap().push((a, a + g.len() as u64));
            }
            *seen.lock().unwrap() += g.len() as u64;
            Flow::Continue
        };
        assert!(ring::read_pieces(&t, &pieces, &each).is_ok());
        assert_eq!(*seen.lock().unwrap(), size);
        assert_eq!(*bad.lock().unwrap(), vec![(20 * MIB, 21 * MIB)]);
        // And the verifier: one mismatch, the logical block of the flip.
        let fails = Mutex::new(Failures::default());
        let r = verify::verify_pattern(&t, &[(0, size)], VerifyMode::Full, p, &tracker(), &fails);
        assert_eq!((r.result.as_str(), r.mismatches), ("failed", 1), "{r:?}");
        let f = fails.into_inner().unwrap();
        assert_eq!(f.ranges.len(), 1, "{:?}", f.ranges);
        let lbs = u64::from(t.lbs);
        assert_eq!(f.ranges[0].op, "verify");
        assert_eq!(
            (f.ranges[0].byte_offset, f.ranges[0].byte_len),
            (flip / lbs * lbs, lbs)
        );
    }

    #[test]
    fn the_threaded_fallback_writes_the_same_bytes() {
        if !ready(&["losetup"]) {
            return;
        }
        let size = 24 * MIB + 8192;
        for p in [
            Pattern::Stream {
                seed: SEED,
                pass: 1,
                alg: Algorithm::ChaCha8,
            },
            Pattern::Zero,
        ] {
            let a = Loop::new(size, 0x11);
            let b = Loop::new(size, 0x22);
            let (ta, tb) = (target(&a, 4), target(&b, 4));
            let fails = Mutex::new(Failures::default());
            ring_write(&ta, size, p, &fails);
            overwrite::write_range_threads(&tb, 0, size, p, &tracker(), &fails);
            assert!(fails.lock().unwrap().ranges.is_empty());
            let (x, y) = (a.bytes(), b.bytes());
            assert!(x == y, "{p:?}: io_uring and threads wrote different bytes");
            let want = match p {
                Pattern::Zero => vec![0u8; size as usize],
                _ => stream(Algorithm::ChaCha8, 0, size as usize),
            };
            assert!(x == want, "{p:?}: not the pattern");
        }
    }

    /// `SPEEDISO_WIPE_ENGINE=threads` runs the threaded engine end to end
    /// and says so in the certificate; the default engine adds no note.
    #[test]
    fn the_engine_is_forced_by_the_environment_and_noted_in_the_certificate() {
        if !ready(&["losetup"]) {
            return;
        }
        for forced in [false, true] {
            let l = Loop::new(9 * MIB + 4096, 0x33);
            let run_dir = tempfile::tempdir().unwrap();
            let mut cmd = Command::new(BIN);
            cmd.args(["--cmdline", "quiet", "wipe", "--device", &l.dev])
                .args([
                    "--method",
                    "random",
                    "--verify",
                    "full",
                    "--confirm",
                    &l.dev,
                ])
                .env("SPEEDISO_WIPE_TEST_ALLOW", &l.dev)
                .env("SPEEDISO_RUN_DIR", run_dir.path())
                .env_remove("SPEEDISO_WIPE_ALLOW_REAL")
                .env_remove("SPEEDISO")
                .env_remove(ring::ENGINE_ENV);
            if forced {
                cmd.env(ring::ENGINE_ENV, "threads");
            }
            let out = cmd.output().unwrap();
            let r = Run { out, run_dir };
            assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
            let c = r.cert_for(&l.dev);
            assert_eq!(c["verification"]["result"], "passed");
            assert_eq!(c["verification"]["bytes_read"], l.size());
            assert_stream(&l.bytes(), &c, 1);
            let notes = c["sanitization"]["notes"].to_string();
            assert_eq!(
                notes.contains("I/O engine: threads (SPEEDISO_WIPE_ENGINE=threads)"),
                forced,
                "{notes}"
            );
            assert!(!notes.contains("io_uring unavailable"), "{notes}");
        }
    }
}
