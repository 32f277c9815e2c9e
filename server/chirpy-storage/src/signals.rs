//! In-process wake-ups for lease calls waiting on empty queues.
//!
//! Every change that can make a job ready (a push, a retry, an expired
//! lease) notifies its queue here. The SQLite store does so itself after
//! each write; the PostgreSQL store also relays `NOTIFY`s from the database,
//! so a push to one server instance wakes the waiters of all of them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use chirpy_core::QueueName;
use futures::future::select_all;
use tokio::sync::Notify;

/// One wake-up source per queue.
#[derive(Debug, Default)]
pub struct Signals {
    queues: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Signals {
    /// Wakes every call waiting on `queue`.
    pub fn notify(&self, queue: &str) {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = queues.get(queue) {
            notify.notify_waiters();
        }
    }

    /// Wakes every waiting call, e.g. after notifications may have been
    /// missed.
    pub fn notify_all(&self) {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.values().for_each(|notify| notify.notify_waiters());
    }

    /// A subscription to the changes of `queues`.
    pub fn subscribe(&self, queues: &[QueueName]) -> Subscription {
        let mut map = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        Subscription {
            notifies: queues.iter().map(|queue| map.entry(queue.to_string()).or_default().clone()).collect(),
        }
    }
}

/// The wake-up sources of some queues.
#[derive(Debug)]
pub struct Subscription {
    notifies: Vec<Arc<Notify>>,
}

impl Subscription {
    /// A future that resolves at the next change of any of the queues.
    ///
    /// Call it *before* looking for jobs, and await it after finding none:
    /// a change in between still resolves it, so no wake-up is lost.
    pub fn changed(&self) -> impl Future<Output = ()> + Send + '_ {
        let waits: Vec<_> = self.notifies.iter().map(|n| Box::pin(n.notified())).collect();
        async move {
            if !waits.is_empty() {
                select_all(waits).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_change_between_arming_and_waiting_is_not_lost() {
        let signals = Signals::default();
        let queues = [QueueName::parse("a").unwrap(), QueueName::parse("b").unwrap()];
        let subscription = signals.subscribe(&queues);
        let changed = subscription.changed();
        signals.notify("b");
        tokio::time::timeout(Duration::from_secs(1), changed).await.expect("woken");
    }

    #[tokio::test]
    async fn other_queues_do_not_wake() {
        let signals = Signals::default();
        let subscription = signals.subscribe(&[QueueName::parse("a").unwrap()]);
        let changed = subscription.changed();
        signals.notify("other");
        assert!(tokio::time::timeout(Duration::from_millis(50), changed).await.is_err());
    }
}
