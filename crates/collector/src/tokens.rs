//! The collector's tokens file. One entry per line; `#` starts a comment:
//!
//! ```text
//! # any host may use this token
//! 3f1c0d9e4b...
//! # only the host with this DMI serial, UUID or boot MAC
//! host=CZ12345678 9a8b7c...
//! host=52:54:00:12:34:56 77aa01...
//! ```
//!
//! A per-host token is refused (403) for events of any other host, and its
//! events are filed under the identity it is bound to (`ingest::bind`).
//! Runs remember the token that opened them by `Token::id`, a hash of the
//! secret, never the secret itself.

use anyhow::{bail, Context, Result};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub secret: String,
    /// `host=` restriction, when given.
    pub host: Option<String>,
    /// What the store records of this token: the first 16 hex digits of
    /// the SHA-256 of the secret (stable across reloads and reordering).
    pub id: String,
}

/// The identity a token is stored as: never the secret itself.
pub fn token_id(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(secret.as_bytes())[..8])
}

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
                    id: token_id(secret),
                },
                [h, secret] if h.starts_with("host=") && h.len() > 5 => Token {
                    secret: secret.to_string(),
                    host: Some(h[5..].to_string()),
                    id: token_id(secret),
                },
                _ => bail!("line {n}: expected TOKEN or host=<serial|uuid|mac> TOKEN"),
            };
            if tok.secret.len() < 8 {
                bail!("line {n}: token shorter than 8 characters");
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

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
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
    }
}
