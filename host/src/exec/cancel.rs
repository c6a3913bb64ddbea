//! Cancellation that flows down the tree: aborting the pipeline or expiring a stage cancels
//! everything below it, and each cancelled node records why.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The pipeline was aborted (Ctrl-C or an `Abort` action).
    Aborted,
    /// A parent's timeout ran out.
    Expired,
}

#[derive(Clone)]
pub struct Cancel {
    inner: Arc<Inner>,
}

struct Inner {
    sender: watch::Sender<Option<Reason>>,
    parent: Option<Cancel>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel {
            inner: Arc::new(Inner {
                sender: watch::channel(None).0,
                parent: None,
            }),
        }
    }
}

impl Cancel {
    /// A token cancelled when this one is, or on its own.
    pub fn child(&self) -> Cancel {
        Cancel {
            inner: Arc::new(Inner {
                sender: watch::channel(None).0,
                parent: Some(self.clone()),
            }),
        }
    }

    /// Cancels this token and its children; the first reason wins.
    pub fn cancel(&self, reason: Reason) {
        self.inner.sender.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
    }

    pub fn reason(&self) -> Option<Reason> {
        (*self.inner.sender.borrow())
            .or_else(|| self.inner.parent.as_ref().and_then(Cancel::reason))
    }

    /// Resolves when this token or an ancestor is cancelled.
    pub fn cancelled(&self) -> Pin<Box<dyn Future<Output = Reason> + Send + '_>> {
        Box::pin(async move {
            let mut receiver = self.inner.sender.subscribe();
            let own = async move {
                loop {
                    if let Some(reason) = *receiver.borrow_and_update() {
                        return reason;
                    }
                    if receiver.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            match &self.inner.parent {
                Some(parent) => tokio::select! {
                    reason = own => reason,
                    reason = parent.cancelled() => reason,
                },
                None => own.await,
            }
        })
    }
}

/// Runs `work`; if `timeout` passes first, cancels `cancel` as Expired and lets `work` finish
/// recording what it stopped.
pub(super) async fn with_deadline<F: std::future::Future>(
    timeout: Option<Duration>,
    cancel: &Cancel,
    work: F,
) -> F::Output {
    let Some(timeout) = timeout else {
        return work.await;
    };
    tokio::pin!(work);
    tokio::select! {
        output = &mut work => output,
        _ = tokio::time::sleep(timeout) => {
            cancel.cancel(Reason::Expired);
            work.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_sees_its_parents_cancellation() {
        let parent = Cancel::default();
        let child = parent.child();
        assert_eq!(child.reason(), None);
        parent.cancel(Reason::Aborted);
        assert_eq!(child.cancelled().await, Reason::Aborted);
        assert_eq!(child.reason(), Some(Reason::Aborted));
    }

    #[tokio::test]
    async fn the_first_reason_wins() {
        let token = Cancel::default();
        token.cancel(Reason::Expired);
        token.cancel(Reason::Aborted);
        assert_eq!(token.reason(), Some(Reason::Expired));
    }
}
