//! Queue names and per-queue statistics.

use std::fmt;

use crate::{Error, Result, limits};

/// A valid queue name: `[A-Za-z0-9_.-]{1,128}`.
///
/// Queues need no declaration: a queue exists once a job was pushed to it.
/// The name is stored as Apalis's `job_type`, so an embedded Apalis worker
/// configured with the same queue name works the same jobs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueName(String);

impl QueueName {
    /// Checks `name` against the queue name rules.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field `queue` when the name is
    /// empty, too long or has a character outside `[A-Za-z0-9_.-]`.
    pub fn parse(name: &str) -> Result<Self> {
        check_name(name, limits::MAX_QUEUE_NAME_LEN).map_err(|reason| Error::invalid("queue", reason))?;
        Ok(QueueName(name.to_owned()))
    }

    /// A queue that may already hold jobs under a name Chirpy would not
    /// give a new one: an embedded Apalis producer's default queue is its
    /// argument type's path (`my_app::Email`). For reading such a queue,
    /// never for pushing to it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field `queue` when the name is
    /// empty or longer than [`limits::MAX_STORED_QUEUE_NAME_LEN`] bytes.
    pub fn stored(name: &str) -> Result<Self> {
        match name.len() {
            0 => Err(Error::invalid("queue", "must not be empty")),
            n if n > limits::MAX_STORED_QUEUE_NAME_LEN => Err(Error::invalid(
                "queue",
                format!("must be at most {} bytes, got {n}", limits::MAX_STORED_QUEUE_NAME_LEN),
            )),
            _ => Ok(QueueName(name.to_owned())),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that `name` is 1 to `max_len` characters of `[A-Za-z0-9_.-]`, the
/// alphabet shared by queue names and metadata keys: safe in URL paths, in
/// Redis keys and in Prometheus labels without escaping.
pub(crate) fn check_name(name: &str, max_len: usize) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > max_len {
        return Err(format!("must be at most {max_len} characters, got {}", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!("{c:?} is not allowed; use [A-Za-z0-9_.-]"));
    }
    Ok(())
}

/// How many jobs of one queue are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// The queue.
    pub name: String,
    /// Ready to run.
    pub pending: i64,
    /// Waiting for their time.
    pub scheduled: i64,
    /// Leased to a worker.
    pub running: i64,
    /// Finished successfully.
    pub succeeded: i64,
    /// In the failure queue.
    pub dead: i64,
    /// Canceled.
    pub canceled: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["email", "a", "A-b_c.d-9", &"q".repeat(128)] {
            assert_eq!(QueueName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_names_outside_it_naming_the_field() {
        for bad in ["", "with space", "slash/y", "colon:x", "ünï", &"q".repeat(129)] {
            let err = QueueName::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with("queue: "), "{err}");
        }
    }

    #[test]
    fn stored_names_are_only_bounded() {
        assert_eq!(QueueName::stored("my_app::Email").unwrap().as_str(), "my_app::Email");
        assert!(QueueName::stored(&"q".repeat(limits::MAX_STORED_QUEUE_NAME_LEN)).is_ok());
        for bad in [String::new(), "q".repeat(limits::MAX_STORED_QUEUE_NAME_LEN + 1)] {
            assert!(QueueName::stored(&bad).unwrap_err().to_string().starts_with("queue: "));
        }
    }
}
