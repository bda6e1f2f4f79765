//! The contributions of one batch in compact form: each `(table, window, group key)` is stored
//! once, as a [`Group`], and each event's input to a group is an [`Entry`] of fixed size naming
//! the group, with the measure inputs in one flat buffer shared by all entries.
//!
//! A batch of 20,000 sales feeding four aggregates makes 80,000 contributions but only a few
//! hundred groups. Kept as one `Vec` per key and per value list, each contribution cost two
//! allocations and the store hashed every key again to fold them; here the processor hashes a
//! key once, allocates only for a new group, and the store's fold indexes groups directly.

use std::hash::BuildHasher;

use uuid::Uuid;

use super::fast_hash::{FastBuild, FastMap};
use super::{Contribution, Value};

/// No next group in a hash chain.
const END: u32 = u32::MAX;

/// A window of an aggregate table and a group key: one row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Index of the table in the list given to `Store::prepare_aggregates`.
    pub table: u16,
    /// Window start, epoch milliseconds.
    pub window_start: i64,
    /// Window end (exclusive), epoch milliseconds.
    pub window_end: i64,
    /// Group-by values, in the table's key column order.
    pub key: Vec<Value>,
    /// The next group with the same hash.
    next: u32,
}

/// One event's input to one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The event, so the store can drop contributions of events that landed before.
    pub event_id: Uuid,
    /// Index into [`Contributions::groups`].
    pub group: u32,
    /// Where its measure inputs start in the flat value buffer.
    start: u32,
    /// How many measure inputs it has.
    len: u32,
}

/// The contributions of a batch (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contributions {
    groups: Vec<Group>,
    /// Hash of `(table, window_start, key)` -> first group with that hash.
    index: FastMap<u64, u32>,
    entries: Vec<Entry>,
    values: Vec<Value>,
}

impl Contributions {
    /// Adds event `event_id`'s input to window `[window_start, window_end)` of `table` under
    /// `key`: one input per measure in `values`.
    pub fn add(
        &mut self,
        event_id: Uuid,
        table: u16,
        (window_start, window_end): (i64, i64),
        key: &[Value],
        values: &[Value],
    ) {
        let group = self.group(table, window_start, window_end, key);
        let start = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.values.extend_from_slice(values);
        self.entries.push(Entry {
            event_id,
            group,
            start,
            len: u32::try_from(values.len()).unwrap_or(u32::MAX),
        });
    }

    /// Makes room for `entries` more entries with `values` measure inputs in all, so a batch
    /// sized like the last one grows no buffer.
    pub fn reserve(&mut self, entries: usize, values: usize) {
        self.entries.reserve(entries);
        self.values.reserve(values);
    }

    /// Number of measure inputs held (for [`Self::reserve`] hints).
    pub fn value_count(&self) -> usize {
        self.values.len()
    }

    /// Adds one standalone contribution.
    pub fn push(&mut self, c: &Contribution) {
        self.add(
            c.event_id,
            c.table,
            (c.window_start, c.window_end),
            &c.key,
            &c.values,
        );
    }

    /// The index of the group, added if new.
    fn group(&mut self, table: u16, window_start: i64, window_end: i64, key: &[Value]) -> u32 {
        let hash = FastBuild::default().hash_one((table, window_start, key));
        self.group_hashed(hash, table, window_start, window_end, key)
    }

    /// [`Self::group`] with the hash given (tests force collisions through it).
    fn group_hashed(
        &mut self,
        hash: u64,
        table: u16,
        window_start: i64,
        window_end: i64,
        key: &[Value],
    ) -> u32 {
        let fresh = u32::try_from(self.groups.len()).unwrap_or(END);
        let head = match self.index.get(&hash) {
            Some(&head) => head,
            None => {
                self.index.insert(hash, fresh);
                END
            }
        };
        let mut at = head;
        while at != END {
            let g = &self.groups[at as usize];
            if g.table == table && g.window_start == window_start && g.key == key {
                return at;
            }
            at = g.next;
        }
        if head != END {
            self.index.insert(hash, fresh);
        }
        self.groups.push(Group {
            table,
            window_start,
            window_end,
            key: key.to_vec(),
            next: head,
        });
        fresh
    }

