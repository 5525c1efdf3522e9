//! A minimal PDF 1.4 writer for the certificate documents: A4 pages of
//! text in the standard Helvetica fonts (WinAnsiEncoding, so nothing is
//! embedded), lines and boxes, with a correct cross-reference table.
//! Enough for a printable certificate; `pdftotext` and `pdftoppm`
//! (poppler) read what it writes (tests/collector_web.rs checks).

use std::fmt::Write as _;

/// A4 in points.
pub const PAGE_W: f64 = 595.0;
pub const PAGE_H: f64 = 842.0;
pub const MARGIN: f64 = 50.0;

/// Which of the two standard fonts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Font {
    Regular,
    Bold,
}

/// A document being written page by page.
#[derive(Debug, Default)]
pub struct Pdf {
    /// Finished pages' content streams.
    pages: Vec<String>,
    /// The current page's content stream.
    cur: String,
    title: String,
}

/// The WinAnsiEncoding byte of a character: ASCII and Latin-1 as
/// themselves, the Windows-1252 extras where they have a byte, `?` for
/// anything else; control characters as a space.
pub fn win_ansi(c: char) -> u8 {
    let u = c as u32;
    match u {
        0x20..=0x7e => u as u8,
        0xa0..=0xff => u as u8,
        0x00..=0x1f | 0x7f..=0x9f => b' ',
        _ => match c {
            '€' => 0x80,
            '‚' => 0x82,
            '„' => 0x84,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '™' => 0x99,
            _ => b'?',
        },
    }
}

/// A PDF literal string `(...)` of `s` in WinAnsiEncoding: `(`, `)` and
/// `\` escaped, bytes outside printable ASCII as octal escapes, so the
/// file stays 7-bit.
pub fn literal(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('(');
    for c in s.chars() {
        let b = win_ansi(c);
        match b {
            b'(' | b')' | b'\\' => {
                o.push('\\');
                o.push(b as char);
            }
            0x20..=0x7e => o.push(b as char),
            _ => {
                let _ = write!(o, "\\{b:03o}");
            }
        }
    }
    o.push(')');
    o
}

/// Approximate width of `s` in points: Helvetica's average advance
/// (digits and most lowercase letters are about 0.55 em; bold a bit more).
pub fn text_width(s: &str, size: f64, font: Font) -> f64 {
    let em = match font {
        Font::Regular => 0.53,
        Font::Bold => 0.58,
    };
    s.chars().count() as f64 * size * em
}

/// `s` broken into lines of at most `width` points (at word boundaries
/// when there are any, else anywhere).
pub fn wrap(s: &str, width: f64, size: f64, font: Font) -> Vec<String> {
    let per = (width / text_width("n", size, font)).floor().max(1.0) as usize;
    let mut lines = Vec::new();
    for para in s.split('\n') {
        let mut line = String::new();
        for word in para.split(' ') {
            let mut word = word.to_string();
            while word.chars().count() > per {
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                let head: String = word.chars().take(per).collect();
                word = word.chars().skip(per).collect();
                lines.push(head);
            }
            let n = line.chars().count();
            if n > 0 && n + 1 + word.chars().count() > per {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&word);
        }
        lines.push(line);
    }
    lines
}

impl Pdf {
    pub fn new(title: &str) -> Pdf {
        Pdf {
            title: title.to_string(),
            ..Pdf::default()
        }
    }

