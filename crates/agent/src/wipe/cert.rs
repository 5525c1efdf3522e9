//! Erasure certificates: one JSON document per disk with the fields of NIST
//! SP 800-88 Appendix G, signed with Ed25519 over its canonical JSON (see
//! docs/certificate.md), plus a self-contained HTML rendering.

use super::disk::DiskOutcome;
use crate::events::HostId;
use anyhow::{anyhow, bail, Context, Result};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The schema, canonical JSON, signing and verification are shared with
/// the collector (`speediso_proto::cert`); building, writing and rendering
/// a certificate stay here.
pub use speediso_proto::cert::{
    canonical, key_id, parse_public, parse_secret, sign, signed_bytes, verify, SCHEMA,
};

/// The signing key and where it came from (`file:PATH`, `url:URL` or
/// `generated`). The source goes into the signed body, so a certificate
/// signed by a throw-away key says so itself.
pub struct Key {
    pub key: SigningKey,
    pub source: String,
}

impl Key {
    /// The 64 hex digits of the public key.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// The signed `signer` member: which key, and where it came from.
    pub fn signer(&self) -> Value {
        json!({
            "public_key": self.public_hex(),
            "key_id": key_id(&self.key.verifying_key()),
            "source": self.source,
        })
    }
}

/// Who and what a certificate names besides the disk: NIST SP 800-88
/// Appendix G's people, organisation, asset and destination, and the tool
/// with the image and kernel it ran in.
#[derive(Debug, Clone, Default)]
pub struct Issuer {
    pub run_id: String,
    pub host: HostId,
    /// `speediso.wipe.operator=`: who performed the sanitization.
    pub performed_by: Option<String>,
    /// `speediso.wipe.validator=`: who validated it.
    pub validated_by: Option<String>,
    /// `speediso.wipe.organization=`.
    pub organization: Option<String>,
    /// `speediso.wipe.asset_tag=`, else the chassis asset tag from SMBIOS.
    pub asset_tag: Option<String>,
    /// `speediso.wipe.destination=`: reuse, resale, recycle, destroy, return.
    pub destination: Option<String>,
    /// The live image's build (`/etc/speediso-build`).
    pub image_build: Option<String>,
    /// The running kernel's release.
    pub kernel: Option<String>,
}

/// The make of a disk: the vendor field when it names one, else taken
/// from the model string the drive reports (sysfs says "ATA" for every
/// SATA disk, and NVMe has no vendor field at all).
pub fn media_make(vendor: Option<&str>, model: Option<&str>) -> Option<String> {
    let generic = |v: &str| {
        let v = v.trim();
        v.is_empty()
            || ["ATA", "SATA", "NVME", "SCSI", "USB", "GENERIC"]
                .contains(&v.to_ascii_uppercase().as_str())
    };
    if let Some(v) = vendor.filter(|v| !generic(v)) {
        return Some(v.trim().to_string());
    }
    let model = model?.trim();
    let upper = model.to_ascii_uppercase();
    // Prefixes drives put in their model string, longest match first.
    const MAKES: &[(&str, &str)] = &[
        ("WESTERN DIGITAL", "Western Digital"),
        ("WDC", "Western Digital"),
        ("WD_", "Western Digital"),
        ("WUH", "Western Digital (HGST)"),
        ("HGST", "HGST"),
        ("HITACHI", "Hitachi"),
        ("SAMSUNG", "Samsung"),
        ("MZ", "Samsung"),
        ("INTEL", "Intel"),
        ("SSDPE", "Intel"),
        ("SSDSC", "Intel"),
        ("SOLIDIGM", "Solidigm"),
        ("MICRON", "Micron"),
        ("CT", "Crucial"),
        ("CRUCIAL", "Crucial"),
        ("KINGSTON", "Kingston"),
        ("TOSHIBA", "Toshiba"),
        ("KIOXIA", "Kioxia"),
        ("SEAGATE", "Seagate"),
        ("ST", "Seagate"),
        ("SK HYNIX", "SK hynix"),
        ("HFS", "SK hynix"),
        ("SANDISK", "SanDisk"),
        ("QEMU", "QEMU"),
        ("VBOX", "VirtualBox"),
    ];
    for (prefix, make) in MAKES {
        if let Some(rest) = upper.strip_prefix(prefix) {
            // ST and CT only with a digit after (ST4000..., CT500...).
            if ["ST", "CT"].contains(prefix) && !rest.starts_with(|c: char| c.is_ascii_digit()) {
                continue;
            }
            return Some((*make).to_string());
        }
    }
    model.split_whitespace().next().map(str::to_string)
}

