//! `speediso ssh-keys install` as speediso-ssh-keys.service runs it, on a
//! temporary root (`--root`) with the kernel command line given by
//! `--cmdline`: real keys from ssh-keygen installed for root beside the
//! image's own, a bad one refused by name with nothing written, and the
//! plan refusing a malformed value like any other option.

use base64::Engine as _;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_speediso");

fn keygen(dir: &Path, name: &str, args: &[&str]) -> Option<String> {
    if !speediso_testsupport::have_tool("ssh-keygen", "apt install openssh-client") {
        return None;
    }
    let f = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name, "-f"])
        .arg(&f)
        .args(args)
        .status()
        .unwrap();
    assert!(st.success());
    Some(
        std::fs::read_to_string(format!("{}.pub", f.display()))
            .unwrap()
            .trim()
            .to_string(),
    )
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn speediso(root: &Path, cmdline: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--root")
        .arg(root)
        .arg("--cmdline")
        .arg(cmdline)
        .args(args)
        .output()
        .unwrap()
}

const BEGIN: &str = "# speediso.ssh_key: keys from the kernel command line (rewritten at boot by speediso ssh-keys install)";
const END: &str = "# speediso.ssh_key: end";

#[test]
fn keys_from_the_command_line_are_installed_for_root() {
    let keys = tempfile::tempdir().unwrap();
    let Some(a) = keygen(keys.path(), "ops-a", &["-t", "ed25519"]) else {
        return;
    };
    let b = keygen(keys.path(), "ops-b", &["-t", "rsa", "-b", "3072"]).unwrap();
    let c = keygen(keys.path(), "ops-c", &["-t", "ecdsa", "-b", "384"]).unwrap();
    let root = tempfile::tempdir().unwrap();
    let ssh = root.path().join("root/.ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("authorized_keys"), "# baked in by the build\n").unwrap();
    // Two values, one with two items; the option repeated.
    let line = format!(
        "quiet speediso.ssh_key={},{} ip=dhcp speediso.ssh_key={}",
        b64(&a),
        b64(&format!("{b}\n")),
        base64::engine::general_purpose::URL_SAFE.encode(&c)
    );
    let o = speediso(root.path(), &line, &["ssh-keys", "install"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("SSH key: ssh-ed25519 256 SHA256:"), "{out}");
    assert!(out.contains("SSH key: ssh-rsa 3072 SHA256:"), "{out}");
    assert!(
        out.contains("SSH key: ecdsa-sha2-nistp384 384 SHA256:"),
        "{out}"
    );
    assert!(
        out.contains(
            "3 key(s) from speediso.ssh_key= installed; 1 line(s) of the image's own kept"
        ),
        "{out}"
    );
    let want = format!("# baked in by the build\n{BEGIN}\n{a}\n{b}\n{c}\n{END}\n");
    let text = std::fs::read_to_string(ssh.join("authorized_keys")).unwrap();
    assert_eq!(text, want);
    // A rerun (the unit at the next boot of a persistent root) changes
    // nothing.
    let o = speediso(root.path(), &line, &["ssh-keys", "install"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("already installed"));
    assert_eq!(
        std::fs::read_to_string(ssh.join("authorized_keys")).unwrap(),
        want
    );
    // --check writes nothing, even with a different key.
    let o = speediso(
        root.path(),
        &format!("speediso.ssh_key={}", b64(&a)),
        &["ssh-keys", "install", "--check"],
    );
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("valid key: ssh-ed25519"));
    assert_eq!(
        std::fs::read_to_string(ssh.join("authorized_keys")).unwrap(),
        want
    );
}

#[test]
fn a_bad_key_installs_nothing_and_names_the_option() {
    let keys = tempfile::tempdir().unwrap();
    let Some(good) = keygen(keys.path(), "good", &["-t", "ed25519"]) else {
        return;
    };
    let weak = keygen(keys.path(), "weak", &["-t", "rsa", "-b", "1024"]).unwrap();
    let root = tempfile::tempdir().unwrap();
    for (value, why) in [
        (
            format!("{},{}", b64(&good), b64(&weak)),
            "item 2 of 2: line 1: ssh-rsa: an RSA key of 1024 bits; at least 2048 are required",
        ),
        ("bm90IGEga2V5".to_string(), "line 1: no key type: \"not\""),
        ("%%%".to_string(), "neither URL-safe base64"),
        (
            "https://keys.example.net/ops.pub".to_string(),
            "a URL needs #sha256=",
        ),
    ] {
        let line = format!("speediso.ssh_key={} speediso.ssh_key={value}", b64(&good));
        let o = speediso(root.path(), &line, &["ssh-keys", "install"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{value}: {err}");
        assert!(err.contains("speediso.ssh_key="), "{err}");
        assert!(err.contains(why), "{value}: {err}");
        assert!(err.contains("no SSH key installed"), "{err}");
        assert!(
            !root.path().join("root").exists(),
            "{value}: something was written"
        );
        // The boot's task is refused for it too, naming the option.
        let o = speediso(
            root.path(),
            &format!("speediso.task=rescue speediso.ssh_key={value}"),
            &["dispatch", "--dry-run", "--json"],
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(2), "{out}");
        assert!(out.contains("for speediso.ssh_key: "), "{out}");
    }
}

#[test]
fn no_option_no_change() {
    let root = tempfile::tempdir().unwrap();
    let o = speediso(root.path(), "quiet", &["ssh-keys", "install"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("no speediso.ssh_key= on the kernel command line"));
    assert!(!root.path().join("root").exists());
}
