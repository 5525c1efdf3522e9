//! The server's certificate: one signed document per decommission besides
//! the one per disk. It names the machine (DMI serial and UUID, boot MAC,
//! make and model), every disk with its method, NIST SP 800-88 category,
//! verification and outcome (and the id of its own certificate), the disks
//! that were not erased and why, the stacks released before the erase, and
//! the operator and organisation from `speediso.wipe.*`. What a fleet
//! operator files for the machine; signed like the per-disk ones (same key,
//! same canonical JSON), checked by the collector and `speediso
//! verify-cert` alike.

use super::cert::{esc, opt, safe_name, write_files, Issuer, Key};
use super::RunResult;
use crate::inventory::dmi::Dmi;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub use speediso_proto::cert::SERVER_SCHEMA;

/// The overall outcome: `wiped` only when every disk that should have
/// been erased was, and verified; `wiped-unverified` when all were erased
/// but one was not verified; `failed` otherwise (a disk failed, or one
/// that should have been erased was skipped).
pub fn outcome(r: &RunResult) -> &'static str {
    let blocking = r.skipped.iter().any(|k| k.is_blocking());
    if blocking || r.disks.iter().any(|d| d.outcome == "failed") || r.disks.is_empty() {
        "failed"
    } else if r.disks.iter().all(|d| d.outcome == "wiped") {
        "wiped"
    } else {
        "wiped-unverified"
    }
}