    /// Text with its baseline at (x, y), y from the bottom of the page.
    pub fn text(&mut self, x: f64, y: f64, size: f64, font: Font, s: &str) {
        let f = match font {
            Font::Regular => "F1",
            Font::Bold => "F2",
        };
        let _ = writeln!(
            self.cur,
            "BT /{f} {size:.1} Tf {x:.2} {y:.2} Td {} Tj ET",
            literal(s)
        );
    }

    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, width: f64) {
        let _ = writeln!(
            self.cur,
            "{width:.2} w {x1:.2} {y1:.2} m {x2:.2} {y2:.2} l S"
        );
    }

    /// A rectangle from (x, y) (bottom left): outlined, or filled with a
    /// gray level (0 black .. 1 white) and outlined.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: Option<f64>) {
        match fill {
            Some(g) => {
                let _ = writeln!(
                    self.cur,
                    "q {g:.2} g 0.5 w {x:.2} {y:.2} {w:.2} {h:.2} re B Q"
                );
            }
            None => {
                let _ = writeln!(self.cur, "0.5 w {x:.2} {y:.2} {w:.2} {h:.2} re S");
            }
        }
    }

    pub fn new_page(&mut self) {
        let page = std::mem::take(&mut self.cur);
        self.pages.push(page);
    }

    /// The file: objects 1 catalog, 2 pages, 3-4 fonts, 5 info, then a
    /// page and its content per page; xref offsets counted in bytes.
    pub fn finish(mut self) -> Vec<u8> {
        if !self.cur.is_empty() || self.pages.is_empty() {
            self.new_page();
        }
        let n = self.pages.len();
        let first_page = 6;
        let mut objs: Vec<String> = Vec::new();
        objs.push("<< /Type /Catalog /Pages 2 0 R >>".into());
        let kids: Vec<String> = (0..n)
            .map(|i| format!("{} 0 R", first_page + 2 * i))
            .collect();
        objs.push(format!(
            "<< /Type /Pages /Kids [{}] /Count {n} >>",
            kids.join(" ")
        ));
        for name in ["Helvetica", "Helvetica-Bold"] {
            objs.push(format!(
                "<< /Type /Font /Subtype /Type1 /BaseFont /{name} /Encoding /WinAnsiEncoding >>"
            ));
        }
        objs.push(format!(
            "<< /Title {} /Producer (speediso-collector) >>",
            literal(&self.title)
        ));
        for (i, content) in self.pages.iter().enumerate() {
            objs.push(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W:.0} {PAGE_H:.0}] \
                 /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {} 0 R >>",
                first_page + 2 * i + 1
            ));
            objs.push(format!(
                "<< /Length {} >>\nstream\n{content}endstream",
                content.len()
            ));
        }
        let mut out = String::from("%PDF-1.4\n");
        let mut offsets = Vec::with_capacity(objs.len());
        for (i, o) in objs.iter().enumerate() {
            offsets.push(out.len());
            let _ = write!(out, "{} 0 obj\n{o}\nendobj\n", i + 1);
        }
        let xref = out.len();
        let _ = writeln!(out, "xref\n0 {}\n0000000000 65535 f ", objs.len() + 1);
        for off in offsets {
            let _ = writeln!(out, "{off:010} 00000 n ");
        }
        let _ = write!(
            out,
            "trailer\n<< /Size {} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        );
        out.into_bytes()
    }
}

/// A top-down writer on `Pdf`: a cursor that moves down the page, a new
/// page when it reaches the bottom margin.
pub struct Flow {
    pub pdf: Pdf,
    pub y: f64,
}

impl Flow {
    pub fn new(title: &str) -> Flow {
        Flow {
            pdf: Pdf::new(title),
            y: PAGE_H - MARGIN,
        }
    }

    /// Room for `h` more points, else a new page.
    pub fn need(&mut self, h: f64) {
        if self.y - h < MARGIN {
            self.pdf.new_page();
            self.y = PAGE_H - MARGIN;
        }
    }

    /// A paragraph, wrapped to the text width.
    pub fn para(&mut self, s: &str, size: f64, font: Font) {
        for l in wrap(s, PAGE_W - 2.0 * MARGIN, size, font) {
            self.need(size * 1.35);
            self.y -= size * 1.35;
            self.pdf.text(MARGIN, self.y, size, font, &l);
        }
    }

    /// A section heading with a rule under it.
    pub fn heading(&mut self, s: &str) {
        self.need(40.0);
        self.y -= 22.0;
        self.pdf.text(MARGIN, self.y, 12.0, Font::Bold, s);
        self.y -= 5.0;
        self.pdf.line(MARGIN, self.y, PAGE_W - MARGIN, self.y, 0.8);
    }

    /// A two-column table of label / value rows, values wrapped, boxed.
    pub fn fields(&mut self, rows: &[(String, String)]) {
        let size = 9.0;
        let lead = size * 1.3;
        let label_w = 160.0;
        let x2 = MARGIN + label_w;
        let value_w = PAGE_W - MARGIN - x2 - 8.0;
        for (label, value) in rows {
            let lines = wrap(value, value_w, size, Font::Regular);
            let labels = wrap(label, label_w - 8.0, size, Font::Bold);
            let h = lines.len().max(labels.len()) as f64 * lead + 6.0;
            self.need(h);
            let top = self.y;
            self.pdf.rect(MARGIN, top - h, label_w, h, Some(0.93));
            self.pdf.rect(x2, top - h, PAGE_W - MARGIN - x2, h, None);
            for (i, l) in labels.iter().enumerate() {
                let y = top - lead * (i as f64 + 1.0);
                self.pdf.text(MARGIN + 4.0, y, size, Font::Bold, l);
            }
            for (i, l) in lines.iter().enumerate() {
                let y = top - lead * (i as f64 + 1.0);
                self.pdf.text(x2 + 4.0, y, size, Font::Regular, l);
            }
            self.y = top - h;
        }
    }

