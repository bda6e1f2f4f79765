//! Retail pipelines beyond the declarative aggregates. Each hands the store what its batch
//! contributes; the store keeps the state and decides, in the landing transaction.

pub mod orders;
