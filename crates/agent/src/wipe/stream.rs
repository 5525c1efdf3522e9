//! The random overwrite pattern: a keystream that any worker regenerates at
//! any (offset, len) without the bytes before it. AES-128-CTR where the CPU
//! has AES instructions (AES-NI/VAES, detected at run time by the `aes`
//! crate), ChaCha8 elsewhere; the choice and its reason go into the
//! certificate, and either algorithm regenerates on any machine (the `aes`
//! crate's constant-time software backend where AES instructions are
//! missing). Nothing here does I/O.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::{Aes128Enc, Block};
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha8;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `speediso.wipe.stream` option: `auto` picks AES where the CPU has
/// AES instructions.
pub const OPTION: &str = "wipe.stream";
/// Its values, `auto` first (the default).
pub const CHOICES: &[&str] = &["auto", "aes", "chacha8"];

/// The ChaCha8 stream is keyed per 1 MiB block: block `b` of pass `p` is
/// ChaCha8(key = seed, nonce = b as u64 LE ‖ p as u32 LE) from counter 0.
/// Any offset can be regenerated without the bytes before it, and the
/// 32-bit block counter never wraps (1 MiB = 16384 ChaCha blocks).
pub const CHACHA_BLOCK: u64 = 1 << 20;

/// Domain separation of the AES key: a different algorithm or pass never
/// reuses a key (`aes_key`).
const AES_DOMAIN: &[u8] = b"speediso.wipe.stream/aes-128-ctr\0";

/// AES blocks generated per step: 4 KiB of keystream on the stack, enough
/// for the widest backend (VAES-512 takes 32 blocks at a time) to stay
/// busy, small enough to stay in L1.
const TILE: usize = 256;

/// The keystream algorithm of a random overwrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Algorithm {
    /// AES-128 in counter mode: key = the first 16 bytes of
    /// SHA-256("speediso.wipe.stream/aes-128-ctr\0" ‖ seed ‖ u32le(pass)),
    /// byte `o` of the device is byte `o % 16` of AES(key, u128be(o / 16)).
    #[serde(rename = "aes-128-ctr")]
    Aes128Ctr,
    /// ChaCha8 per 1 MiB block (`CHACHA_BLOCK`); what certificates without
    /// a `stream` member used.
    #[serde(rename = "chacha8")]
    ChaCha8,
}

impl Algorithm {
    /// The name certificates carry.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Aes128Ctr => "aes-128-ctr",
            Algorithm::ChaCha8 => "chacha8",
        }
    }

    /// From a certificate's `sanitization.stream.algorithm`.
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name {
            "aes-128-ctr" => Some(Algorithm::Aes128Ctr),
            "chacha8" => Some(Algorithm::ChaCha8),
            _ => None,
        }
    }

    /// How the stream is derived, for people reading a certificate.
    pub fn description(self) -> &'static str {
        match self {
            Algorithm::Aes128Ctr => "AES-128-CTR; key = SHA-256(\"speediso.wipe.stream/aes-128-ctr\\0\" || seed || u32le(p))[0..16], byte o = AES(key, u128be(o/16))[o%16]",
            Algorithm::ChaCha8 => "ChaCha8; block b of pass p = ChaCha8(key=seed, nonce=u64le(b)||u32le(p)), 1 MiB blocks",
        }
    }
}

/// What `speediso.wipe.stream` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    #[default]
    Auto,
    Aes,
    ChaCha8,
}

impl Choice {
    /// One of `CHOICES`; the options layer has rejected anything else.
    pub fn parse(v: &str) -> Option<Choice> {
        match v {
            "auto" => Some(Choice::Auto),
            "aes" => Some(Choice::Aes),
            "chacha8" => Some(Choice::ChaCha8),
            _ => None,
        }
    }
}

/// The algorithm picked for a wipe and why (recorded in the certificate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selected {
    pub algorithm: Algorithm,
    pub reason: String,
}

/// Whether this CPU runs AES in hardware (AES-NI on x86, the ARMv8 crypto
/// extensions on aarch64).
pub fn cpu_has_aes() -> bool {
    aes::hardware_accelerated()
}

