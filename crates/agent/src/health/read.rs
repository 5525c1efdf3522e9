//! Readers that keep "not there" apart from "there but unreadable": the
//! checks skip what the kernel does not offer and report what it offers
//! but cannot be read or parsed (`Val::Bad`), so garbage never passes.

use crate::root::Root;
use std::str::FromStr;

/// One attribute file under the root.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<T> {
    /// No such file (the kernel does not offer it, or it vanished).
    Absent,
    /// The driver says it has no value now (ENODATA, the hwmon ABI's
    /// "not available").
    NoData,
    Ok(T),
    /// Unreadable, or not what the file should hold: why, for a person.
    Bad(String),
}

impl<T> Val<T> {
    pub fn ok(self) -> Option<T> {
        match self {
            Val::Ok(v) => Some(v),
            _ => None,
        }
    }
}

/// The text of `abs` (an absolute path, read under `root`).
pub fn text(root: &Root, abs: &str) -> Val<String> {
    match std::fs::read(root.at(abs)) {
        Ok(b) => match String::from_utf8(b) {
            Ok(s) => Val::Ok(s),
            Err(_) => Val::Bad("not text".into()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Val::Absent,
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => Val::NoData,
        Err(e) => Val::Bad(format!("cannot read: {e}")),
    }
}

/// `abs` as a number (surrounding whitespace allowed).
pub fn num<T: FromStr>(root: &Root, abs: &str) -> Val<T> {
    match text(root, abs) {
        Val::Ok(s) => parse_num(&s),
        Val::Absent => Val::Absent,
        Val::NoData => Val::NoData,
        Val::Bad(why) => Val::Bad(why),
    }
}

/// A number, or `Bad` quoting (the start of) what was there instead.
pub fn parse_num<T: FromStr>(s: &str) -> Val<T> {
    let t = s.trim();
    match t.parse() {
        Ok(v) => Val::Ok(v),
        Err(_) => Val::Bad(format!("{} is not a number", quote(t))),
    }
}

/// At most 40 characters of `s`, debug-quoted.
pub fn quote(s: &str) -> String {
    let short: String = s.chars().take(40).collect();
    if short.len() < s.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}

/// Does the directory `abs` still exist under `root`? A file missing from
/// a directory that is gone is a device that went away mid-read (fine); one
/// missing from a directory still there is worth a finding.
pub fn dir_exists(root: &Root, abs: &str) -> bool {
    root.at(abs).is_dir()
}

/// Names in the directory `abs` that are `prefix` followed by a number,
/// sorted by that number: `cpu0, cpu2, cpu10`.
pub fn numbered(root: &Root, abs: &str, prefix: &str) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = crate::root::dir_names(&root.at(abs))
        .into_iter()
        .filter_map(|n| {
            let k = n.strip_prefix(prefix)?.parse().ok()?;
            Some((k, n))
        })
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_garbage() {
        assert_eq!(parse_num::<u64>(" 12\n"), Val::Ok(12));
        assert_eq!(parse_num::<i64>("-5000"), Val::Ok(-5000));
        assert_eq!(
            parse_num::<u64>("abc\n"),
            Val::Bad("\"abc\" is not a number".into())
        );
        assert_eq!(
            parse_num::<u64>(""),
            Val::Bad("\"\" is not a number".into())
        );
    }
}
