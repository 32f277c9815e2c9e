//! Fixtures for Chirpy's integration tests: real services, started and
//! stopped by the tests themselves.
//!
//! - [`postgres`]: one throwaway PostgreSQL cluster per test process, and a
//!   fresh database per test.
//! - [`server`]: the real `chirpy` binary on a loopback port, on any storage.
//! - [`Storage`]: the storages a behaviour is checked against.
//!
//! Everything binds to 127.0.0.1 and is stopped by PID when the test (or the
//! whole test process) ends.
#![forbid(unsafe_code)]

pub mod postgres;
mod process;
pub mod server;

pub use server::TestServer;

/// A storage a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database in the test process's PostgreSQL cluster.
    Postgres,
}

/// Runs an async test body once per storage: `each_storage!(name, |storage| async move { ... })`
/// defines the tests `name::sqlite` and `name::postgres`; the body sees the
/// enclosing module's imports.
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
        }
    };
}
