//! Parsing and validating a POSTed NDJSON batch, before anything touches the
//! store: a batch is accepted whole or rejected whole, and a rejection names
//! the first bad line and why. Enumerated fields (`outcome`s) are checked
//! here, so nothing but the agent's own values reaches the pages, and so are
//! the certificates a wipe result carries (their run and host must be the
//! event's). `bind` then ties the batch to the token that sent it.

use serde::Deserialize;
/// Event types whose contents the store indexes; others are kept as-is.
use speediso_proto::events::TYPES as KNOWN_TYPES;

/// The event types whose parsed body `Incoming::value` keeps: checked here
/// (`check_enums`, `check_certificates`) or read by `store::Derived::add`.
const LOOKED_INTO: &[&str] = &[
    "result",
    "step_finished",
    "run_finished",
    "dispatch_rejected",
];

/// Limits on one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body: usize,
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 16 << 20,
            max_line: 1 << 20,
        }
    }
}

/// The fields the collector indexes; the whole line is stored as received.
#[derive(Debug, Clone, Deserialize)]
struct Head {
    v: u32,
    run_id: String,
    seq: u64,
    ts: String,
    #[serde(default)]
    host: HostHead,
    task: Option<String>,
    step: Option<String>,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct HostHead {
    pub serial: Option<String>,
    pub uuid: Option<String>,
    pub boot_mac: Option<String>,
    pub hostname: Option<String>,
}

impl HostHead {
    /// The key a host is filed under: serial, else UUID, else boot MAC,
    /// else hostname.
    pub fn key(&self) -> String {
        [&self.serial, &self.uuid, &self.boot_mac, &self.hostname]
            .into_iter()
            .flatten()
            .find(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| "unknown".into())
    }

    /// What a token that binds on first use is bound to: the serial, else
    /// the UUID, else the boot MAC (the host key without the hostname
    /// fallback: a hostname is no hardware identity).
    pub fn identity(&self) -> Option<&str> {
        [&self.serial, &self.uuid, &self.boot_mac]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|s| !s.is_empty())
    }

    /// Does a per-host token's `host=` value name this host?
    pub fn matches(&self, id: &str) -> bool {
        self.bound_key(id).is_some()
    }

    /// The event's own spelling of a per-host token's identity (serial,
    /// else UUID, else boot MAC equal to it): what its events are filed
    /// under, whatever else the event claims.
    pub fn bound_key(&self, id: &str) -> Option<String> {
        [&self.serial, &self.uuid, &self.boot_mac]
            .into_iter()
            .flatten()
            .find(|v| v.eq_ignore_ascii_case(id))
            .cloned()
    }
}

/// One validated event.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub run_id: String,
    pub seq: u64,
    pub ts: String,
    pub host: HostHead,
    /// The host it is filed under: `host.key()`, or for a per-host token
    /// the identity the token is bound to (`bind`).
    pub host_key: String,
    /// `Token::id` of the token that sent it (`bind`; empty until then).
    pub token_id: String,
    pub task: Option<String>,
    pub step: Option<String>,
    pub kind: String,
    /// The line as received (valid JSON).
    pub line: String,
    /// 1-based line number in the request body.
    pub line_no: usize,
    /// Parsed body, for the event types the store looks into
    /// (`LOOKED_INTO`); `Null` for the others (progress, logs: most lines),
    /// whose body is only stored.
    pub value: serde_json::Value,
}

/// Why a batch was refused; maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 413: the body or one line is too large.
    TooLarge(String),
    /// 400: the content is wrong; `line` is 1-based.
    Bad { line: usize, why: String },
    /// 403: this token may not file this line (another host, or a run that
    /// belongs to another host or token).
    Forbidden { line: usize, why: String },
    /// 409: `(run_id, seq)` is already stored with a different content.
    Conflict { line: usize, why: String },
}

