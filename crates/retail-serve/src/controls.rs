//! The control registry: everything an operator can pause, resume or re-rate at run time
//! (each source by name, and the landing), behind one small trait so that this crate needs
//! none of the stage crates. The binary registers adapters for its generator and landing
//! handles; the control API and the dashboard read and act through [`Controls`].

use std::fmt;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use utoipa::ToSchema;

/// What kind of thing a control is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ControlKind {
    /// A source (1): pausing it stops new events entering the log.
    Source,
    /// The landing (3): pausing it stops reading the log; the log keeps what arrives (lag grows).
    Landing,
}

/// Something that can be paused and resumed, and maybe re-rated.
pub trait Controllable: Send + Sync + fmt::Debug + 'static {
    /// Source or landing.
    fn kind(&self) -> ControlKind;
    /// Stops taking new work until [`Self::resume`].
    fn pause(&self);
    /// Takes work again.
    fn resume(&self);
    /// Whether paused.
    fn is_paused(&self) -> bool;
    /// Events per second (0 = no events, infinity = unlimited), for controls that have a rate.
    fn rate(&self) -> Option<f64> {
        None
    }
    /// Sets the rate; `Err` says why not (no rate, or a value it refuses).
    fn set_rate(&self, rate: f64) -> Result<(), String> {
        let _ = rate;
        Err("this control has no rate".to_owned())
    }
    /// Events accepted so far (appended to the log, for a source), if it counts them.
    fn accepted(&self) -> Option<u64> {
        None
    }
    /// Inputs received so far (before validation), for sources.
    fn received(&self) -> Option<u64> {
        None
    }
    /// Inputs refused at the source so far, for sources.
    fn rejected(&self) -> Option<u64> {
        None
    }
    /// The source's type (`generator`, `webhook`, `csv`, ...), for sources.
    fn source_type(&self) -> Option<&'static str> {
        None
    }
    /// Its state as `/health` shows it (`running`, `paused`, `retrying`, ...).
    fn state(&self) -> Option<retail_core::health::State> {
        None
    }
}

/// A control's state, as `GET /api/v1/control` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ControlStatus {
    /// Source name, or `landing`.
    pub name: String,
    /// `source` or `landing`.
    pub kind: ControlKind,
    /// Whether paused.
    pub paused: bool,
    /// Events per second (0 = no events); `null` for controls without a rate, and when
    /// `unlimited`.
    pub rate: Option<f64>,
    /// Whether the source produces as fast as the log accepts (no rate limit).
    pub unlimited: bool,
    /// Events accepted so far; `null` if it does not count them.
    pub accepted: Option<u64>,
    /// Inputs received so far (sources); `null` for the landing.
    pub received: Option<u64>,
    /// Inputs refused at the source so far (sources); `null` for the landing.
    pub rejected: Option<u64>,
    /// The source's type (`generator`, `webhook`, `csv`); `null` for the landing.
    #[serde(rename = "type")]
    pub source_type: Option<&'static str>,
    /// State as on `/health`: `starting`, `running`, `paused`, `retrying`, `done`, `failed`.
    #[schema(value_type = Option<String>)]
    pub state: Option<retail_core::health::State>,
}

/// A control and its name.
type Entry = (String, Arc<dyn Controllable>);

/// The registered controls, in registration order. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Controls {
    entries: Arc<RwLock<Vec<Entry>>>,
}

/// The name the landing is registered under.
pub const LANDING: &str = "landing";

impl Controls {
    /// Adds (or replaces) the control called `name`.
    pub fn register(&self, name: impl Into<String>, control: Arc<dyn Controllable>) {
        let name = name.into();
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.retain(|(n, c)| !(n == &name && c.kind() == control.kind()));
        entries.push((name, control));
    }

    /// Every control's state.
    pub fn list(&self) -> Vec<ControlStatus> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.iter().map(|(name, c)| status(name, c.as_ref())).collect()
    }

    /// The source called `name`.
    pub fn source(&self, name: &str) -> Option<Arc<dyn Controllable>> {
        self.find(ControlKind::Source, |n| n == name)
    }

    /// The landing, once registered.
    pub fn landing(&self) -> Option<Arc<dyn Controllable>> {
        self.find(ControlKind::Landing, |_| true)
    }

    /// Names of every source, for error messages.
    pub fn source_names(&self) -> Vec<String> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .iter()
            .filter(|(_, c)| c.kind() == ControlKind::Source)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The state of the control called `name` of `kind`.
    pub fn status_of(&self, kind: ControlKind, name: &str) -> Option<ControlStatus> {
        self.find(kind, |n| n == name).map(|c| status(name, c.as_ref()))
    }

    fn find(&self, kind: ControlKind, name: impl Fn(&str) -> bool) -> Option<Arc<dyn Controllable>> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .iter()
            .find(|(n, c)| c.kind() == kind && name(n))
            .map(|(_, c)| c.clone())
    }
}

fn status(name: &str, c: &dyn Controllable) -> ControlStatus {
    ControlStatus {
        name: name.to_owned(),
        kind: c.kind(),
        paused: c.is_paused(),
        rate: c.rate().filter(|r| r.is_finite()),
        unlimited: c.rate().is_some_and(f64::is_infinite),
        accepted: c.accepted(),
        received: c.received(),
        rejected: c.rejected(),
        source_type: c.source_type(),
        state: c.state(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[derive(Debug, Default)]
    struct Switch(AtomicBool);

    impl Controllable for Switch {
        fn kind(&self) -> ControlKind {
            ControlKind::Landing
        }
        fn pause(&self) {
            self.0.store(true, Ordering::SeqCst);
        }
        fn resume(&self) {
            self.0.store(false, Ordering::SeqCst);
        }
        fn is_paused(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn the_list_shows_what_the_control_reports() {
        let controls = Controls::default();
        controls.register(LANDING, Arc::new(Switch::default()));
        controls.landing().expect("landing").pause();
        let list = controls.list();
        assert_eq!(list.len(), 1);
        assert!(list[0].paused);
        assert_eq!(list[0].rate, None);
        assert!(
            controls.source("landing").is_none(),
            "the landing is not a source"
        );
        assert!(controls.landing().expect("landing").set_rate(5.0).is_err());
    }
}
