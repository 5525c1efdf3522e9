//! Wipe certificates as the collector sees them: the wipe step's `result`
//! carries the signed certificates in `certificates` (checked at ingest to
//! be about the event's run and host); the collector stores them as
//! received and verifies on read with the wipe module's own verification
//! (docs/certificate.md), so signer and verifier cannot drift. Whether a
//! valid signature is worth anything is the trusted signers list's say.

use super::tokens::{config_lines, read_config};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Certificate ids usable in a URL path.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// `--trusted-signers FILE`: one Ed25519 public key per line, `<64 hex>
/// [name...]`; `#` starts a comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedSigners {
    /// Lowercase hex key → name (empty when none was given).
    pub keys: BTreeMap<String, String>,
}

impl TrustedSigners {
    pub fn load(path: &Path) -> Result<TrustedSigners> {
        let text = read_config(path)?;
        Self::parse(&text).with_context(|| format!("in trusted signers file {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<TrustedSigners> {
        let mut keys = BTreeMap::new();
        for (n, line) in config_lines(text) {
            let (key, name) = line
                .split_once(char::is_whitespace)
                .map(|(k, n)| (k, n.trim()))
                .unwrap_or((line, ""));
            if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "line {n}: expected <64 hex digits of an Ed25519 public key> [name], got {:?}",
                    key.chars().take(80).collect::<String>()
                );
            }
            parse_hex_key(key).with_context(|| format!("line {n}"))?;
            keys.insert(key.to_ascii_lowercase(), name.to_string());
        }
        Ok(TrustedSigners { keys })
    }
}

/// `trust`: what a certificate's signature is worth.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Valid, and the key is in the trusted signers list.
    Trusted,
    /// Valid, but the key is not listed (or no list is configured):
    /// anyone can make such a certificate.
    Untrusted,
    /// The signature does not match the content (or is malformed).
    Invalid,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verification {
    /// The signature matches the content (says nothing about who signed).
    pub valid: bool,
    pub trust: Trust,
    /// The public key (hex) the certificate says signed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// First 16 hex digits of the SHA-256 of the key's 32 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// `signer.source` (`file:PATH`, `url:URL`, `generated`): where the
    /// agent got the key, as the signer says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_source: Option<String>,
    /// The name the trusted signers list gives the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer_name: Option<String>,
    /// Why an otherwise valid certificate is not trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_note: Option<String>,
    /// Anything else worth knowing (an older schema).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub const SCHEMA_V1: &str = "speediso.wipe.certificate/1";
pub const SCHEMA_V2: &str = "speediso.wipe.certificate/2";

/// The key id of a hex public key: first 16 hex digits of SHA-256 of its
/// 32 bytes.
pub fn key_id(public_hex: &str) -> Option<String> {
    use sha2::Digest;
    let bytes = hex::decode(public_hex).ok().filter(|b| b.len() == 32)?;
    Some(hex::encode(&sha2::Sha256::digest(&bytes)[..8]))
}

/// A 64-hex public key; never a path (`wipe::cert::parse_public` reads a
/// file for anything else, which the collector must not do on a
/// certificate's say).
fn parse_hex_key(s: &str) -> Result<ed25519_dalek::VerifyingKey> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "public_key {:?} is not 64 hex digits",
            s.chars().take(80).collect::<String>()
        );
    }
    speediso_proto::cert::parse_public(s)
}

