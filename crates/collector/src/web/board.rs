//! The fleet board (`/`): one row per host with its latest run's task,
//! outcome, health verdict and reasons; filters and search as query
//! parameters of a GET form, pages that keep the filter, and the same
//! rows as CSV (`/export.csv`) and JSON (`/export.json`).

use super::{esc, page, url_seg, OUTCOME_CLASSES};
use crate::server::{error, App};
use crate::store::{self, BoardFilter, BoardRow, RunRow};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// Rows per page unless `limit` says otherwise.
pub const BOARD_LIMIT: usize = 100;
/// The most rows one page or export may ask for.
pub const MAX_LIMIT: usize = 10_000;

/// The query parameters, as sent (an empty field of the form is no filter).
pub type Params = BTreeMap<String, String>;

/// The board's filter from the query parameters, or the error that names
/// the parameter and its value.
pub fn parse_filter(p: &Params) -> Result<BoardFilter, String> {
    let mut f = BoardFilter {
        limit: BOARD_LIMIT,
        ..BoardFilter::default()
    };
    for (k, v) in p {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        let bad = |why: &str| format!("{k}={v:?}: {why}");
        if v.chars().count() > 200 {
            return Err(bad("longer than 200 characters"));
        }
        match k.as_str() {
            "task" => f.task = Some(v.into()),
            "q" => f.search = Some(v.into()),
            "outcome" => {
                if !OUTCOME_CLASSES.contains(&v) {
                    return Err(bad(&format!(
                        "expected one of {}",
                        OUTCOME_CLASSES.join(", ")
                    )));
                }
                f.outcome = Some(v.into());
            }
            "verdict" => {
                if !store::VERDICTS.contains(&v) {
                    return Err(bad("expected pass, warn or fail"));
                }
                f.verdict = Some(v.into());
            }
            "from" | "to" => {
                let b = v.as_bytes();
                let ok = b.len() == 10
                    && b.iter().enumerate().all(|(i, c)| {
                        if i == 4 || i == 7 {
                            *c == b'-'
                        } else {
                            c.is_ascii_digit()
                        }
                    });
                if !ok {
                    return Err(bad("expected a date YYYY-MM-DD"));
                }
                if k == "from" {
                    f.from = Some(v.into());
                } else {
                    // Inclusive: every time of that day sorts below "T99".
                    f.to = Some(format!("{v}T99"));
                }
            }
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => f.limit = n,
                _ => return Err(bad(&format!("expected a number from 1 to {MAX_LIMIT}"))),
            },
            "offset" => match v.parse::<usize>() {
                Ok(n) if n <= 100_000_000 => f.offset = n,
                _ => return Err(bad("expected a number of rows to skip")),
            },
            _ => {
                return Err(format!(
                    "{k}: unknown parameter (task, outcome, verdict, from, to, q, limit, offset)"
                ))
            }
        }
    }
    Ok(f)
}

/// The query string of `f` at `offset` (`to` back as the day it was).
pub fn query_string(f: &BoardFilter, offset: usize) -> String {
    let mut parts = Vec::new();
    let to = f.to.as_deref().map(|t| t.trim_end_matches("T99"));
    for (k, v) in [
        ("q", f.search.as_deref()),
        ("task", f.task.as_deref()),
        ("outcome", f.outcome.as_deref()),
        ("verdict", f.verdict.as_deref()),
        ("from", f.from.as_deref()),
        ("to", to),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={}", url_seg(v)));
        }
    }
    if f.limit != BOARD_LIMIT {
        parts.push(format!("limit={}", f.limit));
    }
    if offset > 0 {
        parts.push(format!("offset={offset}"));
    }
    parts.join("&")
}

fn bad_filter(why: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        page(
            "Bad filter",
            &format!("<p class=\"failed\" id=\"error\">{}</p>", esc(why)),
        ),
    )
        .into_response()
}

pub async fn board(State(app): State<Arc<App>>, Query(p): Query<Params>) -> Response {
    let f = match parse_filter(&p) {
        Ok(f) => f,
        Err(e) => return bad_filter(&e),
    };
    let res = app
        .read(move |c| {
            // One more than shown: whether there is a next page.
            let rows = c.board(&BoardFilter {
                limit: f.limit + 1,
                ..f.clone()
            })?;
            let unfiltered = BoardFilter {
                limit: f.limit,
                offset: f.offset,
                ..BoardFilter::default()
            };
            let total = if f == unfiltered {
                Some(c.host_count()?)
            } else {
                None
            };
            let runs = super::runs_with_figures(c, None, None, 20)?;
            Ok((f, rows, total, runs))
        })
        .await;
    match res {
        Ok((f, rows, total, runs)) => render_board(&f, &rows, total, &runs).into_response(),
        Err(r) => r,
    }
}