impl Refusal {
    /// The HTTP status it is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::TooLarge(_) => 413,
            Refusal::Bad { .. } => 400,
            Refusal::Forbidden { .. } => 403,
            Refusal::Conflict { .. } => 409,
        }
    }

    pub fn line(&self) -> Option<usize> {
        match self {
            Refusal::TooLarge(_) => None,
            Refusal::Bad { line, .. }
            | Refusal::Forbidden { line, .. }
            | Refusal::Conflict { line, .. } => Some(*line),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooLarge(s) => write!(f, "{s}"),
            Refusal::Bad { line, why }
            | Refusal::Forbidden { line, why }
            | Refusal::Conflict { line, why } => write!(f, "line {line}: {why}"),
        }
    }
}

/// `outcome` of `step_finished` / `run_finished`: `events::Outcome`.
const RUN_OUTCOMES: &[&str] = &["success", "failed", "timed_out", "refused"];

/// Enumerated fields: only the values the agent emits.
fn check_enums(kind: &str, value: &serde_json::Value) -> Result<(), String> {
    if kind == "step_finished" || kind == "run_finished" {
        match value.get("outcome").and_then(serde_json::Value::as_str) {
            Some(o) if RUN_OUTCOMES.contains(&o) => {}
            Some(o) => {
                return Err(format!(
                    "{kind} outcome {:?} is not one of {}",
                    o.chars().take(80).collect::<String>(),
                    RUN_OUTCOMES.join(", ")
                ))
            }
            None => return Err(format!("{kind} without a string outcome")),
        }
    }
    Ok(())
}

/// A certificate's `outcome`: what the wipe module writes, now and before.
pub const CERT_OUTCOMES: &[&str] = &[
    "wiped",
    "wiped-unverified",
    "signatures-erased",
    "discarded",
    "failed",
];

/// The step whose results may carry certificates (`src/wipe`).
pub const WIPE_STEP: &str = "wipe";

/// The certificates of a result: only from the wipe step, each about this
/// run and this host (every identity both sides have is equal, at least one
/// is shared), with a known outcome.
fn check_certificates(
    run_id: &str,
    step: Option<&str>,
    host: &HostHead,
    data: &serde_json::Value,
) -> Result<(), String> {
    use serde_json::Value;
    let Some(certs) = data.get("certificates") else {
        return Ok(());
    };
    if step != Some(WIPE_STEP) {
        return Err(format!(
            "certificates are accepted only in results of step {WIPE_STEP}, not of step {:?}",
            step.unwrap_or("")
        ));
    }
    let certs = certs
        .as_array()
        .ok_or_else(|| "certificates is not an array".to_string())?;
    for (i, c) in certs.iter().enumerate() {
        let name = match c.get("id").and_then(Value::as_str) {
            Some(id) => format!(
                "certificate {i} ({:?})",
                id.chars().take(80).collect::<String>()
            ),
            None => format!("certificate {i}"),
        };
        if !c.is_object() {
            return Err(format!("{name} is not an object"));
        }
        match c.get("run_id").and_then(Value::as_str) {
            Some(r) if r == run_id => {}
            other => {
                return Err(format!(
                    "{name}: run_id {:?} is not the event's run {run_id}",
                    other
                        .unwrap_or("(none)")
                        .chars()
                        .take(80)
                        .collect::<String>()
                ))
            }
        }
        let ch = c.get("host").cloned().unwrap_or(Value::Null);
        let mut shared = 0;
        for (field, mine) in [
            ("serial", &host.serial),
            ("uuid", &host.uuid),
            ("boot_mac", &host.boot_mac),
        ] {
            let theirs = ch
                .get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let mine = mine.as_deref().filter(|s| !s.is_empty());
            if let (Some(t), Some(m)) = (theirs, mine) {
                // Serials are compared as written; UUIDs and MACs are hex.
                let same = if field == "serial" {
                    t == m
                } else {
                    t.eq_ignore_ascii_case(m)
                };
                if !same {
                    return Err(format!(
                        "{name}: host.{field} {:?} is not the event's host.{field} {m:?}",
                        t.chars().take(80).collect::<String>()
                    ));
                }
                shared += 1;
            }
        }
        if shared == 0 {
            return Err(format!(
                "{name}: its host shares no identity (serial, uuid, boot_mac) with the event's host"
            ));
        }
        match c.get("outcome").and_then(Value::as_str) {
            Some(o) if CERT_OUTCOMES.contains(&o) => {}
            other => {
                return Err(format!(
                    "{name}: outcome {:?} is not one of {}",
                    other
                        .unwrap_or("(none)")
                        .chars()
                        .take(80)
                        .collect::<String>(),
                    CERT_OUTCOMES.join(", ")
                ))
            }
        }
    }
    Ok(())
}

