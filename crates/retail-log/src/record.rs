//! Records as producers write them and consumers read them, and key-based partitioning.

/// A record header (Kafka headers: ordered, keys may repeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name, e.g. `event_type`.
    pub key: String,
    /// Header value bytes.
    pub value: Vec<u8>,
}

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Target topic.
    pub topic: String,
    /// Explicit partition; `None` chooses by key.
    pub partition: Option<i32>,
    /// Partitioning key (store id, order id, ...).
    pub key: Option<Vec<u8>>,
    /// Payload: one JSON event.
    pub value: Vec<u8>,
    /// Headers: event type, schema version, source.
    pub headers: Vec<Header>,
    /// Record timestamp in epoch ms; `None` means the append time.
    pub timestamp_ms: Option<i64>,
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Timestamp stored with the record.
    pub timestamp_ms: i64,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp stored with the record.
    pub timestamp_ms: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Vec<u8>,
    /// Headers.
    pub headers: Vec<Header>,
}

/// The partition of `key` among `partitions`, computed as the Java Kafka client does
/// (murmur2 of the key bytes, sign bit masked, modulo the count), so other Kafka applications
/// agree on which partition a store or an order lives in.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    let hash = murmur2(key) & 0x7fff_ffff;
    (hash % partitions.max(1) as u32) as i32
}

/// Kafka's murmur2 (seed 0x9747b28c), as in `org.apache.kafka.common.utils.Utils.murmur2`.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from the Java client's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: [(&str, i32); 5] = [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key.as_bytes()) as i32, expected, "key {key}");
        }
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        for n in 1..10 {
            let p = partition_for_key(b"store-42", n);
            assert!((0..n).contains(&p));
            assert_eq!(p, partition_for_key(b"store-42", n));
        }
    }
}
