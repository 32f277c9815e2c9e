//! Leases: a worker's fenced claim on one attempt of a job, and what a
//! worker reports about it.

use std::{fmt, time::Duration};

use crate::{Error, JobId, QueueName, Result, limits::MAX_ERROR_BYTES, worker::WorkerId};

/// The fencing token of one attempt: which worker holds the job, and which
/// attempt it is. Each lease counts an attempt, so a job leased again (after
/// its lease expired) has a higher attempt, and an old token no longer
/// matches the row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken {
    /// The attempt the lease is for (1 for the first).
    pub attempt: i32,
    /// The worker holding it.
    pub worker: WorkerId,
}

impl LeaseToken {
    /// Parses a `lease_id` given back by a worker.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `field` for anything this server did
    /// not hand out.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        let invalid = || Error::invalid(field, "is not a lease id handed out by LeaseJobs");
        let (attempt, worker) = text.split_once('.').ok_or_else(invalid)?;
        let attempt = attempt.parse::<i32>().ok().filter(|a| *a > 0).ok_or_else(invalid)?;
        let worker = WorkerId::parse(worker).map_err(|_| invalid())?;
        Ok(LeaseToken { attempt, worker })
    }
}

impl fmt::Display for LeaseToken {
    /// `{attempt}.{worker}`: the attempt has no `.`, so the first one splits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.attempt, self.worker)
    }
}

/// A job and the lease a worker claims to hold on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRef {
    /// The job's queue.
    pub queue: QueueName,
    /// The job.
    pub id: JobId,
    /// The lease.
    pub lease: LeaseToken,
}

/// A worker's report that an attempt succeeded.
#[derive(Debug, Clone)]
pub struct Completion {
    /// Which attempt.
    pub job: LeaseRef,
    /// What it returned, as JSON bytes; `None` for no result (JSON `null`).
    pub result: Option<Vec<u8>>,
}

/// A worker's report that an attempt failed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Which attempt.
    pub job: LeaseRef,
    /// What went wrong, at most [`MAX_ERROR_BYTES`].
    pub error: String,
    /// Send the job to the failure queue whatever its attempts left.
    pub non_retryable: bool,
    /// Wait this long before the next attempt instead of the backoff.
    pub retry_after: Option<Duration>,
}

/// Cuts an error message to [`MAX_ERROR_BYTES`] on a character boundary,
/// saying so. A worker's failure report is never refused for its length:
/// that would leave the job leased until its lease expired.
pub fn truncate_error(mut error: String) -> String {
    const MARK: &str = " [truncated]";
    if error.len() > MAX_ERROR_BYTES {
        let mut end = MAX_ERROR_BYTES - MARK.len();
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error.truncate(end);
        error.push_str(MARK);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_even_with_dots_in_worker_ids() {
        let token = LeaseToken { attempt: 3, worker: WorkerId::parse("host.example.com:42").unwrap() };
        assert_eq!(LeaseToken::parse("lease_id", &token.to_string()).unwrap(), token);
    }

    #[test]
    fn foreign_tokens_are_rejected() {
        for bad in ["", "3", ".w", "0.w", "-1.w", "x.w", "3.bad worker"] {
            assert!(LeaseToken::parse("lease_id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn long_errors_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_ERROR_BYTES);
        let cut = truncate_error(long);
        assert!(cut.len() <= MAX_ERROR_BYTES);
        assert!(cut.ends_with(" [truncated]"));
        assert_eq!(truncate_error("short".into()), "short");
    }
}
