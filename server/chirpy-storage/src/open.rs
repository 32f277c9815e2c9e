//! Choosing and opening a store from a `DATABASE_URL`.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::time::{Instant, sleep};

use crate::{JobStore, StoreOptions, postgres::PostgresStore, sqlite::SqliteStore};

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

/// Opens the store `url` names: `sqlite://PATH`, `sqlite::memory:`, or
/// `postgres://...` / `postgresql://...`. Migrations run before it returns.
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
        "redis" | "rediss" => Err(OpenError::BadUrl(
            "Redis storage is not available in this build yet; use sqlite:// or postgres://".into(),
        )),
        _ => Err(OpenError::BadUrl(format!(
            "unsupported scheme {scheme:?}; use sqlite://PATH, sqlite::memory: or postgres://..."
        ))),
    }
}

/// Calls `connect` until it succeeds or `timeout` has passed, backing off
/// from 100 ms to 2 s between tries: a database that starts a little after
/// Chirpy (in a compose file, a pod) is waited for, an absent one is not.
pub(crate) async fn retry_connect<T, F, Fut>(timeout: Duration, mut connect: F) -> Result<T, OpenError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(100);
    loop {
        match connect().await {
            Ok(pool) => return Ok(pool),
            Err(err @ (sqlx::Error::Configuration(_) | sqlx::Error::InvalidArgument(_))) => {
                return Err(OpenError::BadUrl(err.to_string()));
            }
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
    }
}
