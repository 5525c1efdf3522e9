//! deploy/nginx/{central,mirror}.conf under a real nginx: a central server
//! and a mirror on loopback ports, fetching through the mirror across a
//! publish and a rollback. The config files are used as shipped, with only
//! the paths, ports and upstream address replaced.

mod common;

use speediso_testsupport::{free_port, output_ok};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_speediso-repo");
const NAMES: [&str; 4] = ["vmlinuz", "initrd", "speedtest.squashfs", "speedtest.iso"];

/// Is `tool` installed? Missing: fail under SPEEDISO_REQUIRE_TOOLS=1, else skip.
fn have_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file();
    found
        || speediso_testsupport::missing(&format!(
            "{tool} is required; install the Debian package listed in tests/apt/repo.txt"
        ))
}

fn nginx_bin() -> PathBuf {
    for d in ["/usr/sbin", "/usr/bin", "/usr/local/sbin"] {
        let p = Path::new(d).join("nginx");
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from("nginx")
}

/// One nginx process (master_process off: a single process, killed by PID).
struct Nginx {
    child: Child,
    prefix: PathBuf,
}

impl Nginx {
    /// Start nginx with the server block `conf` after replacing each
    /// (from, to) pair; every `from` must occur, so config drift fails here.
    fn start(prefix: &Path, shipped: &str, subst: &[(&str, String)], port: u16) -> Nginx {
        fs::create_dir_all(prefix).unwrap();
        let mut server = fs::read_to_string(shipped).unwrap();
        for (from, to) in subst {
            assert!(
                server.contains(from),
                "{shipped} no longer contains {from:?}"
            );
            server = server.replace(from, to);
        }
        let server_path = prefix.join("server.conf");
        fs::write(&server_path, server).unwrap();
        let p = prefix.display();
        let main = format!(
            "daemon off;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {p}/access.log;\n  default_type application/octet-stream;\n\
             client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n\
             uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n  include {};\n}}\n",
            server_path.display()
        );
        let conf = prefix.join("nginx.conf");
        fs::write(&conf, main).unwrap();
        let child = Command::new(nginx_bin())
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf)
            .args(["-e", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(prefix.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let mut n = Nginx {
            child,
            prefix: prefix.to_path_buf(),
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = n.child.try_wait() {
                panic!("nginx exited ({st}): {}", n.logs());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not listen: {}",
                n.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        n
    }

    fn logs(&self) -> String {
        let read = |f: &str| fs::read_to_string(self.prefix.join(f)).unwrap_or_default();
        format!(
            "stderr: {}\nerror.log: {}",
            read("stderr.log"),
            read("error.log")
        )
    }

    fn access_log(&self) -> String {
        fs::read_to_string(self.prefix.join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Minimal HTTP/1.0 GET (the body ends when the server closes).
fn get(port: u16, path: &str) -> Response {
    get_with(port, path, "")
}

fn get_with(port: u16, path: &str, extra_headers: &str) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: test\r\nUser-Agent: speediso-test\r\n{extra_headers}\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// GET following redirects on the same server, as curl -L / dracut do.
/// Returns the final response and the path it came from.
fn get_following(port: u16, path: &str) -> (Response, String) {
    let mut path = path.to_string();
    for _ in 0..5 {
        let r = get(port, &path);
        if r.status == 302 {
            path = r
                .header("Location")
                .expect("302 without Location")
                .to_string();
            assert!(
                path.starts_with('/'),
                "Location must stay relative to the server asked: {path}"
            );
            continue;
        }
        return (r, path);
    }
    panic!("redirect loop from {path}");
}

/// A build's file: 3 MiB for the squashfs (enough for range requests),
/// small and build-sized for the others.
fn content(build: u64, name: &str) -> Vec<u8> {
    let size = if name.ends_with(".squashfs") {
        3 << 20
    } else {
        10_000 + build as usize
    };
    common::content(build, name, size)
}

fn publish(root: &Path, inputs: &Path, n: u64) {
    let dir = inputs.join(n.to_string());
    fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "publish",
        "--job",
        "speedtest",
        "--build",
        &n.to_string(),
        "--root",
    ])
    .arg(root);
    for name in NAMES {
        fs::write(dir.join(name), content(n, name)).unwrap();
        cmd.arg(dir.join(name));
    }
    output_ok(&mut cmd);
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn mirror_stores_versioned_files_and_follows_publish_and_rollback() {
    if !have_tool("nginx") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let mirror_root = tmp.path().join("mirror");
    let inputs = tmp.path().join("in");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&mirror_root).unwrap();
    publish(&root, &inputs, 1);

    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let (cport, mport) = (free_port(), free_port());
    let central = Nginx::start(
        &tmp.path().join("nginx-central"),
        &format!("{manifest}/deploy/nginx/central.conf"),
        &[
            ("listen 80;", format!("listen 127.0.0.1:{cport};")),
            ("/srv/speediso/repo", root.display().to_string()),
        ],
        cport,
    );
    let mirror = Nginx::start(
        &tmp.path().join("nginx-mirror"),
        &format!("{manifest}/deploy/nginx/mirror.conf"),
        &[
            ("listen 80;", format!("listen 127.0.0.1:{mport};")),
            (
                "server repo.example.net:80;",
                format!("server 127.0.0.1:{cport};"),
            ),
            ("/srv/speediso/mirror", mirror_root.display().to_string()),
        ],
        mport,
    );
    let numbered = |n: u64| format!("/builds/speedtest/{n}/speedtest.squashfs");

    // Central: the unversioned name is a no-store 302 to the numbered file.
    let r = get(cport, "/speedtest.squashfs");
    assert_eq!(r.status, 302, "central: {}", central.logs());
    assert_eq!(r.header("Location"), Some(numbered(1).as_str()));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    let r = get(cport, &numbered(1));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content(1, "speedtest.squashfs"));
    for hidden in [
        "/.speediso-repo.lock",
        "/.live/vmlinuz/vmlinuz",
        "/builds/speedtest/current/vmlinuz",
        "/nope",
    ] {
        assert_eq!(
            get(cport, hidden).status,
            404,
            "central must not serve {hidden}"
        );
    }

    // Through the mirror: fetched once from central, stored under its number.
    let (r, path) = get_following(mport, "/speedtest.squashfs");
    assert_eq!(r.status, 200, "mirror: {}", mirror.logs());
    assert_eq!(path, numbered(1));
    assert!(
        r.body == content(1, "speedtest.squashfs"),
        "mirror served other bytes than build 1"
    );
    let stored = mirror_root.join("builds/speedtest/1/speedtest.squashfs");
    assert_eq!(
        fs::read(&stored).unwrap(),
        content(1, "speedtest.squashfs"),
        "not stored on the mirror"
    );
    assert!(
        !mirror_root.join("speedtest.squashfs").exists(),
        "the unversioned name must never be stored"
    );
    assert_eq!(count(&central.access_log(), &numbered(1)), 2); // ours + the mirror's

    // Second fetch: the numbered file comes from the mirror's disk.
    let (r, _) = get_following(mport, "/speedtest.squashfs");
    assert_eq!(r.body, content(1, "speedtest.squashfs"));
    assert_eq!(
        count(&central.access_log(), &numbered(1)),
        2,
        "mirror went to central for a stored file"
    );

    // Publish build 2: the same mirror serves it at once, not the stale copy.
    publish(&root, &inputs, 2);
    let (r, path) = get_following(mport, "/speedtest.squashfs");
    assert_eq!(path, numbered(2));
    assert!(
        r.body == content(2, "speedtest.squashfs"),
        "mirror served stale bytes after publish"
    );
    assert!(mirror_root
        .join("builds/speedtest/2/speedtest.squashfs")
        .is_file());
    let (r, _) = get_following(mport, "/vmlinuz");
    assert_eq!(r.body, content(2, "vmlinuz"));

    // Roll back: build 1 again, straight from the mirror's store.
    output_ok(
        Command::new(BIN)
            .args(["rollback", "--job", "speedtest", "--root"])
            .arg(&root),
    );
    let (r, path) = get_following(mport, "/speedtest.squashfs");
    assert_eq!(path, numbered(1));
    assert!(
        r.body == content(1, "speedtest.squashfs"),
        "mirror did not follow the rollback"
    );
    assert_eq!(count(&central.access_log(), &numbered(1)), 2);
    assert!(!mirror_root.join("speedtest.squashfs").exists());

    // A ranged first request still stores the whole file; the client gets
    // its range.
    let iso = "/builds/speedtest/2/speedtest.iso";
    let r = get_with(mport, iso, "Range: bytes=100-199\r\n");
    assert_eq!(r.status, 206, "{}", mirror.logs());
    assert_eq!(r.body, content(2, "speedtest.iso")[100..200]);
    assert_eq!(
        fs::read(mirror_root.join(&iso[1..])).unwrap(),
        content(2, "speedtest.iso")
    );

    // Nothing hidden leaks through the mirror, and no partial files linger.
    for hidden in [
        "/.tmp",
        "/.speediso-repo.lock",
        "/builds/speedtest/current/vmlinuz",
    ] {
        assert_eq!(
            get(mport, hidden).status,
            404,
            "mirror must not serve {hidden}"
        );
    }
    let leftovers: Vec<_> = walk(&mirror_root.join(".tmp"));
    assert!(
        leftovers.is_empty(),
        "temp files left on the mirror: {leftovers:?}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
