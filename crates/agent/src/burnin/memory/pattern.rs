//! The memory test's patterns and its two hot loops: `fill` writes a
//! pattern over a slice of 64-bit words, `check` reads it back and reports
//! each word that differs. Pure: no I/O, no threads, tested on small buffers.
//!
//! Every pattern is a function of the word's index in the region (and of
//! the pass, a seed, the region's address), so the checker regenerates the
//! expected value instead of keeping a copy, and a worker can fill and check
//! any slice on its own. Each is a page-sized table combined with a key per
//! page (`Gen`), so the loops are a vectorised copy and compare: no per-word
//! bounds checks, branches or hashing; `check` compares a page at a time
//! (OR of the XORs) and only looks for the bad word in a page that differs.

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
    /// Random: a page of a xorshift64* stream seeded per pass (regenerated
    /// for the check), XORed in each page with that page's own SplitMix64
    /// key, so no two pages hold the same data.
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
/// Words in a block: a 4 KiB page. Each pattern is a table of one block's
/// words combined with a key per block, so writing is a copy of the table
/// and checking a compare with it, both at memory speed on any x86-64
/// (computing 64-bit hashes per word is not: SSE2 has no 64-bit multiply).
pub const BLOCK: usize = 512;

/// SplitMix64's output function (Steele, Lea, Flood 2014).
fn splitmix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How a block's table word and the block's key make the word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Xor,
    Add,
    Sub,
}

/// The key of each block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Zero,
    /// SplitMix64 of the seed and the block number.
    Random(u64),
    /// The virtual address of the block's first word.
    Address(u64),
}

#[inline(always)]
fn combine(op: Op, t: u64, k: u64) -> u64 {
    match op {
        Op::Xor => t ^ k,
        Op::Add => t.wrapping_add(k),
        Op::Sub => t.wrapping_sub(k),
    }
}

/// A pattern ready to write or check: word `i` of the region is
/// `op(table[i % BLOCK], key(i / BLOCK))`.
#[derive(Debug, Clone)]
pub struct Gen {
    table: Box<[u64; BLOCK]>,
    op: Op,
    key: Key,
}

impl Gen {
    pub fn new(pat: Pattern, p: Params) -> Gen {
        let mut table = Box::new([0u64; BLOCK]);
        let (mut op, mut key) = (Op::Xor, Key::Zero);
        for (j, t) in table.iter_mut().enumerate() {
            let j = j as u64;
            *t = match pat {
                Pattern::Zeros => 0,
                Pattern::Ones => !0,
                Pattern::Checkerboard => CHECKER ^ (j & 1).wrapping_neg(),
                Pattern::CheckerboardInverted => !(CHECKER ^ (j & 1).wrapping_neg()),
                // BLOCK is a multiple of 64, so the bit walks on across blocks.
                Pattern::WalkingOnes => 1 << (j.wrapping_add(p.pass) & 63),
                Pattern::WalkingZeros => !(1 << (j.wrapping_add(p.pass) & 63)),
                Pattern::Random | Pattern::RandomInverted => 0, // below
                Pattern::Address => j << 3,
                Pattern::AddressInverted => !(j << 3),
            };
        }
        match pat {
            Pattern::Random | Pattern::RandomInverted => {
                // A block of the seeded xorshift64* stream, regenerated for
                // the check; each block XORed with its own key.
                let mut x = p.seed | 1;
                for t in table.iter_mut() {
                    x ^= x >> 12;
                    x ^= x << 25;
                    x ^= x >> 27;
                    let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
                    *t = if pat == Pattern::Random { v } else { !v };
                }
                key = Key::Random(p.seed);
            }
            // base + 8i = 8 (i % BLOCK) + (base + 8 BLOCK (i / BLOCK)), and
            // !(a + b) = !a - b.
            Pattern::Address => (op, key) = (Op::Add, Key::Address(p.base)),
            Pattern::AddressInverted => (op, key) = (Op::Sub, Key::Address(p.base)),
            _ => {}
        }
        Gen { table, op, key }
    }

