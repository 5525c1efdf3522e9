//! Inline SVG charts for the pages (no JavaScript): a strip plot of a
//! figure across a host's same-CPU siblings with the host marked, and a
//! line chart of progress rates over time. Text goes through `esc`.

use super::{esc, fmt_num};
use std::fmt::Write as _;

/// A strip plot: each sibling a dot, the median a tick, this host a red
/// (worse) or green (better) bar, on one axis from the least to the
/// greatest value.
pub fn strip(siblings: &[f64], this: f64, median: Option<f64>, slower: Option<bool>) -> String {
    let (w, h, pad) = (260.0, 34.0, 8.0);
    let all = siblings.iter().copied().chain([this]);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x = |v: f64| pad + (v - lo) / span * (w - 2.0 * pad);
    let mut s = format!(
        "<svg class=\"strip\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">\
         <title>{} siblings from {} to {}; this host {}</title>\
         <line x1=\"{pad}\" y1=\"17\" x2=\"{}\" y2=\"17\" stroke=\"#bbb\"/>",
        siblings.len(),
        fmt_num(lo),
        fmt_num(hi),
        fmt_num(this),
        w - pad
    );
    for v in siblings {
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"17\" r=\"3.5\" fill=\"#5577aa\" fill-opacity=\"0.5\"/>",
            x(*v)
        );
    }
    if let Some(m) = median {
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" y1=\"8\" x2=\"{0:.1}\" y2=\"26\" stroke=\"#333\" stroke-width=\"1.5\"/>",
            x(m)
        );
    }
    let color = match slower {
        Some(true) => "#c00020",
        Some(false) => "#178f3c",
        None => "#222",
    };
    let _ = write!(
        s,
        "<rect class=\"this-host\" x=\"{:.1}\" y=\"3\" width=\"4\" height=\"28\" fill=\"{color}\"/></svg>",
        x(this) - 2.0
    );
    s
}

/// One series of a line chart: its name and (seconds, value) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// A line chart of several series over time (seconds from the run's
/// start), y from 0 to the greatest value, with its unit on the axis and a
/// legend.
pub fn lines(series: &[Series], y_label: &str, fmt_y: impl Fn(f64) -> String) -> String {
    let (w, h) = (760.0, 260.0);
    let (left, right, top, bottom) = (80.0, 20.0, 15.0, 40.0);
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (t_max, y_max) = pts.fold((0.0f64, 0.0f64), |(t, y), &(pt, py)| (t.max(pt), y.max(py)));
    let t_max = if t_max > 0.0 { t_max } else { 1.0 };
    let y_max = if y_max > 0.0 { y_max * 1.05 } else { 1.0 };
    let px = |t: f64| left + t / t_max * (w - left - right);
    let py = |v: f64| top + (1.0 - v / y_max) * (h - top - bottom);
    let legend_h = 16.0 * series.len() as f64;
    let total_h = h + legend_h;
    let mut s = format!(
        "<svg class=\"chart\" width=\"{w}\" height=\"{total_h}\" viewBox=\"0 0 {w} {total_h}\" role=\"img\">\
         <title>{}</title>\
         <rect x=\"{left}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#999\"/>",
        esc(y_label),
        w - left - right,
        h - top - bottom
    );
    for i in 0..=4 {
        let v = y_max * i as f64 / 4.0;
        let y = py(v);
        let _ = write!(
            s,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            w - right,
            left - 4.0,
            y + 3.0,
            esc(&fmt_y(v))
        );
    }
    for i in 0..=4 {
        let t = t_max * i as f64 / 4.0;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            px(t),
            h - bottom + 14.0,
            esc(&speediso_proto::render::human_duration(t))
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">time since the first sample</text>\
         <text x=\"12\" y=\"{}\" font-size=\"11\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">{}</text>",
        left + (w - left - right) / 2.0,
        h - 8.0,
        top + (h - top - bottom) / 2.0,
        top + (h - top - bottom) / 2.0,
        esc(y_label)
    );
    for (i, se) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut d = String::new();
        for (t, v) in &se.points {
            let _ = write!(d, "{:.1},{:.1} ", px(*t), py(*v));
        }
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
            d.trim_end()
        );
        let ly = h + 12.0 + 16.0 * i as f64;
        let _ = write!(
            s,
            "<rect x=\"{left}\" y=\"{:.1}\" width=\"12\" height=\"4\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"{ly:.1}\" font-size=\"11\">{}</text>",
            ly - 5.0,
            left + 18.0,
            esc(&se.name)
        );
    }
    s.push_str("</svg>");
    s
}

/// Seconds since 1970 of an RFC 3339 UTC time (`YYYY-MM-DDTHH:MM:SS[.fff]Z`).
pub fn epoch_seconds(ts: &str) -> Option<f64> {
    let b = ts.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm) = (n(11..13)?, n(14..16)?);
    let rest = ts.get(17..)?.trim_end_matches('Z');
    let ss: f64 = rest.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some((days * 86400 + hh * 3600 + mm * 60) as f64 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(epoch_seconds("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            epoch_seconds("2026-01-01T00:00:01.500Z"),
            Some(1767225601.5)
        );
        assert_eq!(
            epoch_seconds("2024-03-01T00:00:00.000Z"),
            Some(1709251200.0)
        );
        assert_eq!(epoch_seconds("nope"), None);
    }

    #[test]
    fn charts_escape_names() {
        let s = lines(
            &[Series {
                name: "<script>x</script>".into(),
                points: vec![(0.0, 1.0), (10.0, 2.0)],
            }],
            "MB/s",
            |v| format!("{v}"),
        );
        assert!(!s.contains("<script") && s.contains("&lt;script&gt;"));
        assert!(s.contains("<polyline"));
        let st = strip(&[1.0, 2.0, 3.0], 0.5, Some(2.0), Some(true));
        assert!(st.contains("#c00020") && st.matches("<circle").count() == 3);
    }
}
