//! speediso-repo on a temp repository: publish/prune, rollback and roll
//! forward, a reader racing publishes and rollbacks, a crash at every step,
//! the lock, name conflicts. Runs the built binary.

mod common;

use common::content;
use sha2::{Digest, Sha256};
use speediso_repo::fsops::{RepoLock, CRASH_ENV, CRASH_POINTS};
use speediso_testsupport::{assert_success, output_ok};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_speediso-repo");
const JOB: &str = "speedtest";
const NAMES: [&str; 4] = ["vmlinuz", "initrd", "speedtest.squashfs", "speedtest.iso"];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Repo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    inputs: PathBuf,
    /// build -> name -> sha256
    sums: BTreeMap<u64, BTreeMap<String, String>>,
}

impl Repo {
    fn new() -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        let inputs = tmp.path().join("in");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&inputs).unwrap();
        Repo {
            _tmp: tmp,
            root,
            inputs,
            sums: BTreeMap::new(),
        }
    }

    /// Write the input files of build `n`; the squashfs gets `big` bytes.
    fn make_build(&mut self, n: u64, big: usize, names: &[&str]) -> Vec<PathBuf> {
        let dir = self.inputs.join(n.to_string());
        fs::create_dir_all(&dir).unwrap();
        let mut paths = Vec::new();
        for name in names {
            let size = if name.ends_with(".squashfs") {
                big
            } else {
                4096 + n as usize
            };
            let data = content(n, name, size);
            self.sums
                .entry(n)
                .or_default()
                .insert(name.to_string(), hex(&Sha256::digest(&data)));
            let p = dir.join(name);
            fs::write(&p, &data).unwrap();
            paths.push(p);
        }
        paths
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .arg("--root")
            .arg(&self.root)
            .env_remove(CRASH_ENV);
        c
    }

    fn publish_cmd(&mut self, n: u64, names: &[&str]) -> Command {
        let files = self.make_build(n, 64 * 1024, names);
        let mut c = self.cmd(&["publish", "--job", JOB, "--build", &n.to_string()]);
        c.args(files);
        c
    }

    /// `publish --job job --build build file`: one file as it is.
    fn publish_file(&self, job: &str, build: &str, file: &Path) -> Output {
        let mut c = self.cmd(&["publish", "--job", job, "--build", build]);
        c.arg(file).output().unwrap()
    }

    fn publish(&mut self, n: u64) {
        let out = self.publish_cmd(n, &NAMES).output().unwrap();
        assert_success(&out, &format!("publish {n}"));
    }

    fn rollback(&self, to: Option<u64>) -> Output {
        let mut c = self.cmd(&["rollback", "--job", JOB]);
        if let Some(n) = to {
            c.args(["--to", &n.to_string()]);
        }
        c.output().unwrap()
    }

    fn live(&self) -> u64 {
        let t = fs::read_link(self.root.join("builds").join(JOB).join("current")).unwrap();
        t.to_str().unwrap().parse().unwrap()
    }

    fn builds(&self) -> BTreeSet<u64> {
        fs::read_dir(self.root.join("builds").join(JOB))
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect()
    }

    /// Every unversioned name serves exactly build `n`'s bytes, through the
    /// root link and through the .live link nginx uses.
    fn assert_serves(&self, n: u64, names: &[&str]) {
        for name in names {
            let want = &self.sums[&n][*name];
            for path in [
                self.root.join(name),
                self.root.join(".live").join(name).join(name),
            ] {
                let data =
                    fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                assert_eq!(
                    &hex(&Sha256::digest(&data)),
                    want,
                    "{} is not build {n}'s",
                    path.display()
                );
            }
            let real = fs::canonicalize(self.root.join(name)).unwrap();
            let expect =
                fs::canonicalize(self.root.join(format!("builds/{JOB}/{n}/{name}"))).unwrap();
            assert_eq!(real, expect);
        }
    }

    /// No symlink at the root, in .live or in the job dir dangles.
    fn assert_no_dangling(&self) {
        for dir in [
            self.root.clone(),
            self.root.join(".live"),
            self.root.join("builds").join(JOB),
        ] {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if fs::symlink_metadata(&p).unwrap().file_type().is_symlink() {
                    assert!(
                        fs::metadata(&p).is_ok(),
                        "dangling link {} -> {:?}",
                        p.display(),
                        fs::read_link(&p)
                    );
                }
            }
        }
    }

    fn verify(&self) -> serde_json::Value {
        let out = self.cmd(&["verify", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "verify --json: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert!(
            out.status.success() && v["ok"] == true,
            "verify failed: {v:#}"
        );
        v
    }

    fn list(&self) -> serde_json::Value {
        let out = self.cmd(&["list", "--json"]).output().unwrap();
        assert_success(&out, "list");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// Run `cmd` with the crash point `step` armed: it must abort there.
#[track_caller]
fn crash_at(cmd: &mut Command, step: &str) {
    let out = cmd.env(CRASH_ENV, step).output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "crash at {step} did not happen: {}",
        stderr(&out)
    );
}

/// `out` is a failure (exit status 1) whose stderr says `why`.
#[track_caller]
fn assert_fails(out: &Output, why: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    assert_says(out, why);
}

/// The stderr of `out` says `why`.
#[track_caller]
fn assert_says(out: &Output, why: &str) {
    assert!(stderr(out).contains(why), "{}", stderr(out));
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn publish_four_keeps_three_with_links_on_the_fourth() {
    let mut r = Repo::new();
    for n in 1..=4 {
        r.publish(n);
        assert_eq!(r.live(), n);
    }
    assert_eq!(r.builds(), BTreeSet::from([2, 3, 4]));
    r.assert_serves(4, &NAMES);
    for name in NAMES {
        let t = fs::read_link(r.root.join(name)).unwrap();
        assert_eq!(
            t,
            Path::new(&format!("builds/{JOB}/current/{name}")),
            "root link must be relative"
        );
    }

    // Manifest on disk and in `list --json` match the inputs.
    let m: serde_json::Value = serde_json::from_slice(
        &fs::read(r.root.join(format!("builds/{JOB}/4/manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(m["build"], 4);
    assert_eq!(m["job"], JOB);
    for f in m["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        assert_eq!(f["sha256"].as_str().unwrap(), r.sums[&4][name]);
        assert_eq!(
            f["size"].as_u64().unwrap(),
            fs::metadata(r.inputs.join("4").join(name)).unwrap().len()
        );
    }
    let l = r.list();
    let job = &l["jobs"][0];
    assert_eq!(job["job"], JOB);
    assert_eq!(job["live"], 4);
    let listed: Vec<u64> = job["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["build"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, vec![4, 3, 2]);
    assert_eq!(job["builds"][0]["live"], true);
    assert_eq!(job["builds"][1]["live"], false);
    let mut links: Vec<&str> = job["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    links.sort();
    let mut want = NAMES.to_vec();
    want.sort();
    assert_eq!(links, want);
    let v = r.verify();
    assert_eq!(v["files_checked"], 12);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 0, "{v:#}");

    // --keep 1 keeps the live build and the one live before it.
    let out = r
        .publish_cmd(5, &NAMES)
        .args(["--keep", "1", "--json"])
        .output()
        .unwrap();
    assert_success(&out, "publish 5 --keep 1");
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["previous"], 4);
    assert_eq!(rep["pruned"], serde_json::json!([2, 3]));
    assert_eq!(r.builds(), BTreeSet::from([4, 5]));
}

#[test]
fn rollback_and_roll_forward() {
    let mut r = Repo::new();
    for n in 1..=3 {
        r.publish(n);
    }
    assert_success(&r.rollback(None), "rollback");
    assert_eq!(r.live(), 2);
    r.assert_serves(2, &NAMES);
    assert_success(&r.rollback(None), "rollback");
    assert_eq!(r.live(), 1);
    r.assert_serves(1, &NAMES);
    let out = r.rollback(None);
    assert_fails(&out, "no build older than the live build 1");
    // With --json the failure is also a JSON object on stdout.
    let out = r
        .cmd(&["rollback", "--job", JOB, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["error"].as_str().unwrap().contains("no build older"),
        "{v}"
    );
    assert_eq!(r.live(), 1);

    assert_success(&r.rollback(Some(3)), "roll forward to 3");
    assert_eq!(r.live(), 3);
    r.assert_serves(3, &NAMES);
    let out = r.rollback(Some(9));
    assert_fails(&out, "no build 9; builds kept: 1, 2, 3");
    assert_eq!(r.live(), 3);

    // Publishing after a rollback keeps the build that was live before it.
    assert_success(&r.rollback(Some(1)), "rollback to 1");
    r.publish(4);
    assert_eq!(r.builds(), BTreeSet::from([1, 2, 3, 4]));
    r.publish(5);
    assert_eq!(r.builds(), BTreeSet::from([3, 4, 5]));
    r.assert_serves(5, &NAMES);
    r.verify();

    // Republishing the same number with other content is refused, with
    // the same content it is a harmless relink.
    let paths = r.make_build(99, 1000, &NAMES);
    let out = r
        .cmd(&["publish", "--job", JOB, "--build", "5"])
        .args(&paths)
        .output()
        .unwrap();
    assert_fails(&out, "already exists with different content");
    r.sums.remove(&99);
    let same: Vec<PathBuf> = NAMES.iter().map(|n| r.inputs.join("5").join(n)).collect();
    output_ok(
        r.cmd(&["publish", "--job", JOB, "--build", "5"])
            .args(&same),
    );
    r.assert_serves(5, &NAMES);
}

#[test]
fn reader_never_sees_a_missing_or_partial_file() {
    let mut r = Repo::new();
    let builds: Vec<u64> = (1..=8).collect();
    // Inputs first, so readers know every build's checksums up front.
    let mut inputs = HashMap::new();
    for &n in &builds {
        inputs.insert(n, r.make_build(n, 1 << 20, &NAMES));
    }
    let known: HashMap<String, HashMap<String, u64>> = NAMES
        .iter()
        .map(|name| {
            (
                name.to_string(),
                builds
                    .iter()
                    .map(|&n| (r.sums[&n][*name].clone(), n))
                    .collect(),
            )
        })
        .collect();
    let publish = |n: u64| {
        let out = r
            .cmd(&["publish", "--job", JOB, "--build", &n.to_string()])
            .args(&inputs[&n])
            .output()
            .unwrap();
        assert_success(&out, &format!("publish {n}"));
    };
    publish(1);

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::new(Mutex::new(BTreeSet::<u64>::new()));
    let mut readers = Vec::new();
    for t in 0..2 {
        let (stop, failures, seen, known) =
            (stop.clone(), failures.clone(), seen.clone(), known.clone());
        let root = r.root.clone();
        readers.push(std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for name in NAMES {
                    // Thread 0 opens the root link, thread 1 the path nginx uses.
                    let path = if t == 0 {
                        root.join(name)
                    } else {
                        root.join(".live").join(name).join(name)
                    };
                    let mut data = Vec::new();
                    match fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut data)) {
                        Ok(_) => {}
                        Err(e) => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("{}: {e}", path.display()));
                            continue;
                        }
                    }
                    reads += 1;
                    match known[name].get(&hex(&Sha256::digest(&data))) {
                        Some(n) => {
                            seen.lock().unwrap().insert(*n);
                        }
                        None => failures.lock().unwrap().push(format!(
                            "{}: {} bytes matching no build",
                            path.display(),
                            data.len()
                        )),
                    }
                }
            }
            reads
        }));
    }
    for n in 2..=5 {
        publish(n);
    }
    for to in [None, None, Some(5), None] {
        assert_success(&r.rollback(to), "rollback");
    }
    for n in 6..=8 {
        publish(n);
        assert_success(&r.rollback(None), "rollback");
        assert_success(&r.rollback(Some(n)), "roll forward");
    }
    // Many quick switches while a thread does nothing but open(2) the
    // names: a non-atomic switch (unlink, then link) shows up here as ENOENT.
    let opener = {
        let (stop, failures, root) = (stop.clone(), failures.clone(), r.root.clone());
        std::thread::spawn(move || {
            let mut opens = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for name in NAMES {
                    match fs::File::open(root.join(name)) {
                        Ok(_) => opens += 1,
                        Err(e) => failures.lock().unwrap().push(format!("open {name}: {e}")),
                    }
                }
            }
            opens
        })
    };
    for i in 0..150 {
        assert_success(&r.rollback(Some(6 + i % 3)), "switch");
    }
    assert_success(&r.rollback(Some(8)), "roll forward");
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let opens = opener.join().unwrap();
    assert!(opens > 1000, "only {opens} opens");
    let reads: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} bad reads of {reads}, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let seen = seen.lock().unwrap();
    assert!(
        reads >= 40,
        "only {reads} reads: the race was not exercised"
    );
    assert!(seen.len() >= 3, "readers saw only builds {seen:?}");
    assert_eq!(r.live(), 8);
    r.assert_serves(8, &NAMES);
    r.verify();
}

