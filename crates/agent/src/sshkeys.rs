//! SSH access from the boot line: `speediso.ssh_key=` carries root's
//! public keys, as URL-safe base64 of authorized_keys text (like
//! `speediso.ca=` carries PEM; several values comma-separated or the
//! option repeated) or as an http(s) URL pinned by `#sha256=<hex>`.
//! `speediso ssh-keys install` (speediso-ssh-keys.service, before sshd)
//! writes them into root's authorized_keys, between marker lines, keeping
//! whatever else the image holds there.
//!
//! A leaf: parsing and validation are pure (every key's wire-format blob is
//! read far enough to check its type and size); `fetch` and `install` are
//! the thin readers and writers. Nothing is installed unless every key
//! given is valid.

use crate::root::Root;
use anyhow::{bail, Context, Result};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::io::Write as _;
use std::time::Duration;

/// The kernel command line key, without `speediso.`.
pub const KEY: &str = "ssh_key";
/// Where root's keys go, under the root.
pub const AUTHORIZED_KEYS: &str = "/root/.ssh/authorized_keys";
/// The marker lines around what speediso wrote: a rerun replaces the block
/// and leaves every other line alone.
pub const BEGIN: &str = "# speediso.ssh_key: keys from the kernel command line (rewritten at boot by speediso ssh-keys install)";
pub const END: &str = "# speediso.ssh_key: end";
/// The most a URL may serve: authorized_keys text, not an image.
const MAX_FETCH: u64 = 256 * 1024;
/// The key types accepted, as authorized_keys names them.
pub const TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];
/// The least RSA modulus accepted, in bits (OpenSSH's own floor is 1024).
pub const RSA_MIN_BITS: u32 = 2048;

/// One validated public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The authorized_keys line as given (options, type, key, comment),
    /// trimmed.
    pub line: String,
    pub kind: String,
    pub bits: u32,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub comment: Option<String>,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.kind, self.bits, self.fingerprint)?;
        if let Some(c) = &self.comment {
            write!(f, " ({c})")?;
        }
        Ok(())
    }
}

/// One comma-separated item of an option value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// Keys given inline (base64 of authorized_keys text).
    Keys(Vec<Key>),
    /// Keys to fetch: the URL without its fragment, and the SHA-256 the
    /// served bytes must have.
    Url { url: String, sha256: String },
}

/// A wire-format blob: SSH `string`s and `mpint`s, length-prefixed.
struct Blob<'a>(&'a [u8]);

impl<'a> Blob<'a> {
    fn string(&mut self, what: &str) -> Result<&'a [u8], String> {
        let b = self.0;
        let len = b
            .get(..4)
            .map(|l| u32::from_be_bytes(l.try_into().unwrap()) as usize)
            .ok_or_else(|| format!("key data ends before its {what}"))?;
        let v = b
            .get(4..4 + len)
            .ok_or_else(|| format!("key data ends inside its {what} ({len} bytes declared)"))?;
        self.0 = &b[4 + len..];
        Ok(v)
    }
}

