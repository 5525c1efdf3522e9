//! Server-rendered HTML: the fleet board (`/`, `board`), a host page with
//! its inventory and its bench figures charted against the hosts with the
//! same CPU model (`/hosts/{key}`), a run page with its results,
//! certificates, progress chart and event timeline (`/runs/{run_id}`), and
//! certificate documents (`certdoc`). No JavaScript; every value goes
//! through `esc`.

pub mod board;
pub mod certdoc;
pub mod svg;

use super::cert::{Trust, Verification};
use super::server::App;
use super::store::{self, RunRow, Store};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write as _;
use std::sync::Arc;

/// A host this much below its siblings' median (on a higher-is-better
/// figure, or above on lower-is-better) is flagged as slower.
pub const SLOWER_THRESHOLD: f64 = 0.10;

pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // As the store writes it (ingest::escape_nul); never markup.
            '\0' => o.push_str("\\u0000"),
            c => o.push(c),
        }
    }
    o
}

/// Percent-encode a path segment.
pub fn url_seg(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

const CSS: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}.success{color:#176f2c;font-weight:bold}.failed,.timed_out,.rejected,.refused{color:#b00020;font-weight:bold}
.running{color:#8a6d00}.trusted{color:#176f2c;font-weight:bold}.untrusted{background:#ffe3b0;color:#8a3b00;font-weight:bold}.slower{background:#ffd6d6;font-weight:bold}.faster{background:#d9f5dd}
pre{background:#f7f7f7;padding:.5em;overflow:auto;max-height:30em}.warning{background:#fff4cc}
.filter{background:#f7f7f7;padding:.5em;margin-bottom:1em}.filter label{margin-right:.6em}
.vpass{color:#176f2c;font-weight:bold}.vwarn{background:#fff4cc;font-weight:bold}.vfail{background:#ffd6d6;color:#b00020;font-weight:bold}
.reasons{max-width:30em;font-size:90%}.badge{padding:.5em;border:1px solid #999}
table.doc th{width:16em}table.kv th{font-weight:normal;background:#f7f7f7}
@media print{a[href]{color:#222;text-decoration:none}.doclinks,.filter{display:none}}";

pub(crate) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - speediso</title><style>{CSS}</style></head>\n<body><p><a href=\"/\">speediso collector</a></p>\n<h1>{}</h1>\n{body}</body></html>\n",
        esc(title),
        esc(title)
    ))
}

/// The outcomes with a style; the class is only ever one of these (rows
/// stored before ingest checked outcomes may hold anything).
pub(crate) const OUTCOME_CLASSES: &[&str] = &[
    "success",
    "failed",
    "timed_out",
    "refused",
    "rejected",
    "running",
];

fn outcome_cell(r: &RunRow) -> String {
    outcome_td(r.outcome.as_deref())
}

/// An outcome (`None`: still running) as a table cell.
pub(crate) fn outcome_td(o: Option<&str>) -> String {
    let o = o.unwrap_or("running");
    let class = if OUTCOME_CLASSES.contains(&o) {
        o
    } else {
        "unknown"
    };
    format!("<td class=\"outcome {class}\">{}</td>", esc(o))
}

fn duration(r: &RunRow) -> String {
    r.duration_ms
        .map(|ms| speediso_proto::render::human_duration(ms as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// A few figures of a run's bench results, for the run lists.
fn key_figures(results: &[store::ResultRow]) -> String {
    let mut parts = Vec::new();
    for r in results {
        let step = r.step.as_deref().unwrap_or("");
        if !step.starts_with("bench") {
            continue;
        }
        for (k, v) in store::figures(&r.data).into_iter().take(3) {
            parts.push(format!("{step} {k}={}", fmt_num(v)));
        }
    }
    esc(&parts.join("; "))
}

pub fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn runs_table(runs: &[(RunRow, String)], with_host: bool) -> String {
    let mut s = String::from("<table class=\"runs\"><tr><th>started</th>");
    if with_host {
        s.push_str("<th>host</th>");
    }
    s.push_str(
        "<th>task</th><th>outcome</th><th>duration</th><th>events</th><th>key figures</th></tr>\n",
    );
    for (r, figs) in runs {
        let _ = write!(
            s,
            "<tr><td><a href=\"/runs/{}\">{}</a></td>",
            url_seg(&r.run_id),
            esc(r.started.as_deref().unwrap_or(&r.first_ts))
        );
        if with_host {
            let _ = write!(
                s,
                "<td><a href=\"/hosts/{}\">{}</a></td>",
                url_seg(&r.host_key),
                esc(&r.host_key)
            );
        }
        let _ = writeln!(
            s,
            "<td>{}</td>{}<td>{}</td><td>{}</td><td>{figs}</td></tr>",
            esc(r.task.as_deref().unwrap_or("-")),
            outcome_cell(r),
            duration(r),
            r.events
        );
    }
    s.push_str("</table>\n");
    s
}

/// The runs `runs(host, task, limit)` lists, each with its key figures:
/// two statements, however many runs.
fn runs_with_figures(
    c: &mut dyn Store,
    host: Option<&str>,
    task: Option<&str>,
    limit: usize,
) -> anyhow::Result<Vec<(RunRow, String)>> {
    let filter = store::RunFilter { host, task, limit };
    let runs = c.runs(filter)?;
    let mut bench: std::collections::HashMap<String, Vec<store::ResultRow>> =
        std::collections::HashMap::new();
    for (run_id, step, data) in c.runs_bench_results(filter)? {
        let row = store::ResultRow::from_row((0, step, data))?;
        bench.entry(run_id).or_default().push(row);
    }
    Ok(runs
        .into_iter()
        .map(|r| {
            let f = bench
                .get(&r.run_id)
                .map(|b| key_figures(b))
                .unwrap_or_default();
            (r, f)
        })
        .collect())
}

/// Whether a bigger value of this figure is better (rates, scores) or
/// worse (latencies, durations).
pub fn higher_is_better(figure: &str) -> bool {
    let f = figure.to_ascii_lowercase();
    let lower = [
        "latency", "lat_", "_ms", "_us", "_ns", "duration", "time", "seconds", "errors",
    ];
    !lower.iter().any(|w| f.contains(w)) || f.contains("per_second")
}

pub async fn host_page(State(app): State<Arc<App>>, UrlPath(key): UrlPath<String>) -> Response {
    let res = app
        .read(move |c| {
            let Some(h) = store::host(c, &key)? else {
                return Ok(None);
            };
            let cmp = store::compare(c, &h)?;
            let runs = runs_with_figures(c, Some(&key), None, 100)?;
            let inventory = match c.last_result(&key, "inventory")? {
                Some(d) => Some(serde_json::from_str(&d)?),
                None => None,
            };
            Ok(Some((h, cmp, runs, inventory)))
        })
        .await;
    match res {
        Ok(Some((h, cmp, runs, inv))) => render_host(&h, &cmp, &runs, inv.as_ref()).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, page("No such host", "")).into_response(),
        Err(r) => r,
    }
}

/// `/hosts/{key}`: a host, its bench figures against its siblings, its runs.
pub fn render_host(
    h: &store::HostRow,
    cmp: &[store::Comparison],
    runs: &[(RunRow, String)],
    inventory: Option<&serde_json::Value>,
) -> Html<String> {
    let mut s = String::from("<table class=\"host\">");
    for (k, v) in [
        ("serial", &h.serial),
        ("uuid", &h.uuid),
        ("boot MAC", &h.boot_mac),
        ("hostname", &h.hostname),
        ("CPU model", &h.cpu_model),
    ] {
        let _ = write!(
            s,
            "<tr><th>{k}</th><td>{}</td></tr>",
            esc(v.as_deref().unwrap_or("-"))
        );
    }
    s.push_str("</table>\n<h2>Benchmarks vs. hosts with the same CPU model</h2>\n");
    let slower: Vec<&store::Comparison> = cmp.iter().filter(|c| verdict(c) == Some(true)).collect();
    if !slower.is_empty() {
        let _ = writeln!(
            s,
            "<p class=\"slower\" id=\"slower-summary\">SLOWER than its siblings on {} figure(s)</p>",
            slower.len()
        );
    }
    if cmp.is_empty() {
        s.push_str("<p>No bench results yet.</p>\n");
    } else {
        s.push_str("<p>Each chart: the siblings' latest values as dots, their median as a black tick, this host as the bar (red: slower, green: faster).</p>\n");
        s.push_str("<table class=\"compare\"><tr><th>step</th><th>figure</th><th>this host</th><th>median of siblings</th><th>siblings</th><th>vs. median</th><th>distribution</th></tr>\n");
        for c in cmp {
            let class = match verdict(c) {
                Some(true) => " class=\"slower\"",
                Some(false) => " class=\"faster\"",
                None => "",
            };
            let chart = if c.sibling_values.is_empty() {
                String::new()
            } else {
                svg::strip(&c.sibling_values, c.value, c.median, verdict(c))
            };
            let _ = writeln!(
                s,
                "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{chart}</td></tr>",
                esc(&c.step),
                esc(&c.figure),
                fmt_num(c.value),
                c.median.map(fmt_num).unwrap_or_else(|| "-".into()),
                c.siblings,
                c.ratio
                    .map(|r| format!("{:+.1}%", (r - 1.0) * 100.0))
                    .unwrap_or_else(|| "-".into())
            );
        }
        s.push_str("</table>\n");
    }
    s.push_str("<h2>Runs</h2>\n");
    s.push_str(&runs_table(runs, false));
    s.push_str("<h2>Inventory</h2>\n");
    match inventory {
        Some(inv) => s.push_str(&inventory_tables(inv)),
        None => s.push_str("<p>No inventory result yet.</p>\n"),
    }
    page(&format!("Host {}", h.host_key), &s)
}

/// A JSON scalar as cell text.
fn scalar(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::Null => Some("-".into()),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            Some(a.iter().filter_map(scalar).collect::<Vec<_>>().join(", "))
        }
        _ => None,
    }
}

/// An object's scalar members as a two-column table.
fn kv_table(o: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut rows = String::new();
    for (k, v) in o {
        if let Some(t) = scalar(v) {
            let _ = write!(rows, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&t));
        }
    }
    if rows.is_empty() {
        return rows;
    }
    format!("<table class=\"kv\">{rows}</table>\n")
}

/// Objects as rows: the columns are their scalar members (in first-seen
/// order, at most 14).
fn list_table(items: &[serde_json::Value]) -> String {
    let mut cols: Vec<&str> = Vec::new();
    for it in items {
        for (k, v) in it.as_object().into_iter().flatten() {
            if scalar(v).is_some() && !cols.contains(&k.as_str()) && cols.len() < 14 {
                cols.push(k);
            }
        }
    }
    let mut s = String::from("<table class=\"list\"><tr>");
    for c in &cols {
        let _ = write!(s, "<th>{}</th>", esc(c));
    }
    s.push_str("</tr>\n");
    for it in items {
        s.push_str("<tr>");
        for c in &cols {
            let t = it.get(*c).and_then(scalar).unwrap_or_default();
            let _ = write!(s, "<td>{}</td>", esc(&t));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    s
}

/// The inventory result as tables: CPU, memory (and its DIMMs), disks,
/// NICs, PCI devices first, then any other section; objects as
/// label/value tables, arrays of objects as lists.
pub fn inventory_tables(inv: &serde_json::Value) -> String {
    use serde_json::Value;
    let Some(o) = inv.as_object() else {
        return format!("<pre>{}</pre>", esc(&inv.to_string()));
    };
    let order = [
        "cpu",
        "memory",
        "disks",
        "nics",
        "pci",
        "gpus",
        "storage_controllers",
        "dmi",
    ];
    let mut keys: Vec<&String> = o.keys().collect();
    keys.sort_by_key(|k| order.iter().position(|x| x == k).unwrap_or(order.len()));
    let mut s = String::new();
    for k in keys {
        let v = &o[k];
        let body = match v {
            Value::Object(m) => {
                let mut b = kv_table(m);
                for (sub, sv) in m {
                    if let Value::Array(a) = sv {
                        if a.iter().any(Value::is_object) {
                            let _ = write!(b, "<h4>{} {}</h4>{}", esc(k), esc(sub), list_table(a));
                        }
                    }
                }
                b
            }
            Value::Array(a) if a.iter().any(Value::is_object) => list_table(a),
            other => match scalar(other) {
                Some(t) => format!("<p>{}</p>\n", esc(&t)),
                None => continue,
            },
        };
        let _ = write!(s, "<h3>{}</h3>\n{body}", esc(k));
    }
    s
}

/// `Some(true)`: worse than the siblings' median by more than the
/// threshold; `Some(false)`: better by more; `None`: within, or no siblings.
pub fn verdict(c: &store::Comparison) -> Option<bool> {
    let r = c.ratio?;
    let worse = if higher_is_better(&c.figure) {
        r < 1.0 - SLOWER_THRESHOLD
    } else {
        r > 1.0 + SLOWER_THRESHOLD
    };
    let better = if higher_is_better(&c.figure) {
        r > 1.0 + SLOWER_THRESHOLD
    } else {
        r < 1.0 - SLOWER_THRESHOLD
    };
    if worse {
        Some(true)
    } else if better {
        Some(false)
    } else {
        None
    }
}

/// The certificates of a run. Trust comes first and only a trusted
/// signature is green: a valid signature from an unlisted key proves only
/// that someone with some key signed it.
pub fn certs_table(certs: &[(String, Verification)]) -> String {
    if certs.is_empty() {
        return String::new();
    }
    let mut s = String::from("<h2>Erasure certificates</h2>\n");
    let untrusted = certs
        .iter()
        .filter(|(_, v)| v.trust != Trust::Trusted)
        .count();
    if untrusted == 0 {
        let _ = writeln!(
            s,
            "<p class=\"trusted\" id=\"cert-trust\">All {} certificate(s) signed by a trusted key.</p>",
            certs.len()
        );
    } else {
        let _ = writeln!(
            s,
            "<p class=\"untrusted\" id=\"cert-trust\">{untrusted} of {} certificate(s) NOT signed by a trusted key: do not rely on them.</p>",
            certs.len()
        );
    }
    s.push_str(
        "<table class=\"certs\"><tr><th>certificate</th><th>trust</th><th>signature</th><th>document</th></tr>\n",
    );
    for (id, v) in certs {
        let key = v.signed_by.as_deref().unwrap_or("-");
        let source = v
            .key_source
            .as_deref()
            .map(|k| format!("; key source {k}"))
            .unwrap_or_default();
        let (class, label, detail) = match v.trust {
            Trust::Trusted => (
                "trusted",
                "TRUSTED",
                format!(
                    "signed by {} (key {key}){source}",
                    v.signer_name.as_deref().unwrap_or("a listed key")
                ),
            ),
            Trust::Untrusted => (
                "untrusted",
                "UNTRUSTED",
                format!(
                    "the signature matches, but by key {key}{source}: {}",
                    v.trust_note.as_deref().unwrap_or("not a trusted key")
                ),
            ),
            Trust::Invalid => ("failed", "INVALID", v.error.clone().unwrap_or_default()),
        };
        let note = v
            .note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "<tr><td><a href=\"/certificates/{0}\">{1}</a></td><td class=\"trust {class}\">{label}</td><td>{2}</td>\
             <td><a href=\"/certificates/{0}\">HTML</a> <a href=\"/certificates/{0}/pdf\">PDF</a> <a href=\"/v1/certificates/{0}\">JSON</a></td></tr>",
            url_seg(id),
            esc(id),
            esc(&format!("{detail}{note}"))
        );
    }
    s.push_str("</table>\n");
    s
}

#[derive(serde::Deserialize)]
pub struct RunPageQuery {
    after_seq: Option<i64>,
}

/// Events on a run page: the last ones by default, or a page from a
/// cursor; progress events are counted, not listed.
pub const RUN_PAGE_EVENTS: usize = 200;

/// About this many progress events are read for a run's chart (every
/// n-th by seq on a long run).
pub const PROGRESS_POINTS: usize = 1500;

/// The progress chart of a run: one line per step and subject (`message`,
/// e.g. the device) of its `rate`, else of its `percent`.
pub fn progress_chart(progress: &[serde_json::Value]) -> Option<String> {
    let t0 = progress
        .iter()
        .filter_map(|e| e["ts"].as_str().and_then(svg::epoch_seconds))
        .reduce(f64::min)?;
    let has_rate = progress.iter().any(|e| e["rate"].is_number());
    let field = if has_rate { "rate" } else { "percent" };
    let mut series: Vec<svg::Series> = Vec::new();
    for e in progress {
        let (Some(t), Some(v)) = (
            e["ts"].as_str().and_then(svg::epoch_seconds),
            e[field].as_f64(),
        ) else {
            continue;
        };
        let name = format!(
            "{} {}",
            e["step"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        )
        .trim()
        .to_string();
        match series.iter().position(|s| s.name == name) {
            Some(i) => series[i].points.push((t - t0, v)),
            None if series.len() < 16 => series.push(svg::Series {
                name,
                points: vec![(t - t0, v)],
            }),
            None => {}
        }
    }
    if series.is_empty() {
        return None;
    }
    Some(if has_rate {
        svg::lines(&series, "throughput per second", |v| {
            format!("{}/s", speediso_proto::render::human_bytes(v as u64))
        })
    } else {
        svg::lines(&series, "percent done", |v| format!("{v:.0}%"))
    })
}

/// A result's data as tables: its scalars, each nested object, each list.
pub fn result_tables(data: &serde_json::Value) -> String {
    use serde_json::Value;
    let Some(o) = data.as_object() else {
        return format!(
            "<p>{}</p>",
            esc(&scalar(data).unwrap_or_else(|| data.to_string()))
        );
    };
    let mut s = kv_table(o);
    for (k, v) in o {
        match v {
            Value::Object(m) => {
                let _ = write!(s, "<h4>{}</h4>{}", esc(k), kv_table(m));
            }
            Value::Array(a) if a.iter().any(Value::is_object) => {
                let _ = write!(s, "<h4>{}</h4>{}", esc(k), list_table(a));
            }
            _ => {}
        }
    }
    s
}

pub async fn run_page(
    State(app): State<Arc<App>>,
    UrlPath(run_id): UrlPath<String>,
    Query(q): Query<RunPageQuery>,
) -> Response {
    let trusted = app.trusted.clone();
    let res = app
        .read(move |c| {
            let Some(r) = c.run(&run_id)? else {
                return Ok(None);
            };
            let events = match q.after_seq {
                None => store::events_tail(c, &run_id, RUN_PAGE_EVENTS)?,
                Some(a) => store::events_page(c, &run_id, a, RUN_PAGE_EVENTS, false)?,
            };
            let results = c.results(&run_id)?;
            let stride = (r.last_seq / PROGRESS_POINTS as i64).max(1);
            let progress = c.progress_sample(&run_id, stride, PROGRESS_POINTS * 2)?;
            let mut certs = Vec::new();
            for id in c.certificate_ids(&run_id)? {
                if let Some((_, body)) = c.certificate(&id)? {
                    certs.push((id, super::cert::verify(&body, trusted.as_deref())));
                }
            }
            Ok(Some((r, events, results, certs, progress)))
        })
        .await;
    match res {
        Ok(Some((r, events, results, certs, progress))) => {
            render_run(&r, &events, &results, &certs, &progress).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, page("No such run", "")).into_response(),
        Err(resp) => resp,
    }
}

/// One event as the console would say it.
fn describe(ev: &serde_json::Value) -> String {
    serde_json::from_value::<speediso_proto::events::Event>(ev.clone())
        .map(|e| speediso_proto::render::describe(&e))
        .unwrap_or_else(|_| ev.to_string())
}

/// `/runs/{run_id}`: a run, its certificates, results and timeline.
pub fn render_run(
    r: &RunRow,
    events: &store::EventsPage,
    results: &[store::ResultRow],
    certs: &[(String, Verification)],
    progress: &[serde_json::Value],
) -> Html<String> {
    let mut s = String::from("<table class=\"run\">");
    let _ = write!(
        s,
        "<tr><th>run</th><td>{}</td></tr><tr><th>host</th><td><a href=\"/hosts/{}\">{}</a></td></tr>\
         <tr><th>task</th><td>{}</td></tr><tr><th>outcome</th>{}</tr><tr><th>exit status</th><td>{}</td></tr>\
         <tr><th>duration</th><td>{}</td></tr><tr><th>started</th><td>{}</td></tr><tr><th>finished</th><td>{}</td></tr>\
         <tr><th>events</th><td>{} (last seq {})</td></tr>",
        esc(&r.run_id),
        url_seg(&r.host_key),
        esc(&r.host_key),
        esc(r.task.as_deref().unwrap_or("-")),
        outcome_cell(r),
        r.exit_status.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
        duration(r),
        esc(r.started.as_deref().unwrap_or("-")),
        esc(r.finished.as_deref().unwrap_or("-")),
        r.events,
        r.last_seq
    );
    if let Some(e) = &r.error {
        let _ = write!(
            s,
            "<tr><th>error</th><td class=\"error\">{}</td></tr>",
            esc(e)
        );
    }
    s.push_str("</table>\n");
    let _ = writeln!(
        s,
        "<p class=\"raw\">Raw: <a href=\"/v1/runs/{0}\" id=\"raw-json\">this run as JSON</a>, \
         <a href=\"/v1/runs/{0}?progress=all\">every event (JSON, paged)</a></p>",
        url_seg(&r.run_id)
    );
    s.push_str(&certs_table(certs));
    if let Some(chart) = progress_chart(progress) {
        s.push_str("<h2>Progress</h2>\n<div id=\"progress-chart\">");
        s.push_str(&chart);
        s.push_str("</div>\n");
    }
    s.push_str("<h2>Results</h2>\n");
    if results.is_empty() {
        s.push_str("<p>No results.</p>\n");
    }
    for res in results {
        let _ = writeln!(
            s,
            "<h3>{} (seq {})</h3>{}<details><summary>JSON</summary><pre class=\"result\">{}</pre></details>",
            esc(res.step.as_deref().unwrap_or("-")),
            res.seq,
            result_tables(&res.data),
            esc(&serde_json::to_string_pretty(&res.data).unwrap_or_default())
        );
    }
    s.push_str("<h2>Timeline</h2>\n");
    let run = url_seg(&r.run_id);
    let omitted: i64 = events.progress_omitted.iter().map(|p| p.count).sum();
    let _ = write!(
        s,
        "<p class=\"paging\">{} event(s) after seq {}, {omitted} progress event(s) counted, not listed; \
         <a href=\"/runs/{run}?after_seq=-1\">from the start</a>",
        events.events.len(),
        events.after_seq
    );
    if let Some(n) = events.next_after_seq {
        let _ = write!(s, ", <a href=\"/runs/{run}?after_seq={n}\">next page</a>");
    }
    let _ = writeln!(
        s,
        ", <a href=\"/v1/runs/{run}?progress=all\">every event (JSON, paged)</a></p>"
    );
    s.push_str("<table class=\"timeline\"><tr><th>seq</th><th>time</th><th>step</th><th>type</th><th>what</th></tr>\n");
    // Each progress span is shown where its last event is.
    let mut spans = events.progress_omitted.iter().peekable();
    let span_row = |s: &mut String, p: &store::ProgressSpan| {
        let _ = writeln!(
            s,
            "<tr class=\"progress\"><td>{}-{}</td><td>{}</td><td>{}</td><td>progress</td><td>{} progress event(s); last: {}</td></tr>",
            p.first_seq,
            p.last_seq,
            esc(p.last["ts"].as_str().unwrap_or("")),
            esc(p.step.as_deref().unwrap_or("")),
            p.count,
            esc(&describe(&p.last))
        );
    };
    for ev in &events.events {
        let seq = ev["seq"].as_i64().unwrap_or(i64::MAX);
        while let Some(p) = spans.next_if(|p| p.last_seq < seq) {
            span_row(&mut s, p);
        }
        let kind = ev["type"].as_str().unwrap_or("?");
        let class = match kind {
            "warning" => " class=\"warning\"",
            _ => "",
        };
        let _ = writeln!(
            s,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&ev["seq"].to_string()),
            esc(ev["ts"].as_str().unwrap_or("")),
            esc(ev["step"].as_str().unwrap_or("")),
            esc(kind),
            esc(&describe(ev))
        );
    }
    for p in spans {
        span_row(&mut s, p);
    }
    s.push_str("</table>\n");
    page(
        &format!(
            "Run {} ({})",
            r.task.as_deref().unwrap_or("-"),
            r.outcome.as_deref().unwrap_or("running")
        ),
        &s,
    )
}

/// A certificate and its verification, as a document.
async fn cert_doc(app: Arc<App>, id: String) -> Result<certdoc::CertDoc, Response> {
    let trusted = app.trusted.clone();
    let found = app
        .read(move |c| {
            Ok(c.certificate(&id)?.map(|(run, body)| {
                let v = super::cert::verify(&body, trusted.as_deref());
                certdoc::build(&id, &run, &body, &v)
            }))
        })
        .await?;
    found.ok_or_else(|| (StatusCode::NOT_FOUND, page("No such certificate", "")).into_response())
}

/// `/certificates/{id}`: the certificate as an HTML document.
pub async fn cert_page(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    match cert_doc(app, id).await {
        Ok(d) => certdoc::html(&d).into_response(),
        Err(r) => r,
    }
}

/// `/certificates/{id}/pdf`: the same document as a PDF.
pub async fn cert_pdf(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    match cert_doc(app, id).await {
        Ok(d) => {
            // The id is `cert::valid_id` (URL-safe) or a run-derived one;
            // the file name keeps only the safe characters.
            let name: String =
                d.id.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                    .collect();
            (
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        "application/pdf".to_string(),
                    ),
                    (
                        axum::http::header::CONTENT_DISPOSITION,
                        format!("inline; filename=\"certificate-{name}.pdf\""),
                    ),
                ],
                certdoc::pdf(&d),
            )
                .into_response()
        }
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_direction() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(url_seg("52:54:00/x y"), "52%3A54%3A00%2Fx%20y");
        assert!(higher_is_better("events_per_second.all"));
        assert!(higher_is_better("read_bw_bytes_per_second"));
        assert!(!higher_is_better("latency_us.p99"));
        let c = |figure: &str, ratio| store::Comparison {
            step: "bench.cpu".into(),
            figure: figure.into(),
            value: 0.0,
            median: Some(1.0),
            siblings: 3,
            ratio: Some(ratio),
            sibling_values: vec![],
        };
        assert_eq!(verdict(&c("events_per_second.all", 0.7)), Some(true));
        assert_eq!(verdict(&c("events_per_second.all", 0.95)), None);
        assert_eq!(verdict(&c("latency_us.p99", 1.5)), Some(true));
        assert_eq!(verdict(&c("latency_us.p99", 0.5)), Some(false));
    }

    /// Every attribute of every tag as (tag, name, value); panics unless
    /// each is `name="value"` with no `"`, `<` or `>` inside the value.
    fn attributes(html: &str) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let b = html.as_bytes();
        let mut i = 0;
        while let Some(off) = html[i..].find('<') {
            i += off + 1;
            if matches!(b.get(i), Some(b'!' | b'/')) {
                i += html[i..].find('>').expect("tag closed");
                continue;
            }
            let start = i;
            while b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let tag = html[start..i].to_string();
            assert!(
                !tag.is_empty(),
                "a bare '<' in markup at {start}: {}",
                &html[start - 1..]
            );
            loop {
                while b[i] == b' ' {
                    i += 1;
                }
                if b[i] == b'>' || (b[i] == b'/' && b[i + 1] == b'>') {
                    break;
                }
                let n = i;
                while b[i].is_ascii_alphanumeric() || b[i] == b'-' {
                    i += 1;
                }
                let name = html[n..i].to_string();
                assert!(
                    !name.is_empty() && &html[i..i + 2] == "=\"",
                    "<{tag}: not name=\"value\" at {}",
                    &html[n..(n + 60).min(html.len())]
                );
                i += 2;
                let end = i + html[i..].find('"').unwrap();
                let value = html[i..end].to_string();
                assert!(!value.contains(['<', '>']), "<{tag} {name}={value:?}");
                out.push((tag.clone(), name, value));
                i = end + 1;
                assert!(
                    matches!(b[i], b' ' | b'>' | b'/'),
                    "<{tag}: junk after an attribute: {}",
                    &html[i..(i + 60).min(html.len())]
                );
            }
        }
        out
    }

    #[test]
    fn hostile_strings_are_escaped_on_every_page() {
        let h = r#"x" onmouseover="alert(1)" y='<script>alert(2)</script>&amp;"#;
        let some = || Some(h.to_string());
        let host = store::HostRow {
            host_key: h.into(),
            serial: some(),
            uuid: some(),
            boot_mac: some(),
            hostname: some(),
            cpu_model: some(),
            first_seen: h.into(),
            last_seen: h.into(),
            runs: 1,
        };
        // Outcome as a row stored before ingest checked it could hold.
        let run = RunRow {
            run_id: h.into(),
            host_key: h.into(),
            task: some(),
            started: some(),
            finished: some(),
            outcome: some(),
            exit_status: Some(1),
            duration_ms: Some(5),
            error: some(),
            events: 1,
            last_seq: 0,
            first_ts: h.into(),
        };
        let results = vec![store::ResultRow {
            seq: 1,
            step: Some(format!("bench{h}")),
            data: serde_json::json!({ h: 1.5, "x": h }),
        }];
        let events = vec![
            serde_json::json!({"v":1,"run_id":h,"seq":0,"ts":h,"host":{"serial":h},"task":h,"step":h,"type":"warning","message":h}),
            serde_json::json!({"seq":h,"ts":h,"step":h,"type":h}),
        ];
        let verification = |trust| Verification {
            valid: trust != Trust::Invalid,
            trust,
            signed_by: some(),
            key_id: some(),
            key_source: some(),
            signer_name: some(),
            trust_note: some(),
            note: some(),
            error: some(),
        };
        let certs = vec![
            (h.to_string(), verification(Trust::Trusted)),
            (h.to_string(), verification(Trust::Untrusted)),
            (h.to_string(), verification(Trust::Invalid)),
        ];
        let cmp = vec![store::Comparison {
            step: h.into(),
            figure: h.into(),
            value: 1.0,
            median: Some(2.0),
            siblings: 1,
            ratio: Some(0.5),
            sibling_values: vec![2.0],
        }];
        let runs = vec![(run.clone(), key_figures(&results))];
        let board_row = store::BoardRow {
            host_key: h.into(),
            serial: some(),
            boot_mac: some(),
            hostname: some(),
            cpu_model: some(),
            last_seen: h.into(),
            run_id: some(),
            task: some(),
            outcome: some(),
            verdict: some(),
            reasons: some(),
            run_ts: some(),
        };
        let filter = store::BoardFilter {
            task: some(),
            search: some(),
            limit: 1,
            offset: 100,
            ..Default::default()
        };
        let inventory = serde_json::json!({
            "cpu": {"model": h, "cores": 4},
            "memory": {"total_bytes": 1, "dimms": [{"locator": h, "size": h}]},
            "disks": [{"serial": h, "model": h}],
            h: [{h: h}],
        });
        let progress = vec![
            serde_json::json!({"ts": "2026-01-01T00:00:00.000Z", "step": h, "type": "progress", "rate": 1.0e9, "message": h}),
            serde_json::json!({"ts": "2026-01-01T00:00:10.000Z", "step": h, "type": "progress", "rate": 2.0e9, "message": h}),
        ];
        let cert = serde_json::json!({
            "schema": speediso_proto::cert::SERVER_SCHEMA, "id": h, "host": {"serial": h},
            "attestation": {"performed_by": h}, "outcome": h,
            "disks": [{"serial": h, "model": h, "device_path": h}],
            "skipped": [{"serial": h, "reasons": [h]}],
        });
        let disk_cert = serde_json::json!({"media": {"serial": h, "model": h}, "sanitization": {"tool": {"name": h}}});
        let pages = [
            board::render_board(&filter, &[board_row.clone(), board_row], None, &runs).0,
            render_host(&host, &cmp, &runs, Some(&inventory)).0,
            certdoc::html(&certdoc::build(h, h, &cert, &verification(Trust::Untrusted))).0,
            certdoc::html(&certdoc::build(h, h, &disk_cert, &verification(Trust::Invalid))).0,
            render_run(
                &run,
                &store::EventsPage {
                    after_seq: -1,
                    limit: 10,
                    progress: "omit",
                    events,
                    next_after_seq: Some(1),
                    progress_omitted: vec![store::ProgressSpan {
                        step: some(),
                        count: 3,
                        first_seq: 2,
                        last_seq: 4,
                        last: serde_json::json!({"ts": h, "step": h, "type": "progress", "message": h}),
                    }],
                },
                &results,
                &certs,
                &progress,
            )
            .0,
        ];
        for html in &pages {
            assert!(
                !html.contains("<script") && !html.contains("onmouseover=\""),
                "{html}"
            );
            let attrs = attributes(html);
            assert!(attrs.len() > 5, "{attrs:?}");
            for (tag, name, value) in attrs {
                match name.as_str() {
                    "class" => assert!(
                        value
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b" _-".contains(&b)),
                        "<{tag} class={value:?}"
                    ),
                    "href" | "action" => assert!(
                        value.starts_with('/')
                            && value
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"/%-_.~?=&;".contains(&b)),
                        "<{tag} href={value:?}"
                    ),
                    // Form fields: the value is user text, escaped (the
                    // parser above already refused `"`, `<`, `>` in it).
                    "value" | "name" | "type" | "method" | "selected" => {}
                    "width" | "height" | "viewBox" | "role" | "x" | "y" | "x1" | "y1" | "x2"
                    | "y2" | "cx" | "cy" | "r" | "fill" | "fill-opacity" | "stroke"
                    | "stroke-width" | "points" | "font-size" | "text-anchor" | "transform" => {
                        assert!(
                            value
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"#., ()-".contains(&b)),
                            "<{tag} {name}={value:?}"
                        )
                    }
                    "id" | "lang" | "charset" => {
                        assert!(value
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                    }
                    other => panic!("<{tag}: unexpected attribute {other}={value:?}"),
                }
            }
        }
        // The hostile outcome is shown, as text, with a neutral class.
        let run_page = pages.last().unwrap();
        assert!(
            run_page.contains("<td class=\"outcome unknown\">x&quot; onmouseover="),
            "{run_page}"
        );
        assert!(
            pages[0].contains("<td class=\"outcome unknown\">x&quot;"),
            "{}",
            pages[0]
        );
        assert!(run_page.contains("<polyline"), "the progress chart");
        assert!(pages[1].contains("<circle"), "the sibling chart");
    }
}