/// Expected live build after a crash of `publish 4` (old = 3) at `step`.
fn live_after_crash(step: &str) -> u64 {
    let switched = CRASH_POINTS.iter().position(|s| *s == "switched").unwrap();
    let at = CRASH_POINTS.iter().position(|s| *s == step).unwrap();
    if at < switched {
        3
    } else {
        4
    }
}

#[test]
fn crash_at_every_publish_step_leaves_old_or_new_build_live() {
    assert!(CRASH_POINTS.len() >= 8);
    for step in CRASH_POINTS {
        let mut r = Repo::new();
        for n in 1..=3 {
            r.publish(n);
        }
        crash_at(&mut r.publish_cmd(4, &NAMES), step);
        let live = r.live();
        assert_eq!(
            live,
            live_after_crash(step),
            "live build after a crash at {step}"
        );
        if *step == "copy" {
            // A half-written file exists, but only under a hidden temp name
            // in a hidden staging directory.
            let jdir = r.root.join("builds").join(JOB);
            let stage = fs::read_dir(&jdir)
                .unwrap()
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with(".stage.4."));
            let stage = stage.expect("no staging dir after a crash in copy").path();
            let part: Vec<_> = fs::read_dir(&stage).unwrap().flatten().collect();
            assert_eq!(part.len(), 1, "{part:?}");
            assert!(part[0]
                .file_name()
                .to_string_lossy()
                .starts_with(".vmlinuz.tmp."));
            let full = fs::metadata(r.inputs.join("4/vmlinuz")).unwrap().len();
            assert_eq!(part[0].metadata().unwrap().len(), full / 2);
        }
        r.assert_no_dangling();
        r.assert_serves(live, &NAMES);
        let v = r.verify();
        // Leftovers are reported, never errors.
        if *step != "build-dir" && *step != "switched" && *step != "linked" {
            assert!(
                !v["warnings"].as_array().unwrap().is_empty(),
                "crash at {step}: leftovers not reported: {v:#}"
            );
        }

        // Publishing the same build again finishes the job and cleans up.
        r.publish(4);
        assert_eq!(
            r.live(),
            4,
            "after rerun of a publish that crashed at {step}"
        );
        r.assert_serves(4, &NAMES);
        assert_eq!(
            r.builds(),
            BTreeSet::from([2, 3, 4]),
            "after rerun (crash at {step})"
        );
        let v = r.verify();
        assert_eq!(
            v["warnings"].as_array().unwrap().len(),
            0,
            "after rerun (crash at {step}): {v:#}"
        );
    }
}