/// Check a key's blob against the type its line declares; the key's size
/// in bits.
pub fn check_blob(kind: &str, blob: &[u8]) -> Result<u32, String> {
    if blob.len() > 16 * 1024 {
        return Err(format!(
            "{} bytes of key data is not a public key",
            blob.len()
        ));
    }
    let mut b = Blob(blob);
    let inner = b.string("type")?;
    if inner != kind.as_bytes() {
        return Err(format!(
            "the key data is of type {:?}, not {kind}",
            String::from_utf8_lossy(inner)
        ));
    }
    let ec = |b: &mut Blob, curve: &str| -> Result<u32, String> {
        let name = b.string("curve name")?;
        if name != curve.as_bytes() {
            return Err(format!(
                "curve {:?} in a {kind} key",
                String::from_utf8_lossy(name)
            ));
        }
        let (bits, len) = match curve {
            "nistp256" => (256, 65),
            "nistp384" => (384, 97),
            _ => (521, 133),
        };
        let q = b.string("public point")?;
        if q.len() != len || q[0] != 4 {
            return Err(format!(
                "a {curve} public point of {} bytes (expected {len}, uncompressed)",
                q.len()
            ));
        }
        Ok(bits)
    };
    let bits = match kind {
        "ssh-ed25519" | "sk-ssh-ed25519@openssh.com" => {
            let pk = b.string("public key")?;
            if pk.len() != 32 {
                return Err(format!(
                    "an Ed25519 key of {} bytes (expected 32)",
                    pk.len()
                ));
            }
            256
        }
        "ecdsa-sha2-nistp256" | "sk-ecdsa-sha2-nistp256@openssh.com" => ec(&mut b, "nistp256")?,
        "ecdsa-sha2-nistp384" => ec(&mut b, "nistp384")?,
        "ecdsa-sha2-nistp521" => ec(&mut b, "nistp521")?,
        "ssh-rsa" => {
            let e = b.string("RSA exponent")?;
            let n = b.string("RSA modulus")?;
            fn strip(v: &[u8]) -> &[u8] {
                let i = v.iter().position(|&x| x != 0).unwrap_or(v.len());
                &v[i..]
            }
            let (e, n) = (strip(e), strip(n));
            if e.is_empty() || e.len() > 8 {
                return Err(format!("an RSA exponent of {} bytes", e.len()));
            }
            let bits = if n.is_empty() {
                0
            } else {
                (n.len() as u32 - 1) * 8 + (8 - n[0].leading_zeros())
            };
            if bits < RSA_MIN_BITS {
                return Err(format!(
                    "an RSA key of {bits} bits; at least {RSA_MIN_BITS} are required"
                ));
            }
            if bits > 16384 {
                return Err(format!("an RSA key of {bits} bits (at most 16384)"));
            }
            bits
        }
        _ => return Err(format!("unsupported key type {kind}")),
    };
    if kind.starts_with("sk-") {
        b.string("security key application")?;
    }
    if !b.0.is_empty() {
        return Err(format!("{} bytes after the key data", b.0.len()));
    }
    Ok(bits)
}

/// Words of an authorized_keys line, split on whitespace outside double
/// quotes (options like `from="a b"` are one word).
fn words(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match (c, start) {
            ('"', _) => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            (c, Some(s)) if c.is_whitespace() && !quoted => {
                out.push(&line[s..i]);
                start = None;
            }
            (c, None) if c.is_whitespace() => {}
            (_, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(&line[s..]);
    }
    out
}

/// Parse one authorized_keys line (`[options] type base64 [comment]`).
pub fn parse_line(line: &str) -> Result<Key, String> {
    let line = line.trim();
    let w = words(line);
    let known = |t: &str| TYPES.contains(&t) || t == "ssh-dss" || t.contains("-cert-v01@");
    let at = match w.as_slice() {
        [t, ..] if known(t) => 0,
        [_, t, _, ..] if known(t) => 1,
        [] => return Err("an empty line".into()),
        [t, ..] => {
            return Err(format!(
                "no key type: {:?} is not one of {}",
                t.chars().take(40).collect::<String>(),
                TYPES.join(", ")
            ))
        }
    };
    let kind = w[at];
    if kind == "ssh-dss" {
        return Err("ssh-dss (DSA) keys are refused: OpenSSH no longer accepts them".into());
    }
    if kind.contains("-cert-v01@") {
        return Err(format!(
            "{kind}: certificates are not accepted here; give the plain public key"
        ));
    }
    let b64 = w
        .get(at + 1)
        .ok_or_else(|| format!("{kind} without key data"))?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("{kind} key data is not base64: {e}"))?;
    let bits = check_blob(kind, &blob).map_err(|e| format!("{kind}: {e}"))?;
    let comment = (w.len() > at + 2).then(|| w[at + 2..].join(" "));
    Ok(Key {
        line: line.to_string(),
        kind: kind.to_string(),
        bits,
        fingerprint: format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(&blob))
        ),
        comment,
    })
}