    /// A table with a header row; columns share the width by `weights`.
    pub fn table(&mut self, header: &[&str], weights: &[f64], rows: &[Vec<String>]) {
        let size = 7.5;
        let lead = size * 1.3;
        let total: f64 = weights.iter().sum();
        let width = PAGE_W - 2.0 * MARGIN;
        let xs: Vec<(f64, f64)> = weights
            .iter()
            .scan(MARGIN, |x, w| {
                let cw = width * w / total;
                let r = (*x, cw);
                *x += cw;
                Some(r)
            })
            .collect();
        let draw = |f: &mut Flow, cells: Vec<String>, head: bool| {
            let font = if head { Font::Bold } else { Font::Regular };
            let wrapped: Vec<Vec<String>> = cells
                .iter()
                .zip(&xs)
                .map(|(c, (_, w))| wrap(c, w - 5.0, size, font))
                .collect();
            let n = wrapped.iter().map(Vec::len).max().unwrap_or(1);
            let h = n as f64 * lead + 5.0;
            f.need(h);
            let top = f.y;
            for ((x, w), lines) in xs.iter().zip(&wrapped) {
                f.pdf.rect(*x, top - h, *w, h, head.then_some(0.9));
                for (i, l) in lines.iter().enumerate() {
                    f.pdf
                        .text(x + 2.5, top - lead * (i as f64 + 1.0), size, font, l);
                }
            }
            f.y = top - h;
        };
        draw(self, header.iter().map(|s| s.to_string()).collect(), true);
        for r in rows {
            draw(self, r.clone(), false);
        }
    }

    pub fn finish(self) -> Vec<u8> {
        self.pdf.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_escaped_and_7bit() {
        assert_eq!(literal(r"a(b)c\d"), r"(a\(b\)c\\d)");
        assert_eq!(literal("é€\u{1F600}\n"), r"(\351\200? )");
    }

    #[test]
    fn wrapping_keeps_every_word() {
        let s = "the quick brown fox jumps over the lazy dog ".repeat(10);
        let lines = wrap(&s, 100.0, 9.0, Font::Regular);
        assert!(lines.len() > 5);
        assert!(lines
            .iter()
            .all(|l| text_width(l, 9.0, Font::Regular) <= 100.0 + 0.1));
        assert_eq!(
            lines.join(" ").split_whitespace().collect::<Vec<_>>(),
            s.split_whitespace().collect::<Vec<_>>()
        );
        let long = "x".repeat(500);
        assert_eq!(wrap(&long, 100.0, 9.0, Font::Regular).concat(), long);
    }

    /// Every xref entry points at its `N 0 obj`, and startxref at `xref`.
    #[test]
    fn xref_offsets_are_right() {
        let mut f = Flow::new("t (x)");
        for i in 0..80 {
            f.para(
                &format!("line {i} with (parens) and \\ backslash"),
                10.0,
                Font::Regular,
            );
        }
        f.fields(&[("a".into(), "b".into())]);
        let bytes = f.finish();
        let s = String::from_utf8(bytes).expect("7-bit");
        assert!(s.starts_with("%PDF-1.4\n") && s.ends_with("%%EOF\n"));
        let sx: usize = s
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(s[sx..].starts_with("xref\n"));
        let entries: Vec<&str> = s[sx..]
            .lines()
            .skip(3)
            .take_while(|l| !l.starts_with("trailer"))
            .collect();
        assert!(entries.len() >= 9, "several pages: {}", entries.len());
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.len(), 19, "{e:?}"); // + the \n: 20 bytes
            let off: usize = e[..10].parse().unwrap();
            assert!(
                s[off..].starts_with(&format!("{} 0 obj\n", i + 1)),
                "object {}",
                i + 1
            );
        }
        // Stream lengths are exact.
        for part in s.split("<< /Length ").skip(1) {
            let (n, rest) = part.split_once(" >>\nstream\n").unwrap();
            let n: usize = n.parse().unwrap();
            assert!(rest[n..].starts_with("endstream"));
        }
    }
}