    #[inline(always)]
    fn key(&self, block: u64) -> u64 {
        match self.key {
            Key::Zero => 0,
            Key::Random(seed) => splitmix(seed ^ block.wrapping_mul(GOLDEN)),
            Key::Address(base) => base.wrapping_add(block.wrapping_mul(BLOCK as u64 * 8)),
        }
    }

    /// The value word `i` of the region holds.
    pub fn word(&self, i: u64) -> u64 {
        let t = self.table[(i % BLOCK as u64) as usize];
        combine(self.op, t, self.key(i / BLOCK as u64))
    }
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

    /// The value word `i` of the region holds (slow: builds the table).
    pub fn word(self, i: u64, p: Params) -> u64 {
        Gen::new(self, p).word(i)
    }
}

/// Call `f(offset, j, n, block)` for each run of `len` words from region
/// index `first` that lies in one block: `n` words from `offset` in the
/// slice, starting at word `j` of block `block`.
#[inline(always)]
fn blocks(first: u64, len: usize, mut f: impl FnMut(usize, usize, usize, u64)) {
    let mut off = 0;
    while off < len {
        let i = first + off as u64;
        let j = (i % BLOCK as u64) as usize;
        let n = (BLOCK - j).min(len - off);
        f(off, j, n, i / BLOCK as u64);
        off += n;
    }
}

/// Write the pattern over `words`, the region's words from index `first`:
/// each page's words made in a page-sized buffer (it stays in L1), then
/// streamed to memory around the caches (`sys::mem::stream_copy`), fenced
/// at the end so the check reads what memory holds.
pub fn fill(words: &mut [u64], first: u64, g: &Gen) {
    let mut page = [0u64; BLOCK];
    blocks(first, words.len(), |off, j, n, block| {
        let k = g.key(block);
        let src = &g.table[j..j + n];
        let tmp = &mut page[..n];
        // One loop per operation, so each vectorises.
        match g.op {
            Op::Xor => tmp.iter_mut().zip(src).for_each(|(d, t)| *d = t ^ k),
            Op::Add => tmp
                .iter_mut()
                .zip(src)
                .for_each(|(d, t)| *d = t.wrapping_add(k)),
            Op::Sub => tmp
                .iter_mut()
                .zip(src)
                .for_each(|(d, t)| *d = t.wrapping_sub(k)),
        }
        crate::sys::mem::stream_copy(&mut words[off..off + n], tmp);
    });
    crate::sys::mem::store_fence();
}

/// A word that did not hold what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bad {
    /// Index in the region.
    pub index: u64,
    pub expected: u64,
    pub actual: u64,
}