/// Pick the algorithm for `choice` on a CPU with (`hw_aes`) or without AES
/// instructions. Pure, so every branch is tested.
pub fn select(choice: Choice, hw_aes: bool) -> Selected {
    let (algorithm, reason) = match (choice, hw_aes) {
        (Choice::Auto, true) => (Algorithm::Aes128Ctr, "CPU has AES instructions".into()),
        (Choice::Auto, false) => (Algorithm::ChaCha8, "CPU lacks AES instructions".into()),
        (Choice::Aes, true) => (
            Algorithm::Aes128Ctr,
            "forced by speediso.wipe.stream=aes".into(),
        ),
        (Choice::Aes, false) => (
            Algorithm::Aes128Ctr,
            "forced by speediso.wipe.stream=aes (software AES: CPU lacks AES instructions)".into(),
        ),
        (Choice::ChaCha8, _) => (
            Algorithm::ChaCha8,
            "forced by speediso.wipe.stream=chacha8".to_string(),
        ),
    };
    Selected {
        reason: format!("{}: {reason}", algorithm.name()),
        algorithm,
    }
}

/// The AES-128 key of `pass`: domain-separated from other algorithms and
/// passes, so two passes never write the same bytes.
pub fn aes_key(seed: &[u8; 32], pass: u32) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(AES_DOMAIN);
    h.update(seed);
    h.update(pass.to_le_bytes());
    let d = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// One pass's keystream, keyed once; `fill` and `xor` take any offset and
/// length, so workers generate their chunks independently (`&self`, `Sync`).
#[derive(Clone)]
pub enum Keystream {
    Aes(Box<Aes128Enc>),
    ChaCha8 { seed: [u8; 32], pass: u32 },
}

impl Keystream {
    pub fn new(algorithm: Algorithm, seed: &[u8; 32], pass: u32) -> Keystream {
        match algorithm {
            Algorithm::Aes128Ctr => {
                Keystream::Aes(Box::new(Aes128Enc::new(&aes_key(seed, pass).into())))
            }
            Algorithm::ChaCha8 => Keystream::ChaCha8 { seed: *seed, pass },
        }
    }

    /// Write the stream bytes that belong at device offset `offset`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        match self {
            Keystream::Aes(c) => aes_ctr(c, 0, offset, buf, false),
            Keystream::ChaCha8 { seed, pass } => chacha8(seed, *pass, offset, buf, false),
        }
    }

    /// XOR the stream bytes for `offset` into `buf` (verification: the
    /// result is all zeros exactly when `buf` held the stream).
    pub fn xor(&self, offset: u64, buf: &mut [u8]) {
        match self {
            Keystream::Aes(c) => aes_ctr(c, 0, offset, buf, true),
            Keystream::ChaCha8 { seed, pass } => chacha8(seed, *pass, offset, buf, true),
        }
    }
}

/// CTR mode over `cipher` with the 128-bit big-endian counter block
/// `iv + offset / 16` (wrapping), starting `offset % 16` bytes into it:
/// byte `offset + i` of the keystream goes to `buf[i]`. `xor` XORs it in,
/// otherwise it is written.
pub fn aes_ctr(cipher: &Aes128Enc, iv: u128, offset: u64, buf: &mut [u8], xor: bool) {
    let mut ctr = [Block::default(); TILE];
    let mut ks = [Block::default(); TILE];
    let mut block = iv.wrapping_add(u128::from(offset / 16));
    let mut pos = 0usize;
    // A head that starts inside a block: one block, its tail used.
    let skip = (offset % 16) as usize;
    if skip != 0 {
        let mut b = Block::from(block.to_be_bytes());
        cipher.encrypt_block(&mut b);
        let n = (16 - skip).min(buf.len());
        put(&mut buf[..n], &b[skip..skip + n], xor);
        pos = n;
        block = block.wrapping_add(1);
    }
    // The counter blocks' high halves are written once per run of blocks
    // that share them (they change only when the low half wraps), the low
    // halves per block: counter setup was 40% of the time when each block
    // was built from a u128.
    let mut high = None;
    while pos < buf.len() {
        let rest = &mut buf[pos..];
        let (hi, lo) = ((block >> 64) as u64, block as u64);
        let before_wrap = (u64::MAX - lo).saturating_add(1).min(TILE as u64) as usize;
        let blocks = rest.len().div_ceil(16).min(before_wrap);
        if high != Some(hi) {
            for c in ctr.iter_mut() {
                c[..8].copy_from_slice(&hi.to_be_bytes());
            }
            high = Some(hi);
        }
        for (i, c) in (0u64..).zip(&mut ctr[..blocks]) {
            c[8..].copy_from_slice(&lo.wrapping_add(i).to_be_bytes());
        }
        block = block.wrapping_add(blocks as u128);
        let n = (blocks * 16).min(rest.len());
        let (whole, _) = Block::slice_as_chunks_mut(&mut rest[..n]);
        if !xor && whole.len() == blocks {
            // Straight into the caller's buffer: no copy.
            cipher
                .encrypt_blocks_b2b(&ctr[..blocks], whole)
                .expect("equal lengths");
        } else {
            cipher
                .encrypt_blocks_b2b(&ctr[..blocks], &mut ks[..blocks])
                .expect("equal lengths");
            let flat = Block::slice_as_flattened(&ks[..blocks]);
            put(&mut rest[..n], &flat[..n], xor);
        }
        pos += n;
    }
}

