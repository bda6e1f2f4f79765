//! Retail pipelines beyond the declarative aggregates. Each hands the store what its batch
//! contributes; the store keeps the state and decides, in the landing transaction.
//!
//! - [`orders`]: order lifecycle, the order-payment join, timeouts, stuck orders (ADR 0023).
//! - [`stock`]: inventory at risk from ERP snapshots and sales (ADR 0024).
//! - [`fraud`]: fraud rules as data over authorised payments (ADR 0025).

pub mod fraud;
pub mod orders;
pub mod stock;
