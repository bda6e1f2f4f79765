//! A bounds-checked decoder of `pgoutput` (protocol version 1) messages, as
//! `pg_logical_slot_peek_binary_changes` returns them, one message per row. Every read checks
//! the remaining length: malformed bytes are an [`Error`] naming the message and the offset,
//! never a panic.

use std::fmt;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// Why bytes are not a `pgoutput` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An unchanged TOASTed value the update did not carry.
    Unchanged,
    /// The value in PostgreSQL's text output form.
    Text(Vec<u8>),
    /// The value in binary form (not requested by this source, but decoded).
    Binary(Vec<u8>),
}

/// One column of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Part of the replica identity.
    pub key: bool,
}

/// A table as the stream describes it before its first change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Relation OID.
    pub id: u32,
    /// Schema.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Replica identity setting (`d`efault, `n`othing, `f`ull, `i`ndex).
    pub replica_identity: u8,
    /// Columns in table order.
    pub columns: Vec<Column>,
}

impl Relation {
    /// `schema.table`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A transaction starts.
    Begin {
        /// LSN of its commit record.
        final_lsn: u64,
        /// Commit time, Unix microseconds.
        commit_us: i64,
        /// Transaction id.
        xid: u32,
    },
    /// A transaction ends.
    Commit {
        /// LSN of the commit record.
        commit_lsn: u64,
        /// LSN just after it: the position to confirm.
        end_lsn: u64,
        /// Commit time, Unix microseconds.
        commit_us: i64,
    },
    /// Replication origin of the transaction.
    Origin,
    /// Describes a relation.
    Relation(Relation),
    /// Describes a type.
    Type,
    /// A row inserted.
    Insert {
        /// Relation OID.
        relation: u32,
        /// The new row.
        new: Vec<Value>,
    },
    /// A row updated.
    Update {
        /// Relation OID.
        relation: u32,
        /// The old row or its key, when the replica identity sends it.
        old: Option<Vec<Value>>,
        /// The new row.
        new: Vec<Value>,
    },
    /// A row deleted.
    Delete {
        /// Relation OID.
        relation: u32,
        /// The old row (replica identity full) or its key columns.
        old: Vec<Value>,
    },
    /// Tables truncated.
    Truncate {
        /// Relation OIDs.
        relations: Vec<u32>,
    },
    /// A logical decoding message (`pg_logical_emit_message`).
    Message,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(Error(format!(
                "{} message truncated: needs {n} bytes at offset {}, has {}",
                self.what,
                self.at,
                self.bytes.len().saturating_sub(self.at)
            )));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    fn i16(&mut self) -> Result<i16, Error> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, Error> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, Error> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn time(&mut self) -> Result<i64, Error> {
        Ok(self.i64()?.saturating_add(PG_EPOCH_OFFSET_US))
    }

    fn cstr(&mut self) -> Result<String, Error> {
        let rest = &self.bytes[self.at.min(self.bytes.len())..];
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(Error(format!(
                "{} message: unterminated string at offset {}",
                self.what, self.at
            )));
        };
        let s = String::from_utf8_lossy(&rest[..nul]).into_owned();
        self.at += nul + 1;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Vec<Value>, Error> {
        let n = self.i16()?;
        let n = usize::try_from(n)
            .map_err(|_| Error(format!("{} message: negative column count {n}", self.what)))?;
        let mut values = Vec::with_capacity(n.min(1600));
        for i in 0..n {
            let kind = self.u8()?;
            values.push(match kind {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' | b'b' => {
                    let len = self.i32()?;
                    let len = usize::try_from(len).map_err(|_| {
                        Error(format!(
                            "{} message: column {i} has negative length {len}",
                            self.what
                        ))
                    })?;
                    let v = self.take(len)?.to_vec();
                    if kind == b't' {
                        Value::Text(v)
                    } else {
                        Value::Binary(v)
                    }
                }
                other => {
                    return Err(Error(format!(
                        "{} message: column {i} has unknown kind byte 0x{other:02x}",
                        self.what
                    )))
                }
            });
        }
        Ok(values)
    }

    fn tag(&mut self, expected: &[u8]) -> Result<u8, Error> {
        let t = self.u8()?;
        if expected.contains(&t) {
            Ok(t)
        } else {
            Err(Error(format!(
                "{} message: expected tuple tag {:?}, got 0x{t:02x}",
                self.what,
                String::from_utf8_lossy(expected)
            )))
        }
    }
}