    /// Every group, indexed by [`Entry::group`].
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Every entry, in the order they were added.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The measure inputs of `entry`.
    pub fn values(&self, entry: &Entry) -> &[Value] {
        let start = entry.start as usize;
        self.values
            .get(start..start + entry.len as usize)
            .unwrap_or_default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The contributions of the events `keep` accepts only (setting aside records the store
    /// refused, ADR 0008). Groups stay; a group left without entries writes no row.
    #[must_use]
    pub fn retain_events(&self, keep: impl Fn(&Uuid) -> bool) -> Self {
        let mut out = self.clone();
        out.entries.retain(|e| keep(&e.event_id));
        out
    }

    /// Every contribution as a standalone value, in the order added (for tests and diagnostics).
    pub fn to_vec(&self) -> Vec<Contribution> {
        self.entries
            .iter()
            .map(|e| {
                let g = &self.groups[e.group as usize];
                Contribution {
                    event_id: e.event_id,
                    table: g.table,
                    window_start: g.window_start,
                    window_end: g.window_end,
                    key: g.key.clone(),
                    values: self.values(e).to_vec(),
                }
            })
            .collect()
    }
}

impl From<Vec<Contribution>> for Contributions {
    fn from(cs: Vec<Contribution>) -> Self {
        cs.into_iter().collect()
    }
}

impl FromIterator<Contribution> for Contributions {
    fn from_iter<I: IntoIterator<Item = Contribution>>(iter: I) -> Self {
        let mut out = Self::default();
        for c in iter {
            out.push(&c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u128, table: u16, start: i64, key: &[i64], v: i64) -> Contribution {
        Contribution {
            event_id: Uuid::from_u128(id),
            table,
            window_start: start,
            window_end: start + 60_000,
            key: key.iter().map(|k| Value::Int(*k)).collect(),
            values: vec![Value::Int(v), Value::Null],
        }
    }

    #[test]
    fn stores_each_group_once_and_gives_back_every_contribution() {
        let cs = vec![
            c(1, 0, 0, &[7], 1),
            c(2, 0, 0, &[7], 2),
            c(2, 1, 0, &[7], 2),
            c(3, 0, 60_000, &[7], 3),
            c(4, 0, 0, &[8, 1], 4),
            c(5, 0, 0, &[7], 5),
        ];
        let compact = Contributions::from(cs.clone());
        assert_eq!(compact.len(), 6);
        assert_eq!(compact.groups().len(), 4, "{:?}", compact.groups());
        let groups: Vec<u32> = compact.entries().iter().map(|e| e.group).collect();
        assert_eq!(groups, [0, 0, 1, 2, 3, 0]);
        assert_eq!(compact.to_vec(), cs);
    }

    #[test]
    fn keeps_groups_apart_when_their_hashes_collide() {
        let mut compact = Contributions::default();
        let key = |k: i64| [Value::Int(k)];
        assert_eq!(compact.group_hashed(42, 0, 0, 60_000, &key(1)), 0);
        assert_eq!(compact.group_hashed(42, 0, 0, 60_000, &key(2)), 1);
        assert_eq!(compact.group_hashed(42, 1, 0, 60_000, &key(1)), 2);
        assert_eq!(compact.group_hashed(42, 0, 0, 60_000, &key(1)), 0);
        assert_eq!(compact.group_hashed(42, 0, 0, 60_000, &key(2)), 1);
        assert_eq!(compact.group_hashed(42, 1, 0, 60_000, &key(1)), 2);
        assert_eq!(
            compact.group_hashed(7, 0, 0, 60_000, &key(2)),
            3,
            "another hash is another chain"
        );
        assert_eq!(compact.groups().len(), 4);
    }
}