/// Parse authorized_keys text: every line that is not blank or a comment
/// must be a valid key; at least one key.
pub fn parse_text(text: &str) -> Result<Vec<Key>, String> {
    let mut keys = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        keys.push(parse_line(t).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    if keys.is_empty() {
        return Err("no key in it".into());
    }
    Ok(keys)
}

/// Parse one option value: comma-separated items, each URL-safe base64
/// (padding optional) of authorized_keys text, or an http(s) URL with
/// `#sha256=<64 hex>`. `Err` says which item is wrong and why.
pub fn parse_value(v: &str) -> Result<Vec<Item>, String> {
    if v.trim().is_empty() {
        return Err("empty: expected URL-safe base64 of authorized_keys lines, or an https:// URL with #sha256=<hex>".into());
    }
    let items: Vec<&str> = v.split(',').collect();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let which = if items.len() > 1 {
            format!("item {} of {}: ", i + 1, items.len())
        } else {
            String::new()
        };
        out.push(parse_item(item.trim()).map_err(|e| format!("{which}{e}"))?);
    }
    Ok(out)
}

fn parse_item(item: &str) -> Result<Item, String> {
    if item.starts_with("http://") || item.starts_with("https://") {
        let (url, frag) = item
            .split_once('#')
            .ok_or("a URL needs #sha256=<64 hex digits> (the SHA-256 of the file it serves)")?;
        let sha = frag
            .strip_prefix("sha256=")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or("a URL needs #sha256=<64 hex digits> (the SHA-256 of the file it serves)")?;
        if crate::options::check_value(crate::options::Kind::HttpUrl, url).is_err() {
            return Err(format!("{url:?} is not an http(s) URL with a host"));
        }
        return Ok(Item::Url {
            url: url.to_string(),
            sha256: sha.to_ascii_lowercase(),
        });
    }
    if item.is_empty() {
        return Err("an empty item".into());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(item.trim_end_matches('='))
        .map_err(|_| {
            "neither URL-safe base64 of authorized_keys lines nor an http(s) URL".to_string()
        })?;
    let text = String::from_utf8(bytes).map_err(|_| "the decoded text is not UTF-8".to_string())?;
    Ok(Item::Keys(parse_text(&text)?))
}

/// What `options` checks a `speediso.ssh_key=` value with at plan time:
/// inline keys fully, URLs by their form.
pub fn check_value(v: &str) -> Result<(), String> {
    parse_value(v).map(|_| ())
}

/// How a value is shown in a message: the start of it.
fn shown(v: &str) -> String {
    if v.chars().count() > 48 {
        format!("{}…", v.chars().take(48).collect::<String>())
    } else {
        v.to_string()
    }
}

/// Every key of every `speediso.ssh_key=` value (in order; a URL is
/// fetched and checked). `Err` names the value and what is wrong with it.
pub fn gather(values: &[&str]) -> Result<Vec<Key>> {
    let mut keys: Vec<Key> = Vec::new();
    for v in values {
        let items =
            parse_value(v).map_err(|e| anyhow::anyhow!("speediso.{KEY}={}: {e}", shown(v)))?;
        for item in items {
            let got = match item {
                Item::Keys(k) => k,
                Item::Url { url, sha256 } => {
                    let text = fetch(&url, &sha256)
                        .with_context(|| format!("speediso.{KEY}={}", shown(v)))?;
                    parse_text(&text)
                        .map_err(|e| anyhow::anyhow!("speediso.{KEY}={}: {url}: {e}", shown(v)))?
                }
            };
            for k in got {
                if !keys.iter().any(|o| o.line == k.line) {
                    keys.push(k);
                }
            }
        }
    }
    Ok(keys)
}

/// GET `url` (bounded size, a few tries for a network still coming up)
/// and check its SHA-256.
pub fn fetch(url: &str, sha256: &str) -> Result<String> {
    let agent = crate::http::builder(&crate::http::Trust::System)?
        .timeout_connect(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build();
    let mut last = None;
    for attempt in 0..4u32 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(2 << attempt));
        }
        match agent.get(url).call() {
            Ok(r) => {
                let mut body = Vec::new();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(r.into_reader(), MAX_FETCH + 1),
                    &mut body,
                )
                .with_context(|| format!("reading {url}"))?;
                if body.len() as u64 > MAX_FETCH {
                    bail!("{url}: more than {MAX_FETCH} bytes: not an authorized_keys file");
                }
                let got = hex::encode(Sha256::digest(&body));
                if !got.eq_ignore_ascii_case(sha256) {
                    bail!("{url}: SHA-256 mismatch: expected {sha256}, got {got}");
                }
                return String::from_utf8(body).with_context(|| format!("{url}: not UTF-8 text"));
            }
            // The server answered: retrying will not change its mind.
            Err(ureq::Error::Status(code, r)) => {
                bail!("GET {url}: HTTP {code} {}", r.status_text())
            }
            Err(e) => last = Some(e),
        }
    }
    bail!(
        "GET {url}: {} (4 tries)",
        last.map(|e| e.to_string()).unwrap_or_default()
    )
}

