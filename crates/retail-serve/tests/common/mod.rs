//! Controls for the server's tests: what the binary's generator and landing adapters do,
//! minus the pipeline behind them.

// Each test crate uses part of this module.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use retail_serve::{ControlKind, Controllable};

/// A source that records what it was told.
#[derive(Debug, Default)]
pub struct FakeSource {
    paused: AtomicBool,
    rate: Mutex<f64>,
}

impl Controllable for FakeSource {
    fn kind(&self) -> ControlKind {
        ControlKind::Source
    }
    fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }
    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
    fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }
    fn rate(&self) -> Option<f64> {
        Some(*self.rate.lock().expect("lock"))
    }
    fn set_rate(&self, rate: f64) -> Result<(), String> {
        *self.rate.lock().expect("lock") = rate;
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct FakeLanding(AtomicBool);

impl Controllable for FakeLanding {
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

/// A source without a rate, like a webhook or a CSV inbox.
#[derive(Debug, Default)]
pub struct FakeReceiver(AtomicBool);

impl Controllable for FakeReceiver {
    fn kind(&self) -> ControlKind {
        ControlKind::Source
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

pub mod reader;
