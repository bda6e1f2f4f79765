//! The bytes of one record on disk, kept apart from file handling so the encoder and the checks
//! that recovery and reads rely on can be tested on plain buffers.
//!
//! Every integer is little-endian. A record is
//!
//! ```text
//! [u32 len][u32 crc][i64 offset][i64 timestamp_ms][i32 key_len or -1][key]
//! [u32 value_len][value][u16 header_count]{[u16 key_len][key][u32 value_len][value]}
//! ```
//!
//! `len` counts the bytes after itself (crc and body), so a reader knows how far to jump before
//! it trusts anything else; `crc` is CRC-32C of the body (everything after the crc field), so the
//! offset and timestamp are covered too and a record copied to the wrong place is caught.
//! A record passes only if the checksum matches *and* the body's own lengths add up exactly to
//! `len`: a checksum collision on garbage still has to be well-formed.

use crate::record::{ConsumedRecord, Header, ProducerRecord};

/// Bytes before the body: the length and the checksum.
pub(crate) const PREFIX: usize = 8;
/// Smallest body: offset, timestamp, key length, value length, header count.
const MIN_BODY: usize = 8 + 8 + 4 + 4 + 2;
/// Smallest value of the length field.
pub(crate) const MIN_LEN: u32 = (4 + MIN_BODY) as u32;
/// Largest value of the length field we accept; anything bigger is garbage, not a record.
pub(crate) const MAX_LEN: u32 = i32::MAX as u32;

/// Largest payload a record can carry in this format, whatever the configuration says.
pub(crate) const MAX_PAYLOAD: usize = (MAX_LEN as usize) - 4 - MIN_BODY - 1024;

/// Size of the payload as the `max_record_bytes` limit counts it (key + value + headers): `Ok`,
/// or `Err` when the format cannot represent the record at all (more than 65535 headers, a header
/// name over 64 KiB, or a payload over [`MAX_PAYLOAD`]).
pub(crate) fn payload_size(rec: &ProducerRecord) -> Result<usize, usize> {
    let headers: usize = rec.headers.iter().map(|h| h.key.len() + h.value.len()).sum();
    let size = rec.key.as_ref().map_or(0, Vec::len) + rec.value.len() + headers;
    let representable = size <= MAX_PAYLOAD
        && rec.headers.len() <= usize::from(u16::MAX)
        && rec.headers.iter().all(|h| h.key.len() <= usize::from(u16::MAX));
    if representable {
        Ok(size)
    } else {
        Err(size)
    }
}

/// Bytes the record takes on disk.
pub(crate) fn encoded_len(rec: &ProducerRecord) -> usize {
    let headers: usize = rec
        .headers
        .iter()
        .map(|h| 2 + h.key.len() + 4 + h.value.len())
        .sum();
    PREFIX + MIN_BODY + rec.key.as_ref().map_or(0, Vec::len) + rec.value.len() + headers
}

/// Appends the encoded record to `buf`. The caller has checked [`payload_size`].
pub(crate) fn encode(buf: &mut Vec<u8>, offset: i64, timestamp_ms: i64, rec: &ProducerRecord) {
    let start = buf.len();
    buf.reserve(encoded_len(rec));
    buf.extend_from_slice(&[0; PREFIX]);
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&timestamp_ms.to_le_bytes());
    match &rec.key {
        Some(key) => {
            buf.extend_from_slice(&(key.len() as i32).to_le_bytes());
            buf.extend_from_slice(key);
        }
        None => buf.extend_from_slice(&(-1i32).to_le_bytes()),
    }
    buf.extend_from_slice(&(rec.value.len() as u32).to_le_bytes());
    buf.extend_from_slice(&rec.value);
    buf.extend_from_slice(&(rec.headers.len() as u16).to_le_bytes());
    for h in &rec.headers {
        buf.extend_from_slice(&(h.key.len() as u16).to_le_bytes());
        buf.extend_from_slice(h.key.as_bytes());
        buf.extend_from_slice(&(h.value.len() as u32).to_le_bytes());
        buf.extend_from_slice(&h.value);
    }
    let len = (buf.len() - start - 4) as u32;
    let crc = crc32c::crc32c(&buf[start + PREFIX..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The length field at the start of `bytes` as a total record size, or why it cannot be one.
/// `bytes` must hold at least 4 bytes.
pub(crate) fn total_size(bytes: &[u8]) -> Result<usize, String> {
    let len = u32_at(bytes, 0).ok_or_else(|| "length field cut short".to_owned())?;
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        return Err(format!("impossible record length {len}"));
    }
    Ok(4 + len as usize)
}

/// What [`check`] found in a record that is whole and passed its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    /// Offset stored in the record.
    pub offset: i64,
    /// Timestamp stored in the record.
    pub timestamp_ms: i64,
}

