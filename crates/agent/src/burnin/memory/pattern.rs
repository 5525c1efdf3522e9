//! The memory test's patterns and its two hot loops: `fill` writes a
//! pattern over a slice of 64-bit words, `check` reads it back and reports
//! each word that differs. Pure: no I/O, no threads, tested on small buffers.
//!
//! Every pattern is a function of the word's index in the region (and of
//! the pass, a seed, the region's address), so the checker regenerates the
//! expected value instead of keeping a copy, and a worker can fill and check
//! any slice on its own. The loops are written to auto-vectorise: no
//! per-word bounds checks or branches; `check` compares a chunk at a time
//! (OR of the XORs) and only looks for the bad word in a chunk that differs.

use serde::Serialize;

/// One pattern: a value per word, written over the whole region, then read
/// back and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// Solid 0x00 bytes.
    Zeros,
    /// Solid 0xFF bytes (the inversion of `Zeros`).
    Ones,
    /// 0x55.. and 0xAA.. in alternate words: every bit differs from its
    /// neighbours in the word and in the next word.
    Checkerboard,
    /// The checkerboard inverted.
    CheckerboardInverted,
    /// One bit set per word, moving one place a word (and one place a pass,
    /// so over 64 passes each word holds each bit).
    WalkingOnes,
    /// One bit clear per word, moving likewise.
    WalkingZeros,
    /// A SplitMix64 stream seeded per pass: word i holds the stream's i-th
    /// value, regenerated for the check.
    Random,
    /// The random stream inverted.
    RandomInverted,
    /// Address in address: each word holds its own virtual address, so a
    /// fault in the address lines (a word written to the wrong place) shows.
    Address,
    /// Each word holds its own address inverted.
    AddressInverted,
}

/// The patterns of one pass, in the order they run: each one then its
/// inversion, so every cell is written as 0 and as 1 with every pattern.
pub const ALL: [Pattern; 10] = [
    Pattern::Zeros,
    Pattern::Ones,
    Pattern::Checkerboard,
    Pattern::CheckerboardInverted,
    Pattern::WalkingOnes,
    Pattern::WalkingZeros,
    Pattern::Random,
    Pattern::RandomInverted,
    Pattern::Address,
    Pattern::AddressInverted,
];

/// What a pattern depends on besides the word's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// The pass, from 0: turns the walking bits, varies the random seed.
    pub pass: u64,
    /// The random stream's seed for this pass.
    pub seed: u64,
    /// Virtual address of word 0 of the region.
    pub base: u64,
}

impl Params {
    /// The parameters of pass `pass` over a region at `base`.
    pub fn new(pass: u64, base: u64) -> Params {
        Params {
            pass,
            seed: splitmix(0x5EED_F00D_CAFE_1250 ^ pass),
            base,
        }
    }
}

const CHECKER: u64 = 0x5555_5555_5555_5555;
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
/// Words compared before looking for the bad one: 4 KiB, a page.
const CHUNK: usize = 512;

/// SplitMix64's output function (Steele, Lea, Flood 2014): the stream's
/// i-th value is `splitmix(seed + i * GOLDEN)`.
#[inline(always)]
fn splitmix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Run `$body` with `$g` bound to the pattern's word function (index to
/// value), one monomorphic closure per pattern, so the match is outside
/// the loops and each loop is compiled (and vectorised) for its pattern.
macro_rules! with_word_fn {
    ($pat:expr, $p:expr, |$g:ident| $body:expr) => {{
        let p: Params = $p;
        match $pat {
            Pattern::Zeros => {
                let $g = |_i: u64| 0u64;
                $body
            }
            Pattern::Ones => {
                let $g = |_i: u64| !0u64;
                $body
            }
            Pattern::Checkerboard => {
                let $g = |i: u64| CHECKER ^ (i & 1).wrapping_neg();
                $body
            }
            Pattern::CheckerboardInverted => {
                let $g = |i: u64| !(CHECKER ^ (i & 1).wrapping_neg());
                $body
            }
            Pattern::WalkingOnes => {
                let r = p.pass;
                let $g = move |i: u64| 1u64 << (i.wrapping_add(r) & 63);
                $body
            }
            Pattern::WalkingZeros => {
                let r = p.pass;
                let $g = move |i: u64| !(1u64 << (i.wrapping_add(r) & 63));
                $body
            }
            Pattern::Random => {
                let s = p.seed;
                let $g = move |i: u64| splitmix(s.wrapping_add(i.wrapping_mul(GOLDEN)));
                $body
            }
            Pattern::RandomInverted => {
                let s = p.seed;
                let $g = move |i: u64| !splitmix(s.wrapping_add(i.wrapping_mul(GOLDEN)));
                $body
            }
            Pattern::Address => {
                let b = p.base;
                let $g = move |i: u64| b.wrapping_add(i << 3);
                $body
            }
            Pattern::AddressInverted => {
                let b = p.base;
                let $g = move |i: u64| !b.wrapping_add(i << 3);
                $body
            }
        }
    }};
}

