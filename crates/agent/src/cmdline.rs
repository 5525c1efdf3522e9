//! Kernel command line parsing, the way the kernel itself splits it.
//!
//! `parse` is pure: it takes the text of /proc/cmdline and returns words and
//! key/value pairs. Reading the file is `read`, a thin wrapper. Nothing here
//! knows what the keys mean; that is `plan`'s job.

use crate::root::Root;
use anyhow::{Context, Result};

/// One parameter as the kernel sees it: `key` or `key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub key: String,
    /// `None` for a bare word such as `quiet`; `Some("")` for `key=`.
    pub value: Option<String>,
}

/// A parsed command line, in order, with the parameters after a lone `--`
/// (which belong to init) left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    pub params: Vec<Param>,
}

/// Split a command line exactly like the kernel's `next_arg()` in
/// lib/cmdline.c: words are separated by whitespace outside double quotes; a
/// quote opening the word or the value is removed together with a quote that
/// ends the word; a lone `--` ends the kernel's parameters (the rest belongs
/// to init). A NUL byte ends the line, as in /proc/cmdline.
pub fn parse(line: &str) -> Cmdline {
    let line = line.split('\0').next().unwrap_or("");
    let b = line.as_bytes();
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut params = Vec::new();
    let mut pos = 0;
    loop {
        while pos < b.len() && is_space(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            break;
        }
        let mut start = pos;
        let mut in_quote = false;
        let mut quoted = false;
        if b[start] == b'"' {
            start += 1;
            in_quote = true;
            quoted = true;
        }
        let mut i = start;
        let mut equals = None;
        while i < b.len() {
            if is_space(b[i]) && !in_quote {
                break;
            }
            if equals.is_none() && b[i] == b'=' && i > start {
                equals = Some(i);
            }
            if b[i] == b'"' {
                in_quote = !in_quote;
            }
            i += 1;
        }
        pos = i;
        // `end` shrinks by one when a closing quote is dropped; it never
        // drops below the start of the part it belongs to.
        let mut end = i;
        let ends_in_quote = end > start && b[end - 1] == b'"';
        let (key, value) = match equals {
            None => {
                if quoted && ends_in_quote {
                    end -= 1;
                }
                (&line[start..end], None)
            }
            Some(eq) => {
                let mut vstart = eq + 1;
                if vstart < end && b[vstart] == b'"' {
                    vstart += 1;
                    if ends_in_quote && end > vstart {
                        end -= 1;
                    }
                } else if quoted && ends_in_quote && end > vstart {
                    end -= 1;
                }
                (&line[start..eq], Some(line[vstart..end].to_string()))
            }
        };
        if value.is_none() && key == "--" {
            break;
        }
        params.push(Param {
            key: key.to_string(),
            value,
        });
    }
    Cmdline { params }
}

impl Cmdline {
    /// The last value given for `key` (the kernel's "last one wins").
    pub fn get(&self, key: &str) -> Option<&Param> {
        self.params.iter().rev().find(|p| p.key == key)
    }

    /// Every value given for `key`, in order (a bare `key` gives `""`):
    /// for options that add up, like `speediso.ssh_key=`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |p| p.key == key)
            .map(|p| p.value.as_deref().unwrap_or(""))
    }

    /// The value of `systemd.setenv=NAME=VALUE` for `name`, last one winning.
    pub fn setenv(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .filter(|p| p.key == "systemd.setenv")
            .filter_map(|p| p.value.as_deref())
            .find_map(|v| match v.split_once('=') {
                Some((n, val)) if n == name => Some(val),
                None if v == name => Some(""),
                _ => None,
            })
    }

    /// Every `speediso.<key>` parameter, last one winning, in first-seen order.
    /// A bare `speediso.wipe.usb` (no `=`) is a switch turned on and reads
    /// as `1`; `speediso.wipe.usb=` keeps its empty value, which a boolean
    /// option rejects.
    pub fn speediso_options(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for p in &self.params {
            if let Some(key) = p.key.strip_prefix("speediso.") {
                let value = p.value.clone().unwrap_or_else(|| "1".into());
                match out.iter_mut().find(|(k, _)| k == key) {
                    Some(slot) => slot.1 = value,
                    None => out.push((key.to_string(), value)),
                }
            }
        }
        out
    }
}

/// Read `<root>/proc/cmdline`.
pub fn read(root: &Root) -> Result<String> {
    let path = root.at("/proc/cmdline");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(line: &str) -> Vec<(String, Option<String>)> {
        parse(line)
            .params
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    #[test]
    fn splits_and_unquotes() {
        type Case<'a> = (&'a str, &'a [(&'a str, Option<&'a str>)]);
        let cases: &[Case] = &[
            ("", &[]),
            ("   ", &[]),
            ("quiet", &[("quiet", None)]),
            ("a=1 b=2", &[("a", Some("1")), ("b", Some("2"))]),
            ("a=", &[("a", Some(""))]),
            (
                "speediso.opts=\"a b\" x",
                &[("speediso.opts", Some("a b")), ("x", None)],
            ),
            ("\"speediso.k=a b\"", &[("speediso.k", Some("a b"))]),
            ("a=\"\"", &[("a", Some(""))]),
            ("a=x\"y z\"w", &[("a", Some("x\"y z\"w"))]),
            ("a=1 -- b=2", &[("a", Some("1"))]),
            (
                "a=1 --x b=2",
                &[("a", Some("1")), ("--x", None), ("b", Some("2"))],
            ),
            ("=v", &[("=v", None)]),
            ("\"quoted word\"", &[("quoted word", None)]),
            (
                "a=1\tb=2\nc",
                &[("a", Some("1")), ("b", Some("2")), ("c", None)],
            ),
            ("a=b=c", &[("a", Some("b=c"))]),
            ("a=\"unterminated b", &[("a", Some("unterminated b"))]),
            ("a=1\0b=2", &[("a", Some("1"))]),
        ];
        for (line, want) in cases {
            let want: Vec<(String, Option<String>)> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect();
            assert_eq!(kv(line), want, "line {line:?}");
        }
    }

    #[test]
    fn setenv_last_wins() {
        let c = parse("systemd.setenv=SPEEDISO=a systemd.setenv=OTHER=x systemd.setenv=SPEEDISO=b");
        assert_eq!(c.setenv("SPEEDISO"), Some("b"));
        assert_eq!(c.setenv("OTHER"), Some("x"));
        assert_eq!(c.setenv("NOPE"), None);
        assert_eq!(
            parse("systemd.setenv=SPEEDISO").setenv("SPEEDISO"),
            Some("")
        );
    }

    #[test]
    fn all_values_of_a_key_in_order() {
        let c = parse("speediso.k=a x speediso.k speediso.k=b,c -- speediso.k=init");
        assert_eq!(c.all("speediso.k").collect::<Vec<_>>(), ["a", "", "b,c"]);
        assert_eq!(c.all("nope").count(), 0);
    }

    #[test]
    fn speediso_options_last_wins_first_order() {
        let c = parse("speediso.a=1 speediso.b=2 speediso.a=3 speediso.flag");
        assert_eq!(
            c.speediso_options(),
            vec![
                ("a".into(), "3".into()),
                ("b".into(), "2".into()),
                ("flag".into(), "1".into())
            ]
        );
    }
}