/// Check a certificate's signature against the key it names, that key
/// against `signer` (schema /2), and the key against the trusted list.
pub fn verify(cert: &Value, trusted: Option<&TrustedSigners>) -> Verification {
    let embedded = cert
        .get("signature")
        .and_then(|s| s.get("public_key"))
        .and_then(Value::as_str);
    let signer = cert.get("signer");
    let mut v = Verification {
        valid: false,
        trust: Trust::Invalid,
        signed_by: embedded.map(str::to_string),
        key_id: embedded.and_then(key_id),
        key_source: signer
            .and_then(|s| s.get("source"))
            .and_then(Value::as_str)
            .map(str::to_string),
        signer_name: None,
        trust_note: None,
        note: None,
        error: None,
    };
    let res = embedded
        .ok_or_else(|| anyhow::anyhow!("no signature with a public_key"))
        .and_then(parse_hex_key)
        .and_then(|key| speediso_proto::cert::verify(cert, &key))
        .and_then(|()| check_signer(cert, embedded.unwrap_or(""), v.key_id.as_deref()));
    match res {
        Ok(note) => v.note = note,
        Err(e) => {
            v.error = Some(format!("{e:#}"));
            return v;
        }
    }
    v.valid = true;
    let key = embedded.unwrap_or("").to_ascii_lowercase();
    match trusted {
        None => {
            v.trust = Trust::Untrusted;
            v.trust_note = Some(
                "no trusted signers list is configured (--trusted-signers): \
                 anyone can sign a valid certificate"
                    .into(),
            );
        }
        Some(t) => match t.keys.get(&key) {
            Some(name) => {
                v.trust = Trust::Trusted;
                v.signer_name = Some(name.clone()).filter(|n| !n.is_empty());
            }
            None => {
                v.trust = Trust::Untrusted;
                v.trust_note = Some("the signing key is not in the trusted signers list".into());
            }
        },
    }
    v
}