/// authorized_keys text with `keys` as speediso's block: every line
/// outside an earlier block kept as it was, the block replaced (removed
/// when `keys` is empty).
pub fn merge(existing: &str, keys: &[Key]) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in existing.lines() {
        match l.trim() {
            t if t == BEGIN => inside = true,
            t if t == END && inside => inside = false,
            _ if inside => {}
            _ => {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    if !keys.is_empty() {
        out.push_str(BEGIN);
        out.push('\n');
        for k in keys {
            out.push_str(&k.line);
            out.push('\n');
        }
        out.push_str(END);
        out.push('\n');
    }
    out
}

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub path: std::path::PathBuf,
    /// Lines of the file that speediso did not write, kept.
    pub kept: usize,
    /// False when the file already held exactly this.
    pub changed: bool,
}

/// Write `keys` into root's authorized_keys under `root`: /root/.ssh
/// 0700, the file 0600, written to a temporary file and renamed over the
/// old one, so sshd never reads half a file.
pub fn install(root: &Root, keys: &[Key]) -> Result<Installed> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let path = root.at(AUTHORIZED_KEYS);
    let dir = path.parent().context("authorized_keys has no directory")?;
    let existing = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let text = merge(&existing, keys);
    let kept = merge(&existing, &[])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    if text == existing {
        return Ok(Installed {
            path,
            kept,
            changed: false,
        });
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", dir.display()))?;
    let tmp = dir.join(format!(".authorized_keys.speediso-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(Installed {
        path,
        kept,
        changed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// `ssh-keygen -t TYPE [-b BITS]` in `dir`: (public key line, the
    /// fingerprint ssh-keygen prints). `None` without ssh-keygen.
    fn keygen(dir: &std::path::Path, kind: &str, bits: Option<&str>) -> Option<(String, String)> {
        if !speediso_testsupport::have_tool("ssh-keygen", "apt install openssh-client") {
            return None;
        }
        let f = dir.join(format!("k-{kind}-{}", bits.unwrap_or("d")));
        let mut c = Command::new("ssh-keygen");
        c.args([
            "-q",
            "-N",
            "",
            "-C",
            &format!("test {kind}"),
            "-t",
            kind,
            "-f",
        ])
        .arg(&f);
        if let Some(b) = bits {
            c.args(["-b", b]);
        }
        assert!(c.status().unwrap().success(), "ssh-keygen -t {kind}");
        let line = std::fs::read_to_string(f.with_extension("pub"))
            .or_else(|_| std::fs::read_to_string(format!("{}.pub", f.display())))
            .unwrap();
        let fp = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(format!("{}.pub", f.display()))
            .output()
            .unwrap();
        let fp = String::from_utf8(fp.stdout).unwrap();
        let fp = fp.split_whitespace().nth(1).unwrap().to_string();
        Some((line.trim().to_string(), fp))
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn real_keys_of_every_type_are_accepted_with_ssh_keygens_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        for (kind, bits, want_kind, want_bits) in [
            ("ed25519", None, "ssh-ed25519", 256),
            ("ecdsa", Some("256"), "ecdsa-sha2-nistp256", 256),
            ("ecdsa", Some("384"), "ecdsa-sha2-nistp384", 384),
            ("ecdsa", Some("521"), "ecdsa-sha2-nistp521", 521),
            ("rsa", Some("2048"), "ssh-rsa", 2048),
            ("rsa", Some("3072"), "ssh-rsa", 3072),
        ] {
            let Some((line, fp)) = keygen(dir.path(), kind, bits) else {
                return;
            };
            let k = parse_line(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!((k.kind.as_str(), k.bits), (want_kind, want_bits), "{line}");
            assert_eq!(k.fingerprint, fp, "{line}");
            assert_eq!(k.comment.as_deref(), Some(format!("test {kind}").as_str()));
            // Through the option value, padded or not.
            let v = b64(&format!("{line}\n"));
            assert_eq!(parse_value(&v).unwrap(), vec![Item::Keys(vec![k.clone()])]);
            let padded = base64::engine::general_purpose::URL_SAFE.encode(&line);
            assert_eq!(parse_value(&padded).unwrap(), vec![Item::Keys(vec![k])]);
        }
    }

    #[test]
    fn weak_wrong_and_garbage_keys_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let Some((rsa1024, _)) = keygen(dir.path(), "rsa", Some("1024")) else {
            return;
        };
        let e = parse_line(&rsa1024).unwrap_err();
        assert_eq!(
            e,
            "ssh-rsa: an RSA key of 1024 bits; at least 2048 are required"
        );
        let (ed, _) = keygen(dir.path(), "ed25519", None).unwrap();
        let data = ed.split_whitespace().nth(1).unwrap();
        // An Ed25519 blob labelled as another type.
        let e = parse_line(&format!("ssh-rsa {data} x")).unwrap_err();
        assert!(
            e.contains("the key data is of type \"ssh-ed25519\", not ssh-rsa"),
            "{e}"
        );
        let e = parse_line(&format!("ecdsa-sha2-nistp256 {data}")).unwrap_err();
        assert!(e.contains("not ecdsa-sha2-nistp256"), "{e}");
        // Truncated and extended blobs.
        let blob = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        let enc = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let e = parse_line(&format!("ssh-ed25519 {}", enc(&blob[..blob.len() - 1]))).unwrap_err();
        assert!(e.contains("ends inside its public key"), "{e}");
        let mut long = blob.clone();
        long.push(0);
        let e = parse_line(&format!("ssh-ed25519 {}", enc(&long))).unwrap_err();
        assert!(e.contains("1 bytes after the key data"), "{e}");
        let mut huge = blob[..19].to_vec();
        huge.extend(u32::MAX.to_be_bytes());
        let e = parse_line(&format!("ssh-ed25519 {}", enc(&huge))).unwrap_err();
        assert!(e.contains("ends inside"), "{e}");
        for (line, want) in [
            ("ssh-ed25519 not*base64", "not base64"),
            ("ssh-ed25519", "without key data"),
            ("hello world", "no key type"),
            ("ssh-dss AAAAB3NzaC1kc3M=", "DSA"),
            ("ssh-ed25519-cert-v01@openssh.com AAAA", "certificates"),
            ("ssh-foo AAAA c", "no key type"),
        ] {
            let e = parse_line(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
        // Values: garbage, empty, a comment only, a bad item among good.
        let e = parse_value("not*base64").unwrap_err();
        assert!(e.contains("neither URL-safe base64"), "{e}");
        assert!(parse_value("").unwrap_err().starts_with("empty"));
        assert_eq!(
            parse_value(&b64("# nothing\n")).unwrap_err(),
            "no key in it"
        );
        let e = parse_value(&format!("{},{}", b64(&ed), b64(&rsa1024))).unwrap_err();
        assert!(
            e.starts_with("item 2 of 2: line 1: ssh-rsa: an RSA key of 1024 bits"),
            "{e}"
        );
        let e = parse_value(&b64(&format!("{ed}\njunk here\n"))).unwrap_err();
        assert!(e.starts_with("line 2: no key type"), "{e}");
        for _ in 0..200 {
            let mut g = [0u8; 64];
            getrandom::getrandom(&mut g).unwrap();
            assert!(check_blob("ssh-ed25519", &g).is_err());
            let _ = parse_value(&b64(&String::from_utf8_lossy(&g)));
        }
    }

    #[test]
    fn options_and_several_keys_and_urls() {
        let dir = tempfile::tempdir().unwrap();
        let Some((a, _)) = keygen(dir.path(), "ed25519", None) else {
            return;
        };
        let (b, _) = keygen(dir.path(), "ecdsa", Some("256")).unwrap();
        let with_opts = format!("from=\"10.0.0.0/8, 192.0.2.1\",no-pty {b}");
        let k = parse_line(&with_opts).unwrap();
        assert_eq!(k.kind, "ecdsa-sha2-nistp256");
        assert_eq!(k.line, with_opts);
        // Two lines in one item, and two items.
        let one = parse_value(&b64(&format!("{a}\n\n# ops\n{b}\n"))).unwrap();
        let two = parse_value(&format!("{},{}", b64(&a), b64(&b))).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(two.len(), 2);
        let sha = "ab".repeat(32);
        assert_eq!(
            parse_value(&format!("https://keys.example.net/ops.pub#sha256={sha}")).unwrap(),
            vec![Item::Url {
                url: "https://keys.example.net/ops.pub".into(),
                sha256: sha.clone()
            }]
        );
        for bad in [
            "https://keys.example.net/ops.pub",
            "https://keys.example.net/ops.pub#sha256=abc",
            "https://#sha256=0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(parse_value(bad).is_err(), "{bad}");
        }
    }

    /// A one-shot HTTP server on 127.0.0.1 serving `body`.
    fn serve(body: &'static str) -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().take(2) {
                let mut s = s.unwrap();
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut s, &mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://127.0.0.1:{port}/keys")
    }

    #[test]
    fn a_url_is_fetched_and_checked_against_its_sha256() {
        const KEYS: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFLnLPxO60IydHhlqu1WyotcOu7Iq0+HwrvLEK+Wxdrd sample\n";
        let url = serve(KEYS);
        let good = hex::encode(Sha256::digest(KEYS));
        let keys = gather(&[&format!("{url}#sha256={good}")]).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].comment.as_deref(), Some("sample"));
        let e = gather(&[&format!("{url}#sha256={}", "0".repeat(64))]).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("SHA-256 mismatch"), "{e}");
        assert!(e.starts_with("speediso.ssh_key=http://127.0.0.1:"), "{e}");
    }

    fn key(line: &str) -> Key {
        parse_line(line).unwrap()
    }

    #[test]
    fn install_keeps_the_images_lines_and_is_idempotent() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(tmp.path());
        let a = key(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFLnLPxO60IydHhlqu1WyotcOu7Iq0+HwrvLEK+Wxdrd a@x",
        );
        // No file yet: made, with the modes sshd's StrictModes wants.
        let r = install(&root, std::slice::from_ref(&a)).unwrap();
        assert!(r.changed);
        assert_eq!(r.kept, 0);
        let path = tmp.path().join("root/.ssh/authorized_keys");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{BEGIN}\n{}\n{END}\n", a.line)
        );
        // A baked-in key: kept, ours replaced, twice the same result.
        std::fs::write(
            &path,
            format!("ssh-ed25519 AAAA baked\n{BEGIN}\nold line\n{END}\n# site\n"),
        )
        .unwrap();
        let r = install(&root, std::slice::from_ref(&a)).unwrap();
        assert_eq!((r.changed, r.kept), (true, 2));
        let once = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            once,
            format!(
                "ssh-ed25519 AAAA baked\n# site\n{BEGIN}\n{}\n{END}\n",
                a.line
            )
        );
        let r = install(&root, std::slice::from_ref(&a)).unwrap();
        assert!(!r.changed);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), once);
        // No temporary file left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        // No keys: our block goes, the rest stays.
        install(&root, &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "ssh-ed25519 AAAA baked\n# site\n"
        );
        // Nothing to do on a root without the file: nothing made.
        let empty = tempfile::tempdir().unwrap();
        let r = install(&Root::new(empty.path()), &[]).unwrap();
        assert!(!r.changed);
        assert!(!empty.path().join("root").exists());
    }
}