/// The key from `path`, or a fresh one for this run (its public half goes
/// into the result so the certificates can be checked).
pub fn load_or_generate(path: Option<&Path>) -> Result<Key> {
    if let Some(p) = path {
        let b = std::fs::read(p).with_context(|| format!("reading signing key {}", p.display()))?;
        let key = parse_secret(&b).with_context(|| format!("signing key {}", p.display()))?;
        return Ok(Key {
            key,
            source: format!("file:{}", p.display()),
        });
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| anyhow!("no randomness for a signing key: {e}"))?;
    Ok(Key {
        key: SigningKey::from_bytes(&seed),
        source: "generated".into(),
    })
}

/// Fetch the signing key from `cfg.base` with the host's bearer token,
/// over TLS with the report endpoint's trust. The key stays in this
/// process's memory: it is never written to disk, so an image on a mirror
/// holds no key, and a key server that checks tokens decides which hosts
/// may sign. Retried briefly; a 4xx answer is final.
pub fn fetch_key(cfg: &crate::report::Config) -> Result<Key> {
    use std::io::Read;
    let shown = crate::redact::text(&cfg.base).into_owned();
    // No redirects: one could lead the key to plain http, or elsewhere.
    let agent = crate::http::builder(&cfg.trust())?
        .redirects(0)
        .timeout_connect(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(20))
        .build();
    let mut last = String::new();
    for attempt in 0..4u32 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_secs(u64::from(attempt) * 2));
        }
        let mut req = agent.get(&cfg.base);
        if let Some(t) = &cfg.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        match req.call() {
            Ok(r) => {
                let mut body = Vec::new();
                r.into_reader()
                    .take(4096)
                    .read_to_end(&mut body)
                    .with_context(|| format!("reading the signing key from {shown}"))?;
                let key = parse_secret(&body)
                    .with_context(|| format!("the signing key served by {shown}"))?;
                return Ok(Key {
                    key,
                    source: format!("url:{shown}"),
                });
            }
            Err(ureq::Error::Status(code, _)) if (400..500).contains(&code) && code != 429 => {
                bail!("fetching the signing key from {shown}: the server answered {code}");
            }
            Err(e) => last = crate::redact::text(&e.to_string()).into_owned(),
        }
    }
    bail!("fetching the signing key from {shown}: {last}")
}

/// The NIST SP 800-88 category a certificate may claim: on a RAID logical
/// volume the physical drives were not reached, so a Clear at most, and
/// said to be logical.
pub fn category(m: super::Method, logical_volume: bool) -> &'static str {
    match m.category() {
        "Clear" | "Purge" if logical_volume => "Clear (logical)",
        c => c,
    }
}

pub(super) fn opt(s: &Option<String>) -> Value {
    s.as_ref()
        .map(|x| Value::String(x.clone()))
        .unwrap_or(Value::Null)
}