#[test]
fn crash_during_rollback_leaves_old_or_new_build_live() {
    for (step, want) in [("switch", 2), ("switched", 1), ("linked", 1)] {
        let mut r = Repo::new();
        r.publish(1);
        r.publish(2);
        crash_at(&mut r.cmd(&["rollback", "--job", JOB]), step);
        assert_eq!(r.live(), want, "live after a rollback crash at {step}");
        r.assert_no_dangling();
        r.assert_serves(want, &NAMES);
        r.verify();
    }
}

#[test]
fn crash_in_first_publish_is_repaired_by_rerun() {
    for step in CRASH_POINTS.iter().filter(|s| **s != "prune") {
        let mut r = Repo::new();
        crash_at(&mut r.publish_cmd(1, &NAMES), step);
        r.assert_no_dangling();
        r.verify();
        r.publish(1);
        r.assert_serves(1, &NAMES);
        assert_eq!(r.verify()["warnings"].as_array().unwrap().len(), 0);
    }
}

#[test]
fn verify_catches_corruption_and_dangling_links() {
    let mut r = Repo::new();
    r.publish(1);
    r.publish(2);
    // Flip one byte of build 1's squashfs, keeping its size.
    let p = r.root.join(format!("builds/{JOB}/1/speedtest.squashfs"));
    let mut data = fs::read(&p).unwrap();
    data[100] ^= 0xff;
    fs::write(&p, &data).unwrap();
    let out = r.cmd(&["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let errs = v["errors"].to_string();
    assert!(errs.contains("1/speedtest.squashfs: sha256"), "{v:#}");

    std::os::unix::fs::symlink("builds/nope/current/x", r.root.join("x")).unwrap();
    let out = r.cmd(&["verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("x -> builds/nope/current/x: does not resolve"),
        "{text}"
    );
}

#[test]
fn lock_serialises_publishes() {
    let mut r = Repo::new();
    r.publish(1);
    let lock = RepoLock::acquire(&r.root, Duration::from_secs(1)).unwrap();
    let out = r
        .publish_cmd(2, &NAMES)
        .args(["--lock-timeout", "300ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("another speediso-repo holds")
            && stderr(&out).contains(&format!("pid {}", std::process::id())),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        r.builds(),
        BTreeSet::from([1]),
        "a refused publish must not copy anything"
    );
    drop(lock);

    // Two publishes at once: both succeed, one after the other.
    let mut a = r.publish_cmd(2, &NAMES).spawn().unwrap();
    let mut b = r.publish_cmd(3, &NAMES).spawn().unwrap();
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let live = r.live();
    assert!(live == 2 || live == 3);
    assert_eq!(r.builds(), BTreeSet::from([1, 2, 3]));
    r.assert_serves(live, &NAMES);
    r.verify();
}

#[test]
fn names_owned_by_others_are_refused_and_dropped_names_go_away() {
    let mut r = Repo::new();
    fs::write(r.root.join("vmlinuz"), b"hand-placed").unwrap();
    let out = r.publish_cmd(1, &NAMES).output().unwrap();
    assert_fails(&out, "vmlinuz is a regular file; move it away");
    assert_eq!(fs::read(r.root.join("vmlinuz")).unwrap(), b"hand-placed");
    fs::remove_file(r.root.join("vmlinuz")).unwrap();
    r.publish(1);

    // Another job cannot take over a name.
    let p = r.inputs.join("1").join("vmlinuz");
    let out = r.publish_file("other", "1", &p);
    assert_fails(&out, "unversioned name of job \"speedtest\"");

    // A build without the ISO: its name disappears, nothing dangles; a
    // rollback brings it back.
    let out = r.publish_cmd(2, &NAMES[..3]).output().unwrap();
    assert_success(&out, "publish 2 without iso");
    assert!(fs::symlink_metadata(r.root.join("speedtest.iso")).is_err());
    assert!(fs::symlink_metadata(r.root.join(".live/speedtest.iso")).is_err());
    r.assert_no_dangling();
    r.assert_serves(2, &NAMES[..3]);
    assert_success(&r.rollback(None), "rollback");
    r.assert_serves(1, &NAMES);
    r.verify();

    // Bad names and arguments fail with a message naming them.
    let out = r.publish_file("../x", "3", &p);
    assert_says(&out, "job name \"../x\" is not valid");
    let out = r.publish_file(JOB, "3", Path::new("/nonexistent/vmlinuz"));
    assert_says(&out, "/nonexistent/vmlinuz");
    let out = r.cmd(&["list"]).env(CRASH_ENV, "bogus").output().unwrap();
    assert_says(&out, "not a crash point");
}