impl Pattern {
    /// The name reports use (`walking-ones`).
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Zeros => "zeros",
            Pattern::Ones => "ones",
            Pattern::Checkerboard => "checkerboard",
            Pattern::CheckerboardInverted => "checkerboard-inverted",
            Pattern::WalkingOnes => "walking-ones",
            Pattern::WalkingZeros => "walking-zeros",
            Pattern::Random => "random",
            Pattern::RandomInverted => "random-inverted",
            Pattern::Address => "address",
            Pattern::AddressInverted => "address-inverted",
        }
    }

    /// The value word `i` of the region holds.
    pub fn word(self, i: u64, p: Params) -> u64 {
        with_word_fn!(self, p, |g| g(i))
    }
}

/// Write `pat` over `words`, which are the region's words from index `first`.
pub fn fill(words: &mut [u64], first: u64, pat: Pattern, p: Params) {
    with_word_fn!(pat, p, |g| {
        for (j, w) in words.iter_mut().enumerate() {
            *w = g(first + j as u64);
        }
    })
}

/// A word that did not hold what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bad {
    /// Index in the region.
    pub index: u64,
    pub expected: u64,
    pub actual: u64,
}

/// Compare `words` (the region's words from index `first`) with `pat`;
/// call `found` for each word that differs. Returns how many differ.
pub fn check(
    words: &[u64],
    first: u64,
    pat: Pattern,
    p: Params,
    found: &mut dyn FnMut(Bad),
) -> u64 {
    with_word_fn!(pat, p, |g| {
        let mut bad = 0u64;
        for (c, chunk) in words.chunks(CHUNK).enumerate() {
            let start = first + (c * CHUNK) as u64;
            let mut diff = 0u64;
            for (j, &w) in chunk.iter().enumerate() {
                diff |= w ^ g(start + j as u64);
            }
            if diff == 0 {
                continue;
            }
            for (j, &w) in chunk.iter().enumerate() {
                let index = start + j as u64;
                let expected = g(index);
                if w != expected {
                    bad += 1;
                    found(Bad {
                        index,
                        expected,
                        actual: w,
                    });
                }
            }
        }
        bad
    })
}

