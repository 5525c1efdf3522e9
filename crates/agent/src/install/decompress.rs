//! On-the-fly decompression: raw, gzip, xz and zstd, told apart by magic
//! bytes (the name's extension must not contradict them).

use anyhow::{bail, Result};
use serde::Serialize;
use std::io::{BufRead, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Raw,
    Gzip,
    Xz,
    Zstd,
}

impl Format {
    /// What the URL's name says (`None` for no known compression suffix).
    pub fn from_name(name: &str) -> Option<Format> {
        let n = name
            .split(['?', '#'])
            .next()
            .unwrap_or(name)
            .to_ascii_lowercase();
        if n.ends_with(".gz") {
            Some(Format::Gzip)
        } else if n.ends_with(".xz") {
            Some(Format::Xz)
        } else if n.ends_with(".zst") || n.ends_with(".zstd") {
            Some(Format::Zstd)
        } else {
            None
        }
    }

    /// What the first bytes say.
    pub fn from_magic(head: &[u8]) -> Format {
        if head.starts_with(&[0x1f, 0x8b]) {
            Format::Gzip
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Format::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Format::Zstd
        } else {
            Format::Raw
        }
    }
}

/// The format of an image named `name` starting with `head`. Magic decides;
/// a compression suffix over data without that magic is an error (a
/// mislabelled or truncated file), not a raw image.
pub fn detect(name: &str, head: &[u8]) -> Result<Format> {
    let magic = Format::from_magic(head);
    match Format::from_name(name) {
        Some(f) if f != magic => {
            bail!(
                "{name}: named as {f:?} but the data starts like {magic:?} ({:02x?})",
                &head[..head.len().min(6)]
            )
        }
        _ => Ok(magic),
    }
}

/// A reader of the decompressed stream.
pub fn decoder<'a, R: BufRead + Send + 'a>(fmt: Format, r: R) -> Result<Box<dyn Read + Send + 'a>> {
    Ok(match fmt {
        Format::Raw => Box::new(r),
        Format::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Format::Xz => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(r)),
        Format::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn detection() {
        let cases: &[(&str, &[u8], Option<Format>)] = &[
            ("a.img", b"\xeb\x63\x90", Some(Format::Raw)),
            ("a.img.gz", b"\x1f\x8b\x08", Some(Format::Gzip)),
            ("a.img", b"\x1f\x8b\x08", Some(Format::Gzip)),
            ("a.raw.xz?x=1", b"\xfd7zXZ\0", Some(Format::Xz)),
            ("a.zst", b"\x28\xb5\x2f\xfd", Some(Format::Zstd)),
            ("a.zst", b"\x00\x00", None),
            ("a.gz", b"\x28\xb5\x2f\xfd", None),
        ];
        for (name, head, want) in cases {
            assert_eq!(detect(name, head).ok(), *want, "{name}");
        }
    }

    #[test]
    fn gzip_round_trip_multi_member() {
        let mut out = Vec::new();
        for part in [&b"hello "[..], b"world"] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            out.extend(e.finish().unwrap());
        }
        let mut s = String::new();
        decoder(Format::Gzip, &out[..])
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello world");
    }
}
