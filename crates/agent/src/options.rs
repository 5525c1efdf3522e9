//! Options: how a module declares what it reads, and the validated values.
//!
//! A leaf. Every module declares its options as a `&[Spec]` beside its own
//! `Config` (the `speediso.<key>` of the kernel command line, the key of a
//! task file's step `options`, the flag of its ad-hoc command); the
//! registry (`crate::registry`) gathers them, so `plan` validates the kernel
//! command line against them, refuses unknown step keys, and
//! `speediso tasks --options` lists them. Nothing here knows any module.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// The kinds of value an option takes on the kernel command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Any string, including empty.
    Text,
    /// A non-empty string.
    NonEmpty,
    /// http:// or https:// URL.
    HttpUrl,
    /// http(s):// or file:// URL.
    FetchUrl,
    /// 0/1, true/false, yes/no, on/off.
    Bool,
    /// stay | poweroff | reboot.
    After,
    /// host:port, [v6]:port, or host (default port applied later).
    HostPort,
    /// 64 hex digits.
    Sha256,
    /// 90s, 30m, 4h, or seconds.
    Duration,
    /// An integer in the inclusive range.
    Int(u64, u64),
    /// A decimal fraction `x` with 0 < x <= the bound.
    Fraction(f64),
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// Comma-separated non-empty items.
    List,
    /// full | off | sample:FRACTION with 0 < FRACTION <= 1.
    Verify,
    /// SSH public keys: URL-safe base64 of authorized_keys lines, or an
    /// http(s) URL with #sha256= (`crate::sshkeys`), comma-separated.
    SshKeys,
}

/// One option: where it may be given, what it takes, and a line of help.
/// At least one of `key`, `step` and `flag` is set.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// `speediso.<key>` on the kernel command line, without the prefix.
    pub key: Option<&'static str>,
    /// The key in a task-file step's `options = { ... }` table.
    pub step: Option<&'static str>,
    /// The long flag of the module's ad-hoc command, without `--`.
    pub flag: Option<&'static str>,
    pub kind: Kind,
    pub help: &'static str,
}

impl Spec {
    /// A `speediso.<key>` option.
    pub const fn cmdline(key: &'static str, kind: Kind, help: &'static str) -> Spec {
        Spec {
            key: Some(key),
            step: None,
            flag: None,
            kind,
            help,
        }
    }

    /// An option of task-file steps only.
    pub const fn step_only(step: &'static str, kind: Kind, help: &'static str) -> Spec {
        Spec {
            key: None,
            step: Some(step),
            flag: None,
            kind,
            help,
        }
    }

    /// Also given as `step` in a task file's step options.
    pub const fn step(self, step: &'static str) -> Spec {
        Spec {
            step: Some(step),
            ..self
        }
    }

    /// Also given as `--flag` to the module's ad-hoc command.
    pub const fn flag(self, flag: &'static str) -> Spec {
        Spec {
            flag: Some(flag),
            ..self
        }
    }

    /// Check a value given on the kernel command line or as the flag; the
    /// error says what was expected.
    pub fn check(&self, v: &str) -> Result<(), String> {
        check_value(self.kind, v)
    }
}

/// The spec of `speediso.<key>` in `specs`.
pub fn by_key<'a>(specs: &'a [Spec], key: &str) -> Option<&'a Spec> {
    specs.iter().find(|s| s.key == Some(key))
}

/// Validated `speediso.*` options, by key without the prefix. Serialised
/// (and debug-printed) with secrets masked (`redact`): the values are for
/// the agent's own use, never for output. Remembers which keys were read,
/// so a test can prove every declared option is read by something.
#[derive(Clone, Default)]
pub struct Options {
    values: BTreeMap<String, String>,
    read: Arc<Mutex<BTreeSet<String>>>,
}

impl PartialEq for Options {
    fn eq(&self, other: &Options) -> bool {
        self.values == other.values
    }
}

impl Eq for Options {}

impl Options {
    /// Options from key/value pairs (keys without `speediso.`), unchecked:
    /// for values already validated, and for tests.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Options {
        Options {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            read: Default::default(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string());
        self.values.get(key).map(String::as_str)
    }

    /// A boolean option; absent is `false`. Values were validated.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| parse_bool(v) == Some(true))
    }

    /// Every key some code asked for since these options were made.
    pub fn keys_read(&self) -> BTreeSet<String> {
        self.read.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The options as they may be shown: secret values and URL
    /// credentials masked.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(k, v)| {
                let v = if crate::redact::is_secret_key(k) {
                    crate::redact::MASK.to_string()
                } else {
                    crate::redact::text(v).into_owned()
                };
                (k.clone(), v)
            })
            .collect()
    }
}

impl Serialize for Options {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(s)
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Options").field(&self.redacted()).finish()
    }
}