/// One core's throughput of `alg`: `chunk`-byte buffers filled (or
/// XORed, as verification does) at successive offsets, one buffer reused,
/// until `dur` of user CPU time has passed. Bytes per second of user CPU
/// time (what `openssl speed` divides by, so other processes on the core
/// do not count), and per second of wall-clock time. What `speediso
/// stream-bench` and benches/stream.sh report.
pub fn throughput(alg: Algorithm, xor: bool, chunk: usize, dur: std::time::Duration) -> (f64, f64) {
    let k = Keystream::new(alg, &[0x5a; 32], 1);
    let mut buf = vec![0u8; chunk.max(1)];
    let user = || crate::sys::rusage::self_cpu().0;
    let (t0, u0) = (std::time::Instant::now(), user());
    let mut done = 0u64;
    while done == 0 || user() - u0 < dur {
        // Several buffers per clock read.
        for _ in 0..16 {
            if xor {
                k.xor(done, &mut buf);
            } else {
                k.fill(done, &mut buf);
            }
            done += buf.len() as u64;
        }
    }
    std::hint::black_box(&buf);
    let cpu = (user() - u0).as_secs_f64().max(1e-9);
    (done as f64 / cpu, done as f64 / t0.elapsed().as_secs_f64())
}

/// Copy or XOR `src` into `dst` (equal lengths).
fn put(dst: &mut [u8], src: &[u8], xor: bool) {
    if xor {
        for (d, s) in dst.iter_mut().zip(src) {
            *d ^= s;
        }
    } else {
        dst.copy_from_slice(src);
    }
}

