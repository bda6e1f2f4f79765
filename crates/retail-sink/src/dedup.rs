//! In-batch de-duplication shared by both backends: the first occurrence of an `event_id` in a
//! batch wins and later ones are counted as duplicates before any SQL runs, so the ledger only
//! ever sees each id once per transaction (a COPY with a repeated key would fail as a whole).

use std::collections::HashSet;

use uuid::Uuid;

use crate::{LandedEvent, LandedSale, LandingBatch};

/// The rows of a batch whose `event_id` appears there for the first time, in batch order.
/// Sales are looked at before other events: the ledger is shared by every event type.
#[derive(Debug)]
pub(crate) struct FirstSeen<'a> {
    /// Sales to offer to the ledger.
    pub sales: Vec<&'a LandedSale>,
    /// Other events to offer to the ledger.
    pub events: Vec<&'a LandedEvent>,
    /// Sales dropped because their id came earlier in the batch.
    pub sales_duplicates: u64,
    /// Other events dropped because their id came earlier in the batch.
    pub events_duplicates: u64,
}

impl<'a> FirstSeen<'a> {
    /// Splits `batch` into first occurrences and in-batch duplicates.
    pub(crate) fn of(batch: &'a LandingBatch) -> Self {
        let mut seen: HashSet<Uuid> = HashSet::with_capacity(batch.sales.len() + batch.events.len());
        let sales: Vec<&LandedSale> = batch.sales.iter().filter(|s| seen.insert(s.event_id)).collect();
        let events: Vec<&LandedEvent> = batch.events.iter().filter(|e| seen.insert(e.event_id)).collect();
        Self {
            sales_duplicates: (batch.sales.len() - sales.len()) as u64,
            events_duplicates: (batch.events.len() - events.len()) as u64,
            sales,
            events,
        }
    }

    /// Every id to record in the ledger, sales first.
    pub(crate) fn ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.sales
            .iter()
            .map(|s| s.event_id)
            .chain(self.events.iter().map(|e| e.event_id))
    }

    /// Number of ids in [`Self::ids`].
    pub(crate) fn len(&self) -> usize {
        self.sales.len() + self.events.len()
    }
}
