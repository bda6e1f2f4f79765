//! A fast, deterministic hasher for the per-event maps of stream processing (group keys,
//! catalog ids, partitions, event ids).
//!
//! The standard library's SipHash resists flooding by chosen keys, at a price that profiling
//! showed to be the largest single cost of computing aggregates: several lookups per event
//! and aggregate. These maps hold short keys from our own catalog and log, and a finishing
//! mix spreads every input bit over the hash, so ids that share low bits (multiples of 1024)
//! do not pile into one bucket. Flooding would need a crafted catalog and would only slow a
//! batch, never corrupt it (equal keys are always compared in full).

use std::hash::{BuildHasherDefault, Hasher};

/// Map and set builders using [`FastHasher`].
pub type FastBuild = BuildHasherDefault<FastHasher>;
/// A `HashMap` using [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastBuild>;
/// A `HashSet` using [`FastHasher`].
pub type FastSet<K> = std::collections::HashSet<K, FastBuild>;

const K: u64 = 0xf135_7aea_2e62_a9c5;

/// Multiply-rotate over 8-byte words (as rustc's FxHash), finished with murmur3's `fmix64`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    #[inline]
    const fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(K).rotate_left(26);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, Hash};

    use super::*;

    fn hash<T: Hash>(v: T) -> u64 {
        FastBuild::default().hash_one(v)
    }

    #[test]
    fn equal_inputs_hash_equal_and_small_differences_spread() {
        assert_eq!(hash("Berlin"), hash("Berlin"));
        assert_ne!(hash("Berlin"), hash("Berlim"));
        assert_ne!(hash(("a", "bc")), hash(("ab", "c")));
        // Ids sharing their low bits still differ in the low bits a table indexes by.
        let low: FastSet<u64> = (1..=256_i64).map(|i| hash(i * 1024) & 0xff).collect();
        assert!(low.len() > 128, "{} distinct low bytes of 256", low.len());
    }
}