/// The bit positions (0 = least significant) set in `x`.
pub fn bits(x: u64) -> Vec<u32> {
    (0..64).filter(|b| x >> b & 1 == 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x7f00_1234_0000;

    fn params(pass: u64) -> Params {
        Params::new(pass, BASE)
    }

    fn collect(words: &[u64], first: u64, pat: Pattern, p: Params) -> (u64, Vec<Bad>) {
        let mut v = Vec::new();
        let n = check(words, first, pat, p, &mut |b| v.push(b));
        (n, v)
    }

    #[test]
    fn each_pattern_writes_what_it_says() {
        let p = params(0);
        let mut w = vec![0u64; 130];
        let expect: [(Pattern, [u64; 3]); 10] = [
            (Pattern::Zeros, [0, 0, 0]),
            (Pattern::Ones, [!0, !0, !0]),
            (Pattern::Checkerboard, [CHECKER, !CHECKER, CHECKER]),
            (Pattern::CheckerboardInverted, [!CHECKER, CHECKER, !CHECKER]),
            (Pattern::WalkingOnes, [1, 2, 4]),
            (Pattern::WalkingZeros, [!1, !2, !4]),
            (
                Pattern::Random,
                [
                    splitmix(p.seed),
                    splitmix(p.seed.wrapping_add(GOLDEN)),
                    splitmix(p.seed.wrapping_add(2u64.wrapping_mul(GOLDEN))),
                ],
            ),
            (
                Pattern::RandomInverted,
                [
                    !splitmix(p.seed),
                    !splitmix(p.seed.wrapping_add(GOLDEN)),
                    !splitmix(p.seed.wrapping_add(2u64.wrapping_mul(GOLDEN))),
                ],
            ),
            (Pattern::Address, [BASE, BASE + 8, BASE + 16]),
            (Pattern::AddressInverted, [!BASE, !(BASE + 8), !(BASE + 16)]),
        ];
        for (pat, first3) in expect {
            fill(&mut w, 0, pat, p);
            assert_eq!(&w[..3], &first3, "{}", pat.name());
            for (i, x) in w.iter().enumerate() {
                assert_eq!(*x, pat.word(i as u64, p), "{} word {i}", pat.name());
            }
            assert_eq!(collect(&w, 0, pat, p), (0, vec![]), "{}", pat.name());
        }
        assert_eq!(ALL.len(), expect.len());
        // Walking bits wrap after 64 words and turn with the pass.
        assert_eq!(Pattern::WalkingOnes.word(64, p), 1);
        assert_eq!(Pattern::WalkingOnes.word(0, params(5)), 1 << 5);
        assert_eq!(Pattern::WalkingZeros.word(63, p), !(1 << 63));
        // Each pass has its own random stream; inversions are exact.
        assert_ne!(
            Pattern::Random.word(7, params(0)),
            Pattern::Random.word(7, params(1))
        );
        for pair in ALL.chunks(2) {
            for i in [0u64, 1, 77, 1 << 33] {
                assert_eq!(
                    pair[0].word(i, p),
                    !pair[1].word(i, p),
                    "{}",
                    pair[0].name()
                );
            }
        }
    }

    /// Issue 15: a single flipped bit is found, for every pattern, with
    /// its index, the value written and the value read; in the first and
    /// last word of a chunk, mid-chunk, and in a slice that starts at a
    /// non-zero index of the region.
    #[test]
    fn a_flipped_bit_is_found_with_its_word_and_values() {
        let n = 3 * CHUNK + 17;
        for first in [0u64, 4096 + 3] {
            for pat in ALL {
                let p = params(3);
                for (at, bit) in [(0usize, 0u32), (511, 63), (512, 17), (n - 1, 40), (1000, 1)] {
                    let mut w = vec![0u64; n];
                    fill(&mut w, first, pat, p);
                    let good = w[at];
                    w[at] ^= 1 << bit;
                    let (count, found) = collect(&w, first, pat, p);
                    assert_eq!(count, 1, "{} at {at}", pat.name());
                    assert_eq!(
                        found,
                        vec![Bad {
                            index: first + at as u64,
                            expected: good,
                            actual: good ^ (1 << bit),
                        }],
                        "{} at {at}",
                        pat.name()
                    );
                    assert_eq!(bits(found[0].expected ^ found[0].actual), vec![bit]);
                }
            }
        }
    }

    #[test]
    fn every_bad_word_is_counted() {
        let p = params(0);
        let mut w = vec![0u64; 2048];
        fill(&mut w, 0, Pattern::Random, p);
        for i in [3usize, 4, 600, 2047] {
            w[i] = !w[i];
        }
        let (n, found) = collect(&w, 0, Pattern::Random, p);
        assert_eq!(n, 4);
        let idx: Vec<u64> = found.iter().map(|b| b.index).collect();
        assert_eq!(idx, [3, 4, 600, 2047]);
        assert_eq!(found[0].expected ^ found[0].actual, !0);
        // Checked against the wrong pattern, every word differs.
        assert_eq!(collect(&w, 0, Pattern::Zeros, p).0, 2048);
    }

    #[test]
    fn bits_lists_positions() {
        assert_eq!(bits(0), Vec::<u32>::new());
        assert_eq!(bits(0b1010), vec![1, 3]);
        assert_eq!(bits(1 << 63), vec![63]);
    }
}
