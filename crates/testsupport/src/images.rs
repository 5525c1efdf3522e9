//! Disk images built byte by byte, for the tests that check the agent's
//! superblock probe and compare it with blkid on the same bytes.

/// A 1 MiB ISO 9660 image with an upper-case primary label (`SPEEDISO`), a
/// Joliet descriptor whose label says more (`Speediso Live`), a creation
/// time of 2024-01-02 03:04:05.00 and an unset modification time. Returns
/// the image and the offset of the Joliet descriptor (overwrite its first
/// byte with 0xff to leave only the primary one).
pub fn joliet_iso() -> (Vec<u8>, usize) {
    let mut v = vec![0u8; 1 << 20];
    let pvd = 32768;
    v[pvd..pvd + 6].copy_from_slice(b"\x01CD001");
    v[pvd + 40..pvd + 72].copy_from_slice(&[b' '; 32]);
    v[pvd + 40..pvd + 48].copy_from_slice(b"SPEEDISO");
    v[pvd + 830..pvd + 846].copy_from_slice(b"0000000000000000");
    v[pvd + 813..pvd + 829].copy_from_slice(b"2024010203040500");
    let svd = pvd + 2048;
    v[svd..svd + 6].copy_from_slice(b"\x02CD001");
    v[svd + 88..svd + 91].copy_from_slice(b"%/E");
    for (i, c) in "Speediso Live".encode_utf16().enumerate() {
        v[svd + 40 + 2 * i..svd + 42 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
    // The set terminator.
    v[svd + 2048] = 0xff;
    (v, svd)
}
