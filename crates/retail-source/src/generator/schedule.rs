//! The due-time queue of the simulated world: the next step of each order flow and the next
//! snapshot or delivery of each stock series wait here, ordered by the event time they are due
//! at, until the generator's simulated clock reaches them. Ties leave in the order they came in,
//! so the stream of a seed never depends on how the heap breaks them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What is due: the identity of a flow or series, never its data (that stays with its owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Due {
    /// The next step of the order flow in this slot of [`super::commerce::Commerce`].
    Flow(u32),
    /// The next ERP count of this stock series.
    Snapshot(u32),
    /// A reorder of this stock series arrives.
    Receipt(u32),
}

/// A min-queue of [`Due`] items by due time (epoch milliseconds), first in first out on ties.
#[derive(Debug, Clone, Default)]
pub(crate) struct Schedule {
    heap: BinaryHeap<Reverse<(i64, u64, Due)>>,
    seq: u64,
}

impl Schedule {
    /// Queues `item` to come due at `due_ms`.
    pub(crate) fn push(&mut self, due_ms: i64, item: Due) {
        self.heap.push(Reverse((due_ms, self.seq, item)));
        self.seq += 1;
    }

    /// The earliest item due at or before `now_ms`, taken off the queue.
    pub(crate) fn pop_due(&mut self, now_ms: i64) -> Option<(i64, Due)> {
        match self.heap.peek() {
            Some(Reverse((due, _, _))) if *due <= now_ms => {
                self.heap.pop().map(|Reverse((due, _, item))| (due, item))
            }
            _ => None,
        }
    }

    /// Items waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_leave_by_due_time_then_arrival() {
        let mut s = Schedule::default();
        s.push(30, Due::Flow(1));
        s.push(10, Due::Snapshot(2));
        s.push(10, Due::Flow(0));
        s.push(20, Due::Receipt(3));
        assert_eq!(s.pop_due(5), None, "nothing due yet");
        assert_eq!(s.pop_due(25), Some((10, Due::Snapshot(2))));
        assert_eq!(s.pop_due(25), Some((10, Due::Flow(0))), "ties in arrival order");
        assert_eq!(s.pop_due(25), Some((20, Due::Receipt(3))));
        assert_eq!(s.pop_due(25), None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.pop_due(i64::MAX), Some((30, Due::Flow(1))));
    }
}
