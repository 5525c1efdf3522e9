//! Shared by speediso-repo's integration tests: the bytes of a build's files.

use sha2::{Digest, Sha256};

/// `size` deterministic, build-specific bytes for file `name` of build
/// `build` (splitmix64 seeded by build and name): fast even in debug
/// builds, never shared between builds.
pub fn content(build: u64, name: &str, size: usize) -> Vec<u8> {
    let seed = Sha256::digest(format!("{build}/{name}").as_bytes());
    let mut x = u64::from_le_bytes(seed[..8].try_into().unwrap());
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(size);
    out
}
