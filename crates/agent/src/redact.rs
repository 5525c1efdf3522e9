//! Secrets never leave the agent. The bearer token, credentials in URLs
//! (`https://user:pass@host/`) and every option declared secret here are
//! replaced by `***` in whatever the agent writes or sends: events (and so
//! the console, the journal, the state file, the spool and the report
//! endpoint), `--json` documents, the inventory's kernel command line, and
//! its own log lines on stderr.
//!
//! Two layers: structural (`cmdline`, `Options`' serialisation, the plan's
//! messages) where the shape is known, and `text`, which every event and
//! log line passes through, for the value itself wherever it turns up.
//! A leaf module: it depends on nothing of the crate.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// `speediso.<key>` options whose values are secrets. The one place to
/// declare a new one: the plan redacts them in its output and registers
/// their values, and `tasks --options` marks them.
pub const SECRET_OPTIONS: &[&str] = &["token"];

/// Values shorter than this are not registered for substring replacement
/// (a 2-character "secret" would mask every occurrence of two letters);
/// they are still masked structurally.
const MIN_REGISTERED: usize = 6;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Is `key` (without the `speediso.` prefix) a declared secret, or does an
/// unknown key look like one (`report_token=`, a misplaced secret, is still one)?
pub fn is_secret_key(key: &str) -> bool {
    if SECRET_OPTIONS.contains(&key) {
        return true;
    }
    let k = key.to_ascii_lowercase();
    [
        "token",
        "passw",
        "secret",
        "credential",
        "apikey",
        "api_key",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// Remember a secret value, so `text` masks it wherever it appears.
pub fn register(secret: &str) {
    if secret.len() < MIN_REGISTERED {
        return;
    }
    let mut s = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !s.iter().any(|x| x == secret) {
        s.push(secret.to_string());
        // Longest first, so a secret that contains another is masked whole.
        s.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }
}

/// Register the secrets of one option: the whole value of a secret key,
/// the password (or the whole user info) of any URL in a value.
pub fn register_option(key: &str, value: &str) {
    if is_secret_key(key) {
        register(value);
    }
    // The password of a URL; the user name alone is no secret (and masking
    // every "admin" would garble unrelated text).
    for (start, end) in userinfo_spans(value) {
        let info = &value[start..end];
        if let Some((_, pass)) = info.split_once(':') {
            register(info);
            register(pass);
        }
    }
}

/// Mask every registered secret, the user info of every URL, and the value
/// of every `speediso.<secret>=` word in `s`.
pub fn text(s: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(s);
    {
        let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        for sec in secrets.iter() {
            if out.contains(sec.as_str()) {
                out = Cow::Owned(out.replace(sec.as_str(), MASK));
            }
        }
    }
    let spans = userinfo_spans(&out);
    if !spans.is_empty() {
        out = Cow::Owned(mask_spans(&out, &spans));
    }
    let spans = option_spans(&out);
    if !spans.is_empty() {
        out = Cow::Owned(mask_spans(&out, &spans));
    }
    out
}

/// A kernel command line with the values of secret `speediso.*` options
/// and URL credentials masked. Quoting is kept as it was.
pub fn cmdline(line: &str) -> String {
    text(line).into_owned()
}

/// Mask every string in a JSON value, in place. Returns whether anything
/// changed.
pub fn json(v: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) => match text(s) {
            Cow::Borrowed(_) => false,
            Cow::Owned(o) => {
                *s = o;
                true
            }
        },
        Value::Array(a) => a.iter_mut().fold(false, |acc, x| json(x) | acc),
        // A signed document (an erasure certificate) was masked before it
        // was signed; changing it now would only break its signature.
        Value::Object(m) if m.contains_key("signature") && m.contains_key("schema") => false,
        Value::Object(m) => m.values_mut().fold(false, |acc, x| json(x) | acc),
        _ => false,
    }
}

fn mask_spans(s: &str, spans: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    for &(a, b) in spans {
        out.push_str(&s[pos..a]);
        out.push_str(MASK);
        pos = b;
    }
    out.push_str(&s[pos..]);
    out
}

/// Byte spans of the user info (`user:pass` before the `@`) of every
/// `scheme://user:pass@host` in `s`, already-masked ones left out.
fn userinfo_spans(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(i) = s[from..].find("://").map(|i| i + from) {
        let start = i + 3;
        let end = b[start..]
            .iter()
            .position(|&c| {
                matches!(c, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'\\')
                    || c.is_ascii_whitespace()
            })
            .map_or(b.len(), |p| start + p);
        if let Some(at) = s[start..end].rfind('@') {
            let info = (start, start + at);
            if &s[info.0..info.1] != MASK && info.1 > info.0 {
                spans.push(info);
            }
        }
        from = end.max(start);
    }
    spans
}

