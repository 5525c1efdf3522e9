//! Wipe certificates as the collector sees them: the wipe step's `result`
//! carries the signed certificates in `certificates`; the collector stores
//! them as received and verifies on read with the wipe module's own
//! verification (docs/certificate.md), so signer and verifier cannot drift.

use serde::Serialize;
use serde_json::Value;

/// Certificate ids usable in a URL path.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verification {
    pub valid: bool,
    /// The public key (hex) the certificate says signed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Check a certificate's signature against the key it names. The format
/// and the signed bytes are the wipe module's (docs/certificate.md); the
/// operator compares `signed_by` with the key baked into the image.
pub fn verify(cert: &Value) -> Verification {
    let embedded = cert
        .get("signature")
        .and_then(|s| s.get("public_key"))
        .and_then(Value::as_str);
    let res = embedded
        .ok_or_else(|| anyhow::anyhow!("no signature with a public_key"))
        .and_then(crate::wipe::cert::parse_public)
        .and_then(|key| crate::wipe::cert::verify(cert, &key));
    match res {
        Ok(()) => Verification {
            valid: true,
            signed_by: embedded.map(str::to_string),
            error: None,
        },
        Err(e) => Verification {
            valid: false,
            signed_by: embedded.map(str::to_string),
            error: Some(format!("{e:#}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(v: Value) -> Value {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        crate::wipe::cert::sign(v, &sk)
    }

    #[test]
    fn verify_good_and_tampered() {
        let c = signed(serde_json::json!({"id":"c1","device":{"serial":"S1"},"outcome":"success"}));
        assert!(verify(&c).valid);
        let mut t = c.clone();
        t["outcome"] = "failed".into();
        let v = verify(&t);
        assert!(!v.valid);
        assert!(v.error.unwrap().contains("does not match"), "{t}");
        let mut n = c.clone();
        n.as_object_mut().unwrap().remove("signature");
        assert!(verify(&n).error.unwrap().contains("no signature"));
        assert!(valid_id("run-1:3.0"));
        assert!(!valid_id("a/b"));
    }
}