/// Verifies one whole record (`bytes` is exactly [`total_size`] long): checksum, then layout.
pub(crate) fn check(bytes: &[u8]) -> Result<Checked, String> {
    let stored = u32_at(bytes, 4).ok_or_else(|| "record shorter than its prefix".to_owned())?;
    let body = &bytes[PREFIX..];
    let actual = crc32c::crc32c(body);
    if stored != actual {
        return Err(format!(
            "checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
        ));
    }
    let layout = Layout::parse(body)?;
    Ok(Checked {
        offset: layout.offset,
        timestamp_ms: layout.timestamp_ms,
    })
}

/// Decodes a record that passed [`check`].
pub(crate) fn decode(bytes: &[u8], topic: &str, partition: i32) -> Result<ConsumedRecord, String> {
    let body = bytes
        .get(PREFIX..)
        .ok_or_else(|| "record shorter than its prefix".to_owned())?;
    let layout = Layout::parse(body)?;
    let mut headers = Vec::with_capacity(layout.header_count);
    let mut at = layout.headers_at;
    for _ in 0..layout.header_count {
        // Layout::parse walked these bounds already; the `?`s only guard against a bug.
        let klen = usize::from(u16_at(body, at).ok_or("header cut short")?);
        let key = body.get(at + 2..at + 2 + klen).ok_or("header key cut short")?;
        let key = std::str::from_utf8(key).map_err(|_| "header name is not UTF-8".to_owned())?;
        at += 2 + klen;
        let vlen = u32_at(body, at).ok_or("header cut short")? as usize;
        let value = body.get(at + 4..at + 4 + vlen).ok_or("header value cut short")?;
        at += 4 + vlen;
        headers.push(Header {
            key: key.to_owned(),
            value: value.to_vec(),
        });
    }
    Ok(ConsumedRecord {
        topic: topic.to_owned(),
        partition,
        offset: layout.offset,
        timestamp_ms: layout.timestamp_ms,
        key: layout.key.map(|r| body[r].to_vec()),
        value: body[layout.value].to_vec(),
        headers,
    })
}

/// Where the parts of a body are; building it proves every length fits exactly.
struct Layout {
    offset: i64,
    timestamp_ms: i64,
    key: Option<std::ops::Range<usize>>,
    value: std::ops::Range<usize>,
    header_count: usize,
    headers_at: usize,
}