/// Build the unsigned certificate of one disk, signed by `key`. Only
/// integers, strings, booleans and null: no floats, so any language
/// canonicalises it alike.
pub fn build(o: &DiskOutcome, ctx: &Issuer, key: &Key) -> Value {
    let host = &ctx.host;
    let run_id = &ctx.run_id;
    let d = &o.disk;
    let errors: Vec<Value> = o
        .failed_ranges
        .iter()
        .map(|r| {
            json!({
                "op": r.op, "lba_start": r.lba_start, "lba_count": r.lba_count,
                "byte_offset": r.byte_offset, "byte_len": r.byte_len, "error": r.error,
            })
        })
        .collect();
    let v = &o.verify;
    json!({
        "schema": SCHEMA,
        "id": crate::events::new_run_id(),
        "run_id": run_id,
        "issued": crate::events::rfc3339_now(),
        "media": {
            "device_path": o.device,
            "make": media_make(d.vendor.as_deref(), d.model.as_deref()),
            "vendor_field": opt(&d.vendor),
            "model": opt(&d.model),
            "serial": opt(&d.serial),
            "wwn": opt(&d.wwn),
            "firmware": opt(&d.firmware),
            "size_bytes": d.size_bytes,
            "logical_block_size": d.logical_block_size,
            "media_type": d.media_type(),
            "transport": format!("{:?}", d.transport).to_lowercase(),
            "backing_file": opt(&d.backing_file),
            // HPA/DCO, or NVMe capacity outside the namespace (wipe::hidden).
            "hidden_area": serde_json::to_value(&o.hidden_area).unwrap_or(Value::Null),
        },
        "sanitization": {
            "category": category(o.method, o.logical_volume.is_some()),
            "physical_media_reached": o.logical_volume.is_none(),
            "controller": o.logical_volume.as_ref().map(|l| json!({
                "driver": l.controller.driver(),
                "pci_address": l.controller.pci_address,
                "scsi_host": l.controller.scsi_host,
                "scsi_address": l.controller.scsi_address,
                "logical_volume": l.evidence,
            })),
            "method": o.method.name(),
            "technique": o.method.technique(),
            "why": o.why,
            "passes": o.passes,
            "blank_after_firmware_erase": o.blank,
            "random_stream": o.seed.as_ref().map(|_| o.stream.as_ref().map_or(super::stream::Algorithm::ChaCha8, |s| s.algorithm).description()),
            // Absent (certificates before it): chacha8.
            "stream": o.stream.as_ref().filter(|_| o.seed.is_some()).map(|s| json!({
                "algorithm": s.algorithm.name(),
                "reason": s.reason,
            })),
            "seed": opt(&o.seed),
            "notes": o.notes,
            "tool": {
                "name": "speediso",
                "version": env!("CARGO_PKG_VERSION"),
                "image_build": opt(&ctx.image_build),
                "kernel": opt(&ctx.kernel),
            },
        },
        "verification": {
            "method": v.method,
            "expected": v.expected,
            "fraction": v.fraction.map(|f| format!("{f:.6}")),
            "bytes_read": v.bytes_read,
            "result": v.result,
            "mismatches": v.mismatches,
            "note": opt(&v.note),
            "throughput_bytes_per_s": v.throughput_bps as u64,
        },
        "timing": {
            "started": o.started,
            "finished": o.finished,
            "duration_ms": (o.duration_s * 1000.0) as u64,
            "bytes_written": o.bytes_written,
            "write_throughput_bytes_per_s": o.write_throughput_bps as u64,
        },
        "outcome": o.outcome,
        "error": opt(&o.error),
        "errors": errors,
        // What was on the disk before: [{where, type, label, uuid}].
        "contents_before": o.contents_before,
        "host": {
            "serial": opt(&host.serial),
            "uuid": opt(&host.uuid),
            "boot_mac": opt(&host.boot_mac),
            "hostname": opt(&host.hostname),
        },
        "attestation": {
            "performed_by": opt(&ctx.performed_by),
            "validated_by": opt(&ctx.validated_by),
            "organization": opt(&ctx.organization),
            "asset_tag": opt(&ctx.asset_tag),
            "post_sanitization_destination": opt(&ctx.destination),
        },
        "signer": key.signer(),
    })
}

pub(super) fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Write `<dir>/<serial or device>-<run>.json` and `.html`.
pub fn write(dir: &Path, cert: &Value) -> Result<(PathBuf, PathBuf)> {
    let media = &cert["media"];
    let who = media["serial"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| {
            media["device_path"]
                .as_str()
                .unwrap_or("disk")
                .trim_start_matches("/dev/")
                .to_string()
        });
    let run = cert["run_id"].as_str().unwrap_or("run");
    // The device name too: namespaces of one controller (and the paths of
    // one multipath LUN) share a serial.
    let dev = media["device_path"]
        .as_str()
        .unwrap_or("disk")
        .rsplit('/')
        .next()
        .unwrap_or("disk");
    let stem = if who.trim_start_matches("/dev/") == dev {
        format!(
            "{}-{}",
            safe_name(&who),
            safe_name(&run[..run.len().min(8)])
        )
    } else {
        format!(
            "{}-{}-{}",
            safe_name(&who),
            safe_name(dev),
            safe_name(&run[..run.len().min(8)])
        )
    };
    write_files(dir, &stem, cert, &html(cert))
}