fn select(name: &str, label: &str, options: &[&str], cur: Option<&str>) -> String {
    let mut s = format!("<label>{label} <select name=\"{name}\"><option value=\"\">any</option>");
    for o in options {
        let sel = if cur == Some(*o) {
            " selected=\"selected\""
        } else {
            ""
        };
        let _ = write!(s, "<option value=\"{0}\"{sel}>{0}</option>", esc(o));
    }
    s.push_str("</select></label> ");
    s
}

fn verdict_cell(v: Option<&str>) -> String {
    match v {
        Some(v) if store::VERDICTS.contains(&v) => {
            format!("<td class=\"verdict v{v}\">{}</td>", esc(v))
        }
        _ => "<td class=\"verdict\">-</td>".into(),
    }
}

/// `/`: the filter form, one page of rows (`rows` may hold one more than
/// `f.limit`: then there is a next page), the recent runs.
pub fn render_board(
    f: &BoardFilter,
    rows: &[BoardRow],
    total: Option<i64>,
    runs: &[(RunRow, String)],
) -> Html<String> {
    let input = |name: &str, label: &str, kind: &str, v: Option<&str>| {
        format!(
            "<label>{label} <input type=\"{kind}\" name=\"{name}\" value=\"{}\"></label> ",
            esc(v.unwrap_or(""))
        )
    };
    let mut s = match total {
        Some(n) => format!("<h2>Hosts ({n})</h2>\n"),
        None => "<h2>Hosts matching the filter</h2>\n".to_string(),
    };
    s.push_str("<form method=\"get\" action=\"/\" class=\"filter\" id=\"filter\">");
    s.push_str(&input(
        "q",
        "serial, MAC, hostname or disk serial",
        "search",
        f.search.as_deref(),
    ));
    s.push_str(&input("task", "task", "text", f.task.as_deref()));
    s.push_str(&select(
        "outcome",
        "outcome",
        OUTCOME_CLASSES,
        f.outcome.as_deref(),
    ));
    s.push_str(&select(
        "verdict",
        "verdict",
        store::VERDICTS,
        f.verdict.as_deref(),
    ));
    s.push_str(&input("from", "seen from", "date", f.from.as_deref()));
    s.push_str(&input(
        "to",
        "to",
        "date",
        f.to.as_deref().map(|t| t.trim_end_matches("T99")),
    ));
    s.push_str("<button type=\"submit\">filter</button> <a href=\"/\">clear</a></form>\n");
    let more = rows.len() > f.limit;
    let rows = &rows[..rows.len().min(f.limit)];
    let q = query_string(f, 0);
    let _ = write!(
        s,
        "<p class=\"paging\" id=\"hosts-paging\">hosts {}-{}",
        if rows.is_empty() { 0 } else { f.offset + 1 },
        f.offset + rows.len()
    );
    if f.offset > 0 {
        let prev = f.offset.saturating_sub(f.limit);
        let _ = write!(
            s,
            ", <a href=\"/?{}\">previous</a>",
            esc(&query_string(f, prev))
        );
    }
    if more {
        let _ = write!(
            s,
            ", <a href=\"/?{}\">next</a>",
            esc(&query_string(f, f.offset + f.limit))
        );
    }
    let _ = writeln!(
        s,
        " | export this filter: <a href=\"/export.csv?{0}\" id=\"export-csv\">CSV</a>, \
         <a href=\"/export.json?{0}\" id=\"export-json\">JSON</a></p>",
        esc(&q)
    );
    s.push_str("<table class=\"hosts\" id=\"board\"><tr><th>host</th><th>hostname</th><th>serial</th><th>boot MAC</th><th>CPU</th>\
                <th>last task</th><th>outcome</th><th>verdict</th><th>reasons</th><th>date</th></tr>\n");
    for r in rows {
        let outcome = match &r.run_id {
            Some(_) => super::outcome_td(r.outcome.as_deref()),
            None => "<td>-</td>".into(),
        };
        let date = match (&r.run_id, &r.run_ts) {
            (Some(id), Some(ts)) => format!("<a href=\"/runs/{}\">{}</a>", url_seg(id), esc(ts)),
            _ => esc(&r.last_seen),
        };
        let _ = writeln!(
            s,
            "<tr><td><a href=\"/hosts/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{outcome}{}<td class=\"reasons\">{}</td><td>{date}</td></tr>",
            url_seg(&r.host_key),
            esc(&r.host_key),
            esc(r.hostname.as_deref().unwrap_or("-")),
            esc(r.serial.as_deref().unwrap_or("-")),
            esc(r.boot_mac.as_deref().unwrap_or("-")),
            esc(r.cpu_model.as_deref().unwrap_or("-")),
            esc(r.task.as_deref().unwrap_or("-")),
            verdict_cell(r.verdict.as_deref()),
            esc(r.reasons.as_deref().unwrap_or("")),
        );
    }
    s.push_str("</table>\n");
    if rows.is_empty() {
        s.push_str("<p id=\"no-hosts\">No host matches.</p>\n");
    }
    s.push_str("<h2>Recent runs</h2>\n");
    s.push_str(&super::runs_table(runs, true));
    page("Fleet", &s)
}

