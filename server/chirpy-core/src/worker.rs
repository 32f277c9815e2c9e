//! Workers: their ids, and what is known of them.

use std::{fmt, time::SystemTime};

use crate::{Error, JobId, Result, limits::MAX_WORKER_ID_LEN};

/// A worker's self-chosen id: `[A-Za-z0-9_.:@-]{1,128}`, room for
/// `name@host:pid`. It is Apalis's worker name (`lock_by`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(String);

impl WorkerId {
    /// Checks a worker id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `worker_id`.
    pub fn parse(id: &str) -> Result<Self> {
        let reason = if id.is_empty() {
            Some("must not be empty".to_owned())
        } else if id.len() > MAX_WORKER_ID_LEN {
            Some(format!("must be at most {MAX_WORKER_ID_LEN} characters"))
        } else {
            id.chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '@' | '-')))
                .map(|c| format!("{c:?} is not allowed; use [A-Za-z0-9_.:@-]"))
        };
        match reason {
            Some(reason) => Err(Error::invalid("worker_id", reason)),
            None => Ok(WorkerId(id.to_owned())),
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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

/// What a heartbeat learned about the jobs a worker says it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatReport {
    /// Jobs that were canceled.
    pub canceled: Vec<JobId>,
    /// Jobs the worker no longer holds.
    pub lost: Vec<JobId>,
}
