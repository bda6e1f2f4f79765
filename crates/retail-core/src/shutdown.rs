//! Graceful shutdown: one signal, many listeners, and a guard that trips it when dropped.
//!
//! The binary owns a [`Shutdown`]; each task gets a clone and selects on [`Shutdown::wait`].
//! A task that must bring everything down when it ends (for example because it failed) holds
//! a [`ShutdownGuard`] (mini-redis does the same with a broadcast channel and a drop guard).

use tokio::sync::watch;

/// A cloneable shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        let (tx, rx) = watch::channel(false);
        Self { tx, rx }
    }
}

impl Shutdown {
    /// A fresh, untriggered signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every listener to stop. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether shutdown was asked for.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown is asked for (at once if it already was).
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // An error means every sender is gone, which also means: stop.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// A guard that triggers this signal when dropped.
    pub fn guard(&self) -> ShutdownGuard {
        ShutdownGuard(self.clone())
    }
}

/// Triggers its [`Shutdown`] when dropped, so a task that ends for any reason (including an
/// error) stops the rest.
#[derive(Debug)]
pub struct ShutdownGuard(Shutdown);

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn guard_drop_triggers_every_clone() {
        let s = Shutdown::new();
        let listener = s.clone();
        assert!(!listener.is_triggered());
        drop(s.guard());
        listener.wait().await;
        assert!(listener.is_triggered());
    }
}
