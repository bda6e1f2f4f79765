//! [`Owned`]: a connection (and what goes with it) owned by one long-lived thread, with async
//! calls that run on that thread. SQLite calls block, so they must not run on the async
//! runtime's threads; one thread per connection (rather than `spawn_blocking` per call) keeps
//! the connection and its prepared-statement cache in one place and serialises its use as
//! SQLite wants anyway. The store's writing connection and the reader's connection both live
//! in one of these.

use std::fmt;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::error::worker_error;
use crate::Result;

type Job<W> = Box<dyn FnOnce(&mut W) + Send>;

/// A `W` living on its own thread.
pub(super) struct Owned<W> {
    /// The database file, for error messages.
    path: String,
    /// The thread's name, for error messages.
    name: &'static str,
    jobs: Option<mpsc::Sender<Job<W>>>,
    thread: Option<JoinHandle<()>>,
}

impl<W> fmt::Debug for Owned<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owned")
            .field("path", &self.path)
            .field("thread", &self.name)
            .finish_non_exhaustive()
    }
}

impl<W: 'static> Owned<W> {
    /// Starts the thread `name`, builds its `W` there with `open`, and returns once it is
    /// open (or with `open`'s error).
    pub(super) async fn spawn<O>(name: &'static str, path: String, open: O) -> Result<Self>
    where
        O: FnOnce() -> Result<W> + Send + 'static,
    {
        let (jobs, queue) = mpsc::channel::<Job<W>>();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<()>>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || match open() {
                Ok(mut owned) => {
                    let _ = ready_tx.send(Ok(()));
                    // Ends when the owner drops its sender.
                    while let Ok(job) = queue.recv() {
                        job(&mut owned);
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| worker_error(&path, format!("spawn SQLite thread {name}: {e}")))?;
        let owned = Self {
            path,
            name,
            jobs: Some(jobs),
            thread: Some(thread),
        };
        ready_rx
            .await
            .map_err(|_| worker_error(&owned.path, format!("SQLite thread {name} died while opening")))??;
        Ok(owned)
    }

    /// The database file.
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// Runs `f` on the thread and waits for its result.
    pub(super) async fn call<T, F>(&self, what: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut W) -> Result<T> + Send + 'static,
    {
        let gone = || worker_error(&self.path, format!("{what}: SQLite thread {} is gone", self.name));
        let (reply, answer) = oneshot::channel();
        let job: Job<W> = Box::new(move |w| {
            let _ = reply.send(f(w));
        });
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

impl<W> Drop for Owned<W> {
    fn drop(&mut self) {
        // Closing the queue ends the thread after its current job; joining closes the file
        // before the drop returns, so a reopen right after sees everything.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
