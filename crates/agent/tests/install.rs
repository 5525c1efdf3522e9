//! `speediso install` against loop devices (root only), fed by a local HTTP
//! server on 127.0.0.1 started by each test (std TcpListener: Range
//! requests, and a mode that drops the connection mid-body once). Images
//! are compressed with the real gzip, xz and zstd. Every target is a loop
//! device the test created (checked against its backing file), the binary
//! is restricted to it with SPEEDISO_WIPE_TEST_ALLOW, and it is detached in
//! a drop guard. Assertions read the device bytes.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const BIN: &str = env!("CARGO_BIN_EXE_speediso");
const MIB: u64 = 1 << 20;

use loop_support::Loop;
use speediso_testsupport::loops as loop_support;

/// Root and the tools, or skip (fail under SPEEDISO_REQUIRE_TOOLS=1).
fn ready(tools: &[&str]) -> bool {
    loop_support::ready("install loop-device test", tools)
}

/// Every target starts with every byte 0xAA, so a cleared or written range
/// is visible.
const FILL: u8 = 0xaa;

/// One request the server saw.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
}

/// A tiny HTTP/1.1 server: one request per connection, Range `bytes=N-`,
/// and for paths in `drop_once` the first full response stops half-way.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(files: HashMap<String, Vec<u8>>, drop_once: &[&str]) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let files = Arc::new(files);
        let drops = Arc::new(Mutex::new(
            drop_once.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let (files, seen, drops) = (files.clone(), s2.clone(), drops.clone());
                std::thread::spawn(move || serve(c, &files, &seen, &drops));
            }
        });
        Server { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(
    mut c: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    seen: &Mutex<Vec<Seen>>,
    drops: &Mutex<Vec<String>>,
) {
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    seen.lock().unwrap().push(Seen {
        path: path.clone(),
        range: range.clone(),
    });
    let Some(body) = files.get(&path) else {
        let _ = c
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let from = range
        .as_deref()
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<usize>().ok());
    let etag = "\"img-1\"";
    let (head, part) = match from {
        Some(n) if n < body.len() => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {n}-{}/{}\r\nETag: {etag}\r\nConnection: close\r\n\r\n",
                body.len() - n,
                body.len() - 1,
                body.len()
            ),
            &body[n..],
        ),
        _ => (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nETag: {etag}\r\nConnection: close\r\n\r\n",
                body.len()
            ),
            &body[..],
        ),
    };
    let _ = c.write_all(head.as_bytes());
    let cut = {
        let mut d = drops.lock().unwrap();
        match d.iter().position(|p| *p == path) {
            Some(i) if from.is_none() => {
                d.remove(i);
                true
            }
            _ => false,
        }
    };
    if cut {
        let _ = c.write_all(&part[..part.len() / 2]);
        let _ = c.flush();
        let _ = c.shutdown(std::net::Shutdown::Both);
        return;
    }
    let _ = c.write_all(part);
}

/// A 6 MiB + 1234-byte image (not a multiple of any block size): random
/// halves and zero runs, so it compresses somewhat and ends mid-block.
fn image() -> Vec<u8> {
    let mut v = Vec::with_capacity(7 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..(6 * MIB as usize + 1234) {
        if (i >> 16) % 3 == 2 {
            v.push(0);
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x as u8);
        }
    }
    // Something that looks like an MBR signature, as a real image has.
    v[510] = 0x55;
    v[511] = 0xaa;
    v
}

