//! Retail pipelines beyond the declarative aggregates. Each hands the store what its batch
//! contributes; the store keeps the state and decides, in the landing transaction.
//!
//! - [`orders`]: order lifecycle, the order-payment join, timeouts, stuck orders (ADR 0023).
//! - [`stock`]: inventory at risk from ERP snapshots and sales (ADR 0024).
//! - [`fraud`]: fraud rules as data over authorised payments (ADR 0025).
//! - this file: [`Pipeline`], the processor side the three share: rules, the facts of the
//!   batch being read, the pipeline time last handed over.

pub mod fraud;
pub mod orders;
pub mod stock;

use std::sync::Arc;

/// A retail pipeline's running state in the processor: its rules (shared by every batch), the
/// facts of the batch being read, and the largest pipeline time handed to the store. `R` and
/// `F` are the pipeline's rules and facts ([`orders::OrderPipeline`], [`stock::StockPipeline`],
/// [`fraud::FraudPipeline`]).
#[derive(Debug)]
pub struct Pipeline<R, F> {
    /// Rules, shared by every batch.
    pub rules: Arc<R>,
    /// Facts of the batch being read.
    pub facts: Vec<F>,
    /// The largest pipeline time handed to the store.
    pub time: Option<i64>,
}

/// How a pipeline's input is handed to the store: `(rules, facts, time)` -> its batch type.
pub type Handover<R, F, B> = fn(Arc<R>, Vec<F>, Option<i64>) -> B;

impl<R, F> Pipeline<R, F> {
    /// A pipeline running `rules`.
    pub fn with_rules(rules: R) -> Self {
        Self {
            rules: Arc::new(rules),
            facts: Vec::new(),
            time: None,
        }
    }

    /// Moves the time forward to `candidate` (never back); whether it moved.
    pub fn advance(&mut self, candidate: Option<i64>) -> bool {
        match (candidate, self.time) {
            (Some(c), Some(t)) if c <= t => false,
            (Some(c), _) => {
                self.time = Some(c);
                true
            }
            (None, _) => false,
        }
    }

    /// At the end of a batch: its facts and the time `candidate`, if there are facts or the
    /// time moved (verdicts may have fallen due); `None`: nothing to hand over.
    pub fn end_batch<B>(&mut self, candidate: Option<i64>, make: Handover<R, F, B>) -> Option<B> {
        let moved = self.advance(candidate);
        (moved || !self.facts.is_empty())
            .then(|| make(self.rules.clone(), std::mem::take(&mut self.facts), self.time))
    }

    /// With no records arriving: a record-less handover carrying the time forward, when it
    /// moved by `step` milliseconds or more since the last one.
    pub fn tick<B>(&mut self, candidate: Option<i64>, step: i64, make: Handover<R, F, B>) -> Option<B> {
        let t = candidate?;
        if self.time.is_some_and(|last| t < last.saturating_add(step)) {
            return None;
        }
        self.advance(Some(t));
        Some(make(self.rules.clone(), Vec::new(), self.time))
    }
}