/// Byte spans of the values of `speediso.<secret>=VALUE` words, a quoted
/// value up to its closing quote.
fn option_spans(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(i) = s[from..].find("speediso.").map(|i| i + from) {
        let kstart = i + "speediso.".len();
        let kend = b[kstart..]
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-'))
            .map_or(b.len(), |p| kstart + p);
        from = kend;
        if kend >= b.len() || b[kend] != b'=' || !is_secret_key(&s[kstart..kend]) {
            continue;
        }
        let vstart = kend + 1;
        // `"speediso.token=a b"`: the kernel's quoting of the whole word.
        let word_quoted = i > 0 && b[i - 1] == b'"';
        let vend = if word_quoted {
            b[vstart..]
                .iter()
                .position(|&c| c == b'"')
                .map_or(b.len(), |p| vstart + p)
        } else if b.get(vstart) == Some(&b'"') {
            b[vstart + 1..]
                .iter()
                .position(|&c| c == b'"')
                .map_or(b.len(), |p| vstart + 1 + p + 1)
        } else {
            b[vstart..]
                .iter()
                .position(|&c| c.is_ascii_whitespace() || c == b'"' || c == b'\'' || c == b',')
                .map_or(b.len(), |p| vstart + p)
        };
        if vend > vstart && &s[vstart..vend] != MASK {
            spans.push((vstart, vend));
        }
        from = vend.max(kend);
    }
    spans
}

/// `eprintln!` with secrets masked: what the agent prints on stderr.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::redact::text(&format!($($arg)*)))
    };
}

/// `println!` with secrets masked: what the agent prints on stdout
/// (documents with URLs an operator typed, plans, results).
#[macro_export]
macro_rules! out {
    () => { println!() };
    ($($arg:tt)*) => {
        println!("{}", $crate::redact::text(&format!($($arg)*)))
    };
}

/// A `tracing` writer that masks what it writes: stderr, line by line.
pub struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let s = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(text(&s).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_options_and_urls_are_masked() {
        let line = r#"BOOT_IMAGE=vmlinuz root=live:http://mirror/x.squashfs speediso.token=s3cr3t-TOKEN speediso.foreman=https://admin:hunter2@foreman.example/ speediso.report=https://c.example quiet"#;
        let got = cmdline(line);
        assert!(!got.contains("s3cr3t-TOKEN"), "{got}");
        assert!(!got.contains("hunter2"), "{got}");
        assert!(!got.contains("admin"), "{got}");
        assert!(got.contains("speediso.token=***"), "{got}");
        assert!(got.contains("https://***@foreman.example/"), "{got}");
        assert!(got.contains("root=live:http://mirror/x.squashfs"), "{got}");
        assert!(
            got.contains("speediso.report=https://c.example quiet"),
            "{got}"
        );
    }

    #[test]
    fn quoted_and_misspelt_secrets() {
        let got = cmdline(
            r#"a "speediso.token=two words" speediso.report_token=abc speediso.wipe.key=/k b"#,
        );
        assert_eq!(
            got,
            r#"a "speediso.token=***" speediso.report_token=*** speediso.wipe.key=/k b"#
        );
        let got = cmdline(r#"speediso.token="x y" z"#);
        assert_eq!(got, r#"speediso.token=*** z"#);
        // Idempotent.
        assert_eq!(cmdline(&got), got);
    }

    #[test]
    fn registered_values_are_masked_anywhere() {
        register_option("token", "registered-token-123");
        register_option("foreman", "https://admin@f.example");
        register_option("foreman", "https://ops:pa55word-xyz@f.example");
        let s = "sending with Bearer registered-token-123; user ops:pa55word-xyz; pa55word-xyz";
        let got = text(s);
        assert!(!got.contains("registered-token-123"), "{got}");
        assert!(!got.contains("pa55word-xyz"), "{got}");
        let mut v = serde_json::json!({"a": ["x registered-token-123"], "b": {"c": "ok"}});
        assert!(json(&mut v));
        assert_eq!(v["a"][0], "x ***");
        assert!(!json(&mut v));
        // A user name alone is not registered: "admin" elsewhere stays.
        assert_eq!(text("admin01 is the host"), "admin01 is the host");
        // A signed document is left alone.
        let mut signed =
            serde_json::json!({"schema": "s", "signature": {}, "x": "registered-token-123"});
        assert!(!json(&mut signed));
    }

    #[test]
    fn urls_without_credentials_are_untouched() {
        for s in [
            "http://host/path@x",
            "see https://example.com/a?b=c@d",
            "mailto:me@example.com",
            "plain text",
        ] {
            assert!(matches!(text(s), Cow::Borrowed(_)), "{s}");
        }
    }
}
