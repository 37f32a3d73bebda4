//! Key layouts. Every id is big-endian so byte order is numeric order.

pub fn k1(a: u64) -> [u8; 8] {
    a.to_be_bytes()
}

pub fn k2(a: u64, b: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
    k
}

pub fn k3(a: u64, b: u64, c: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..16].copy_from_slice(&b.to_be_bytes());
    k[16..].copy_from_slice(&c.to_be_bytes());
    k
}

pub fn prefixed_str(a: u64, s: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + s.len());
    k.extend_from_slice(&a.to_be_bytes());
    k.extend_from_slice(s.as_bytes());
    k
}

pub fn tail_u64(key: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[at..at + 8]);
    u64::from_be_bytes(b)
}