fn compress(tool: &[&str], data: &[u8], dir: &Path) -> Vec<u8> {
    let inp = dir.join("in.raw");
    std::fs::write(&inp, data).unwrap();
    let mut argv: Vec<&str> = tool.to_vec();
    argv.push(inp.to_str().unwrap());
    let o = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn sha(b: &[u8]) -> String {
    hex_of(&Sha256::digest(b))
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Raw plus each compression, named by extension.
fn served_images(raw: &[u8]) -> HashMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let mut m = HashMap::new();
    m.insert("img.raw".into(), raw.to_vec());
    m.insert(
        "img.raw.gz".into(),
        compress(&["gzip", "-c", "-1"], raw, dir.path()),
    );
    m.insert(
        "img.raw.xz".into(),
        compress(&["xz", "-c", "-0", "-T1"], raw, dir.path()),
    );
    m.insert(
        "img.raw.zst".into(),
        compress(&["zstd", "-q", "-c", "-3"], raw, dir.path()),
    );
    m
}

struct Run {
    out: Output,
}

impl Run {
    fn events(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
    fn result(&self) -> Option<Value> {
        self.events()
            .into_iter()
            .find(|e| e["type"] == "result")
            .map(|e| e["data"].clone())
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
}

/// `install --image url --sha256 sum --target target --confirm target`,
/// with `allow` as the test allow list.
fn install_confirmed(allow: &str, url: &str, sum: &str, target: &str) -> Run {
    install(
        allow,
        &[
            "--image",
            url,
            "--sha256",
            sum,
            "--target",
            target,
            "--confirm",
            target,
        ],
    )
}

/// Files a test server serves, by name.
type Files = HashMap<String, Vec<u8>>;

/// The test image, each compressed form of it, and a server for them that
/// drops no connection; `None` (the test is skipped) without `tools`.
fn served(tools: &[&str]) -> Option<(Vec<u8>, Files, Server)> {
    if !ready(tools) {
        return None;
    }
    let raw = image();
    let files = served_images(&raw);
    let srv = Server::start(files.clone(), &[]);
    Some((raw, files, srv))
}

fn install(allow: &str, args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .args(["--cmdline", "", "--run-dir"])
        .arg(std::env::temp_dir().join("speediso-install-test-run"))
        .arg("install")
        .args(args)
        .arg("--json")
        .env("SPEEDISO_WIPE_TEST_ALLOW", allow)
        .env_remove("SPEEDISO_WIPE_ALLOW_REAL")
        .output()
        .unwrap();
    Run { out }
}

#[test]
fn each_format_installs_and_reads_back() {
    let Some((raw, files, srv)) = served(&["losetup", "gzip", "xz", "zstd"]) else {
        return;
    };
    for name in ["img.raw", "img.raw.gz", "img.raw.xz", "img.raw.zst"] {
        let lo = Loop::new(16 * MIB, FILL);
        let sum = sha(&files[name]);
        let r = install_confirmed(&lo.dev, &srv.url(name), &sum, &lo.dev);
        assert_eq!(r.code(), 0, "{name}: {}", r.stderr());
        assert_eq!(
            lo.read(0, raw.len()),
            raw,
            "{name}: device bytes differ from the image"
        );
        // Past the image the disk is untouched.
        assert_eq!(lo.read(raw.len() as u64, 4096), vec![0xaa; 4096], "{name}");
        let res = r.result().expect("a result event");
        assert_eq!(res["installed"], true, "{name}");
        assert_eq!(res["sha256"], sum.as_str(), "{name}");
        assert_eq!(res["bytes_written"], raw.len() as u64, "{name}");
        assert_eq!(res["bytes_served"], files[name].len() as u64, "{name}");
        assert_eq!(res["readback_verified"], true, "{name}");
        assert_eq!(res["target"]["path"], lo.dev.as_str(), "{name}");
        // The console (log event) names the digest and the target too.
        let said = r
            .events()
            .into_iter()
            .filter(|e| e["type"] == "log")
            .filter_map(|e| e["message"].as_str().map(str::to_string))
            .find(|m| m.starts_with("installed "))
            .unwrap_or_else(|| panic!("{name}: no 'installed' log event"));
        assert!(
            said.contains(&format!("sha256 {sum}"))
                && said.contains(&format!("written to {}", lo.dev))
                && said.contains("matches speediso.install.sha256"),
            "{name}: {said}"
        );
        assert_eq!(
            res["format"],
            ["raw", "gzip", "xz", "zstd"][["img.raw", "img.raw.gz", "img.raw.xz", "img.raw.zst"]
                .iter()
                .position(|n| *n == name)
                .unwrap()]
        );
    }
    assert!(
        srv.seen().iter().all(|s| s.range.is_none()),
        "no Range without a drop"
    );
}

#[test]
fn wrong_checksum_fails_and_clears_the_partition_tables() {
    let Some((raw, _, srv)) = served(&["losetup", "zstd"]) else {
        return;
    };
    let lo = Loop::new(16 * MIB, FILL);
    let size = lo.size();
    let wrong = "00".repeat(32);
    let r = install_confirmed(&lo.dev, &srv.url("img.raw.zst"), &wrong, &lo.dev);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(r.stderr().contains("checksum mismatch"), "{}", r.stderr());
    assert!(
        r.stderr().contains("partition tables cleared"),
        "{}",
        r.stderr()
    );
    assert!(r.result().is_none(), "nothing may be reported installed");
    assert!(!String::from_utf8_lossy(&r.out.stdout).contains("\"installed\":true"));
    assert_eq!(
        lo.read(0, MIB as usize),
        vec![0u8; MIB as usize],
        "first MiB not zeroed"
    );
    assert_eq!(
        lo.read(size - MIB, MIB as usize),
        vec![0u8; MIB as usize],
        "last MiB not zeroed"
    );
    // The rest of what was written stays (only the tables are cleared):
    // proof that writing did begin before the checksum was known.
    assert_eq!(
        lo.read(MIB, 4096),
        raw[MIB as usize..MIB as usize + 4096].to_vec()
    );
}

#[test]
fn dropped_connection_resumes_with_a_range_request() {
    if !ready(&["losetup", "zstd"]) {
        return;
    }
    let raw = image();
    let files = served_images(&raw);
    for name in ["img.raw", "img.raw.zst"] {
        let srv = Server::start(files.clone(), &[name]);
        let lo = Loop::new(16 * MIB, FILL);
        let sum = sha(&files[name]);
        let r = install_confirmed(&lo.dev, &srv.url(name), &sum, &lo.dev);
        assert_eq!(r.code(), 0, "{name}: {}", r.stderr());
        let seen = srv.seen();
        let ranged: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.path == name && s.range.is_some())
            .collect();
        assert_eq!(ranged.len(), 1, "{name}: {seen:?}");
        let from: usize = ranged[0].range.as_deref().unwrap()["bytes=".len()..]
            .trim_end_matches('-')
            .parse()
            .unwrap();
        assert_eq!(
            from,
            files[name].len() / 2,
            "{name}: resumed where the drop happened"
        );
        assert_eq!(lo.read(0, raw.len()), raw, "{name}");
        let res = r.result().unwrap();
        assert_eq!(res["resumes"], 1, "{name}");
        assert_eq!(res["sha256"], sum.as_str(), "{name}");
    }
}

#[test]
fn targets_outside_the_rules_are_refused() {
    if !ready(&["losetup"]) {
        return;
    }
    let lo = Loop::new(8 * MIB, FILL);
    let other = Loop::new(8 * MIB, FILL);
    // The server has nothing: were a refusal missed, the download would
    // fail before the disk is opened, with a different exit status.
    let srv = Server::start(HashMap::new(), &[]);
    let url = srv.url("missing.raw");
    let sum = "11".repeat(32);
    // Not in the test allow list.
    let r = install_confirmed(&lo.dev, &url, &sum, &other.dev);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(
        r.stderr().contains("SPEEDISO_WIPE_TEST_ALLOW"),
        "{}",
        r.stderr()
    );
    // A real (non-loop) disk, if this machine shows one: refused outside
    // the live image even when named in the allow list.
    let real = std::fs::read_dir("/sys/block")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .find(|n| {
            !n.starts_with("loop")
                && !n.starts_with("ram")
                && !n.starts_with("zram")
                && !n.starts_with("dm-")
        });
    if let Some(n) = real {
        let dev = format!("/dev/{n}");
        let r = install_confirmed(&dev, &url, &sum, &dev);
        assert_eq!(r.code(), 3, "{dev}: {}", r.stderr());
        assert!(r.stderr().contains("a real disk"), "{}", r.stderr());
    } else {
        eprintln!("no non-loop disk in /sys/block; real-disk refusal not exercised here");
    }
    // Without --confirm nothing is written.
    let r = install(
        &lo.dev,
        &["--image", &url, "--sha256", &sum, "--target", &lo.dev],
    );
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(r.stderr().contains("--confirm"), "{}", r.stderr());
    assert!(srv.seen().is_empty(), "refused runs must not even download");
    assert_eq!(lo.read(0, 4096), vec![0xaa; 4096]);
    // Plan-time rules.
    let r = install(
        &lo.dev,
        &["--image", &url, "--target", &lo.dev, "--confirm", &lo.dev],
    );
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr().contains("needs speediso.install.sha256="),
        "{}",
        r.stderr()
    );
}

#[test]
fn a_dropped_file_url_is_an_error_not_a_short_image() {
    // file:// cannot resume; a missing file fails before any write.
    if !ready(&["losetup"]) {
        return;
    }
    let lo = Loop::new(8 * MIB, FILL);
    let r = install(
        &lo.dev,
        &[
            "--image",
            "file:///nonexistent/img.raw",
            "--insecure",
            "--target",
            &lo.dev,
            "--confirm",
            &lo.dev,
        ],
    );
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(
        r.stderr().contains("/nonexistent/img.raw"),
        "{}",
        r.stderr()
    );
    assert_eq!(
        lo.read(0, 4096),
        vec![0xaa; 4096],
        "nothing written before the source opened"
    );
}

#[test]
fn boot_task_lininstall_writes_the_image_with_progress() {
    let Some((raw, files, srv)) = served(&["losetup", "xz"]) else {
        return;
    };
    let lo = Loop::new(16 * MIB, FILL);
    let line = format!(
        "speediso.install.image={} speediso.install.sha256={} speediso.install.target={}",
        srv.url("img.raw.xz"),
        sha(&files["img.raw.xz"]),
        lo.dev
    );
    let out = Command::new(BIN)
        .args(["--cmdline", &line, "--run-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .args(["run", "lininstall", "--confirm", "lininstall", "--json"])
        .env("SPEEDISO_WIPE_TEST_ALLOW", &lo.dev)
        .env_remove("SPEEDISO_WIPE_ALLOW_REAL")
        .output()
        .unwrap();
    let r = Run { out };
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(lo.read(0, raw.len()), raw);
    let res = r.result().unwrap();
    assert_eq!(res["installed"], true);
    assert_eq!(res["format"], "xz");
    let started = r
        .events()
        .into_iter()
        .find(|e| e["type"] == "run_started")
        .unwrap();
    assert_eq!(started["after"], "reboot");
}

#[test]
fn kexec_mode_checks_the_kernel_checksum_before_loading() {
    // A wrong checksum stops before kexec_file_load: nothing is loaded on
    // the machine running the tests. Real loading is for the VM suite.
    let files: HashMap<String, Vec<u8>> = [
        ("vmlinuz".to_string(), b"not a kernel".to_vec()),
        ("initrd.img".to_string(), b"not an initrd".to_vec()),
    ]
    .into();
    let srv = Server::start(files, &[]);
    let r = install(
        "",
        &[
            "--kernel",
            &srv.url("vmlinuz"),
            "--initrd",
            &srv.url("initrd.img"),
            "--kernel-sha256",
            &"22".repeat(32),
            "--initrd-sha256",
            &sha(b"not an initrd"),
            "--append",
            "inst.ks=http://127.0.0.1/ks.cfg",
        ],
    );
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(r.stderr().contains("SHA-256 mismatch"), "{}", r.stderr());
    assert!(r.stderr().contains(&sha(b"not a kernel")), "{}", r.stderr());
    assert_eq!(
        srv.seen().len(),
        1,
        "stopped after the kernel: {:?}",
        srv.seen()
    );
    // kernel without initrd is rejected before anything is fetched.
    let r = install("", &["--kernel", &srv.url("vmlinuz")]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr().contains("needs speediso.install.initrd="),
        "{}",
        r.stderr()
    );
    // Without both checksums nothing is fetched, unless waived (audit 13).
    let before = srv.seen().len();
    let r = install(
        "",
        &[
            "--kernel",
            &srv.url("vmlinuz"),
            "--initrd",
            &srv.url("initrd.img"),
        ],
    );
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr().contains("needs speediso.install.kernel_sha256="),
        "{}",
        r.stderr()
    );
    assert_eq!(srv.seen().len(), before, "fetched without checksums");
}

#[test]
fn an_image_larger_than_the_disk_fails_and_clears_the_tables() {
    if !ready(&["losetup"]) {
        return;
    }
    let raw = image();
    let srv = Server::start([("img.raw".to_string(), raw.clone())].into(), &[]);
    let lo = Loop::new(4 * MIB, FILL);
    let r = install_confirmed(&lo.dev, &srv.url("img.raw"), &sha(&raw), &lo.dev);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(r.stderr().contains("larger than"), "{}", r.stderr());
    assert!(r.result().is_none());
    assert_eq!(lo.read(0, MIB as usize), vec![0u8; MIB as usize]);
    assert_eq!(lo.read(3 * MIB, MIB as usize), vec![0u8; MIB as usize]);
    // Between the cleared ends, the image's bytes: writing had begun.
    assert_eq!(
        lo.read(MIB, 4096),
        raw[MIB as usize..MIB as usize + 4096].to_vec()
    );
}

#[test]
fn smallest_selects_the_smaller_allowed_disk() {
    if !ready(&["losetup"]) {
        return;
    }
    let raw = image();
    let srv = Server::start([("img.raw".to_string(), raw.clone())].into(), &[]);
    let big = Loop::new(24 * MIB, FILL);
    let small = Loop::new(12 * MIB, FILL);
    let allow = format!("{},{}", big.dev, small.dev);
    // Without --confirm it names the disk it picked, and writes nothing.
    let r = install(
        &allow,
        &[
            "--image",
            &srv.url("img.raw"),
            "--sha256",
            &sha(&raw),
            "--target",
            "smallest",
        ],
    );
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(
        r.stderr()
            .contains(&format!("refusing to write {}", small.dev)),
        "{}",
        r.stderr()
    );
    let r = install(
        &allow,
        &[
            "--image",
            &srv.url("img.raw"),
            "--sha256",
            &sha(&raw),
            "--target",
            "smallest",
            "--confirm",
            &small.dev,
        ],
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(r.result().unwrap()["target"]["path"], small.dev.as_str());
    assert_eq!(small.read(0, raw.len()), raw);
    assert_eq!(
        big.read(0, 4096),
        vec![0xaa; 4096],
        "the larger disk is untouched"
    );
}

/// A disk of `sectors` at `sys/devices/<devpath>/block/<name>` in a fixture
/// tree, linked from sys/block.
fn fixture_disk(root: &Path, devpath: &str, name: &str, sectors: u64, files: &[(&str, &str)]) {
    let real = root.join(format!("sys/devices/{devpath}/block/{name}"));
    std::fs::create_dir_all(real.join("queue")).unwrap();
    std::fs::write(real.join("size"), format!("{sectors}\n")).unwrap();
    std::fs::write(real.join("dev"), "8:0\n").unwrap();
    for (f, text) in files {
        let p = real.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::create_dir_all(root.join("sys/block")).unwrap();
    std::os::unix::fs::symlink(
        format!("../devices/{devpath}/block/{name}"),
        root.join("sys/block").join(name),
    )
    .unwrap();
}

/// Target selection against a fixture tree (`--root`, any user): the
/// wipe's refusals of remote storage and its exclusions hold for install
/// too. Without --confirm nothing is written anyway; the refusal names the
/// disk it would have picked.
#[test]
fn targets_honour_remote_refusals_and_wipe_exclusions() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let ata = |n: u32| format!("pci0000:00/0000:00:1f.2/ata{n}/host{n}/target{n}:0:0/{n}:0:0:0");
    fixture_disk(r, &ata(1), "sda", 16384, &[("device/serial", "BIG\n")]);
    fixture_disk(r, &ata(2), "sdc", 2048, &[("device/serial", "KEEP\n")]);
    // The smallest disk of all is an FC LUN.
    fixture_disk(
        r,
        "pci0000:00/0000:00:03.0/0000:05:00.0/host3/rport-3:0-0/target3:0:0/3:0:0:0",
        "sdb",
        1024,
        &[],
    );
    let run = |cmdline: &str, target: &str| -> (i32, String) {
        let o = Command::new(BIN)
            .args(["--root", r.to_str().unwrap(), "--cmdline", cmdline])
            .args(["--run-dir"])
            .arg(r.join("run"))
            .args(["install", "--image", "file:///nonexistent.raw", "--sha256"])
            .arg("11".repeat(32))
            .args(["--target", target, "--json"])
            .env("SPEEDISO_WIPE_ALLOW_REAL", "1")
            .env_remove("SPEEDISO_WIPE_TEST_ALLOW")
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    // smallest skips the FC LUN and the excluded disk.
    let (rc, err) = run("speediso.wipe.exclude=KEEP", "smallest");
    assert_eq!(rc, 3, "{err}");
    assert!(err.contains("refusing to write /dev/sda"), "{err}");
    // Without the exclusion the smaller local disk wins.
    let (rc, err) = run("", "smallest");
    assert_eq!(rc, 3, "{err}");
    assert!(err.contains("refusing to write /dev/sdc"), "{err}");
    // Named explicitly, each is refused with its reason.
    let (rc, err) = run("", "/dev/sdb");
    assert_eq!(rc, 3, "{err}");
    assert!(
        err.contains("refusing to write /dev/sdb") && err.contains("Fibre Channel LUN"),
        "{err}"
    );
    let (rc, err) = run("speediso.wipe.exclude=KEEP", "serial=KEEP");
    assert_eq!(rc, 3, "{err}");
    assert!(err.contains("no eligible disk matches"), "{err}");
    assert!(
        err.contains("excluded by speediso.wipe.exclude (KEEP)"),
        "{err}"
    );
    // The opt-in makes the LUN a candidate again.
    let (rc, err) = run("speediso.wipe.remote=1", "smallest");
    assert_eq!(rc, 3, "{err}");
    assert!(err.contains("refusing to write /dev/sdb"), "{err}");
    // An exclusion that names no disk rejects the plan.
    let (rc, err) = run("speediso.wipe.exclude=KEPT", "smallest");
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("\"KEPT\" matches no disk"), "{err}");
    assert!(err.contains("/dev/sdc (serial KEEP)"), "{err}");
}

/// Issue #14: a flag is checked as its declared option would be, and
/// replaces the command line's value (no string written back and parsed
/// again): a malformed flag is a usage error naming the flag, and flags
/// that make the settings inconsistent name the option they clash with.
#[test]
fn flags_are_checked_like_their_options_and_override_them() {
    let bad = install(
        "",
        &["--image", "file:///nonexistent.raw", "--sha256", "abc"],
    );
    assert_eq!(bad.code(), 2, "{}", bad.stderr());
    assert!(
        bad.stderr().contains("--sha256: expected 64 hex digits"),
        "{}",
        bad.stderr()
    );
    let bad = install("", &["--image", "ftp://x/y.raw", "--insecure"]);
    assert_eq!(bad.code(), 2, "{}", bad.stderr());
    assert!(
        bad.stderr()
            .contains("--image: expected an http://, https:// or file:// URL"),
        "{}",
        bad.stderr()
    );
    // The command line says kexec mode; --image on top clashes with it.
    let out = Command::new(BIN)
        .args([
            "--cmdline",
            "speediso.install.kernel=file:///k speediso.install.initrd=file:///i",
            "install",
            "--image",
            "file:///x.raw",
            "--insecure",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("image= and speediso.install.kernel= exclude each other"),
        "{err}"
    );
}
