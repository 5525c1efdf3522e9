//! The collector's tokens file. One entry per line; `#` starts a comment:
//!
//! ```text
//! # any host may use this token
//! 3f1c0d9e4b...
//! # only the host with this DMI serial, UUID or boot MAC
//! host=CZ12345678 9a8b7c...
//! host=52:54:00:12:34:56 77aa01...
//! # bound to the first host that posts with it (the binding is kept in
//! # the database, so it survives restarts and reloads)
//! host=first-use 4c5d6e...
//! # an API token for reads (viewer) or reads and admin calls (admin);
//! # these can never post events
//! role=viewer 5e6f...
//! role=admin 0d1e...
//! ```
//!
//! Tokens without `role=` are agent tokens: they may only post events and
//! read nothing (`auth.rs`). A per-host token is refused (403) for events of any other host, and its
//! events are filed under the identity it is bound to (`ingest::bind`).
//! Tokens the collector issues itself live in its database (`tokendb.rs`);
//! `Auth::token` looks a bearer token up here first, then there.
//! Runs remember the token that opened them by `Token::id`, a hash of the
//! secret, never the secret itself.

use anyhow::{bail, Context, Result};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub secret: String,
    /// `host=` restriction, when given.
    pub host: Option<String>,
    /// `role=`: a viewer/admin API token; `None`: an agent token.
    pub role: Option<crate::auth::Role>,
    /// Bound to a host by its first batch (`host=first-use`, or issued
    /// without a host): `host` is the binding kept in the database, `None`
    /// until the first batch; `ingest::bind` refuses it while `None`.
    pub first_use: bool,
    /// What the store records of this token: the first 16 hex digits of
    /// the SHA-256 of the secret (stable across reloads and reordering).
    pub id: String,
}

/// The identity a token is stored as: never the secret itself.
pub fn token_id(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(secret.as_bytes())[..8])
}

/// What the collector's database keeps to recognise a token: the full
/// SHA-256 of the secret in hex (`token_id` is its first 16 digits).
pub fn token_hash(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// A new agent token's secret: 256 random bits as 64 hex digits.
pub fn new_secret() -> anyhow::Result<String> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).context("reading random bytes for a token")?;
    Ok(hex::encode(b))
}

/// The `host=` value that makes a tokens-file line bind on first use.
pub const FIRST_USE: &str = "first-use";

/// The text of a file the operator writes (tokens, trusted signers).
pub fn read_config(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The lines of a file the operator writes (tokens, trusted signers) that
/// say something: (line number from 1, the line without its `#` comment,
/// trimmed).
pub fn config_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.split('#').next().unwrap_or("").trim();
        (!line.is_empty()).then_some((i + 1, line))
    })
}

#[derive(Debug, Clone, Default)]
pub struct Tokens(pub Vec<Token>);

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens> {
        Self::parse(&read_config(path)?).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Tokens> {
        let mut v = Vec::new();
        for (n, line) in config_lines(text) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let tok = match words.as_slice() {
                [secret] => Token {
                    secret: secret.to_string(),
                    host: None,
                    role: None,
                    id: token_id(secret),
                    first_use: false,
                },
                [h, secret] if h.starts_with("host=") && h.len() > 5 => {
                    let first_use = h[5..].eq_ignore_ascii_case(FIRST_USE);
                    Token {
                        secret: secret.to_string(),
                        host: (!first_use).then(|| h[5..].to_string()),
                        role: None,
                        id: token_id(secret),
                        first_use,
                    }
                }
                [r, secret] if r.starts_with("role=") => {
                    let Some(role) = crate::auth::Role::parse(&r[5..]) else {
                        bail!("line {n}: {r}: the role is viewer or admin");
                    };
                    Token {
                        secret: secret.to_string(),
                        host: None,
                        role: Some(role),
                        id: token_id(secret),
                        first_use: false,
                    }
                }
                _ => bail!(
                    "line {n}: expected TOKEN, host=<serial|uuid|mac|first-use> TOKEN or role=<viewer|admin> TOKEN"
                ),
            };
            if tok.secret.len() < 8 {
                bail!("line {n}: token shorter than 8 characters");
            }
            if v.iter().any(|t: &Token| t.secret == tok.secret) {
                bail!("line {n}: the same token is listed twice");
            }
            v.push(tok);
        }
        if v.is_empty() {
            bail!("no tokens");
        }
        Ok(Tokens(v))
    }

    /// The entry for an `Authorization` header value, if any. Compares
    /// every token in constant time so timing does not leak a prefix.
    pub fn check(&self, header: Option<&str>) -> Option<&Token> {
        let given = header?.strip_prefix("Bearer ")?.trim();
        let mut found = None;
        for t in &self.0 {
            if ct_eq(t.secret.as_bytes(), given.as_bytes()) {
                found = Some(t);
            }
        }
        found
    }
}

