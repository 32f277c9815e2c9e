//! Choosing and opening a store from a `DATABASE_URL`.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::time::{Instant, sleep};

use crate::{JobStore, StoreOptions, postgres::PostgresStore, redis::RedisStore, sqlite::SqliteStore};

/// Why a store could not be opened. Each message is one line, fit to be
/// printed after the name of the setting (`DATABASE_URL: ...`).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL names no storage Chirpy has, or is malformed.
    #[error("{0}")]
    BadUrl(String),
    /// The database did not answer within the connect timeout.
    #[error("cannot connect within {timeout:?}: {cause}")]
    Unreachable {
        /// How long connecting was tried.
        timeout: Duration,
        /// The last error.
        cause: String,
    },
    /// Apalis's migrations failed.
    #[error("cannot migrate the database: {0}")]
    Migrate(String),
}

/// Opens the store `url` names: `sqlite://PATH`, `sqlite::memory:`,
/// `postgres://...` / `postgresql://...`, or `redis://...`.
/// Migrations run before it returns (Redis has none: apalis-redis's keys
/// are created as jobs are pushed).
///
/// # Errors
///
/// [`OpenError`] for an unknown scheme, an unreachable database (after
/// retrying for `options.connect_timeout`) or failed migrations.
pub async fn open(url: &str, options: StoreOptions) -> Result<Arc<dyn JobStore>, OpenError> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Arc::new(SqliteStore::connect(url, options).await?)),
        "postgres" | "postgresql" => Ok(Arc::new(PostgresStore::connect(url, options).await?)),
        "redis" => Ok(Arc::new(RedisStore::connect(url, options).await?)),
        "rediss" => Err(OpenError::BadUrl("TLS to Redis (rediss://) is not supported yet; use redis://".into())),
        _ => Err(OpenError::BadUrl(format!(
            "unsupported scheme {scheme:?}; use sqlite://PATH, sqlite::memory:, postgres://... or redis://..."
        ))),
    }
}

/// Calls `connect` until it succeeds or `timeout` has passed, backing off
/// from 100 ms to 2 s between tries: a database that starts a little after
/// Chirpy (in a compose file, a pod) is waited for, an absent one is not.
pub(crate) async fn retry_connect<T, F, Fut>(timeout: Duration, connect: F) -> Result<T, OpenError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    retry_until(timeout, connect, |err| matches!(err, sqlx::Error::Configuration(_) | sqlx::Error::InvalidArgument(_)))
        .await
}

/// [`retry_connect`] for any client: `is_bad_url` tells the errors that
/// retrying cannot fix.
pub(crate) async fn retry_until<T, E, F, Fut>(
    timeout: Duration,
    mut connect: F,
    is_bad_url: impl Fn(&E) -> bool,
) -> Result<T, OpenError>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(100);
    loop {
        match connect().await {
            Ok(pool) => return Ok(pool),
            Err(err) if is_bad_url(&err) => return Err(OpenError::BadUrl(err.to_string())),
            Err(err) if Instant::now() + pause > deadline => {
                return Err(OpenError::Unreachable { timeout, cause: err.to_string() });
            }
            Err(err) => {
                tracing::warn!(cause = %err, retry_in = ?pause, "storage not reachable yet");
                sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// `url` with its password replaced by `***`, safe to print.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("postgres://u:secret@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(redact("sqlite://chirpy.db"), "sqlite://chirpy.db");
        assert_eq!(redact("redis://:secret@cache:6379/2"), "redis://:***@cache:6379/2");
    }
}