/// Decodes one message.
pub fn decode(bytes: &[u8]) -> Result<Message, Error> {
    let Some((&tag, body)) = bytes.split_first() else {
        return Err(Error("empty message".to_owned()));
    };
    let what = match tag {
        b'B' => "Begin",
        b'C' => "Commit",
        b'O' => "Origin",
        b'R' => "Relation",
        b'Y' => "Type",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        b'M' => "Message",
        other => return Err(Error(format!("unknown message type 0x{other:02x}"))),
    };
    let mut r = Reader {
        bytes: body,
        at: 0,
        what,
    };
    let m = match tag {
        b'B' => Message::Begin {
            final_lsn: r.u64()?,
            commit_us: r.time()?,
            xid: r.u32()?,
        },
        b'C' => {
            let _flags = r.u8()?;
            Message::Commit {
                commit_lsn: r.u64()?,
                end_lsn: r.u64()?,
                commit_us: r.time()?,
            }
        }
        b'O' => {
            r.u64()?;
            r.cstr()?;
            Message::Origin
        }
        b'R' => {
            let id = r.u32()?;
            let schema = r.cstr()?;
            let name = r.cstr()?;
            let replica_identity = r.u8()?;
            let n = r.i16()?;
            let n = usize::try_from(n)
                .map_err(|_| Error(format!("Relation message: negative column count {n}")))?;
            let mut columns = Vec::with_capacity(n.min(1600));
            for _ in 0..n {
                let flags = r.u8()?;
                let name = r.cstr()?;
                let type_oid = r.u32()?;
                let _typmod = r.i32()?;
                columns.push(Column {
                    name,
                    type_oid,
                    key: flags & 1 == 1,
                });
            }
            Message::Relation(Relation {
                id,
                schema,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => {
            r.u32()?;
            r.cstr()?;
            r.cstr()?;
            Message::Type
        }
        b'I' => {
            let relation = r.u32()?;
            r.tag(b"N")?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let (old, new) = match r.tag(b"KON")? {
                b'N' => (None, r.tuple()?),
                _ => {
                    let old = r.tuple()?;
                    r.tag(b"N")?;
                    (Some(old), r.tuple()?)
                }
            };
            Message::Update { relation, old, new }
        }
        b'D' => {
            let relation = r.u32()?;
            r.tag(b"KO")?;
            Message::Delete {
                relation,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.u32()?;
            let _options = r.u8()?;
            let mut relations = Vec::with_capacity((n as usize).min(1024));
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            Message::Truncate { relations }
        }
        _ => Message::Message,
    };
    Ok(m)
}

/// `X/Y` text of an LSN.
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// An LSN from its `X/Y` text.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(values: &[Option<&str>]) -> Vec<u8> {
        let mut b = vec![b'I'];
        b.extend_from_slice(&16385u32.to_be_bytes());
        b.push(b'N');
        b.extend_from_slice(&(values.len() as i16).to_be_bytes());
        for v in values {
            match v {
                None => b.push(b'n'),
                Some(t) => {
                    b.push(b't');
                    b.extend_from_slice(&(t.len() as i32).to_be_bytes());
                    b.extend_from_slice(t.as_bytes());
                }
            }
        }
        b
    }

    #[test]
    fn well_formed_messages_decode() {
        let m = decode(&insert(&[Some("1"), None, Some("19.99")])).expect("decodes");
        assert_eq!(
            m,
            Message::Insert {
                relation: 16385,
                new: vec![
                    Value::Text(b"1".to_vec()),
                    Value::Null,
                    Value::Text(b"19.99".to_vec())
                ]
            }
        );
        let mut begin = vec![b'B'];
        begin.extend_from_slice(&0x0000_0001_0000_00ffu64.to_be_bytes());
        begin.extend_from_slice(&0i64.to_be_bytes());
        begin.extend_from_slice(&700u32.to_be_bytes());
        assert_eq!(
            decode(&begin).expect("begin"),
            Message::Begin {
                final_lsn: 0x1_0000_00ff,
                commit_us: PG_EPOCH_OFFSET_US,
                xid: 700
            }
        );
        let mut rel = vec![b'R'];
        rel.extend_from_slice(&7u32.to_be_bytes());
        rel.extend_from_slice(b"public\0sales\0f");
        rel.extend_from_slice(&1i16.to_be_bytes());
        rel.push(1);
        rel.extend_from_slice(b"id\0");
        rel.extend_from_slice(&20u32.to_be_bytes());
        rel.extend_from_slice(&(-1i32).to_be_bytes());
        let Message::Relation(r) = decode(&rel).expect("relation") else {
            panic!("not a relation")
        };
        assert_eq!(r.qualified(), "public.sales");
        assert_eq!(r.columns[0].name, "id");
        assert!(r.columns[0].key);
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let good = insert(&[Some("1"), Some("abc"), None]);
        // Every truncation of a valid message is an error, never a panic.
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        // Lengths pointing past the end, negative lengths and counts, bad tags and kinds.
        let mut huge = insert(&[Some("1")]);
        huge[9..13].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode(&huge).expect_err("too long").0.contains("truncated"));
        let mut negative = insert(&[Some("1")]);
        negative[9..13].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode(&negative).expect_err("negative").0.contains("negative"));
        let mut count = insert(&[]);
        count[6..8].copy_from_slice(&(-1i16).to_be_bytes());
        assert!(decode(&count).is_err());
        let mut kind = insert(&[Some("1")]);
        kind[8] = b'x';
        assert!(decode(&kind).expect_err("kind").0.contains("unknown kind"));
        assert!(decode(b"").is_err());
        assert!(decode(b"Z").expect_err("type").0.contains("unknown message type"));
        assert!(decode(b"R\0\0\0\x07public")
            .expect_err("cstr")
            .0
            .contains("unterminated"));
        assert!(decode(b"D\0\0\0\x07X")
            .expect_err("tag")
            .0
            .contains("expected tuple tag"));
        let mut truncate = vec![b'T'];
        truncate.extend_from_slice(&u32::MAX.to_be_bytes());
        truncate.push(0);
        assert!(decode(&truncate).is_err());
        // Pseudo-random bytes behind every tag: errors or messages, never a panic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for tag in b"BCORYIUDTMZ" {
            for len in 0..64 {
                let mut b = vec![*tag];
                for _ in 0..len {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b.push(x as u8);
                }
                let _ = decode(&b);
            }
        }
    }

    #[test]
    fn lsns_round_trip_through_their_text() {
        for lsn in [0u64, 0x16B_3748, 0x1_0000_0000, u64::MAX] {
            assert_eq!(parse_lsn(&lsn_text(lsn)), Some(lsn));
        }
        assert_eq!(parse_lsn("0/16B3748"), Some(0x16B_3748));
        assert_eq!(parse_lsn("nope"), None);
    }
}