/// The signed `signer` member (schema /2) must name the key that signed;
/// schema /1 has none (`Ok(Some(note))`).
fn check_signer(cert: &Value, embedded: &str, kid: Option<&str>) -> Result<Option<String>> {
    let schema = cert.get("schema").and_then(Value::as_str);
    let Some(signer) = cert.get("signer") else {
        if schema == Some(SCHEMA_V2) || schema == Some(speediso_proto::cert::SERVER_SCHEMA) {
            bail!(
                "schema {} certificate without a signer member",
                schema.unwrap_or("")
            );
        }
        return Ok(Some(format!(
            "schema {} certificate: no signer member, so the key's source is not recorded",
            schema.unwrap_or("(none)")
        )));
    };
    let pk = signer.get("public_key").and_then(Value::as_str);
    if !pk.is_some_and(|pk| pk.eq_ignore_ascii_case(embedded)) {
        bail!(
            "signer.public_key {} is not the key that signed ({embedded})",
            pk.unwrap_or("(none)")
        );
    }
    if let Some(id) = signer.get("key_id") {
        if id.as_str().map(str::to_ascii_lowercase).as_deref() != kid {
            bail!(
                "signer.key_id {id} is not the key id of {embedded} ({})",
                kid.unwrap_or("?")
            );
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sk() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
    }

    fn public() -> String {
        hex::encode(sk().verifying_key().to_bytes())
    }

    /// Another valid public key.
    fn public_n(n: u8) -> String {
        hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[n; 32])
                .verifying_key()
                .to_bytes(),
        )
    }

    fn signed(v: Value) -> Value {
        speediso_proto::cert::sign(v, &sk())
    }

    fn v2(signer_key: &str) -> Value {
        signed(json!({
            "schema": SCHEMA_V2, "id": "c2", "outcome": "wiped",
            "signer": {"public_key": signer_key, "key_id": key_id(signer_key), "source": "file:/etc/speediso/wipe.key"},
        }))
    }

    #[test]
    fn verify_good_and_tampered() {
        let c = signed(json!({"id":"c1","device":{"serial":"S1"},"outcome":"success"}));
        let v = verify(&c, None);
        assert!(v.valid);
        assert_eq!(v.trust, Trust::Untrusted);
        assert!(v.trust_note.unwrap().contains("no trusted signers list"));
        assert!(v.note.unwrap().contains("no signer member"));
        let mut t = c.clone();
        t["outcome"] = "failed".into();
        let v = verify(&t, None);
        assert!(!v.valid);
        assert_eq!(v.trust, Trust::Invalid);
        assert!(v.error.unwrap().contains("does not match"), "{t}");
        let mut n = c.clone();
        n.as_object_mut().unwrap().remove("signature");
        assert!(verify(&n, None).error.unwrap().contains("no signature"));
        // The embedded key is never taken for a path to read.
        let mut p = c.clone();
        p["signature"]["public_key"] = "/etc/passwd".into();
        assert!(verify(&p, None)
            .error
            .unwrap()
            .contains("not 64 hex digits"));
        assert!(valid_id("run-1:3.0"));
        assert!(!valid_id("a/b"));
    }

    #[test]
    fn signer_must_be_the_signing_key_and_trust_needs_the_list() {
        let listed =
            TrustedSigners::parse(&format!("# wipe keys\n{} lab wipe key\n", public())).unwrap();
        let other = TrustedSigners::parse(&format!("{}\n", public_n(1))).unwrap();
        let c = v2(&public());
        let v = verify(&c, Some(&listed));
        assert_eq!((v.valid, v.trust), (true, Trust::Trusted), "{v:?}");
        assert_eq!(v.signer_name.as_deref(), Some("lab wipe key"));
        assert_eq!(v.key_source.as_deref(), Some("file:/etc/speediso/wipe.key"));
        assert_eq!(v.key_id, key_id(&public()));
        assert!(v.note.is_none() && v.trust_note.is_none());
        let v = verify(&c, Some(&other));
        assert_eq!((v.valid, v.trust), (true, Trust::Untrusted));
        assert!(v
            .trust_note
            .unwrap()
            .contains("not in the trusted signers list"));
        // A signer naming another key than the one that signed: invalid,
        // even though the signature itself matches.
        let liar = v2(&public_n(2));
        let v = verify(&liar, Some(&listed));
        assert_eq!((v.valid, v.trust), (false, Trust::Invalid));
        assert!(v.error.unwrap().contains("signer.public_key"), "{liar}");
        // Schema /2 without signer: invalid.
        let bare = signed(json!({"schema": SCHEMA_V2, "id": "c3"}));
        assert!(!verify(&bare, Some(&listed)).valid);
        // The server's certificate: the same rules.
        let server = |signer: Option<&str>| {
            let mut b = json!({
                "schema": speediso_proto::cert::SERVER_SCHEMA, "id": "s1", "outcome": "failed",
                "disks": [{"device_path": "/dev/sda", "outcome": "wiped"}],
                "skipped": [{"device_path": "/dev/sdb", "class": "blocking", "reasons": ["held"]}],
            });
            if let Some(k) = signer {
                b["signer"] = json!({"public_key": k, "key_id": key_id(k), "source": "generated"});
            }
            signed(b)
        };
        let v = verify(&server(Some(&public())), Some(&listed));
        assert_eq!((v.valid, v.trust), (true, Trust::Trusted), "{v:?}");
        let mut forged = server(Some(&public()));
        forged["outcome"] = "wiped".into();
        assert!(!verify(&forged, Some(&listed)).valid);
        let v = verify(&server(None), Some(&listed));
        assert!(!v.valid);
        assert!(v
            .error
            .unwrap()
            .contains("server-certificate/1 certificate without a signer"));
        // Schema /1 from a listed key: trusted, with the note.
        let old = signed(json!({"schema": SCHEMA_V1, "id": "c4"}));
        let v = verify(&old, Some(&listed));
        assert_eq!(v.trust, Trust::Trusted);
        assert!(v.note.unwrap().contains(SCHEMA_V1));
    }

    #[test]
    fn trusted_signers_file() {
        let t = TrustedSigners::parse(&format!(
            "# c\n\n{}  # tail\n{} second key\n",
            public_n(1).to_ascii_uppercase(),
            public()
        ))
        .unwrap();
        assert_eq!(t.keys.len(), 2);
        assert_eq!(t.keys[public_n(1).as_str()], "");
        assert_eq!(t.keys[public().as_str()], "second key");
        for bad in [
            "abc\n",
            &format!("{}z\n", "a".repeat(63)),
            "not-a-key name\n",
        ] {
            let e = format!(
                "{:#}",
                TrustedSigners::parse(&format!("# ok\n{bad}")).unwrap_err()
            );
            assert!(e.starts_with("line 2: expected <64 hex"), "{bad}: {e}");
        }
        assert!(TrustedSigners::parse("# none\n").unwrap().keys.is_empty());
    }
}