/// The unsigned body. `disk_certs` are the per-disk certificates in
/// `r.disks`' order.
pub fn build(r: &RunResult, disk_certs: &[Value], ctx: &Issuer, dmi: &Dmi, key: &Key) -> Value {
    let host = &ctx.host;
    let disks: Vec<Value> = r
        .disks
        .iter()
        .zip(disk_certs.iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(o, c)| {
            let d = &o.disk;
            json!({
                "device_path": o.device,
                "serial": opt(&d.serial),
                "model": opt(&d.model),
                "wwn": opt(&d.wwn),
                "size_bytes": d.size_bytes,
                "transport": format!("{:?}", d.transport).to_lowercase(),
                "method": o.method.name(),
                "category": o.method.category(),
                "technique": o.method.technique(),
                "verification": o.verify.result,
                "outcome": o.outcome,
                "error": opt(&o.error),
                "certificate_id": c.and_then(|c| c.get("id")).cloned().unwrap_or(Value::Null),
                // HPA/DCO found and restored, or NVMe capacity outside the namespace.
                "hidden_area": serde_json::to_value(&o.hidden_area).unwrap_or(Value::Null),
            })
        })
        .collect();
    let skipped: Vec<Value> = r
        .skipped
        .iter()
        .map(|k| {
            let d = k.disk.as_ref();
            json!({
                "device_path": k.device,
                "serial": d.map(|d| opt(&d.serial)).unwrap_or(Value::Null),
                "model": d.map(|d| opt(&d.model)).unwrap_or(Value::Null),
                "size_bytes": d.map(|d| d.size_bytes),
                "class": if k.is_blocking() { "blocking" } else { "policy" },
                "reasons": k.reasons,
            })
        })
        .collect();
    let released: Vec<Value> = r
        .released
        .iter()
        .map(|s| json!({"stack": s.stack, "disks": s.disks, "outcome": s.outcome, "error": opt(&s.error)}))
        .collect();
    let count = |o: &str| r.disks.iter().filter(|d| d.outcome == o).count();
    json!({
        "schema": SERVER_SCHEMA,
        "id": crate::events::new_run_id(),
        "run_id": ctx.run_id,
        "issued": crate::events::rfc3339_now(),
        "host": {
            "serial": opt(&host.serial),
            "uuid": opt(&host.uuid),
            "boot_mac": opt(&host.boot_mac),
            "hostname": opt(&host.hostname),
            "vendor": opt(&dmi.system_vendor),
            "product": opt(&dmi.system_product),
            "board_serial": opt(&dmi.board_serial),
            "chassis_serial": opt(&dmi.chassis_serial),
        },
        "outcome": outcome(r),
        "summary": {
            "disks": r.disks.len(),
            "wiped": count("wiped"),
            "wiped_unverified": count("wiped-unverified"),
            "failed": count("failed"),
            "other": r.disks.len() - count("wiped") - count("wiped-unverified") - count("failed"),
            "skipped_blocking": r.skipped.iter().filter(|k| k.is_blocking()).count(),
            "skipped_policy": r.skipped.iter().filter(|k| !k.is_blocking()).count(),
        },
        "disks": disks,
        "skipped": skipped,
        "released_stacks": released,
        "tool": {
            "name": "speediso",
            "version": env!("CARGO_PKG_VERSION"),
            "image_build": opt(&ctx.image_build),
            "kernel": opt(&ctx.kernel),
        },
        "attestation": {
            "performed_by": opt(&ctx.performed_by),
            "validated_by": opt(&ctx.validated_by),
            "organization": opt(&ctx.organization),
            "asset_tag": opt(&ctx.asset_tag),
            "post_sanitization_destination": opt(&ctx.destination),
        },
        "signer": key.signer(),
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => esc(s),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join("<br>"),
        other => esc(&other.to_string()),
    }
}

/// A self-contained HTML page of the server certificate.
pub fn html(c: &Value) -> String {
    let ok = c["outcome"] == "wiped";
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Server Certificate of Sanitization</title><style>\
         body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}\
         table{border-collapse:collapse;width:100%;margin-bottom:1.2em}\
         th{text-align:left;background:#f0f0f0}th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top}\
         .ok{color:#060}.bad{color:#a00}code{word-break:break-all}</style></head><body>\n",
    );
    s.push_str(&format!(
        "<h1>Server Certificate of Sanitization</h1>\n<p class=\"{}\"><b>Outcome: {}</b> — {} disk(s) erased and verified, {} failed, {} not erased that should have been</p>\n",
        if ok { "ok" } else { "bad" },
        text(&c["outcome"]),
        text(&c["summary"]["wiped"]),
        text(&c["summary"]["failed"]),
        text(&c["summary"]["skipped_blocking"]),
    ));
    let kv = |s: &mut String, title: &str, v: &Value| {
        s.push_str(&format!("<h2>{title}</h2>\n<table>\n"));
        if let Some(m) = v.as_object() {
            for (k, v) in m {
                s.push_str(&format!(
                    "<tr><th>{}</th><td>{}</td></tr>\n",
                    esc(&k.replace('_', " ")),
                    text(v)
                ));
            }
        }
        s.push_str("</table>\n");
    };
    kv(&mut s, "Machine", &c["host"]);
    let rows = |s: &mut String, title: &str, v: &Value, cols: &[&str]| {
        s.push_str(&format!("<h2>{title}</h2>\n<table>\n<tr>"));
        for k in cols {
            s.push_str(&format!("<th>{}</th>", esc(&k.replace('_', " "))));
        }
        s.push_str("</tr>\n");
        for r in v.as_array().into_iter().flatten() {
            s.push_str("<tr>");
            for k in cols {
                s.push_str(&format!("<td>{}</td>", text(&r[*k])));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
    };
    rows(
        &mut s,
        "Disks",
        &c["disks"],
        &[
            "device_path",
            "serial",
            "model",
            "method",
            "category",
            "verification",
            "outcome",
            "error",
            "certificate_id",
        ],
    );
    rows(
        &mut s,
        "Not erased",
        &c["skipped"],
        &["device_path", "serial", "model", "class", "reasons"],
    );
    rows(
        &mut s,
        "Stacks released before the erase",
        &c["released_stacks"],
        &["stack", "disks", "outcome", "error"],
    );
    kv(&mut s, "Attestation", &c["attestation"]);
    kv(&mut s, "Tool", &c["tool"]);
    s.push_str(&format!(
        "<h2>Signature</h2>\n<table>\n<tr><th>certificate id</th><td>{}</td></tr>\n<tr><th>run id</th><td>{}</td></tr>\n\
         <tr><th>issued</th><td>{}</td></tr>\n<tr><th>algorithm</th><td>{}</td></tr>\n\
         <tr><th>public key</th><td><code>{}</code></td></tr>\n<tr><th>signature</th><td><code>{}</code></td></tr>\n</table>\n\
         <p>Check with <code>speediso verify-cert FILE.json --pubkey KEY</code>.</p>\n</body></html>\n",
        text(&c["id"]),
        text(&c["run_id"]),
        text(&c["issued"]),
        text(&c["signature"]["algorithm"]),
        text(&c["signature"]["public_key"]),
        text(&c["signature"]["value"]),
    ));
    s
}

/// Write `<dir>/server-<host serial or uuid>-<run>.json` and `.html`.
pub fn write(dir: &Path, c: &Value) -> anyhow::Result<(PathBuf, PathBuf)> {
    let who = c["host"]["serial"]
        .as_str()
        .or(c["host"]["uuid"].as_str())
        .unwrap_or("host");
    let run = c["run_id"].as_str().unwrap_or("run");
    let stem = format!(
        "server-{}-{}",
        safe_name(who),
        safe_name(&run[..run.len().min(8)])
    );
    write_files(dir, &stem, c, &html(c))
}
