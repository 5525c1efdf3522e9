//! The erasure certificate's schema name, its canonical JSON, and the
//! Ed25519 signature over it (docs/certificate.md): what the agent signs
//! with and the collector verifies with, so the two can never disagree on
//! the signed bytes.

use anyhow::{anyhow, bail, Context, Result};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{json, Value};

pub const SCHEMA: &str = "speediso.wipe.certificate/2";

/// The server's certificate (one per decommission, besides one per disk):
/// the same signature and `signer` member over a body that lists every
/// disk, the skipped ones and the machine's identity.
pub const SERVER_SCHEMA: &str = "speediso.wipe.server-certificate/1";

/// A short, stable name of a public key: the first 16 hex digits of the
/// SHA-256 of its 32 bytes (what operators compare and list).
pub fn key_id(key: &VerifyingKey) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(key.to_bytes())[..8])
}

/// Parse a key file: 32 raw bytes, or 64 hex digits (whitespace ignored).
pub fn parse_secret(bytes: &[u8]) -> Result<SigningKey> {
    let text: String = String::from_utf8_lossy(bytes).split_whitespace().collect();
    let seed: [u8; 32] = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(&text)?
            .try_into()
            .map_err(|_| anyhow!("bad key length"))?
    } else if bytes.len() == 32 {
        bytes.try_into().map_err(|_| anyhow!("bad key length"))?
    } else {
        bail!("expected 32 raw bytes or 64 hex digits (an Ed25519 secret seed)");
    };
    Ok(SigningKey::from_bytes(&seed))
}

/// Parse a public key: 64 hex digits, or a file holding them (or 32 raw bytes).
pub fn parse_public(arg: &str) -> Result<VerifyingKey> {
    let text = if arg.len() == 64 && arg.bytes().all(|b| b.is_ascii_hexdigit()) {
        arg.to_string()
    } else {
        let b = std::fs::read(arg).with_context(|| format!("reading public key {arg}"))?;
        if b.len() == 32 {
            hex::encode(&b)
        } else {
            String::from_utf8_lossy(&b).split_whitespace().collect()
        }
    };
    let bytes: [u8; 32] = hex::decode(&text)
        .map_err(|e| anyhow!("public key is not hex: {e}"))?
        .try_into()
        .map_err(|_| anyhow!("public key must be 32 bytes (64 hex digits)"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| anyhow!("invalid Ed25519 public key: {e}"))
}

/// Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace,
/// strings escaped as RFC 8259 requires (serde_json's escaping), numbers
/// as integers. Independent of serde_json's `preserve_order` feature.
pub fn canonical(v: &Value) -> String {
    let mut s = String::new();
    write_canonical(v, &mut s);
    s
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The bytes that are signed: the canonical JSON of the certificate
/// without its `signature` member.
pub fn signed_bytes(cert: &Value) -> Vec<u8> {
    let mut c = cert.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("signature");
    }
    canonical(&c).into_bytes()
}

/// Add the `signature` member.
pub fn sign(mut cert: Value, key: &SigningKey) -> Value {
    let sig: Signature = key.sign(&signed_bytes(&cert));
    cert["signature"] = json!({
        "algorithm": "ed25519",
        "public_key": hex::encode(key.verifying_key().to_bytes()),
        "value": hex::encode(sig.to_bytes()),
        "signed_bytes": "canonical JSON of this document without the signature member (docs/certificate.md)",
    });
    cert
}

/// Check a certificate against `key`. `Err` says what is wrong.
pub fn verify(cert: &Value, key: &VerifyingKey) -> Result<()> {
    let sig = cert
        .get("signature")
        .ok_or_else(|| anyhow!("no signature member"))?;
    if sig.get("algorithm").and_then(Value::as_str) != Some("ed25519") {
        bail!("signature algorithm is not ed25519");
    }
    let embedded = sig.get("public_key").and_then(Value::as_str).unwrap_or("");
    if embedded != hex::encode(key.to_bytes()) {
        bail!("certificate was signed by key {embedded}, not the one given");
    }
    // Schema 2 names its signer inside the signed body; the two must agree.
    if let Some(signer) = cert.get("signer") {
        let named = signer
            .get("public_key")
            .and_then(Value::as_str)
            .unwrap_or("");
        if named != embedded {
            bail!("the signed body's signer.public_key {named} is not the key that signed it ({embedded})");
        }
    }
    let value = sig
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("signature has no value"))?;
    let bytes = hex::decode(value).map_err(|e| anyhow!("signature is not hex: {e}"))?;
    let s = Signature::from_slice(&bytes).map_err(|e| anyhow!("malformed signature: {e}"))?;
    key.verify_strict(&signed_bytes(cert), &s)
        .map_err(|_| anyhow!("signature does not match the content: the certificate was altered or signed by another key"))
}
