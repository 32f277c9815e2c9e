//! Relays PostgreSQL notifications to the in-process [`Signals`], so that a
//! push through any server instance (or an Apalis producer) wakes the lease
//! calls waiting in this one.

use std::{sync::Arc, time::Duration};

use sqlx::{PgPool, postgres::PgListener};

use crate::Signals;

/// Chirpy's channel: the payload is the name of a queue whose jobs changed
/// (pushed for later, retried, released, back from an expired lease).
pub(super) const CHANNEL: &str = "chirpy::jobs";

/// Apalis's channel, notified by its trigger for every job inserted ready
/// to run; the payload is JSON with the queue as `job_type`.
const APALIS_CHANNEL: &str = "apalis::job::insert";

/// Listens until the process ends, reconnecting after failures. After any
/// gap every waiter is woken, since notifications may have been missed.
pub(super) async fn relay(pool: PgPool, signals: Arc<Signals>) {
    loop {
        match listen(&pool, &signals).await {
            Ok(()) => {}
            Err(err) => tracing::warn!(cause = %err, "job notifications interrupted; reconnecting"),
        }
        signals.notify_all();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen(pool: &PgPool, signals: &Signals) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([CHANNEL, APALIS_CHANNEL]).await?;
    signals.notify_all();
    loop {
        // `None`: the connection dropped and was re-established.
        let Some(notification) = listener.try_recv().await? else {
            signals.notify_all();
            continue;
        };
        match notification.channel() {
            CHANNEL => signals.notify(notification.payload()),
            _ => match serde_json::from_str::<serde_json::Value>(notification.payload()) {
                Ok(event) => signals.notify(event["job_type"].as_str().unwrap_or_default()),
                Err(_) => signals.notify_all(),
            },
        }
    }
}
