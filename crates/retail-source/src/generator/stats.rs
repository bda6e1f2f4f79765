//! What a generator produced, counted exactly, so tests elsewhere can check the pipeline end
//! to end against it (an oracle: how many sales, duplicates, orders with each anomaly).

use serde::Serialize;

/// Counts of what was produced. The generator fills everything but `appended`, which the
/// source sets once the log has the records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GeneratorStats {
    /// Catalog records (stores, sellers, products) produced.
    pub catalog: u64,
    /// Data records produced: sales, returns, orders, payments, stock levels, duplicates and
    /// malformed records. This is what `events` limits.
    pub generated: u64,
    /// Records (catalog and data) durably appended to the log.
    pub appended: u64,
    /// Valid sales (not counting duplicates).
    pub sales: u64,
    /// Valid returns (not counting duplicates).
    pub returns: u64,
    /// Exact re-sends of an earlier record.
    pub duplicates: u64,
    /// Records that fail decoding.
    pub malformed: u64,
    /// Valid events with an event time moved back a little.
    pub out_of_order: u64,
    /// Valid events with an event time moved back by `late_by_ms`.
    pub late: u64,
    /// Distinct valid `event_id`s among the data records (= sales + returns + orders +
    /// payments + inventory): the rows a correct landing keeps, whatever it does with
    /// duplicates and garbage; `sales + returns` of them are `sales_raw`'s.
    pub distinct: u64,
    /// Order events (not counting duplicates).
    pub orders: u64,
    /// Payment events (not counting duplicates).
    pub payments: u64,
    /// Inventory events, snapshots and receipts (not counting duplicates).
    pub inventory: u64,
    /// Order flows started: an ordinary order, with or without an anomaly, or one fraud
    /// pattern (of several orders). The anomaly counts below are of these.
    pub order_flows: u64,
    /// Flows whose order never gets a payment.
    pub payment_missing: u64,
    /// Flows paid 45-180 minutes after the order was created.
    pub payment_late: u64,
    /// Flows stuck in `paid`, `packed` or `shipped`.
    pub stuck: u64,
    /// Flows cancelled.
    pub cancelled: u64,
    /// Fraud patterns started: one card paying 6-8 times within 10 minutes.
    pub fraud_card_velocity: u64,
    /// Fraud patterns started: a tiny payment, then a large one on the same card.
    pub fraud_tiny_then_large: u64,
    /// Fraud patterns started: just over 20 times the customer's average after five payments.
    pub fraud_above_history: u64,
    /// Fraud patterns started: IP country other than the billing country.
    pub fraud_ip_mismatch: u64,
    /// Fraud patterns started: over 2,000 from one customer within an hour.
    pub fraud_hourly_total: u64,
    /// Orders in flight now (created, with steps still to come).
    pub in_flight_orders: u64,
    /// Most orders in flight at any time; at most `commerce.max_in_flight`.
    pub in_flight_peak: u64,
    /// Stock series tracked.
    pub stock_series: u64,
    /// Stock series never reordered.
    pub stockout_series: u64,
    /// Reorders delivered (inventory events with reason `receipt`).
    pub restocks: u64,
}
