//! The Confluent wire format: how a registry-aware producer frames each Avro message so a
//! consumer knows which schema wrote it.
//!
//! A frame is the magic byte `0`, the writer schema's global id as 4 bytes big-endian, then the
//! Avro binary body (no Avro container header: the id replaces it). The landing splits frames
//! on its hot path, so [`split`] borrows and never allocates.

/// The first byte of every frame; anything else was not written by a registry serializer.
pub const MAGIC: u8 = 0;

/// Magic byte plus schema id: the bytes before the Avro body.
pub const HEADER_LEN: usize = 5;

/// Why bytes are not a Confluent frame. A data error: the message goes to the dead-letter path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message of {len} bytes is too short for the Confluent wire format, which needs a magic byte and a 4-byte schema id (5 bytes) before the Avro body")]
    TooShort { len: usize },
    #[error("message starts with byte {found:#04x}, not the Confluent magic byte 0x00: it was not framed by a schema registry serializer")]
    WrongMagic { found: u8 },
}

/// The schema id and the Avro body of a frame. An empty body is valid: a record with no
/// fields encodes to no bytes.
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8]), WireError> {
    let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(WireError::TooShort { len: bytes.len() });
    };
    let [magic, id @ ..] = *header;
    if magic != MAGIC {
        return Err(WireError::WrongMagic { found: magic });
    }
    Ok((u32::from_be_bytes(id), body))
}

/// Frames an Avro body written with schema `id`.
pub fn frame(id: u32, avro_body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + avro_body.len());
    bytes.push(MAGIC);
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(avro_body);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_splits_back_into_its_id_and_body() {
        let framed = frame(0x0102_0304, b"\x02hi");
        assert_eq!(framed, b"\x00\x01\x02\x03\x04\x02hi");
        assert_eq!(split(&framed), Ok((0x0102_0304, &b"\x02hi"[..])));
    }

    #[test]
    fn an_empty_body_is_a_frame() {
        assert_eq!(split(&frame(7, b"")), Ok((7, &b""[..])));
    }

    #[test]
    fn short_input_is_too_short_and_says_how_long_it_was() {
        for len in 0..HEADER_LEN {
            let error = split(&[0; 4][..len.min(4)]).expect_err("too short");
            assert_eq!(error, WireError::TooShort { len: len.min(4) });
        }
        let message = WireError::TooShort { len: 3 }.to_string();
        assert!(
            message.starts_with("message of 3 bytes is too short"),
            "{message}"
        );
    }

    #[test]
    fn a_wrong_magic_byte_is_named() {
        let error = split(b"{\"json\":1}").expect_err("not a frame");
        assert_eq!(error, WireError::WrongMagic { found: b'{' });
        assert!(error.to_string().contains("byte 0x7b"), "{error}");
    }
}
