//! Graceful shutdown: one signal, seen by every listener and long poll.

use tokio::sync::watch;

/// A handle on the server's shutdown. Clones observe the same signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

/// Starts the shutdown that every [`Shutdown`] handle observes.
#[derive(Debug)]
pub struct Trigger {
    sender: watch::Sender<bool>,
}

/// A new shutdown signal and its trigger.
pub fn channel() -> (Trigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (Trigger { sender }, Shutdown { receiver })
}

impl Trigger {
    /// Signals shutdown to every handle.
    pub fn fire(&self) {
        self.sender.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown has been signalled (at once if it already was).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which also ends the server.
        let _ = self.receiver.wait_for(|&fired| fired).await;
    }

    /// Whether shutdown has been signalled.
    pub fn is_fired(&self) -> bool {
        *self.receiver.borrow()
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(err) => {
                tracing::warn!(cause = %err, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
