//! `speediso bench cpu|memory|disk` run as a built binary: figures are
//! positive and consistent, disk jobs really write and read the target (a
//! file, a loop device this test creates), and write jobs refuse a block
//! device that is not a loop device. Not timed: speed is compared with
//! sysbench and fio by benches/speed.sh.

use serde_json::Value;
use speediso_testsupport::{output_ok, sized_file};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_speediso");

fn speediso(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("running speediso")
}

fn json_of(args: &[&str]) -> Value {
    let out = output_ok(Command::new(BIN).args(args));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "speediso {args:?}: bad JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

use loop_support::Loop;
use speediso_testsupport::loops as loop_support;

/// Is this test able to run here? Root and the named tools; when
/// SPEEDISO_REQUIRE_TOOLS=1 (CI) a missing one fails the test instead.
fn can_run(tools: &[&str]) -> bool {
    loop_support::ready("bench test", tools)
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

#[test]
fn cpu_figures_are_positive_and_scale() {
    let threads = std::thread::available_parallelism().unwrap().get() as f64;
    // The all-threads run must not be slower than one thread; a busy
    // machine can make one sample lie, so allow three tries.
    let mut last = Value::Null;
    for _ in 0..3 {
        let v = json_of(&["bench", "cpu", "--duration", "1s", "--json"]);
        assert_eq!(v["max_prime"], 10000);
        // pi(10000) = 1229 primes; sysbench's loop starts at 3.
        assert_eq!(v["primes_per_event"], 1228);
        assert_eq!(f(&v, &["threads"]), threads);
        let single = f(&v, &["events_per_second", "single"]);
        let all = f(&v, &["events_per_second", "all"]);
        assert!(single > 0.0 && all > 0.0, "{v}");
        let scaling = f(&v, &["scaling"]);
        assert!((scaling - all / single).abs() < 0.01, "{v}");
        for w in ["sha256", "deflate"] {
            assert!(f(&v, &[w, "mbps", "single"]) > 0.0, "{v}");
            assert!(f(&v, &[w, "mbps", "all"]) > 0.0, "{v}");
        }
        let ratio = f(&v, &["deflate_ratio"]);
        assert!(ratio > 0.1 && ratio < 0.9, "{v}");
        last = v;
        if all >= single * 0.95
            && f(&last, &["sha256", "mbps", "all"])
                >= f(&last, &["sha256", "mbps", "single"]) * 0.95
        {
            return;
        }
    }
    panic!("all-threads figures stayed below single-thread ones: {last}");
}

#[test]
fn memory_figures_and_pattern_check() {
    let v = json_of(&[
        "bench",
        "memory",
        "--duration",
        "1s",
        "--array-mib",
        "64",
        "--check-mib",
        "16",
        "--json",
    ]);
    for k in ["copy", "scale", "add", "triad"] {
        let mbps = f(&v, &["mbps", k]);
        // Above 100 MB/s and below 10 TB/s: anything else is a unit bug.
        assert!(mbps > 100.0 && mbps < 1e7, "{k}: {v}");
    }
    assert_eq!(f(&v, &["array_bytes"]), 64.0 * 1048576.0);
    assert!(f(&v, &["repetitions"]) >= 3.0);
    let lat = f(&v, &["latency_ns"]);
    assert!(lat > 1.0 && lat < 10_000.0, "{v}");
    assert_eq!(v["check"]["errors"], 0, "{v}");
    assert_eq!(f(&v, &["check", "bytes"]), 16.0 * 1048576.0);
    assert_eq!(v["check"]["patterns"].as_array().unwrap().len(), 6);
}

/// Checks shared by the file and loop device runs.
fn check_disk_report(v: &Value, kind: &str, verify_mib: u64) {
    assert_eq!(v["kind"], kind, "{v}");
    assert_eq!(v["direct"], true);
    for k in [
        "seq_read_mbps",
        "seq_write_mbps",
        "rand_read_iops",
        "rand_write_iops",
    ] {
        assert!(f(v, &[k]) > 0.0, "{k}: {v}");
    }
    let jobs = v["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 4);
    for j in jobs {
        let (bs, qd) = match j["job"].as_str().unwrap() {
            "seq_read" | "seq_write" => (1048576.0, 16.0),
            _ => (4096.0, 32.0),
        };
        assert_eq!(f(j, &["block_size"]), bs, "{j}");
        assert_eq!(f(j, &["queue_depth"]), qd, "{j}");
        assert_eq!(f(j, &["bytes"]), f(j, &["ios"]) * bs, "{j}");
        let (p50, p99) = (f(j, &["lat_p50_us"]), f(j, &["lat_p99_us"]));
        assert!(
            p50 > 0.0 && p99 >= p50 && f(j, &["lat_max_us"]) >= p99,
            "{j}"
        );
        // IOPS and MB/s describe the same transfers.
        let mbps = f(j, &["iops"]) * bs / 1e6;
        assert!((mbps - f(j, &["mbps"])).abs() <= 0.01 * mbps + 0.02, "{j}");
    }
    assert_eq!(v["latency_us"]["rand_read"]["p99"], {
        jobs.iter().find(|j| j["job"] == "rand_read").unwrap()["lat_p99_us"].clone()
    });
    assert_eq!(v["verify"]["errors"], 0, "{v}");
    assert_eq!(f(v, &["verify", "sectors"]), (verify_mib * 256) as f64);
}

/// The verify pass leaves checksummed sectors that name their own offset.
fn check_verify_sectors(bytes: &[u8]) {
    for sector in [0usize, 1, 255] {
        let at = sector * 4096;
        let off = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        assert_eq!(off, at as u64, "sector {sector} does not carry its offset");
    }
}

/// `bench disk --target target --duration 1s [extra]`.
fn bench_disk_args<'a>(target: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let head = ["bench", "disk", "--target", target, "--duration", "1s"];
    [&head[..], extra].concat()
}

/// `speediso bench disk --target target --duration 1s [extra] --json`.
fn bench_disk(target: &str, extra: &[&str]) -> Value {
    json_of(&[&bench_disk_args(target, extra)[..], &["--json"]].concat())
}

fn tmpdir() -> tempfile::TempDir {
    // Under target/: a real filesystem that supports O_DIRECT (tmpfs does not).
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

#[test]
fn disk_on_a_file() {
    let dir = tmpdir();
    let file = dir.path().join("target.img");
    let p = file.to_str().unwrap();
    let v = bench_disk(p, &["--size-mib", "64", "--verify", "--verify-mib", "4"]);
    check_disk_report(&v, "file", 4);
    assert_eq!(f(&v, &["size_bytes"]), 64.0 * 1048576.0);
    let md = std::fs::metadata(&file).unwrap();
    assert_eq!(md.len(), 64 << 20);
    // Laid out with real blocks, not a sparse file fio would not match.
    assert!(
        std::os::unix::fs::MetadataExt::blocks(&md) * 512 >= 64 << 20,
        "file is sparse"
    );
    check_verify_sectors(&std::fs::read(&file).unwrap()[..1 << 20]);
}

#[test]
fn disk_on_a_loop_device() {
    if !can_run(&["losetup"]) {
        return;
    }
    let dir = tmpdir();
    let img = dir.path().join("loop.img");
    sized_file(&img, 64 << 20);
    let lo = Loop::over(&img);
    let v = bench_disk(&lo.dev, &["--mode", "all", "--verify", "--verify-mib", "4"]);
    check_disk_report(&v, "loop", 4);
    assert_eq!(f(&v, &["size_bytes"]), 64.0 * 1048576.0);
    drop(lo);
    check_verify_sectors(&std::fs::read(&img).unwrap()[..1 << 20]);
}

#[test]
fn loop_device_defaults_to_read_only_jobs() {
    if !can_run(&["losetup"]) {
        return;
    }
    let dir = tmpdir();
    let img = dir.path().join("ro.img");
    std::fs::write(&img, vec![0x5au8; 8 << 20]).unwrap();
    let lo = Loop::over(&img);
    let v = bench_disk(&lo.dev, &[]);
    assert!(f(&v, &["seq_read_mbps"]) > 0.0 && f(&v, &["rand_read_iops"]) > 0.0);
    assert!(v["seq_write_mbps"].is_null() && v["rand_write_iops"].is_null());
    drop(lo);
    assert!(
        std::fs::read(&img).unwrap().iter().all(|&b| b == 0x5a),
        "a read-only run changed data"
    );
}

#[test]
fn write_jobs_refuse_a_block_device_that_is_not_a_loop() {
    if !can_run(&["mknod"]) {
        return;
    }
    // A block device node with major 240 (reserved for local use, no driver
    // behind it here): not a loop device, and if the guard ever failed,
    // opening it would fail with ENXIO instead of touching a real disk.
    let dir = tmpdir();
    let node = dir.path().join("fakedisk");
    let st = Command::new("mknod")
        .arg(&node)
        .args(["b", "240", "0"])
        .status()
        .unwrap();
    assert!(st.success());
    let p = node.to_str().unwrap();
    for extra in [
        &["--mode", "write"][..],
        &["--mode", "all"][..],
        &["--jobs", "rand_write"][..],
        &["--mode", "read", "--verify"][..],
        &["--mode", "write", "--confirm-destroy", "/dev/sdz"][..],
    ] {
        let out = speediso(&bench_disk_args(p, extra));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{extra:?}: {err}");
        assert!(err.contains("refusing write tests on"), "{extra:?}: {err}");
        assert!(err.contains("not a loop"), "{extra:?}: {err}");
        assert!(out.stdout.is_empty(), "{extra:?}: printed a result");
    }
}

#[test]
fn bench_modules_are_registered() {
    let out = speediso(&["tasks"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("speedtest"))
        .expect("speedtest task listed");
    for m in ["bench.cpu", "bench.memory", "bench.disk"] {
        assert!(line.contains(m), "{line}");
        assert!(
            !line.contains(&format!("{m} (unavailable)")),
            "{m} not registered: {line}"
        );
    }
}

#[test]
fn bench_steps_run_in_a_task() {
    // The same code as task steps: options come from the task file.
    let dir = tmpdir();
    let tasks = dir.path().join("tasks");
    std::fs::create_dir_all(&tasks).unwrap();
    let img = dir.path().join("step.img");
    std::fs::write(
        tasks.join("benchquick.toml"),
        format!(
            "name = 'benchquick'\ndescription = 'quick benches'\ntime_limit = '5m'\nafter = 'stay'\n\
             [[steps]]\nmodule = 'bench.cpu'\noptions = {{ duration = 1, threads = 1, workloads = false }}\n\
             [[steps]]\nmodule = 'bench.memory'\noptions = {{ duration = '1s', array_mib = 16 }}\n\
             [[steps]]\nmodule = 'bench.disk'\noptions = {{ target = '{}', size_mib = 16, duration = '1s', mode = 'all' }}\n",
            img.display()
        ),
    )
    .unwrap();
    let out = output_ok(
        Command::new(BIN)
            .args(["run", "benchquick", "--json", "--cmdline", ""])
            .arg("--tasks-dir")
            .arg(&tasks)
            .arg("--run-dir")
            .arg(dir.path().join("run")),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let results: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "result")
        .collect();
    assert_eq!(results.len(), 3, "{text}");
    let by = |step: &str| {
        results
            .iter()
            .find(|e| e["step"] == step)
            .unwrap_or_else(|| panic!("no result for {step}"))["data"]
            .clone()
    };
    let cpu = by("bench.cpu");
    assert_eq!(cpu["threads"], 1);
    assert!(cpu["sha256"].is_null(), "workloads = false: {cpu}");
    assert!(f(&cpu, &["events_per_second", "single"]) > 0.0);
    assert_eq!(f(&by("bench.memory"), &["array_bytes"]), 16.0 * 1048576.0);
    let disk = &by("bench.disk")["disks"][0];
    assert_eq!(disk["kind"], "file");
    assert!(f(disk, &["rand_write_iops"]) > 0.0, "{disk}");
    assert!(
        text.lines().any(|l| l.contains("\"type\":\"progress\"")),
        "no progress events"
    );
}
