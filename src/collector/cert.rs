//! Wipe certificates: the wipe step's `result` carries a `certificates`
//! array; each certificate is a JSON object with `public_key` (base64 of a
//! 32-byte Ed25519 key) and `signature` (base64 of the Ed25519 signature
//! over the canonical JSON of the object without `signature`: keys sorted,
//! no whitespace). The collector stores them as received and verifies on
//! read.

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Serialize;
use serde_json::Value;

/// Certificate ids usable in a URL path.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Canonical JSON: object keys sorted, no insignificant whitespace.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
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

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verification {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn b64(s: &str) -> Option<Vec<u8>> {
    let e = base64::engine::general_purpose::STANDARD;
    let u = base64::engine::general_purpose::URL_SAFE;
    let t = s.trim();
    e.decode(t).or_else(|_| u.decode(t)).ok().or_else(|| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(t.trim_end_matches('='))
            .ok()
    })
}

pub fn verify(cert: &Value) -> Verification {
    let fail = |e: &str| Verification {
        valid: false,
        error: Some(e.to_string()),
    };
    let Some(obj) = cert.as_object() else {
        return fail("certificate is not a JSON object");
    };
    let Some(sig) = obj.get("signature").and_then(Value::as_str) else {
        return fail("no signature");
    };
    let Some(pk) = obj.get("public_key").and_then(Value::as_str) else {
        return fail("no public_key");
    };
    let Some(sig) = b64(sig).and_then(|b| Signature::from_slice(&b).ok()) else {
        return fail("signature is not base64 of 64 bytes");
    };
    let Some(key) = b64(pk)
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
    else {
        return fail("public_key is not base64 of a 32-byte Ed25519 key");
    };
    let mut rest = obj.clone();
    rest.remove("signature");
    let msg = canonical(&Value::Object(rest));
    match key.verify(msg.as_bytes(), &sig) {
        Ok(()) => Verification {
            valid: true,
            error: None,
        },
        Err(_) => fail("signature does not match the certificate's contents"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signed(v: Value) -> Value {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let mut v = v;
        v["public_key"] = base64::engine::general_purpose::STANDARD
            .encode(sk.verifying_key().as_bytes())
            .into();
        let sig = sk.sign(canonical(&v).as_bytes());
        v["signature"] = base64::engine::general_purpose::STANDARD
            .encode(sig.to_bytes())
            .into();
        v
    }

    #[test]
    fn canonical_sorts_keys() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"z":0,"y":"é"}],"c":null}}"#).unwrap();
        assert_eq!(
            canonical(&v),
            r#"{"a":{"c":null,"d":[1,{"y":"é","z":0}]},"b":1}"#
        );
    }

    #[test]
    fn verify_good_and_tampered() {
        let c = signed(serde_json::json!({"id":"c1","device":{"serial":"S1"},"outcome":"success"}));
        assert!(verify(&c).valid);
        let mut t = c.clone();
        t["outcome"] = "failed".into();
        let v = verify(&t);
        assert!(!v.valid);
        assert!(v.error.unwrap().contains("does not match"));
        let mut n = c.clone();
        n.as_object_mut().unwrap().remove("signature");
        assert_eq!(verify(&n).error.as_deref(), Some("no signature"));
        assert!(valid_id("run-1:3.0"));
        assert!(!valid_id("a/b"));
    }
}