impl Layout {
    fn parse(body: &[u8]) -> Result<Self, String> {
        let short = |what: &str| format!("record body cut short in {what}");
        let offset = i64_at(body, 0).ok_or_else(|| short("offset"))?;
        let timestamp_ms = i64_at(body, 8).ok_or_else(|| short("timestamp"))?;
        let key_len = i32_at(body, 16).ok_or_else(|| short("key length"))?;
        let mut at = 20;
        let key = match key_len {
            -1 => None,
            n if n >= 0 => {
                let r = at..at + n as usize;
                if r.end > body.len() {
                    return Err(short("key"));
                }
                at = r.end;
                Some(r)
            }
            n => return Err(format!("negative key length {n}")),
        };
        let value_len = u32_at(body, at).ok_or_else(|| short("value length"))? as usize;
        let value = at + 4..at + 4 + value_len;
        if value.end > body.len() {
            return Err(short("value"));
        }
        at = value.end;
        let header_count = usize::from(u16_at(body, at).ok_or_else(|| short("header count"))?);
        at += 2;
        let headers_at = at;
        for _ in 0..header_count {
            let klen = usize::from(u16_at(body, at).ok_or_else(|| short("header name length"))?);
            at += 2 + klen;
            let vlen = u32_at(body, at).ok_or_else(|| short("header value length"))? as usize;
            at += 4 + vlen;
            if at > body.len() {
                return Err(short("header"));
            }
        }
        if at != body.len() {
            return Err(format!("{} stray bytes after the last header", body.len() - at));
        }
        Ok(Self {
            offset,
            timestamp_ms,
            key,
            value,
            header_count,
            headers_at,
        })
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ProducerRecord {
        ProducerRecord {
            topic: "t".into(),
            partition: None,
            key: Some(b"store-1".to_vec()),
            value: b"{\"amount\":12}".to_vec(),
            headers: vec![
                Header {
                    key: "event_type".into(),
                    value: b"sale".to_vec(),
                },
                Header {
                    key: "empty".into(),
                    value: vec![],
                },
            ],
            timestamp_ms: Some(5),
        }
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let rec = sample();
        let mut buf = Vec::new();
        encode(&mut buf, 42, 1_700_000_000_000, &rec);
        assert_eq!(buf.len(), encoded_len(&rec));
        assert_eq!(total_size(&buf), Ok(buf.len()));
        assert_eq!(
            check(&buf),
            Ok(Checked {
                offset: 42,
                timestamp_ms: 1_700_000_000_000
            })
        );
        let back = decode(&buf, "t", 3).expect("decodes");
        assert_eq!(back.offset, 42);
        assert_eq!(back.partition, 3);
        assert_eq!(back.key, rec.key);
        assert_eq!(back.value, rec.value);
        assert_eq!(back.headers, rec.headers);
    }

    #[test]
    fn null_key_differs_from_empty_key() {
        let mut rec = sample();
        rec.key = None;
        let mut buf = Vec::new();
        encode(&mut buf, 0, 0, &rec);
        assert_eq!(decode(&buf, "t", 0).expect("decodes").key, None);
        rec.key = Some(vec![]);
        buf.clear();
        encode(&mut buf, 0, 0, &rec);
        assert_eq!(decode(&buf, "t", 0).expect("decodes").key, Some(vec![]));
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, 9, &sample());
        for i in PREFIX..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                assert!(check(&bad).is_err(), "flip of bit {bit} in byte {i} passed");
            }
        }
    }

    #[test]
    fn impossible_lengths_are_rejected() {
        assert!(total_size(&[0, 0, 0, 0]).is_err());
        assert!(total_size(&[5, 0, 0, 0]).is_err());
        assert!(total_size(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(total_size(&[1, 2]).is_err());
    }

    #[test]
    fn well_checksummed_garbage_is_still_rejected() {
        // A body whose checksum is right but whose lengths do not add up.
        let mut body = vec![0u8; MIN_BODY + 3];
        body[16..20].copy_from_slice(&(-1i32).to_le_bytes());
        let mut rec = ((4 + body.len()) as u32).to_le_bytes().to_vec();
        rec.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        rec.extend_from_slice(&body);
        assert!(check(&rec).expect_err("must fail").contains("stray bytes"));
    }

    mod properties {
        //! Random and mutated input to the record reader (issue 18): never a panic, every
        //! rejection a message; a record that passes is the one that was written.
        use proptest::prelude::*;

        use super::*;

        fn record() -> impl Strategy<Value = (i64, i64, ProducerRecord)> {
            let bytes = |n| proptest::collection::vec(any::<u8>(), 0..n);
            (
                any::<i64>(),
                any::<i64>(),
                proptest::option::of(bytes(40)),
                bytes(200),
                proptest::collection::vec(("[a-z_]{0,12}", bytes(20)), 0..4),
            )
                .prop_map(|(offset, ts, key, value, headers)| {
                    let rec = ProducerRecord {
                        topic: "t".into(),
                        partition: None,
                        key,
                        value,
                        headers: headers
                            .into_iter()
                            .map(|(key, value)| Header { key, value })
                            .collect(),
                        timestamp_ms: Some(ts),
                    };
                    (offset, ts, rec)
                })
        }

        fn read(bytes: &[u8]) -> Result<ConsumedRecord, String> {
            let total = total_size(bytes)?;
            let rec = bytes.get(..total).ok_or_else(|| "cut short".to_owned())?;
            check(rec)?;
            decode(rec, "t", 0)
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

            #[test]
            fn random_bytes_are_refused_with_a_message(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                if let Err(e) = read(&bytes) {
                    prop_assert!(!e.is_empty());
                }
            }

            #[test]
            fn a_mutated_record_is_refused_or_is_the_record(
                (offset, ts, rec) in record(),
                flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
                cut in proptest::option::of(any::<usize>()),
            ) {
                let mut buf = Vec::new();
                encode(&mut buf, offset, ts, &rec);
                let clean = read(&buf).expect("a written record reads back");
                prop_assert_eq!(&clean.value, &rec.value);
                prop_assert_eq!(clean.offset, offset);
                let mut bad = buf.clone();
                for (at, x) in &flips {
                    let n = bad.len();
                    bad[at % n] ^= x;
                }
                if let Some(c) = cut {
                    let n = bad.len();
                    bad.truncate(c % n);
                }
                prop_assume!(bad != buf); // two flips of one byte may cancel out
                match read(&bad) {
                    Err(e) => prop_assert!(!e.is_empty()),
                    // Passing CRC-32C and the layout checks by chance: about 2^-32 a case.
                    Ok(got) => prop_assert!(false, "damaged record accepted: {:?}", got),
                }
            }
        }
    }
}
