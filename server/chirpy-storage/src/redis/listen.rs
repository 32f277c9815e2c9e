//! Relays job events to the in-process [`Signals`], so that a push through
//! any server instance wakes the lease calls waiting in this one, and
//! settles what Apalis workers report.
//!
//! Two sources, on one pub/sub connection: Chirpy's channel `chirpy:jobs`
//! (the payload is a queue whose jobs became ready or scheduled), and
//! apalis-redis's task events `tasks:Q:...` (published with its default
//! `emit_events`): `active:available` (released), `scheduled:retry` (a failed
//! attempt rescheduled), `done`, `dead`, `active:lock`. Each of those runs the
//! `settle` script on the job, which applies Chirpy's rules to what the Apalis
//! worker did (max_attempts, backoff, a cancel that sticks). A missed event
//! is caught by the next read of the job and by the reaper's periodic pass.

use std::time::Duration;

use futures::StreamExt;

use super::{RedisStore, scripts};

/// Chirpy's channel. Published by the scripts (`announce` in common.lua).
const CHANNEL: &str = "chirpy:jobs";

/// apalis-redis's task events: `tasks:` and the name of the key concerned.
const APALIS_EVENTS: &str = "tasks:*";

/// Listens until the process ends, reconnecting after failures. After any
/// gap every waiter is woken, since events may have been missed.
pub(super) async fn relay(store: RedisStore) {
    loop {
        if let Err(err) = listen(&store).await {
            tracing::warn!(cause = %err, "job events interrupted; reconnecting");
        }
        store.signals.notify_all();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen(store: &RedisStore) -> Result<(), redis::RedisError> {
    let mut pubsub = store.client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    pubsub.psubscribe(APALIS_EVENTS).await?;
    store.signals.notify_all();
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let channel = message.get_channel_name();
        if channel == CHANNEL {
            if let Ok(queue) = message.get_payload::<String>() {
                store.signals.notify(&queue);
            }
            continue;
        }
        let Some((queue, event)) = channel.strip_prefix("tasks:").and_then(|rest| rest.split_once(':')) else {
            continue;
        };
        if event == "active:heartbeat" {
            continue;
        }
        let Ok(id) = message.get_payload::<String>() else { continue };
        let settled = store
            .run(&scripts::SETTLE, |inv| {
                inv.arg(queue).arg(&id);
            })
            .await;
        if let Err(err) = settled {
            tracing::warn!(queue, job = %id, cause = %err, "cannot settle an Apalis worker's event");
        }
        if matches!(event, "active:available" | "scheduled:retry") {
            store.signals.notify(queue);
        }
    }
    Err(redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "subscription ended")))
}
