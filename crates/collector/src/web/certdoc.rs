//! Erasure certificates as documents a person signs off or files: one per
//! disk (`speediso.wipe.certificate/1`, `/2`) and one per server
//! (`speediso.wipe.server-certificate/1`), as HTML (`/certificates/{id}`)
//! and PDF (`/certificates/{id}/pdf`), both rendered from one `CertDoc`.
//! The fields are those of the NIST SP 800-88 Rev. 1 Appendix G sample
//! certificate (docs/certificate.md maps them to the JSON), followed by
//! the signature's status as `cert::verify` found it and how to check it
//! independently.

use super::{esc, page, url_seg};
use crate::cert::{Trust, Verification};
use crate::pdf::{Flow, Font};
use axum::response::Html;
use serde_json::Value;
use std::fmt::Write as _;

/// A table of a document: (title, header, rows).
pub type DocTable = (String, Vec<&'static str>, Vec<Vec<String>>);

/// A certificate laid out for reading: sections of label/value rows and
/// tables, the same for HTML and PDF.
#[derive(Debug, Clone)]
pub struct CertDoc {
    pub id: String,
    pub title: String,
    /// `trusted`, `untrusted` or `failed` (a CSS class), its label, detail.
    pub status: (&'static str, &'static str, String),
    pub sections: Vec<(String, Vec<(String, String)>)>,
    pub tables: Vec<DocTable>,
    /// How to verify the certificate independently.
    pub verify_hint: Vec<String>,
}

/// The value at a dotted path as text: strings as they are, numbers and
/// booleans written out, `-` when absent or null.
fn g(v: &Value, path: &str) -> String {
    let mut cur = v;
    for k in path.split('.') {
        match cur.get(k) {
            Some(x) => cur = x,
            None => return "-".into(),
        }
    }
    text(cur)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// The first of several paths that is present.
fn first(v: &Value, paths: &[&str]) -> String {
    paths
        .iter()
        .map(|p| g(v, p))
        .find(|s| s != "-")
        .unwrap_or_else(|| "-".into())
}

fn bytes(v: &Value, path: &str) -> String {
    let s = g(v, path);
    match s.parse::<u64>() {
        Ok(n) => format!("{} ({n} bytes)", speediso_proto::render::human_bytes(n)),
        Err(_) => s,
    }
}

fn join_present(parts: &[(&str, String)]) -> String {
    let v: Vec<String> = parts
        .iter()
        .filter(|(_, s)| s != "-")
        .map(|(k, s)| {
            if k.is_empty() {
                s.clone()
            } else {
                format!("{k} {s}")
            }
        })
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

fn status(v: &Verification) -> (&'static str, &'static str, String) {
    let key = v.signed_by.as_deref().unwrap_or("-");
    match v.trust {
        Trust::Trusted => (
            "trusted",
            "VALID AND TRUSTED",
            format!(
                "The signature matches and the key is in the trusted signers list ({}).",
                v.signer_name.as_deref().unwrap_or("unnamed key")
            ),
        ),
        Trust::Untrusted => (
            "untrusted",
            "VALID BUT UNKNOWN SIGNER",
            format!(
                "The signature matches, but key {key} is not trusted: {}. \
                 Anyone with some key can make such a certificate; do not rely on it \
                 unless you recognise the key.",
                v.trust_note.as_deref().unwrap_or("not a trusted key")
            ),
        ),
        Trust::Invalid => (
            "failed",
            "INVALID",
            format!(
                "The signature does not verify: {}. The certificate was altered or is malformed.",
                v.error.as_deref().unwrap_or("unknown error")
            ),
        ),
    }
}

/// The document for certificate `id` (of run `run_id`).
pub fn build(id: &str, run_id: &str, c: &Value, v: &Verification) -> CertDoc {
    let server =
        c.get("schema").and_then(Value::as_str) == Some(speediso_proto::cert::SERVER_SCHEMA);
    let tool = join_present(&[
        ("", first(c, &["sanitization.tool.name", "tool.name"])),
        (
            "version",
            first(c, &["sanitization.tool.version", "tool.version"]),
        ),
        (
            "image",
            first(c, &["sanitization.tool.image_build", "tool.image_build"]),
        ),
        (
            "kernel",
            first(c, &["sanitization.tool.kernel", "tool.kernel"]),
        ),
    ]);
    let people = vec![
        (
            "Person performing sanitization".to_string(),
            g(c, "attestation.performed_by"),
        ),
        ("Organisation".into(), g(c, "attestation.organization")),
        ("Validated by".into(), g(c, "attestation.validated_by")),
    ];
    let destination = match g(c, "attestation.post_sanitization_destination") {
        s if s == "-" => "not recorded".to_string(),
        s => s,
    };
    let host = join_present(&[
        ("serial", g(c, "host.serial")),
        ("hostname", g(c, "host.hostname")),
        ("UUID", g(c, "host.uuid")),
        ("boot MAC", g(c, "host.boot_mac")),
        ("asset tag", g(c, "attestation.asset_tag")),
    ]);
    let outcome = match g(c, "error") {
        e if e == "-" => g(c, "outcome"),
        e => format!("{} ({e})", g(c, "outcome")),
    };
    let mut sections = Vec::new();
    let mut tables = Vec::new();
    let title;
    if server {
        title = format!("Server erasure certificate: {}", g(c, "host.serial"));
        let mut rows = people;
        rows.extend([
            ("Server (media source)".into(), host),
            (
                "Make / model".into(),
                join_present(&[("", g(c, "host.vendor")), ("", g(c, "host.product"))]),
            ),
            (
                "Board / chassis serial".into(),
                join_present(&[
                    ("board", g(c, "host.board_serial")),
                    ("chassis", g(c, "host.chassis_serial")),
                ]),
            ),
            ("Tool used".into(), tool),
            ("Post-sanitization destination".into(), destination),
            ("Date".into(), g(c, "issued")),
            ("Outcome".into(), outcome),
            (
                "Disks".into(),
                join_present(&[
                    ("", g(c, "summary.disks")),
                    ("wiped", g(c, "summary.wiped")),
                    ("wiped unverified", g(c, "summary.wiped_unverified")),
                    ("failed", g(c, "summary.failed")),
                    ("other", g(c, "summary.other")),
                    (
                        "skipped (should have been erased)",
                        g(c, "summary.skipped_blocking"),
                    ),
                    ("skipped (policy)", g(c, "summary.skipped_policy")),
                ]),
            ),
        ]);
        sections.push((
            "Sanitization (NIST SP 800-88 Rev. 1, Appendix G)".to_string(),
            rows,
        ));
        let disks = c.get("disks").and_then(Value::as_array);
        let rows: Vec<Vec<String>> = disks
            .into_iter()
            .flatten()
            .map(|d| {
                vec![
                    g(d, "device_path"),
                    g(d, "model"),
                    g(d, "serial"),
                    bytes(d, "size_bytes"),
                    g(d, "category"),
                    join_present(&[("", g(d, "method")), ("", g(d, "technique"))]),
                    g(d, "verification"),
                    match g(d, "error") {
                        e if e == "-" => g(d, "outcome"),
                        e => format!("{} ({e})", g(d, "outcome")),
                    },
                    g(d, "certificate_id"),
                ]
            })
            .collect();
        tables.push((
            "Disks erased".to_string(),
            vec![
                "device",
                "model",
                "serial",
                "size",
                "method",
                "technique",
                "verification",
                "outcome",
                "disk certificate",
            ],
            rows,
        ));
        let skipped: Vec<Vec<String>> = c
            .get("skipped")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|d| {
                vec![
                    g(d, "device_path"),
                    g(d, "model"),
                    g(d, "serial"),
                    bytes(d, "size_bytes"),
                    g(d, "class"),
                    g(d, "reasons"),
                ]
            })
            .collect();
        if !skipped.is_empty() {
            tables.push((
                "Disks not erased".to_string(),
                vec!["device", "model", "serial", "size", "class", "reasons"],
                skipped,
            ));
        }
    } else {
        title = format!("Erasure certificate: disk {}", g(c, "media.serial"));
        let mut verification = join_present(&[
            ("", g(c, "verification.method")),
            ("fraction", g(c, "verification.fraction")),
            ("result", g(c, "verification.result")),
            ("mismatches", g(c, "verification.mismatches")),
        ]);
        if verification == "-" {
            verification = "not recorded".into();
        }
        let mut rows = people;
        rows.extend([
            (
                "Media type".into(),
                join_present(&[
                    ("", g(c, "media.media_type")),
                    ("", g(c, "media.transport")),
                    ("", bytes(c, "media.size_bytes")),
                ]),
            ),
            ("Manufacturer".into(), g(c, "media.make")),
            ("Model".into(), g(c, "media.model")),
            ("Serial number".into(), g(c, "media.serial")),
            (
                "Other identifiers".into(),
                join_present(&[
                    ("WWN", g(c, "media.wwn")),
                    ("firmware", g(c, "media.firmware")),
                    ("device", g(c, "media.device_path")),
                ]),
            ),
            ("Media source (computer)".into(), host),
            ("Sanitization method".into(), g(c, "sanitization.category")),
            (
                "Sanitization technique".into(),
                join_present(&[
                    ("", g(c, "sanitization.technique")),
                    ("method", g(c, "sanitization.method")),
                    ("passes", g(c, "sanitization.passes")),
                ]),
            ),
            ("Tool used".into(), tool),
            ("Verification method".into(), verification),
            ("Post-sanitization destination".into(), destination),
            (
                "Date".into(),
                join_present(&[
                    ("started", g(c, "timing.started")),
                    ("finished", g(c, "timing.finished")),
                ]),
            ),
            ("Outcome".into(), outcome),
        ]);
        sections.push((
            "Sanitization (NIST SP 800-88 Rev. 1, Appendix G)".to_string(),
            rows,
        ));
    }
    sections.push((
        "Identification".to_string(),
        vec![
            ("Certificate id".into(), id.to_string()),
            ("Schema".into(), g(c, "schema")),
            ("Run".into(), run_id.to_string()),
            ("Issued".into(), g(c, "issued")),
        ],
    ));
    let st = status(v);
    let key = v.signed_by.clone().unwrap_or_else(|| "-".into());
    sections.push((
        "Signature / validation".to_string(),
        vec![
            ("Status".into(), format!("{}: {}", st.1, st.2)),
            ("Signing public key (Ed25519)".into(), key.clone()),
            (
                "Key fingerprint".into(),
                v.key_id.clone().unwrap_or_else(|| "-".into()),
            ),
            (
                "Key source".into(),
                v.key_source.clone().unwrap_or_else(|| "-".into()),
            ),
            ("Note".into(), v.note.clone().unwrap_or_else(|| "-".into())),
        ],
    ));
    let verify_hint = vec![
        format!("1. Download the signed certificate (JSON): GET /v1/certificates/{id} from this collector."),
        format!("2. Run: speediso verify-cert {id}.json --pubkey <your organisation's published key>"),
        format!(
            "3. The key must be the one you trust; this certificate names {key} (fingerprint {}: the first 16 hex digits of SHA-256 of the 32 key bytes).",
            v.key_id.as_deref().unwrap_or("-")
        ),
        "The Ed25519 signature covers the canonical JSON of every member but `signature` (docs/certificate.md); this page and its PDF are renderings, the JSON is the record.".into(),
    ];
    CertDoc {
        id: id.to_string(),
        title,
        status: st,
        sections,
        tables,
        verify_hint,
    }
}

/// `/certificates/{id}`.
pub fn html(d: &CertDoc) -> Html<String> {
    let id = url_seg(&d.id);
    let mut s = format!(
        "<p class=\"doclinks\"><a href=\"/certificates/{id}/pdf\">PDF</a> | \
         <a href=\"/v1/certificates/{id}\">signed JSON</a></p>\n\
         <p class=\"{} badge\" id=\"cert-status\">{}: {}</p>\n",
        d.status.0,
        esc(d.status.1),
        esc(&d.status.2)
    );
    for (title, rows) in &d.sections {
        let _ = writeln!(s, "<h2>{}</h2>\n<table class=\"doc\">", esc(title));
        for (k, v) in rows {
            let _ = writeln!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
        }
        s.push_str("</table>\n");
    }
    for (title, header, rows) in &d.tables {
        let _ = writeln!(s, "<h2>{}</h2>\n<table class=\"doc-list\"><tr>", esc(title));
        for h in header {
            let _ = write!(s, "<th>{}</th>", esc(h));
        }
        s.push_str("</tr>\n");
        for r in rows {
            s.push_str("<tr>");
            for c in r {
                let _ = write!(s, "<td>{}</td>", esc(c));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
    }
    s.push_str("<h2>How to verify</h2>\n<ol class=\"verify\">");
    for h in &d.verify_hint {
        let _ = write!(s, "<li>{}</li>", esc(h));
    }
    s.push_str("</ol>\n");
    page(&d.title, &s)
}

/// `/certificates/{id}/pdf`: the same document, A4.
pub fn pdf(d: &CertDoc) -> Vec<u8> {
    let mut f = Flow::new(&d.title);
    f.para(&d.title, 16.0, Font::Bold);
    f.y -= 6.0;
    let gray = match d.status.0 {
        "trusted" => 0.85,
        _ => 0.7,
    };
    let lines = crate::pdf::wrap(
        &format!("{}: {}", d.status.1, d.status.2),
        crate::pdf::PAGE_W - 2.0 * crate::pdf::MARGIN - 12.0,
        10.0,
        Font::Bold,
    );
    let h = lines.len() as f64 * 13.0 + 10.0;
    f.need(h);
    let top = f.y;
    f.pdf.rect(
        crate::pdf::MARGIN,
        top - h,
        crate::pdf::PAGE_W - 2.0 * crate::pdf::MARGIN,
        h,
        Some(gray),
    );
    for (i, l) in lines.iter().enumerate() {
        f.pdf.text(
            crate::pdf::MARGIN + 6.0,
            top - 14.0 - 13.0 * i as f64,
            10.0,
            Font::Bold,
            l,
        );
    }
    f.y = top - h;
    for (title, rows) in &d.sections {
        f.heading(title);
        f.y -= 4.0;
        f.fields(rows);
    }
    for (title, header, rows) in &d.tables {
        f.heading(title);
        f.y -= 4.0;
        let weights: Vec<f64> = header
            .iter()
            .map(|h| match *h {
                "device" | "size" | "class" | "verification" => 1.0,
                "reasons" | "disk certificate" => 1.6,
                _ => 1.3,
            })
            .collect();
        f.table(header, &weights, rows);
    }
    f.heading("How to verify");
    for h in &d.verify_hint {
        f.para(h, 9.0, Font::Regular);
    }
    f.y -= 20.0;
    f.para(
        "Signature of the person validating: ______________________________   Date: ______________",
        10.0,
        Font::Regular,
    );
    f.finish()
}
