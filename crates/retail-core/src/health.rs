//! Each component's state, as `/health` reports it.
//!
//! Components set their own state (`running`, `retrying: store unreachable`, ...); the server
//! only reads. A plain mutex is enough: states change a few times a second at most.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Coarse state of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Opening, connecting, catching up.
    Starting,
    /// Doing its job.
    Running,
    /// Paused by an operator.
    Paused,
    /// Failing and retrying with backoff; data is held, not skipped.
    Retrying,
    /// Finished its work (e.g. a generator with a fixed event count).
    Done,
    /// Stopped after an error it cannot retry.
    Failed,
}

impl State {
    /// Every state, for exports that list each one (`retail_component_state`).
    pub const ALL: [Self; 6] = [
        Self::Starting,
        Self::Running,
        Self::Paused,
        Self::Retrying,
        Self::Done,
        Self::Failed,
    ];

    /// The name `/health` and `/metrics` show.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Retrying => "retrying",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// A component's state and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The state.
    pub state: State,
    /// Why, or what it is doing.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Shared map of component name -> status. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<BTreeMap<String, Status>>>,
}

impl Health {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a component's status.
    pub fn set(&self, component: &str, state: State, detail: impl Into<String>) {
        let status = Status {
            state,
            detail: detail.into(),
        };
        if let Ok(mut map) = self.inner.lock() {
            map.insert(component.to_owned(), status);
        }
    }

    /// A copy of every component's status.
    pub fn snapshot(&self) -> BTreeMap<String, Status> {
        self.inner.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Whether no component has failed.
    pub fn is_healthy(&self) -> bool {
        self.snapshot().values().all(|s| s.state != State::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_component_makes_the_whole_unhealthy() {
        let h = Health::new();
        h.set("landing", State::Running, "");
        assert!(h.is_healthy());
        h.set("store", State::Failed, "migration 1 failed");
        assert!(!h.is_healthy());
        assert_eq!(h.snapshot()["store"].detail, "migration 1 failed");
    }
}