/// Tie a parsed batch to the token that sent it: every event gets the
/// token's id, and a per-host token's events must carry its identity (as
/// serial, UUID or boot MAC) and are filed under it, so a host-bound token
/// can never file under another host's key, whatever else the event says.
pub fn bind(events: &mut [Incoming], token: &super::tokens::Token) -> Result<(), Refusal> {
    if let (true, None, Some(e)) = (token.first_use, &token.host, events.first()) {
        // The server binds such a token (first_use_identity) before this;
        // reaching here unbound is a bug, and it must not mean "any host".
        return Err(Refusal::Forbidden {
            line: e.line_no,
            why: "this token binds on first use and is not bound yet".into(),
        });
    }
    for e in events.iter_mut() {
        e.token_id = token.id.clone();
        if let Some(id) = &token.host {
            match e.host.bound_key(id) {
                Some(k) => e.host_key = k,
                None => {
                    return Err(Refusal::Forbidden {
                        line: e.line_no,
                        why: format!(
                            "this token is for host {id}, the event is from {}",
                            e.host.key()
                        ),
                    })
                }
            }
        }
    }
    Ok(())
}

/// The host a token that binds on first use is to be bound to by this
/// batch: every event's `HostHead::identity`, which must be one and the
/// same (case aside). `None` for an empty batch (binds nothing). A batch
/// from several hosts, or an event without serial, UUID and boot MAC, is
/// refused (403) and binds nothing.
pub fn first_use_identity(events: &[Incoming]) -> Result<Option<String>, Refusal> {
    let mut first: Option<&str> = None;
    for e in events {
        let Some(id) = e.host.identity() else {
            return Err(Refusal::Forbidden {
                line: e.line_no,
                why: "this token binds to the first host that posts with it and this event \
                      names no host serial, uuid or boot_mac; nothing bound"
                    .into(),
            });
        };
        match first {
            None => first = Some(id),
            Some(f) if f.eq_ignore_ascii_case(id) => {}
            Some(f) => {
                return Err(Refusal::Forbidden {
                    line: e.line_no,
                    why: format!(
                        "this token binds to the first host that posts with it and this batch \
                         is from more than one host ({f}, then {id}); nothing bound"
                    ),
                })
            }
        }
    }
    Ok(first.map(str::to_string))
}

/// `s` with each NUL written as the six characters `\u0000`: what every
/// string the collector indexes (not the stored line) goes through, so
/// SQLite and PostgreSQL (whose text type refuses NUL) hold the same.
pub fn escape_nul(s: &str) -> String {
    s.replace('\0', "\\u0000")
}

