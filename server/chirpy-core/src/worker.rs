//! What is known of a worker.

use std::time::SystemTime;

/// A worker recorded in the storage: a remote Chirpy worker, or an embedded
/// Apalis worker sharing the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Its id (Apalis's worker name).
    pub id: String,
    /// The queues it works.
    pub queues: Vec<String>,
    /// `chirpy` for remote workers, else the Apalis storage that registered it.
    pub kind: String,
    /// When it registered, if recorded.
    pub started_at: Option<SystemTime>,
    /// When it was last heard from.
    pub last_heartbeat_at: SystemTime,
    /// How many jobs it is running.
    pub running_jobs: i64,
}
