//! Server-rendered HTML: the host list with recent runs (`/`), a host page
//! comparing its bench figures with the median of hosts with the same CPU
//! model (`/hosts/{key}`), and a run page with its results, certificates
//! and event timeline (`/runs/{run_id}`). No JavaScript.

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
pre{background:#f7f7f7;padding:.5em;overflow:auto;max-height:30em}.warning{background:#fff4cc}";

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - speediso</title><style>{CSS}</style></head>\n<body><p><a href=\"/\">speediso collector</a></p>\n<h1>{}</h1>\n{body}</body></html>\n",
        esc(title),
        esc(title)
    ))
}

/// The outcomes with a style; the class is only ever one of these (rows
/// stored before ingest checked outcomes may hold anything).
const OUTCOME_CLASSES: &[&str] = &[
    "success",
    "failed",
    "timed_out",
    "refused",
    "rejected",
    "running",
];

fn outcome_cell(r: &RunRow) -> String {
    let o = r.outcome.as_deref().unwrap_or("running");
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

#[derive(serde::Deserialize)]
pub struct IndexQuery {
    offset: Option<usize>,
}

/// Hosts per page of `/`.
pub const HOSTS_PER_PAGE: usize = 100;

/// One page of the host list: its hosts, where it starts, of how many.
pub struct HostsPage {
    pub hosts: Vec<store::HostRow>,
    pub offset: usize,
    pub total: i64,
}

pub async fn index(State(app): State<Arc<App>>, Query(q): Query<IndexQuery>) -> Response {
    let offset = q.offset.unwrap_or(0);
    let res = app
        .read(move |c| {
            let hosts = HostsPage {
                hosts: c.hosts(HOSTS_PER_PAGE, offset)?,
                offset,
                total: c.host_count()?,
            };
            let runs = runs_with_figures(c, None, None, 50)?;
            Ok((hosts, runs))
        })
        .await;
    match res {
        Ok((hosts, runs)) => render_index(&hosts, &runs).into_response(),
        Err(r) => r,
    }
}

/// `/`: a page of hosts and the recent runs.
pub fn render_index(page_: &HostsPage, runs: &[(RunRow, String)]) -> Html<String> {
    let hosts = &page_.hosts;
    let mut s = format!("<h2>Hosts ({})</h2>\n", page_.total);
    let (from, to) = (page_.offset + 1, page_.offset + hosts.len());
    let _ = write!(
        s,
        "<p class=\"paging\" id=\"hosts-paging\">hosts {from}-{to} of {}",
        page_.total
    );
    if page_.offset > 0 {
        let prev = page_.offset.saturating_sub(HOSTS_PER_PAGE);
        let _ = write!(s, ", <a href=\"/?offset={prev}\">previous</a>");
    }
    if (to as i64) < page_.total {
        let _ = write!(s, ", <a href=\"/?offset={to}\">next</a>");
    }
    s.push_str("</p>\n");
    s.push_str("<table class=\"hosts\"><tr><th>host</th><th>hostname</th><th>serial</th><th>boot MAC</th><th>CPU</th><th>runs</th><th>last seen</th></tr>\n");
    for h in hosts {
        let _ = writeln!(
            s,
            "<tr><td><a href=\"/hosts/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            url_seg(&h.host_key),
            esc(&h.host_key),
            esc(h.hostname.as_deref().unwrap_or("-")),
            esc(h.serial.as_deref().unwrap_or("-")),
            esc(h.boot_mac.as_deref().unwrap_or("-")),
            esc(h.cpu_model.as_deref().unwrap_or("-")),
            h.runs,
            esc(&h.last_seen)
        );
    }
    s.push_str("</table>\n<h2>Recent runs</h2>\n");
    s.push_str(&runs_table(runs, true));
    page("Hosts and recent runs", &s)
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
            Ok(Some((h, cmp, runs)))
        })
        .await;
    match res {
        Ok(Some((h, cmp, runs))) => render_host(&h, &cmp, &runs).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, page("No such host", "")).into_response(),
        Err(r) => r,
    }
}

/// `/hosts/{key}`: a host, its bench figures against its siblings, its runs.
pub fn render_host(
    h: &store::HostRow,
    cmp: &[store::Comparison],
    runs: &[(RunRow, String)],
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
        s.push_str("<table class=\"compare\"><tr><th>step</th><th>figure</th><th>this host</th><th>median of siblings</th><th>siblings</th><th>vs. median</th></tr>\n");
        for c in cmp {
            let class = match verdict(c) {
                Some(true) => " class=\"slower\"",
                Some(false) => " class=\"faster\"",
                None => "",
            };
            let _ = writeln!(
                s,
                "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
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
    page(&format!("Host {}", h.host_key), &s)
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
        "<table class=\"certs\"><tr><th>certificate</th><th>trust</th><th>signature</th></tr>\n",
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
            "<tr><td><a href=\"/v1/certificates/{}\">{}</a></td><td class=\"trust {class}\">{label}</td><td>{}</td></tr>",
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
            let mut certs = Vec::new();
            for id in c.certificate_ids(&run_id)? {
                if let Some((_, body)) = c.certificate(&id)? {
                    certs.push((id, super::cert::verify(&body, trusted.as_deref())));
                }
            }
            Ok(Some((r, events, results, certs)))
        })
        .await;
    match res {
        Ok(Some((r, events, results, certs))) => {
            render_run(&r, &events, &results, &certs).into_response()
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
    s.push_str(&certs_table(certs));
    s.push_str("<h2>Results</h2>\n");
    if results.is_empty() {
        s.push_str("<p>No results.</p>\n");
    }
    for res in results {
        let _ = writeln!(
            s,
            "<h3>{}</h3><pre class=\"result\">{}</pre>",
            esc(res.step.as_deref().unwrap_or("-")),
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
                if b[i] == b'>' {
                    break;
                }
                let n = i;
                while b[i].is_ascii_lowercase() || b[i] == b'-' {
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
                    matches!(b[i], b' ' | b'>'),
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
        }];
        let runs = vec![(run.clone(), key_figures(&results))];
        let pages = [
            render_index(
                &HostsPage {
                    hosts: vec![host.clone()],
                    offset: 100,
                    total: 300,
                },
                &runs,
            )
            .0,
            render_host(&host, &cmp, &runs).0,
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
                            .all(|b| b.is_ascii_lowercase() || b" _".contains(&b)),
                        "<{tag} class={value:?}"
                    ),
                    "href" => assert!(
                        value.starts_with('/')
                            && value
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"/%-_.~?=".contains(&b)),
                        "<{tag} href={value:?}"
                    ),
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
        assert!(
            pages[2].contains("<td class=\"outcome unknown\">x&quot; onmouseover="),
            "{}",
            pages[2]
        );
    }
}
