//! A textbook AES-128 (FIPS-197) in plain byte arithmetic, no CPU AES
//! instructions and no crate: what a machine without AES-NI computes. Tests
//! check a stream the agent wrote with AES-NI against it, so "a
//! certificate written with AES-NI verifies where AES instructions are
//! missing" is tested on any machine. Slow (tests only).

/// Multiply in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
fn gmul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let hi = a & 0x80;
        a <<= 1;
        if hi != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    p
}

/// The S-box from its definition: multiplicative inverse, then the affine
/// map (FIPS-197 5.1.1).
fn sbox() -> [u8; 256] {
    let mut s = [0u8; 256];
    for (x, out) in s.iter_mut().enumerate() {
        let x = x as u8;
        let inv = if x == 0 {
            0
        } else {
            (1..=255u8).find(|&y| gmul(x, y) == 1).unwrap_or(0)
        };
        let mut b = inv;
        for i in 1..5 {
            b ^= inv.rotate_left(i);
        }
        *out = b ^ 0x63;
    }
    s
}

/// AES-128 encryption with an expanded key.
pub struct Aes128 {
    rk: [[u8; 16]; 11],
    s: [u8; 256],
}

impl Aes128 {
    pub fn new(key: &[u8; 16]) -> Aes128 {
        let s = sbox();
        let mut w = [[0u8; 4]; 44];
        for (i, c) in key.chunks(4).enumerate() {
            w[i].copy_from_slice(c);
        }
        let mut rcon = 1u8;
        for i in 4..44 {
            let mut t = w[i - 1];
            if i % 4 == 0 {
                t = [
                    s[t[1] as usize] ^ rcon,
                    s[t[2] as usize],
                    s[t[3] as usize],
                    s[t[0] as usize],
                ];
                rcon = gmul(rcon, 2);
            }
            for j in 0..4 {
                w[i][j] = w[i - 4][j] ^ t[j];
            }
        }
        let mut rk = [[0u8; 16]; 11];
        for (r, k) in rk.iter_mut().enumerate() {
            for c in 0..4 {
                k[4 * c..4 * c + 4].copy_from_slice(&w[4 * r + c]);
            }
        }
        Aes128 { rk, s }
    }

    /// Encrypt one block (state column-major, as FIPS-197 lays it out).
    pub fn encrypt(&self, block: &[u8; 16]) -> [u8; 16] {
        let mut st = *block;
        xor(&mut st, &self.rk[0]);
        for round in 1..=10 {
            for b in st.iter_mut() {
                *b = self.s[*b as usize];
            }
            // ShiftRows: row r of column c moves to column c - r.
            let old = st;
            for c in 0..4 {
                for r in 0..4 {
                    st[4 * c + r] = old[4 * ((c + r) % 4) + r];
                }
            }
            if round != 10 {
                for c in 0..4 {
                    let a = [st[4 * c], st[4 * c + 1], st[4 * c + 2], st[4 * c + 3]];
                    for r in 0..4 {
                        st[4 * c + r] = gmul(a[r], 2)
                            ^ gmul(a[(r + 1) % 4], 3)
                            ^ a[(r + 2) % 4]
                            ^ a[(r + 3) % 4];
                    }
                }
            }
            xor(&mut st, &self.rk[round]);
        }
        st
    }

    /// CTR keystream bytes `offset..offset + len` for the 128-bit
    /// big-endian counter block `iv + offset / 16`.
    pub fn ctr(&self, iv: u128, offset: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 32);
        let mut block = iv.wrapping_add(u128::from(offset / 16));
        let skip = (offset % 16) as usize;
        while out.len() < len + skip {
            out.extend_from_slice(&self.encrypt(&block.to_be_bytes()));
            block = block.wrapping_add(1);
        }
        out.drain(..skip);
        out.truncate(len);
        out
    }
}

fn xor(a: &mut [u8; 16], b: &[u8; 16]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn fips197_appendix_c1() {
        let key: [u8; 16] = h("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let pt: [u8; 16] = h("00112233445566778899aabbccddeeff").try_into().unwrap();
        let ct = Aes128::new(&key).encrypt(&pt);
        assert_eq!(ct.to_vec(), h("69c4e0d86a7b0430d8cdb78070b4c55a"));
    }

    #[test]
    fn sp800_38a_f51_ctr() {
        let key: [u8; 16] = h("2b7e151628aed2a6abf7158809cf4f3c").try_into().unwrap();
        let iv = u128::from_be_bytes(h("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").try_into().unwrap());
        let pt = h("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let ct = h("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff");
        let a = Aes128::new(&key);
        let ks = a.ctr(iv, 0, 32);
        let got: Vec<u8> = pt.iter().zip(&ks).map(|(p, k)| p ^ k).collect();
        assert_eq!(got, ct);
        // An unaligned window is the same bytes.
        assert_eq!(a.ctr(iv, 7, 20), ks[7..27].to_vec());
    }
}