/// Parse a whole batch. Empty lines are skipped (a trailing newline is
/// normal); anything else must be one valid event.
pub fn parse_batch(body: &[u8], limits: Limits) -> Result<Vec<Incoming>, Refusal> {
    if body.len() > limits.max_body {
        return Err(Refusal::TooLarge(format!(
            "body of {} bytes exceeds the limit of {} bytes",
            body.len(),
            limits.max_body
        )));
    }
    let mut out = Vec::new();
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        if raw.len() > limits.max_line {
            return Err(Refusal::TooLarge(format!(
                "line {n}: {} bytes exceeds the line limit of {} bytes",
                raw.len(),
                limits.max_line
            )));
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let bad = |why: String| Refusal::Bad { line: n, why };
        let text = std::str::from_utf8(raw).map_err(|e| bad(format!("not UTF-8: {e}")))?;
        // The head straight from the text (most lines); anything it
        // refuses (not JSON, not an object, a key twice, a wrong field)
        // goes the way that names the fault, through a `Value`, which
        // takes a repeated key's last value as before.
        let (head, mut value) = match serde_json::from_str::<Head>(text) {
            Ok(head) => (head, serde_json::Value::Null),
            Err(_) => {
                let value: serde_json::Value =
                    serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
                if !value.is_object() {
                    return Err(bad("not a JSON object".into()));
                }
                let head =
                    Head::deserialize(&value).map_err(|e| bad(format!("not an event: {e}")))?;
                (head, value)
            }
        };
        // The body is kept parsed only for the types whose contents are
        // checked here or stored apart (`store::Derived::add`).
        if value.is_null() && LOOKED_INTO.contains(&head.kind.as_str()) {
            value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        } else if !LOOKED_INTO.contains(&head.kind.as_str()) {
            value = serde_json::Value::Null;
        }
        if head.v != speediso_proto::events::EVENT_VERSION {
            return Err(bad(format!(
                "event version {} not supported (this collector takes {})",
                head.v,
                speediso_proto::events::EVENT_VERSION
            )));
        }
        if head.run_id.is_empty()
            || head.run_id.len() > 64
            || !head
                .run_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad(format!(
                "run_id {:?} must be 1-64 characters of [A-Za-z0-9_-]",
                head.run_id.chars().take(80).collect::<String>()
            )));
        }
        if head.seq > i64::MAX as u64 {
            return Err(bad(format!("seq {} out of range", head.seq)));
        }
        if !KNOWN_TYPES.contains(&head.kind.as_str()) {
            return Err(bad(format!(
                "unknown event type {:?}; known: {}",
                head.kind,
                KNOWN_TYPES.join(", ")
            )));
        }
        if head.kind == "result" && value.get("data").is_none() {
            return Err(bad("result event without data".into()));
        }
        check_enums(&head.kind, &value).map_err(bad)?;
        if head.kind == "result" {
            check_certificates(
                &head.run_id,
                head.step.as_deref(),
                &head.host,
                &value["data"],
            )
            .map_err(bad)?;
        }
        // NUL is valid JSON (`\u0000`) but PostgreSQL text cannot hold
        // it: the indexed copies are escaped the same way for both stores
        // (the stored line keeps its `\u0000` escapes, which are ASCII).
        let mut head = head;
        for f in [
            &mut head.task,
            &mut head.step,
            &mut head.host.serial,
            &mut head.host.uuid,
            &mut head.host.boot_mac,
            &mut head.host.hostname,
        ]
        .into_iter()
        .flatten()
        {
            *f = escape_nul(f);
        }
        head.ts = escape_nul(&head.ts);
        out.push(Incoming {
            host_key: head.host.key(),
            token_id: String::new(),
            run_id: head.run_id,
            seq: head.seq,
            ts: head.ts,
            host: head.host,
            task: head.task,
            step: head.step,
            kind: head.kind,
            line: text.to_string(),
            line_no: n,
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, kind: &str) -> String {
        format!(
            r#"{{"v":1,"run_id":"r-1","seq":{seq},"ts":"2026-01-01T00:00:00.000Z","host":{{"serial":"S1"}},"task":"inventory","step":null,"type":"{kind}"}}"#
        )
    }

    #[test]
    fn good_batch() {
        let body = format!("{}\n{}\r\n\n", ev(0, "log"), ev(1, "warning"));
        let got = parse_batch(body.as_bytes(), Limits::default()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].seq, 1);
        assert_eq!(got[0].host.key(), "S1");
        assert!(got[0].host.matches("s1"));
    }

    #[test]
    fn head_read_once_body_kept_only_where_looked_into() {
        // A key twice: the last value counts (a `Value` takes it), as
        // before the head was read straight from the text.
        let twice = ev(0, "log").replace(r#""seq":0"#, r#""seq":0,"seq":7"#);
        let fin = ev(1, "run_finished").replace(r#""type""#, r#""outcome":"success","type""#);
        let body = format!("{twice}\n{}\n{fin}\n", ev(2, "progress"));
        let got = parse_batch(body.as_bytes(), Limits::default()).unwrap();
        assert_eq!(got[0].seq, 7);
        assert_eq!(got[1].kind, "progress");
        assert!(got[1].value.is_null(), "a progress body is only stored");
        assert_eq!(got[1].line, ev(2, "progress"), "the line kept as received");
        assert_eq!(got[2].value["outcome"], "success");
        let bad = ev(3, "run_finished").replace(r#""type""#, r#""outcome":"meh","type""#);
        let r = parse_batch(bad.as_bytes(), Limits::default()).unwrap_err();
        assert!(r.to_string().contains(r#"outcome "meh""#), "{r}");
    }

    #[test]
    fn refusals_name_the_line() {
        let l = Limits {
            max_body: 10_000,
            max_line: 300,
        };
        let cases = [
            (format!("{}\ngarbage\n", ev(0, "log")), 2, "not JSON"),
            (format!("{}\n[1]\n", ev(0, "log")), 2, "not a JSON object"),
            ("{\"v\":1}\n".to_string(), 1, "not an event"),
            (ev(0, "bogus"), 1, "unknown event type"),
            (ev(0, "result"), 1, "without data"),
            (ev(0, "log").replace("\"v\":1", "\"v\":9"), 1, "version 9"),
            (ev(0, "log").replace("r-1", "a/b"), 1, "run_id"),
            (ev(0, "log").replace(":0,", ":-1,"), 1, "not an event"),
            (
                ev(0, "run_finished").replace(
                    r#""type""#,
                    r#""outcome":"x\" onmouseover=\"alert(1)","type""#,
                ),
                1,
                "run_finished outcome \"x\\\" onmouseover",
            ),
            (
                ev(0, "step_finished"),
                1,
                "step_finished without a string outcome",
            ),
        ];
        for (body, line, want) in cases {
            match parse_batch(body.as_bytes(), l) {
                Err(Refusal::Bad { line: n, why }) => {
                    assert_eq!(n, line, "{body}: {why}");
                    assert!(why.contains(want), "{body}: {why}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        let long = format!("{}\n{}\n", ev(0, "log"), "x".repeat(400));
        assert!(matches!(
            parse_batch(long.as_bytes(), l),
            Err(Refusal::TooLarge(m)) if m.starts_with("line 2")
        ));
        let big = "\n".repeat(10_001);
        assert!(matches!(
            parse_batch(big.as_bytes(), l),
            Err(Refusal::TooLarge(_))
        ));
        assert!(matches!(
            parse_batch(b"\xff\xfe\n", l),
            Err(Refusal::Bad { line: 1, .. })
        ));
    }

    #[test]
    fn bind_files_a_host_token_under_its_identity() {
        use crate::tokens::{token_id, Token};
        let t = |host: Option<&str>| Token {
            secret: "s3cret-token".into(),
            host: host.map(str::to_string),
            role: None,
            id: token_id("s3cret-token"),
            first_use: false,
        };
        let line = ev(0, "log").replace(
            r#"{"serial":"S1"}"#,
            r#"{"serial":"VICTIM","boot_mac":"52:54:00:00:00:0a"}"#,
        );
        let parse = || parse_batch(line.as_bytes(), Limits::default()).unwrap();
        let mut e = parse();
        bind(&mut e, &t(None)).unwrap();
        assert_eq!(
            (e[0].host_key.as_str(), e[0].token_id.len()),
            ("VICTIM", 16)
        );
        let mut e = parse();
        bind(&mut e, &t(Some("52:54:00:00:00:0A"))).unwrap();
        assert_eq!(e[0].host_key, "52:54:00:00:00:0a");
        let mut e = parse();
        let r = bind(&mut e, &t(Some("OTHER"))).unwrap_err();
        assert_eq!(r.status(), 403);
        assert!(
            r.to_string()
                .starts_with("line 1: this token is for host OTHER"),
            "{r}"
        );
    }

    #[test]
    fn first_use_tokens_bind_to_one_host_per_batch() {
        use crate::tokens::{token_id, Token};
        let body = |hosts: &[&str]| {
            hosts
                .iter()
                .enumerate()
                .map(|(i, h)| ev(i as u64, "log").replace(r#"{"serial":"S1"}"#, h))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let ids = |hosts: &[&str]| {
            first_use_identity(&parse_batch(body(hosts).as_bytes(), Limits::default()).unwrap())
        };
        // Serial first, then UUID, then boot MAC; never the hostname.
        let one = r#"{"serial":"S1","uuid":"U1","boot_mac":"aa"}"#;
        assert_eq!(ids(&[one, r#"{"serial":"s1"}"#]), Ok(Some("S1".into())));
        assert_eq!(
            ids(&[r#"{"uuid":"U1","boot_mac":"aa"}"#]),
            Ok(Some("U1".into()))
        );
        assert_eq!(
            ids(&[r#"{"serial":"","boot_mac":"aa"}"#]),
            Ok(Some("aa".into()))
        );
        assert_eq!(ids(&[]), Ok(None));
        let r = ids(&[one, r#"{"serial":"S2"}"#]).unwrap_err();
        assert_eq!((r.status(), r.line()), (403, Some(2)));
        assert!(r.to_string().contains("(S1, then S2)"), "{r}");
        let r = ids(&[r#"{"hostname":"web1"}"#]).unwrap_err();
        assert!(r.to_string().contains("no host serial"), "{r}");
        // Unbound, bind refuses instead of taking any host.
        let t = Token {
            secret: "first-use-token".into(),
            host: None,
            role: None,
            id: token_id("first-use-token"),
            first_use: true,
        };
        let mut e = parse_batch(body(&[one]).as_bytes(), Limits::default()).unwrap();
        assert_eq!(bind(&mut e, &t).unwrap_err().status(), 403);
        let t = Token {
            host: Some("s1".into()),
            ..t
        };
        bind(&mut e, &t).unwrap();
        assert_eq!(e[0].host_key, "S1");
    }

    #[test]
    fn certificates_must_match_step_run_and_host() {
        let host = HostHead {
            serial: Some("S1".into()),
            boot_mac: Some("52:54:00:00:00:0a".into()),
            ..HostHead::default()
        };
        let data = |c: serde_json::Value| serde_json::json!({ "certificates": [c] });
        let good = serde_json::json!({"id": "c", "run_id": "r-1", "outcome": "wiped",
            "host": {"serial": "S1", "uuid": "U-9", "boot_mac": "52:54:00:00:00:0A"}});
        let check = |step: &str, c: &serde_json::Value| {
            check_certificates("r-1", Some(step), &host, &data(c.clone()))
        };
        assert_eq!(check("wipe", &good), Ok(()));
        assert_eq!(
            check_certificates("r-1", Some("x"), &host, &serde_json::json!({})),
            Ok(())
        );
        let with = |k: &str, v: serde_json::Value| {
            let mut c = good.clone();
            c[k] = v;
            c
        };
        let cases = [
            ("bench.cpu", good.clone(), "only in results of step wipe"),
            ("wipe", with("run_id", "r-2".into()), "run_id \"r-2\""),
            ("wipe", with("run_id", serde_json::Value::Null), "(none)"),
            (
                "wipe",
                with("host", serde_json::json!({"serial": "S2"})),
                "host.serial \"S2\"",
            ),
            (
                "wipe",
                with(
                    "host",
                    serde_json::json!({"serial": "S1", "boot_mac": "aa"}),
                ),
                "host.boot_mac",
            ),
            (
                "wipe",
                with("host", serde_json::json!({"uuid": "U-9"})),
                "shares no identity",
            ),
            (
                "wipe",
                with("host", serde_json::Value::Null),
                "shares no identity",
            ),
            ("wipe", with("outcome", "success\" x=\"".into()), "outcome"),
            ("wipe", serde_json::json!("c"), "not an object"),
        ];
        for (step, c, want) in cases {
            let e = check(step, &c).unwrap_err();
            assert!(e.contains(want), "{c}: {e}");
        }
        for o in CERT_OUTCOMES {
            assert_eq!(check("wipe", &with("outcome", (*o).into())), Ok(()));
        }
    }
}
