//! Property tests: no input panics the command line parser or the planner,
//! and well-formed words survive a round trip.

use proptest::prelude::*;
use speediso::cmdline::parse;
use speediso::plan;
use speediso::tasks::Catalog;

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Arbitrary bytes (lossily decoded, as /proc/cmdline is read).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let line = String::from_utf8_lossy(&bytes);
        let c = parse(&line);
        let cat = Catalog::load(&[]);
        let _ = plan::build(plan::boot_task(None, &c), &c, &cat);
        let _ = plan::check_options(&c);
        for p in &c.params {
            prop_assert!(!p.key.contains(' ') || line.contains('"'));
        }
    }

    /// Lines made of kernel-ish tokens, quotes and `--` in odd places.
    #[test]
    fn structured_junk_never_panics(words in proptest::collection::vec(
        prop_oneof![
            Just("--".to_string()),
            Just("\"".to_string()),
            Just("=".to_string()),
            "[a-z.]{0,12}=[\"a-z0-9 =]{0,12}",
            "speediso\\.[a-z.]{0,12}=[^\\s]{0,16}",
            "systemd\\.setenv=SPEEDISO=[^\\s]{0,40}",
        ], 0..40)) {
        let line = words.join(" ");
        let c = parse(&line);
        let cat = Catalog::load(&[]);
        let _ = plan::build(plan::boot_task(None, &c), &c, &cat);
    }

    /// Unquoted `key=value` words come back exactly, in order.
    #[test]
    fn plain_words_round_trip(pairs in proptest::collection::vec(("[a-z][a-z0-9._]{0,10}", "[a-zA-Z0-9:/._,-]{0,20}"), 0..20)) {
        let line: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let c = parse(&line.join(" "));
        prop_assert_eq!(c.params.len(), pairs.len());
        for (p, (k, v)) in c.params.iter().zip(&pairs) {
            prop_assert_eq!(&p.key, k);
            prop_assert_eq!(p.value.as_deref(), Some(v.as_str()));
        }
    }
}

/// The binary itself on random command lines: it never crashes (exit code
/// is 0 or 2, JSON always printed).
#[test]
fn binary_survives_random_lines() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strat = "[ -~]{0,300}";
    for _ in 0..150 {
        let line = strat.new_tree(&mut runner).unwrap().current();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_speediso"))
            .args(["dispatch", "--dry-run", "--json", "--cmdline", &line])
            .env_remove("SPEEDISO")
            .output()
            .unwrap();
        let code = out.status.code();
        assert!(code == Some(0) || code == Some(2), "{line:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{line:?}: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // The exit status and the plan agree: a rejection always has a
        // reason; 2 is always a rejection; 0 is either a valid plan or
        // "no task given" (nothing to run is not an error for a boot).
        let rejected = v.get("rejected").expect("a rejected member");
        if !rejected.is_null() {
            assert!(
                rejected["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{line:?}: a rejection without a reason: {v}"
            );
        }
        if code == Some(2) {
            assert!(
                !rejected.is_null(),
                "{line:?}: exit 2 but nothing rejected: {v}"
            );
        } else {
            assert!(
                rejected.is_null() || rejected["value"].is_null(),
                "{line:?}: exit 0 but the task {} was rejected: {v}",
                rejected["value"]
            );
        }
    }
}
