//! The Tansu broker of the Kafka tests, shared with `retail-log`'s tests.

#[path = "../../../retail-log/tests/support/tansu.rs"]
mod tansu;

#[allow(unused_imports)] // test crates that include `common` without using Kafka
pub use tansu::{Tansu, GROUP_PROPERTIES};