fn chacha8(seed: &[u8; 32], pass: u32, offset: u64, buf: &mut [u8], xor: bool) {
    let mut pos = 0usize;
    while pos < buf.len() {
        let at = offset + pos as u64;
        let block = at / CHACHA_BLOCK;
        let within = at % CHACHA_BLOCK;
        let n = ((CHACHA_BLOCK - within) as usize).min(buf.len() - pos);
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&block.to_le_bytes());
        nonce[8..].copy_from_slice(&pass.to_le_bytes());
        let mut c = ChaCha8::new(seed.into(), &nonce.into());
        if within > 0 {
            c.seek(within);
        }
        if xor {
            c.apply_keystream(&mut buf[pos..pos + n]);
        } else {
            c.write_keystream(&mut buf[pos..pos + n]);
        }
        pos += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex16(s: &str) -> [u8; 16] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    #[test]
    fn aes_ctr_matches_nist_sp800_38a_f51() {
        // NIST SP 800-38A F.5.1 CTR-AES128.Encrypt: four blocks.
        let key = hex16("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = u128::from_be_bytes(hex16("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"));
        let pt = hex::decode(concat!(
            "6bc1bee22e409f96e93d7e117393172a",
            "ae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52ef",
            "f69f2445df4f9b17ad2b417be66c3710"
        ))
        .unwrap();
        let ct = hex::decode(concat!(
            "874d6191b620e3261bef6864990db6ce",
            "9806f66b7970fdff8617187bb9fffdff",
            "5ae4df3edbd5d35e5b4f09020db03eab",
            "1e031dda2fbe03d1792170a0f3009cee"
        ))
        .unwrap();
        let c = Aes128Enc::new(&key.into());
        let mut b = pt.clone();
        aes_ctr(&c, iv, 0, &mut b, true);
        assert_eq!(b, ct);
        // The same from an unaligned offset; and the counter wraps from
        // 2^128 - 1 to 0.
        let mut tail = pt[21..].to_vec();
        aes_ctr(&c, iv, 21, &mut tail, true);
        assert_eq!(tail, &ct[21..]);
        let mut w = [0u8; 32];
        aes_ctr(&c, u128::MAX, 0, &mut w, false);
        let mut z = [0u8; 16];
        aes_ctr(&c, 0, 0, &mut z, false);
        assert_eq!(&w[16..], &z[..], "the counter wraps to 0");
    }

    /// Counter blocks built per block from the u128 (the definition) are
    /// what the tiled generator makes, also where the low 64 bits wrap
    /// into the high half inside a tile, from any offset.
    #[test]
    fn aes_ctr_carries_into_the_high_half() {
        let c = Aes128Enc::new(&[3u8; 16].into());
        for iv in [(1u128 << 64) - 3, u128::MAX - 300, 12345] {
            let mut want = Vec::new();
            for i in 0..600u128 {
                let mut b = Block::from(iv.wrapping_add(i).to_be_bytes());
                c.encrypt_block(&mut b);
                want.extend_from_slice(&b);
            }
            for (off, len) in [(0usize, 9600usize), (5, 4000), (33, 1), (4095, 5000)] {
                let mut got = vec![0u8; len];
                aes_ctr(&c, iv, off as u64, &mut got, false);
                assert!(got == want[off..off + len], "iv {iv:x} offset {off}");
                let mut x = want[off..off + len].to_vec();
                aes_ctr(&c, iv, off as u64, &mut x, true);
                assert!(x.iter().all(|&b| b == 0), "xor: iv {iv:x} offset {off}");
            }
        }
    }

    /// The stream is what `openssl enc -aes-128-ctr` makes of zeros with
    /// the derived key and an all-zero IV (docs/certificate.md's recipe),
    /// from an unaligned offset too.
    #[test]
    fn aes_stream_is_openssl_aes_128_ctr() {
        use std::io::Write;
        if !speediso_testsupport::have_tool("openssl", "apt-get install openssl") {
            return;
        }
        let seed = [5u8; 32];
        let key = hex::encode(aes_key(&seed, 3));
        let mut child = std::process::Command::new("openssl")
            .args(["enc", "-aes-128-ctr", "-nosalt", "-K", &key, "-iv"])
            .arg("0".repeat(32))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let len = 70_001usize;
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&vec![0u8; len]).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), len);
        let k = Keystream::new(Algorithm::Aes128Ctr, &seed, 3);
        let mut ours = vec![0u8; len];
        k.fill(0, &mut ours);
        assert!(ours == out.stdout, "fill differs from openssl");
        let mut part = vec![0u8; 5000];
        k.fill(12_345, &mut part);
        assert_eq!(&part[..], &out.stdout[12_345..17_345]);
    }

    /// Pinned bytes (computed with `openssl enc`, as in the test above), so
    /// a build on the `aes` crate's software backend (scripts/soft-aes.sh,
    /// `--cfg aes_backend="soft"`: what a CPU without AES instructions
    /// runs) is checked against the same answer as a build on AES-NI.
    #[test]
    fn aes_stream_known_answer() {
        let k = Keystream::new(Algorithm::Aes128Ctr, &[5u8; 32], 3);
        let mut b = [0u8; 24];
        k.fill(1_000_003, &mut b);
        assert_eq!(hex::encode(b), AES_GOLDEN);
        if std::env::var_os("SPEEDISO_EXPECT_SOFT_AES").is_some() {
            assert!(
                !cpu_has_aes(),
                "built for the software backend, but AES-NI is in use"
            );
        }
    }
    const AES_GOLDEN: &str = "b8514d9fb80742631071655564636e8d9d02e041508ae169";

    #[test]
    fn chacha8_output_is_unchanged() {
        // The ChaCha8 stream of the first version (certificates without a
        // `stream` member): bytes pinned so a refactor cannot change them.
        let mut b = [0u8; 16];
        Keystream::new(Algorithm::ChaCha8, &[7u8; 32], 1).fill(CHACHA_BLOCK - 8, &mut b);
        let mut c = [0u8; 16];
        // The same bytes straight from the chacha20 crate.
        let mut n = [0u8; 12];
        n[8..].copy_from_slice(&1u32.to_le_bytes());
        let mut k = ChaCha8::new(&[7u8; 32].into(), &n.into());
        k.seek(CHACHA_BLOCK - 8);
        k.write_keystream(&mut c[..8]);
        n[..8].copy_from_slice(&1u64.to_le_bytes());
        let mut k = ChaCha8::new(&[7u8; 32].into(), &n.into());
        k.write_keystream(&mut c[8..]);
        assert_eq!(b, c);
    }

    #[test]
    fn passes_and_algorithms_differ() {
        let seed = [9u8; 32];
        let mut out = Vec::new();
        for alg in [Algorithm::Aes128Ctr, Algorithm::ChaCha8] {
            for pass in [1, 2] {
                let mut b = [0u8; 64];
                Keystream::new(alg, &seed, pass).fill(0, &mut b);
                assert!(!out.contains(&b), "{alg:?} pass {pass} repeats a stream");
                out.push(b);
            }
        }
        assert_ne!(aes_key(&seed, 1), aes_key(&seed, 2));
        assert_ne!(aes_key(&seed, 1), aes_key(&[8u8; 32], 1));
    }

    #[test]
    fn selection_and_reasons() {
        let s = select(Choice::Auto, true);
        assert_eq!(s.algorithm, Algorithm::Aes128Ctr);
        assert_eq!(s.reason, "aes-128-ctr: CPU has AES instructions");
        let s = select(Choice::Auto, false);
        assert_eq!(s.algorithm, Algorithm::ChaCha8);
        assert_eq!(s.reason, "chacha8: CPU lacks AES instructions");
        assert_eq!(select(Choice::Aes, false).algorithm, Algorithm::Aes128Ctr);
        assert!(select(Choice::Aes, false).reason.contains("software AES"));
        assert_eq!(
            select(Choice::ChaCha8, true).reason,
            "chacha8: forced by speediso.wipe.stream=chacha8"
        );
        for c in CHOICES {
            assert!(Choice::parse(c).is_some(), "{c}");
        }
        assert_eq!(Choice::parse("AES"), None);
        for a in [Algorithm::Aes128Ctr, Algorithm::ChaCha8] {
            assert_eq!(Algorithm::parse(a.name()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.name());
        }
    }

    fn long(alg: Algorithm) -> &'static [u8] {
        use std::sync::OnceLock;
        static AES: OnceLock<Vec<u8>> = OnceLock::new();
        static CHA: OnceLock<Vec<u8>> = OnceLock::new();
        let cell = match alg {
            Algorithm::Aes128Ctr => &AES,
            Algorithm::ChaCha8 => &CHA,
        };
        cell.get_or_init(|| {
            // 3 MiB + a bit, across ChaCha's 1 MiB block boundaries.
            let mut v = vec![0u8; 3 * CHACHA_BLOCK as usize + 4099];
            Keystream::new(alg, &[5u8; 32], 3).fill(0, &mut v);
            v
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Any window, generated alone (fill) or XORed into zeros, is the
        /// same bytes as one long generation.
        #[test]
        fn any_window_regenerates(
            aes in any::<bool>(),
            off in 0usize..3 * CHACHA_BLOCK as usize,
            len in 0usize..70_000,
        ) {
            let alg = if aes { Algorithm::Aes128Ctr } else { Algorithm::ChaCha8 };
            let whole = long(alg);
            let len = len.min(whole.len() - off);
            let k = Keystream::new(alg, &[5u8; 32], 3);
            let mut part = vec![0u8; len];
            k.fill(off as u64, &mut part);
            prop_assert_eq!(&part[..], &whole[off..off + len]);
            let mut x = vec![0u8; len];
            k.xor(off as u64, &mut x);
            prop_assert_eq!(&x[..], &whole[off..off + len]);
        }
    }
}
