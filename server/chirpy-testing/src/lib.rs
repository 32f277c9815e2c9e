//! Fixtures for Chirpy's integration tests: real services, started and
//! stopped by the tests themselves.
//!
//! - [`postgres`]: one throwaway PostgreSQL cluster per test process, and a
//!   fresh database per test.
//! - [`redis`]: one throwaway Redis server per test process, and a fresh
//!   logical database per test.
//! - [`server`]: the real `chirpy` binary on a loopback port, on any storage.
//! - [`Storage`]: the storages a behaviour is checked against.
//!
//! Everything binds to 127.0.0.1 and is stopped by PID when the test (or the
//! whole test process) ends.
#![forbid(unsafe_code)]

pub mod postgres;
mod process;
pub mod redis;
pub mod server;

pub use server::TestServer;

/// A storage a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database in the test process's PostgreSQL cluster.
    Postgres,
    /// A fresh logical database on the test process's Redis server.
    Redis,
}

impl Storage {
    /// Every storage, in the order tests run on them.
    pub const ALL: [Storage; 3] = [Storage::Sqlite, Storage::Postgres, Storage::Redis];

    /// Its name, as the server reports it (`JobStore::kind`).
    pub fn name(self) -> &'static str {
        match self {
            Storage::Sqlite => "sqlite",
            Storage::Postgres => "postgres",
            Storage::Redis => "redis",
        }
    }
}

/// Runs an async test body once per storage: `each_storage!(name, |storage| async move { ... })`
/// defines the tests `name::sqlite`, `name::postgres` and `name::redis`; the
/// body sees the enclosing module's imports.
#[macro_export]
macro_rules! each_storage {
    ($(#[$meta:meta])* $name:ident, $body:expr) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::Storage::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)($crate::Storage::Postgres).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                ($body)($crate::Storage::Redis).await
            }
        }
    };
}