/// 1/0, true/false, yes/no, on/off.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Check one value against its kind; `Err` says what was expected.
pub fn check_value(kind: Kind, v: &str) -> Result<(), String> {
    let ok = match kind {
        Kind::Text => true,
        Kind::NonEmpty => !v.is_empty(),
        Kind::HttpUrl => url_ok(v, &["http://", "https://"]),
        Kind::FetchUrl => url_ok(v, &["http://", "https://", "file://"]),
        Kind::Bool => parse_bool(v).is_some(),
        Kind::After => matches!(v, "stay" | "poweroff" | "reboot"),
        Kind::HostPort => host_port_ok(v),
        Kind::Sha256 => v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()),
        Kind::Duration => speediso_proto::units::parse_duration(v).is_some(),
        Kind::Int(lo, hi) => v.parse::<u64>().is_ok_and(|n| (lo..=hi).contains(&n)),
        Kind::Fraction(max) => parse_fraction(v, max).is_some(),
        Kind::Choice(words) => words.contains(&v),
        Kind::List => !v.is_empty() && v.split(',').all(|s| !s.trim().is_empty()),
        Kind::Verify => {
            v == "full"
                || v == "off"
                || v.strip_prefix("sample:")
                    .and_then(|f| f.parse::<f64>().ok())
                    .is_some_and(|f| f > 0.0 && f <= 1.0)
        }
        Kind::SshKeys => return crate::sshkeys::check_value(v),
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        Kind::Text => unreachable!(),
        Kind::NonEmpty => "expected a non-empty value".into(),
        Kind::HttpUrl => "expected an http:// or https:// URL with a host".into(),
        Kind::FetchUrl => "expected an http://, https:// or file:// URL".into(),
        Kind::Bool => "expected 1/0, true/false, yes/no or on/off".into(),
        Kind::After => "expected stay, poweroff or reboot".into(),
        Kind::HostPort => "expected host[:port] with a port in 1-65535".into(),
        Kind::Sha256 => "expected 64 hex digits".into(),
        Kind::Duration => "expected a duration like 90s, 30m or 4h".into(),
        Kind::Int(lo, hi) => format!("expected an integer from {lo} to {hi}"),
        Kind::Fraction(max) => format!("expected a number greater than 0 and at most {max}"),
        Kind::Choice(words) => format!("expected one of {}", words.join(", ")),
        Kind::List => "expected a comma-separated list of non-empty items".into(),
        Kind::Verify => "expected full, off or sample:FRACTION (0 < FRACTION <= 1)".into(),
        Kind::SshKeys => unreachable!(),
    })
}

/// `v` as a number in (0, max]; `None` otherwise (NaN and inf included).
pub fn parse_fraction(v: &str, max: f64) -> Option<f64> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| *x > 0.0 && *x <= max)
}

fn url_ok(v: &str, schemes: &[&str]) -> bool {
    let Some(rest) = schemes.iter().find_map(|s| v.strip_prefix(s)) else {
        return false;
    };
    if v.starts_with("file://") {
        return rest.starts_with('/');
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty() && !v.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn host_port_ok(v: &str) -> bool {
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return false,
            },
            None => return false,
        }
    } else {
        match v.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return false,
            None => (v, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b));
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0))
}

/// A sample value of `kind` that `check_value` accepts: what the test that
/// every declared option is read sets each option to.
pub fn sample(kind: Kind) -> String {
    match kind {
        Kind::Text | Kind::NonEmpty | Kind::List => "x".into(),
        Kind::HttpUrl => "https://example.net/x".into(),
        Kind::FetchUrl => "file:///x".into(),
        Kind::Bool => "1".into(),
        Kind::After => "stay".into(),
        Kind::HostPort => "example.net:5201".into(),
        Kind::Sha256 => "0".repeat(64),
        Kind::Duration => "5s".into(),
        Kind::Int(lo, _) => lo.to_string(),
        Kind::Fraction(max) => max.to_string(),
        Kind::Choice(words) => words[0].to_string(),
        Kind::Verify => "full".into(),
        // A real Ed25519 public key ("... sample"), URL-safe base64.
        Kind::SshKeys => "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUZMbkxQeE82MEl5ZEhobHF1MVd5b3RjT3U3SXEwK0h3cnZMRUsrV3hkcmQgc2FtcGxlCg".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_valid_values_of_their_kind() {
        for kind in [
            Kind::Text,
            Kind::NonEmpty,
            Kind::HttpUrl,
            Kind::FetchUrl,
            Kind::Bool,
            Kind::After,
            Kind::HostPort,
            Kind::Sha256,
            Kind::Duration,
            Kind::Int(3, 9),
            Kind::Fraction(0.5),
            Kind::Choice(&["a", "b"]),
            Kind::List,
            Kind::Verify,
            Kind::SshKeys,
        ] {
            assert_eq!(check_value(kind, &sample(kind)), Ok(()), "{kind:?}");
        }
    }

    #[test]
    fn reads_are_remembered_across_clones() {
        let o = Options::from_pairs([("a", "1")]);
        let c = o.clone();
        assert!(c.flag("a"));
        assert_eq!(c.get("b"), None);
        let read: Vec<String> = o.keys_read().into_iter().collect();
        assert_eq!(read, ["a", "b"]);
        assert_eq!(o, Options::from_pairs([("a", "1")]));
    }
}
