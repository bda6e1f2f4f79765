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
    jobs: Option<Jobs<W>>,
    thread: Option<JoinHandle<()>>,
}

/// The sending side of the thread's queue.
enum Jobs<W> {
    Unbounded(mpsc::Sender<Job<W>>),
    /// At most this many jobs waiting behind the running one.
    Bounded(mpsc::SyncSender<Job<W>>, usize),
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
    /// open (or with `open`'s error). With `queue`, at most that many calls wait behind the
    /// running one; more fail at once (retryable).
    pub(super) async fn spawn<O>(
        name: &'static str,
        path: String,
        queue: Option<usize>,
        open: O,
    ) -> Result<Self>
    where
        O: FnOnce() -> Result<W> + Send + 'static,
    {
        let (jobs, queue) = match queue {
            None => {
                let (tx, rx) = mpsc::channel::<Job<W>>();
                (Jobs::Unbounded(tx), rx)
            }
            Some(n) => {
                let (tx, rx) = mpsc::sync_channel::<Job<W>>(n);
                (Jobs::Bounded(tx, n), rx)
            }
        };
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
            // The caller went away while this waited: nobody reads the answer.
            if reply.is_closed() {
                return;
            }
            let _ = reply.send(f(w));
        });
        match self.jobs.as_ref().ok_or_else(gone)? {
            Jobs::Unbounded(tx) => tx.send(job).map_err(|_| gone())?,
            Jobs::Bounded(tx, n) => match tx.try_send(job) {
                Ok(()) => {}
                Err(mpsc::TrySendError::Full(_)) => {
                    return Err(crate::Error::Sqlite {
                        path: self.path.clone(),
                        message: format!(
                        "{what}: SQLite thread {} has {n} calls queued already (its limit); retry shortly",
                        self.name
                    ),
                        retryable: true,
                    })
                }
                Err(mpsc::TrySendError::Disconnected(_)) => return Err(gone()),
            },
        }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc, Mutex};

    use super::Owned;

    /// A bounded thread refuses the call past its queue at once (retryable), and answers the
    /// queued ones once the running job ends.
    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_drains_after() {
        let owned = Arc::new(
            Owned::<()>::spawn("test-bounded", "test.db".to_owned(), Some(2), || Ok(()))
                .await
                .expect("spawn"),
        );
        let (release, wait) = mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        // Holds the thread until released.
        let blocker = tokio::spawn({
            let owned = owned.clone();
            let wait = wait.clone();
            async move {
                owned
                    .call("block", move |()| {
                        let _ = started_tx.send(());
                        let _ = wait.lock().expect("lock").recv();
                        Ok(0)
                    })
                    .await
            }
        });
        started_rx.await.expect("the blocking job started");
        let queued: Vec<_> = (1..=2)
            .map(|i| {
                let owned = owned.clone();
                tokio::spawn(async move { owned.call("queued", move |()| Ok(i)).await })
            })
            .collect();
        tokio::task::yield_now().await;
        // Both queued calls are in the channel once their tasks ran; give them the chance.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let refused = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            owned.call("one too many", |()| Ok(9)),
        )
        .await
        .expect("refused at once, not queued behind the blocked job");
        let e = refused.expect_err("the third waiting call is refused");
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("one too many"), "{e}");
        assert!(e.to_string().contains("2 calls queued"), "{e}");

        release.send(()).expect("release");
        assert_eq!(blocker.await.expect("join").expect("blocker"), 0);
        let mut answers = Vec::new();
        for q in queued {
            answers.push(q.await.expect("join").expect("queued call answered"));
        }
        answers.sort_unstable();
        assert_eq!(answers, vec![1, 2]);
    }

    /// A queued call whose caller went away is skipped, not run.
    #[tokio::test]
    async fn an_abandoned_call_is_not_run() {
        let owned = Owned::<()>::spawn("test-skip", "test.db".to_owned(), Some(4), || Ok(()))
            .await
            .expect("spawn");
        let (release, wait) = mpsc::channel::<()>();
        let wait = Mutex::new(wait);
        let ran = Arc::new(AtomicUsize::new(0));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let mut blocker = Box::pin(owned.call("block", move |()| {
            let _ = started_tx.send(());
            let _ = wait.lock().expect("lock").recv();
            Ok(())
        }));
        assert!(poll_once(blocker.as_mut()).await.is_none());
        started_rx.await.expect("the blocking job started");
        // Enqueued behind the blocker, then dropped before the thread gets to it.
        let mut abandoned = Box::pin({
            let ran = ran.clone();
            owned.call("abandoned", move |()| {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        });
        assert!(poll_once(abandoned.as_mut()).await.is_none());
        drop(abandoned);
        let after = {
            let ran = ran.clone();
            owned.call("after", move |()| {
                ran.fetch_add(10, Ordering::SeqCst);
                Ok(())
            })
        };
        release.send(()).expect("release");
        blocker.await.expect("blocker");
        after.await.expect("after");
        assert_eq!(ran.load(Ordering::SeqCst), 10, "the abandoned job must not run");
    }

    async fn poll_once<F: std::future::Future + ?Sized>(mut f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match f.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