/// The columns of the exports, in order.
pub const EXPORT_COLUMNS: &[&str] = &[
    "host_key",
    "hostname",
    "serial",
    "boot_mac",
    "cpu_model",
    "last_seen",
    "run_id",
    "task",
    "outcome",
    "verdict",
    "reasons",
    "run_ts",
];

fn export_values(r: &BoardRow) -> [Option<&str>; 12] {
    [
        Some(&r.host_key),
        r.hostname.as_deref(),
        r.serial.as_deref(),
        r.boot_mac.as_deref(),
        r.cpu_model.as_deref(),
        Some(&r.last_seen),
        r.run_id.as_deref(),
        r.task.as_deref(),
        r.outcome.as_deref(),
        r.verdict.as_deref(),
        r.reasons.as_deref(),
        r.run_ts.as_deref(),
    ]
}

/// One CSV field (RFC 4180): quoted when it holds `,`, `"`, CR or LF;
/// a cell a spreadsheet would take as a formula (first character `=`,
/// `+`, `-`, `@`, tab or CR) is prefixed with `'` so it stays text.
pub fn csv_field(s: &str) -> String {
    let guarded = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

pub fn csv(rows: &[BoardRow]) -> String {
    let mut s = EXPORT_COLUMNS.join(",");
    s.push_str("\r\n");
    for r in rows {
        let cells: Vec<String> = export_values(r)
            .iter()
            .map(|v| csv_field(v.unwrap_or("")))
            .collect();
        s.push_str(&cells.join(","));
        s.push_str("\r\n");
    }
    s
}

async fn export_rows(app: Arc<App>, p: Params) -> Result<(BoardFilter, Vec<BoardRow>), Response> {
    let mut f = parse_filter(&p).map_err(|e| error(StatusCode::BAD_REQUEST, &e))?;
    // An export is the whole filter unless a limit is given.
    if p.get("limit").is_none_or(|l| l.trim().is_empty()) {
        f.limit = MAX_LIMIT;
    }
    let ff = f.clone();
    let rows = app.read(move |c| c.board(&ff)).await?;
    Ok((f, rows))
}

/// `/export.csv?<filter>`: the board's rows (all of them up to 10,000
/// unless `limit`), UTF-8 CSV with a header row.
pub async fn export_csv(State(app): State<Arc<App>>, Query(p): Query<Params>) -> Response {
    match export_rows(app, p).await {
        Ok((_, rows)) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"speediso-fleet.csv\"",
                ),
            ],
            csv(&rows),
        )
            .into_response(),
        Err(r) => r,
    }
}

/// `/export.json?<filter>`: `{"filter": {...}, "rows": [...]}`.
pub async fn export_json(State(app): State<Arc<App>>, Query(p): Query<Params>) -> Response {
    match export_rows(app, p).await {
        Ok((f, rows)) => axum::Json(serde_json::json!({
            "filter": {
                "task": f.task, "outcome": f.outcome, "verdict": f.verdict,
                "from": f.from, "to": f.to.as_deref().map(|t| t.trim_end_matches("T99")),
                "q": f.search, "limit": f.limit, "offset": f.offset,
            },
            "rows": rows,
        }))
        .into_response(),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> Params {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filters_parse_and_round_trip() {
        let f = parse_filter(&params(&[
            ("q", "52:54:00:aa"),
            ("outcome", "failed"),
            ("verdict", "fail"),
            ("from", "2026-01-01"),
            ("to", "2026-01-31"),
            ("task", ""),
            ("offset", "200"),
        ]))
        .unwrap();
        assert_eq!(f.to.as_deref(), Some("2026-01-31T99"));
        assert!("2026-01-31T23:59:59.999Z" < f.to.as_deref().unwrap());
        assert_eq!(f.task, None, "an empty field is no filter");
        let q = query_string(&f, 300);
        assert_eq!(
            q,
            "q=52%3A54%3A00%3Aaa&outcome=failed&verdict=fail&from=2026-01-01&to=2026-01-31&offset=300"
        );
        let back: Params = q
            .split('&')
            .map(|kv| kv.split_once('=').unwrap())
            .map(|(k, v)| (k.to_string(), v.replace("%3A", ":")))
            .collect();
        assert_eq!(
            parse_filter(&back).unwrap(),
            BoardFilter { offset: 300, ..f }
        );
        for (k, v, needle) in [
            ("outcome", "<x>", "outcome=\"<x>\": expected one of"),
            ("verdict", "ok", "verdict=\"ok\""),
            ("from", "2026-1-1", "expected a date"),
            ("limit", "0", "limit=\"0\""),
            ("nope", "1", "nope: unknown parameter"),
        ] {
            let e = parse_filter(&params(&[(k, v)])).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn csv_quotes_and_guards_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
        for f in ["=1+1", "+1", "-1", "@SUM(A1)", "=HYPERLINK(\"x\")"] {
            let c = csv_field(f);
            assert!(c.starts_with('\'') || c.starts_with("\"'"), "{f} -> {c}");
        }
    }
}