/// Compare `words` (the region's words from index `first`) with the
/// pattern; call `found` for each word that differs. Returns how many
/// differ. A block is compared whole (OR of the XORs) and searched for the
/// bad word only when it differs.
pub fn check(words: &[u64], first: u64, g: &Gen, found: &mut dyn FnMut(Bad)) -> u64 {
    let mut bad = 0u64;
    blocks(first, words.len(), |off, j, n, block| {
        let k = g.key(block);
        let got = &words[off..off + n];
        let src = &g.table[j..j + n];
        let diff = match g.op {
            Op::Xor => got.iter().zip(src).fold(0, |a, (w, t)| a | (w ^ (t ^ k))),
            Op::Add => got
                .iter()
                .zip(src)
                .fold(0, |a, (w, t)| a | (w ^ t.wrapping_add(k))),
            Op::Sub => got
                .iter()
                .zip(src)
                .fold(0, |a, (w, t)| a | (w ^ t.wrapping_sub(k))),
        };
        if diff == 0 {
            return;
        }
        for (x, (&w, &t)) in got.iter().zip(src).enumerate() {
            let expected = combine(g.op, t, k);
            if w != expected {
                bad += 1;
                found(Bad {
                    index: first + (off + x) as u64,
                    expected,
                    actual: w,
                });
            }
        }
    });
    bad
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

    fn collect(words: &[u64], first: u64, g: &Gen) -> (u64, Vec<Bad>) {
        let mut v = Vec::new();
        let n = check(words, first, g, &mut |b| v.push(b));
        (n, v)
    }

    /// The xorshift64* stream from `seed`, written out independently.
    fn xorshift(seed: u64, n: usize) -> Vec<u64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                x.wrapping_mul(0x2545_F491_4F6C_DD1D)
            })
            .collect()
    }

    /// What each pattern puts in word `i`, from its definition.
    fn spec(pat: Pattern, i: u64, p: Params) -> u64 {
        let rnd = |i: u64| {
            xorshift(p.seed, BLOCK)[(i % 512) as usize]
                ^ splitmix(p.seed ^ (i / 512).wrapping_mul(GOLDEN))
        };
        match pat {
            Pattern::Zeros => 0,
            Pattern::Ones => !0,
            Pattern::Checkerboard if i.is_multiple_of(2) => 0x5555_5555_5555_5555,
            Pattern::Checkerboard => 0xAAAA_AAAA_AAAA_AAAA,
            Pattern::CheckerboardInverted => !spec(Pattern::Checkerboard, i, p),
            Pattern::WalkingOnes => 1 << ((i + p.pass) % 64),
            Pattern::WalkingZeros => !(1 << ((i + p.pass) % 64)),
            Pattern::Random => rnd(i),
            Pattern::RandomInverted => !rnd(i),
            Pattern::Address => p.base + 8 * i,
            Pattern::AddressInverted => !(p.base + 8 * i),
        }
    }

    /// Every pattern writes what its definition says, across page
    /// boundaries and from a slice that starts mid-page, and checks clean.
    #[test]
    fn each_pattern_writes_what_it_says() {
        for pass in [0u64, 5] {
            let p = params(pass);
            for first in [0u64, 700] {
                let mut w = vec![0u64; 3 * BLOCK + 9];
                for pat in ALL {
                    let g = Gen::new(pat, p);
                    fill(&mut w, first, &g);
                    for (x, v) in w.iter().enumerate() {
                        let i = first + x as u64;
                        assert_eq!(*v, spec(pat, i, p), "{} word {i}", pat.name());
                        assert_eq!(g.word(i), *v, "{} word {i}", pat.name());
                    }
                    assert_eq!(collect(&w, first, &g), (0, vec![]), "{}", pat.name());
                }
            }
        }
        assert_eq!(Pattern::WalkingOnes.word(0, params(5)), 1 << 5);
        assert_eq!(Pattern::Address.word(3, params(0)), BASE + 24);
        // Each pass has its own random stream; pages differ; inversions
        // are exact.
        let p = params(0);
        assert_ne!(
            Pattern::Random.word(7, params(0)),
            Pattern::Random.word(7, params(1))
        );
        assert_ne!(Pattern::Random.word(7, p), Pattern::Random.word(7 + 512, p));
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
    /// last word of a page, mid-page, and in a slice that starts at a
    /// non-zero index of the region.
    #[test]
    fn a_flipped_bit_is_found_with_its_word_and_values() {
        let n = 3 * BLOCK + 17;
        for first in [0u64, 4096 + 3] {
            for pat in ALL {
                let g = Gen::new(pat, params(3));
                for (at, bit) in [(0usize, 0u32), (511, 63), (512, 17), (n - 1, 40), (1000, 1)] {
                    let mut w = vec![0u64; n];
                    fill(&mut w, first, &g);
                    let good = w[at];
                    w[at] ^= 1 << bit;
                    let (count, found) = collect(&w, first, &g);
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
        let g = Gen::new(Pattern::Random, params(0));
        let mut w = vec![0u64; 2048];
        fill(&mut w, 0, &g);
        for i in [3usize, 4, 600, 2047] {
            w[i] = !w[i];
        }
        let (n, found) = collect(&w, 0, &g);
        assert_eq!(n, 4);
        let idx: Vec<u64> = found.iter().map(|b| b.index).collect();
        assert_eq!(idx, [3, 4, 600, 2047]);
        assert_eq!(found[0].expected ^ found[0].actual, !0);
        // Checked against another pattern, every word differs.
        assert_eq!(collect(&w, 0, &Gen::new(Pattern::Zeros, params(0))).0, 2048);
    }

    #[test]
    fn bits_lists_positions() {
        assert_eq!(bits(0), Vec::<u32>::new());
        assert_eq!(bits(0b1010), vec![1, 3]);
        assert_eq!(bits(1 << 63), vec![63]);
    }
}
