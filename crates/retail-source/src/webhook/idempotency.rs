//! Remembered answers to requests that carried an `Idempotency-Key`: a retry with the same
//! key and body gets the same answer without appending again; the same key with another body
//! is refused (the sender has a bug). Memory only, bounded by count and age: the durable part
//! of idempotency is that event ids are derived from the key (see `body::derived_id`), so a
//! retry after a restart, or after the answer was forgotten, appends the same ids and the
//! landing's event ledger lands them once.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An answer as it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Vec<u8>,
}

/// What the cache says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Never seen (or forgotten): process the request.
    New,
    /// Seen with the same body: send this again.
    Replay(Answer),
    /// Seen with another body.
    Conflict,
}

#[derive(Debug)]
struct Entry {
    body_hash: [u8; 32],
    answer: Answer,
    at: Instant,
}

/// The bounded cache.
#[derive(Debug)]
pub struct Answers {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<(HashMap<String, Entry>, VecDeque<String>)>,
}

impl Answers {
    /// A cache keeping at most `capacity` answers for `ttl` each.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// What is known about `key` for a body with `body_hash`.
    pub fn lookup(&self, key: &str, body_hash: &[u8; 32]) -> Lookup {
        let Ok(inner) = self.inner.lock() else {
            return Lookup::New;
        };
        match inner.0.get(key) {
            Some(e) if e.at.elapsed() <= self.ttl => {
                if &e.body_hash == body_hash {
                    Lookup::Replay(e.answer.clone())
                } else {
                    Lookup::Conflict
                }
            }
            _ => Lookup::New,
        }
    }

    /// Remembers the answer sent for `key`, forgetting the oldest beyond the capacity.
    pub fn remember(&self, key: &str, body_hash: [u8; 32], answer: Answer) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let (map, order) = &mut *inner;
        if map
            .insert(
                key.to_owned(),
                Entry {
                    body_hash,
                    answer,
                    at: Instant::now(),
                },
            )
            .is_none()
        {
            order.push_back(key.to_owned());
        }
        while map.len() > self.capacity {
            let Some(oldest) = order.pop_front() else { break };
            map.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_replays_another_body_conflicts_and_the_oldest_is_forgotten() {
        let a = Answers::new(Duration::from_secs(60), 2);
        let answer = Answer {
            status: 202,
            body: b"{}".to_vec(),
        };
        assert_eq!(a.lookup("k1", &[1; 32]), Lookup::New);
        a.remember("k1", [1; 32], answer.clone());
        assert_eq!(a.lookup("k1", &[1; 32]), Lookup::Replay(answer.clone()));
        assert_eq!(a.lookup("k1", &[2; 32]), Lookup::Conflict);
        a.remember("k2", [1; 32], answer.clone());
        a.remember("k3", [1; 32], answer);
        assert_eq!(a.lookup("k1", &[1; 32]), Lookup::New, "beyond capacity");
    }
}