/// `<dir>/<stem>.json` (pretty) and `<dir>/<stem>.html`: a disk's or the
/// server's certificate.
pub(super) fn write_files(
    dir: &Path,
    stem: &str,
    cert: &Value,
    html: &str,
) -> Result<(PathBuf, PathBuf)> {
    let json_path = dir.join(format!("{stem}.json"));
    let html_path = dir.join(format!("{stem}.html"));
    std::fs::write(&json_path, serde_json::to_string_pretty(cert)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&html_path, html).with_context(|| format!("writing {}", html_path.display()))?;
    Ok((json_path, html_path))
}

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => esc(s),
        Value::Array(a) if a.is_empty() => "none".into(),
        Value::Array(a) => a
            .iter()
            .map(|x| esc(&x.to_string()))
            .collect::<Vec<_>>()
            .join("<br>"),
        other => esc(&other.to_string()),
    }
}

/// A self-contained HTML page (inline CSS, no scripts, no external links).
pub fn html(cert: &Value) -> String {
    let ok = cert["outcome"] == "wiped";
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Certificate of Sanitization</title><style>\
         body{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}\
         table{border-collapse:collapse;width:100%;margin-bottom:1.2em}\
         th{text-align:left;width:30%;background:#f0f0f0}th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top}\
         .ok{color:#060}.bad{color:#a00}code{word-break:break-all}</style></head><body>\n",
    );
    s.push_str(&format!(
        "<h1>Certificate of Sanitization</h1>\n<p class=\"{}\"><b>Outcome: {}</b> — {} ({})</p>\n",
        if ok { "ok" } else { "bad" },
        cell(&cert["outcome"]),
        cell(&cert["sanitization"]["category"]),
        cell(&cert["sanitization"]["technique"]),
    ));
    let sections = [
        ("Media information", "media"),
        ("Sanitization details", "sanitization"),
        ("Verification", "verification"),
        ("Timing", "timing"),
        ("Host", "host"),
        ("Attestation", "attestation"),
        ("Signer", "signer"),
    ];
    for (title, key) in sections {
        s.push_str(&format!("<h2>{title}</h2>\n<table>\n"));
        if let Some(m) = cert[key].as_object() {
            for (k, v) in m {
                let v = if k == "tool" {
                    Value::String(format!(
                        "{} {}",
                        v["name"].as_str().unwrap_or(""),
                        v["version"].as_str().unwrap_or("")
                    ))
                } else {
                    v.clone()
                };
                s.push_str(&format!(
                    "<tr><th>{}</th><td>{}</td></tr>\n",
                    esc(&k.replace('_', " ")),
                    cell(&v)
                ));
            }
        }
        s.push_str("</table>\n");
    }
    s.push_str("<h2>Contents before sanitization</h2>\n<table>\n");
    match cert["contents_before"].as_array() {
        Some(c) if !c.is_empty() => {
            for e in c {
                let mut what = cell(&e["type"]);
                if let Some(l) = e["label"].as_str() {
                    what.push_str(&format!(" label &quot;{}&quot;", esc(l)));
                }
                if let Some(u) = e["uuid"].as_str() {
                    what.push_str(&format!(" uuid {}", esc(u)));
                }
                s.push_str(&format!(
                    "<tr><th>{}</th><td>{what}</td></tr>\n",
                    cell(&e["where"])
                ));
            }
        }
        _ => s.push_str("<tr><th>found</th><td>no signature</td></tr>\n"),
    }
    s.push_str("</table>\n");
    s.push_str("<h2>Errors</h2>\n<table>\n");
    s.push_str(&format!(
        "<tr><th>error</th><td>{}</td></tr>\n",
        cell(&cert["error"])
    ));
    s.push_str(&format!(
        "<tr><th>failed ranges</th><td>{}</td></tr>\n</table>\n",
        cell(&cert["errors"])
    ));
    s.push_str(&format!(
        "<h2>Signature</h2>\n<table>\n<tr><th>certificate id</th><td>{}</td></tr>\n<tr><th>run id</th><td>{}</td></tr>\n\
         <tr><th>algorithm</th><td>{}</td></tr>\n<tr><th>public key</th><td><code>{}</code></td></tr>\n\
         <tr><th>signature</th><td><code>{}</code></td></tr>\n</table>\n\
         <p>This page renders the signed JSON certificate; only the JSON is authoritative. \
         Check it with <code>speediso verify-cert FILE.json --pubkey KEY</code>.</p>\n</body></html>\n",
        cell(&cert["id"]),
        cell(&cert["run_id"]),
        cell(&cert["signature"]["algorithm"]),
        cell(&cert["signature"]["public_key"]),
        cell(&cert["signature"]["value"]),
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;

    #[test]
    fn canonical_sorts_keys_recursively() {
        let v = json!({"b": 1, "a": {"z": [3, {"y": "x\n\"", "c": null}], "m": true}});
        assert_eq!(
            canonical(&v),
            r#"{"a":{"m":true,"z":[3,{"c":null,"y":"x\n\""}]},"b":1}"#
        );
    }

    #[test]
    fn sign_verify_and_tamper() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let c = sign(json!({"outcome": "wiped", "media": {"serial": "S1"}}), &key);
        assert!(verify(&c, &key.verifying_key()).is_ok());
        let mut t = c.clone();
        t["media"]["serial"] = json!("S2");
        assert!(verify(&t, &key.verifying_key())
            .unwrap_err()
            .to_string()
            .contains("altered"));
        let other = SigningKey::from_bytes(&[1u8; 32]);
        assert!(verify(&c, &other.verifying_key()).is_err());
        // Re-ordering keys does not break the signature: it is over canonical JSON.
        let reparsed: Value =
            serde_json::from_str(&serde_json::to_string_pretty(&c).unwrap()).unwrap();
        assert!(verify(&reparsed, &key.verifying_key()).is_ok());
    }

    #[test]
    fn make_comes_from_the_model_when_sysfs_says_ata() {
        let cases = [
            (
                Some("ATA"),
                Some("Samsung SSD 870 EVO 1TB"),
                Some("Samsung"),
            ),
            (
                Some("ATA"),
                Some("WDC WD40EFRX-68N32N0"),
                Some("Western Digital"),
            ),
            (Some("ATA"), Some("ST4000NM0035-1V4107"), Some("Seagate")),
            (Some("ATA"), Some("QEMU HARDDISK"), Some("QEMU")),
            (None, Some("SAMSUNG MZVL2512HCJQ-00B00"), Some("Samsung")),
            (None, Some("INTEL SSDPE2KX040T8"), Some("Intel")),
            (None, Some("MZVL2512HCJQ-00B00"), Some("Samsung")),
            (None, Some("Micron_7450_MTFDKCC3T8TFR"), Some("Micron")),
            (Some("HGST    "), Some("HUH721212AL5200"), Some("HGST")),
            (Some("SEAGATE"), Some("ST8000NM0075"), Some("SEAGATE")),
            (None, Some("STORAGE THING"), Some("STORAGE")),
            (None, None, None),
        ];
        for (vendor, model, want) in cases {
            assert_eq!(
                media_make(vendor, model).as_deref(),
                want,
                "{vendor:?} {model:?}"
            );
        }
    }

    #[test]
    fn the_signer_named_in_the_body_must_be_the_one_that_signed() {
        let key = Key {
            key: SigningKey::from_bytes(&[5u8; 32]),
            source: "generated".into(),
        };
        let c = sign(
            json!({"outcome": "wiped", "signer": key.signer()}),
            &key.key,
        );
        assert!(verify(&c, &key.key.verifying_key()).is_ok());
        assert_eq!(c["signer"]["key_id"].as_str().unwrap().len(), 16);
        // Claiming a provisioned key in the body breaks the signature.
        let mut t = c.clone();
        t["signer"]["source"] = json!("file:/etc/speediso/wipe.key");
        assert!(verify(&t, &key.key.verifying_key()).is_err());
        // A body naming another signer, re-signed by this key, is refused.
        let other = SigningKey::from_bytes(&[6u8; 32]);
        let mut body = c.clone();
        body.as_object_mut().unwrap().remove("signature");
        body["signer"]["public_key"] = json!(hex::encode(other.verifying_key().to_bytes()));
        let forged = sign(body, &key.key);
        let e = verify(&forged, &key.key.verifying_key()).unwrap_err();
        assert!(e.to_string().contains("signer.public_key"), "{e}");
    }

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 §7.1 TEST 1: empty message.
        let sk: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = SigningKey::from_bytes(&sk);
        assert_eq!(
            hex::encode(key.verifying_key().to_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex::encode(key.sign(b"").to_bytes()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn key_file_forms() {
        let hexkey = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n";
        let a = parse_secret(hexkey.as_bytes()).unwrap();
        let b = parse_secret(&hex::decode(hexkey.trim()).unwrap()).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        assert!(parse_secret(b"short").is_err());
        assert!(
            parse_public("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .is_ok()
        );
    }
}