/// Equal, in a time that depends only on the lengths (tokens, session
/// ids, CSRF tokens): no early exit at the first differing byte.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_check() {
        let t = Tokens::parse("# c\nsecret-one\n host=S1  secret-two # tail\n\n").unwrap();
        assert_eq!(t.0.len(), 2);
        assert_eq!(t.check(Some("Bearer secret-one")).unwrap().host, None);
        assert_eq!(
            t.check(Some("Bearer secret-two")).unwrap().host.as_deref(),
            Some("S1")
        );
        assert!(t.check(Some("Bearer secret-on")).is_none());
        let id = &t.check(Some("Bearer secret-one")).unwrap().id;
        assert_eq!(id.len(), 16);
        assert!(!id.contains("secret"));
        assert_ne!(id, &t.check(Some("Bearer secret-two")).unwrap().id);
        assert!(t.check(Some("secret-one")).is_none());
        assert!(t.check(None).is_none());
        assert!(Tokens::parse("a b c\n").is_err());
        assert!(Tokens::parse("short\n").is_err());
        assert!(Tokens::parse("# only comments\n").is_err());
        let t = Tokens::parse("role=viewer viewer-secret\nrole=admin admin-secret\nagent-secret\n")
            .unwrap();
        use crate::auth::Role;
        assert_eq!(
            t.check(Some("Bearer viewer-secret")).unwrap().role,
            Some(Role::Viewer)
        );
        assert_eq!(
            t.check(Some("Bearer admin-secret")).unwrap().role,
            Some(Role::Admin)
        );
        assert_eq!(t.check(Some("Bearer agent-secret")).unwrap().role, None);
        let e = Tokens::parse("role=root some-secret\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("role=root"), "{e}");
        assert!(Tokens::parse("dup-secret-1\nrole=admin dup-secret-1\n").is_err());
        let t = Tokens::parse("host=first-use first-use-secret\nhost=S1 bound-secret\n").unwrap();
        let f = t.check(Some("Bearer first-use-secret")).unwrap();
        assert_eq!((f.first_use, f.host.as_deref()), (true, None));
        let b = t.check(Some("Bearer bound-secret")).unwrap();
        assert_eq!((b.first_use, b.host.as_deref()), (false, Some("S1")));
    }

    #[test]
    fn hashes_and_secrets() {
        let h = token_hash("secret-one");
        assert_eq!(h.len(), 64);
        assert!(
            h.starts_with(&token_id("secret-one")),
            "the id is its prefix"
        );
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn ct_eq_is_equality() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abcdef", b"abcdef"));
        assert!(!ct_eq(b"abcdef", b"abcdeg"));
        assert!(!ct_eq(b"abcdef", b"Abcdef"));
        assert!(!ct_eq(b"abcdef", b"abcde"));
        assert!(!ct_eq(b"abc", b"abcdef"));
        // Every single-bit difference anywhere is seen.
        let a = [0x5au8; 32];
        for i in 0..32 {
            for bit in 0..8 {
                let mut b = a;
                b[i] ^= 1 << bit;
                assert!(!ct_eq(&a, &b), "byte {i} bit {bit}");
            }
        }
    }
}
