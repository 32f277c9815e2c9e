//! Jobs: their identity, their states, and what makes a push valid.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    str::FromStr,
    sync::{Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use ulid::{Generator, Ulid};

use crate::{
    Error, Limits, QueueName, Result,
    limits::{
        DEFAULT_MAX_ATTEMPTS, MAX_IDEMPOTENCY_KEY_BYTES, MAX_MAX_ATTEMPTS, MAX_METADATA_ENTRIES, MAX_METADATA_KEY_LEN,
        MAX_METADATA_VALUE_BYTES, MAX_TIMESTAMP_SECS, RESERVED_METADATA_PREFIX,
    },
    queue::check_name,
};

/// A job's identifier: a ULID, assigned by the server at push time.
///
/// Apalis's SQL storages parse every id as a ULID, so no other kind of id may
/// ever be written; the ULID's timestamp is also the job's creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(Ulid);

impl JobId {
    /// A fresh id, timestamped now, greater than every id this process
    /// generated before: jobs pushed in one millisecond (a batch) keep their
    /// push order when listed by id.
    pub fn generate() -> Self {
        static GENERATOR: Mutex<Generator> = Mutex::new(Generator::new());
        // A poisoned lock only means another thread panicked mid-generate;
        // the generator's state is still a valid last id.
        let mut generator = GENERATOR.lock().unwrap_or_else(PoisonError::into_inner);
        JobId(generator.generate().unwrap_or_else(|overflow| overflow.commit_overflow_random()))
    }

    /// Parses an id given by a client.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field `id` unless `s` is a ULID.
    pub fn parse(s: &str) -> Result<Self> {
        Ulid::from_str(s)
            .map(JobId)
            .map_err(|_| Error::invalid("id", format!("{s:?} is not a job id (a 26-character ULID)")))
    }

    /// When the job was created, from the ULID's timestamp.
    pub fn created_at(&self) -> SystemTime {
        self.0.datetime()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Where a job is in its life cycle, as clients see it.
///
/// Apalis records fewer, different statuses; the storage layer derives this
/// state from them (and from `run_at` and the attempt counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Ready to run.
    Pending,
    /// Waiting for its `scheduled_at`: pushed for later, or backing off.
    Scheduled,
    /// Leased to a worker.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Attempts used up, or failed as non-retryable.
    Dead,
    /// Canceled before it finished.
    Canceled,
}

impl JobState {
    /// Every state, in life-cycle order.
    pub const ALL: [JobState; 6] = [
        JobState::Pending,
        JobState::Scheduled,
        JobState::Running,
        JobState::Succeeded,
        JobState::Dead,
        JobState::Canceled,
    ];

    /// Whether the job will not run again by itself.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Dead | JobState::Canceled)
    }

    /// Lower-case name, for messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Canceled => "canceled",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as stored, with its state derived.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Its queue. A plain string: an embedded Apalis producer may have used a
    /// name Chirpy itself would not accept.
    pub queue: String,
    /// The arguments, as JSON.
    pub payload: serde_json::Value,
    /// Its state.
    pub state: JobState,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts started so far.
    pub attempts: i32,
    /// Attempts allowed before the job is dead.
    pub max_attempts: i32,
    /// When it may run next.
    pub scheduled_at: SystemTime,
    /// When the latest attempt started.
    pub started_at: Option<SystemTime>,
    /// When it reached a final state.
    pub finished_at: Option<SystemTime>,
    /// The error of the latest failed attempt.
    pub last_error: Option<String>,
    /// What the worker returned, once succeeded.
    pub result: Option<serde_json::Value>,
    /// The producer's metadata, without Chirpy's reserved keys.
    pub metadata: BTreeMap<String, String>,
    /// The deduplication key it was pushed with.
    pub idempotency_key: Option<String>,
    /// The current lease, while running on a Chirpy worker.
    pub lease: Option<Lease>,
    /// Its own retry policy, if it was pushed with one.
    pub retry_policy: Option<RetryPolicy>,
}

impl Job {
    /// When the job was created.
    pub fn created_at(&self) -> SystemTime {
        self.id.created_at()
    }

    /// The job's resource name, `queues/{queue}/jobs/{id}`, for messages.
    pub fn name(&self) -> String {
        job_name(&self.queue, &self.id)
    }
}

/// The resource name `queues/{queue}/jobs/{id}`.
pub fn job_name(queue: &str, id: &JobId) -> String {
    format!("queues/{queue}/jobs/{id}")
}

/// A worker's claim on a running job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The worker holding it.
    pub worker_id: String,
    /// When it lapses unless renewed; `None` for an embedded Apalis worker,
    /// whose claim ends with its heartbeats instead.
    pub expires_at: Option<SystemTime>,
}

/// Exponential backoff between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before the first retry.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// Shortest `initial_backoff` a job may ask for: the storages keep
    /// schedule times in whole seconds.
    pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
    /// Longest `max_backoff` a job may ask for.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(30 * 24 * 3600);

    /// Checks a policy given by a client; unset durations take `default`'s.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `retry_policy.initial_backoff` or
    /// `retry_policy.max_backoff` when out of range.
    pub fn parse(
        initial_backoff: Option<Duration>,
        max_backoff: Option<Duration>,
        default: RetryPolicy,
    ) -> Result<Self> {
        let initial_backoff = initial_backoff.unwrap_or(default.initial_backoff);
        let max_backoff = max_backoff.unwrap_or(default.max_backoff.max(initial_backoff));
        if initial_backoff < Self::MIN_BACKOFF || initial_backoff > Self::MAX_BACKOFF {
            return Err(Error::invalid("retry_policy.initial_backoff", "must be between 1s and 30 days"));
        }
        if max_backoff < initial_backoff || max_backoff > Self::MAX_BACKOFF {
            return Err(Error::invalid(
                "retry_policy.max_backoff",
                "must be at least initial_backoff and at most 30 days",
            ));
        }
        Ok(RetryPolicy { initial_backoff, max_backoff })
    }
}

impl RetryPolicy {
    /// The wait before the attempt after `failed_attempt` (1 for the first):
    /// `initial_backoff * 2^(failed_attempt - 1)`, at most `max_backoff`,
    /// with "equal jitter": half of it fixed, half random, so that jobs that
    /// failed together do not all come back at once.
    pub fn backoff(&self, failed_attempt: i32) -> Duration {
        let doublings = failed_attempt.saturating_sub(1).clamp(0, 40) as u32;
        let exponential = self.initial_backoff.saturating_mul(2_u32.saturating_pow(doublings.min(31)));
        let capped = exponential.min(self.max_backoff);
        let half = capped / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

impl Default for RetryPolicy {
    /// One second, doubling up to one hour.
    fn default() -> Self {
        RetryPolicy { initial_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(3600) }
    }
}

/// A job payload: a JSON value, encoded once and checked against the size
/// limit. The bytes are what Apalis stores (its JSON codec's wire format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(Vec<u8>);

impl Payload {
    /// Encodes `value`, checking it fits `limits`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `field` when the encoding is larger
    /// than [`Limits::max_payload_bytes`].
    pub fn encode(field: &str, value: &serde_json::Value, limits: &Limits) -> Result<Self> {
        // A Value always serialises: its map keys are strings.
        let bytes = serde_json::to_vec(value).map_err(|e| Error::invalid(field, e.to_string()))?;
        if bytes.len() > limits.max_payload_bytes {
            return Err(Error::invalid(
                field,
                format!("{} bytes of JSON exceeds the limit of {} bytes", bytes.len(), limits.max_payload_bytes),
            ));
        }
        Ok(Payload(bytes))
    }

    /// The JSON bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A push as the client sent it, before validation.
#[derive(Debug, Clone, Default)]
pub struct JobSpec {
    /// The queue name.
    pub queue: String,
    /// The payload; `None` when the client sent none.
    pub payload: Option<serde_json::Value>,
    /// When it may run; `None` means now.
    pub scheduled_at: Option<SystemTime>,
    /// Priority, zero or more.
    pub priority: i32,
    /// Attempts allowed; 0 means the default.
    pub max_attempts: i32,
    /// Deduplication key; empty means none.
    pub idempotency_key: String,
    /// Metadata.
    pub metadata: HashMap<String, String>,
    /// Retry policy overrides: initial and max backoff, each optional.
    pub retry_policy: Option<(Option<Duration>, Option<Duration>)>,
}

/// A validated push, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The id the job will have, unless it is deduplicated.
    pub id: JobId,
    /// The queue.
    pub queue: QueueName,
    /// The encoded payload.
    pub payload: Payload,
    /// When it may run.
    pub scheduled_at: SystemTime,
    /// Priority.
    pub priority: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Deduplication key.
    pub idempotency_key: Option<String>,
    /// Metadata, without reserved keys.
    pub metadata: BTreeMap<String, String>,
    /// Retry policy, when the push set one.
    pub retry_policy: Option<RetryPolicy>,
}

impl JobSpec {
    /// Validates the push against Chirpy's rules and `limits`, and assigns
    /// the job its id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the first offending field.
    pub fn validate(self, limits: &Limits, default_retry: RetryPolicy) -> Result<NewJob> {
        let queue = QueueName::parse(&self.queue)?;
        let payload =
            self.payload.ok_or_else(|| Error::invalid("payload", "is required (any JSON value, null included)"))?;
        let payload = Payload::encode("payload", &payload, limits)?;
        if self.priority < 0 {
            return Err(Error::invalid("priority", "must be zero or more"));
        }
        let max_attempts = match self.max_attempts {
            0 => DEFAULT_MAX_ATTEMPTS,
            n if (1..=MAX_MAX_ATTEMPTS).contains(&n) => n,
            n => {
                return Err(Error::invalid(
                    "max_attempts",
                    format!("must be between 1 and {MAX_MAX_ATTEMPTS} (or 0 for the default), got {n}"),
                ));
            }
        };
        let idempotency_key = match self.idempotency_key.len() {
            0 => None,
            n if n > MAX_IDEMPOTENCY_KEY_BYTES => {
                return Err(Error::invalid(
                    "idempotency_key",
                    format!("must be at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes, got {n}"),
                ));
            }
            _ => Some(self.idempotency_key),
        };
        let metadata = validate_metadata(self.metadata)?;
        let retry_policy =
            self.retry_policy.map(|(initial, max)| RetryPolicy::parse(initial, max, default_retry)).transpose()?;
        let now = SystemTime::now();
        let scheduled_at = match self.scheduled_at {
            Some(at) => {
                check_timestamp("scheduled_at", at)?;
                at.max(now)
            }
            None => now,
        };
        Ok(NewJob {
            id: JobId::generate(),
            queue,
            payload,
            scheduled_at,
            priority: self.priority,
            max_attempts,
            idempotency_key,
            metadata,
            retry_policy,
        })
    }
}

/// Checks that `at` lies between the Unix epoch and the end of year 9999.
///
/// # Errors
///
/// [`Error::InvalidArgument`] naming `field` otherwise.
pub fn check_timestamp(field: &str, at: SystemTime) -> Result<()> {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) if d.as_secs() <= MAX_TIMESTAMP_SECS as u64 => Ok(()),
        _ => Err(Error::invalid(field, "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z")),
    }
}

fn validate_metadata(metadata: HashMap<String, String>) -> Result<BTreeMap<String, String>> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(Error::invalid(
            "metadata",
            format!("must have at most {MAX_METADATA_ENTRIES} entries, got {}", metadata.len()),
        ));
    }
    let mut checked = BTreeMap::new();
    for (key, value) in metadata {
        check_name(&key, MAX_METADATA_KEY_LEN)
            .map_err(|reason| Error::invalid("metadata", format!("key {key:?}: {reason}")))?;
        if key.starts_with(RESERVED_METADATA_PREFIX) {
            return Err(Error::invalid(
                "metadata",
                format!("key {key:?}: keys starting with {RESERVED_METADATA_PREFIX:?} are reserved"),
            ));
        }
        if value.len() > MAX_METADATA_VALUE_BYTES {
            return Err(Error::invalid(
                "metadata",
                format!("value of {key:?} must be at most {MAX_METADATA_VALUE_BYTES} bytes"),
            ));
        }
        checked.insert(key, value);
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> JobSpec {
        JobSpec { queue: "email".into(), payload: Some(json!({"to": "a@example.com"})), ..JobSpec::default() }
    }

    fn field_of(err: Error) -> String {
        match err {
            Error::InvalidArgument { field, .. } => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    fn validate(spec: JobSpec) -> Result<NewJob> {
        spec.validate(&Limits::default(), RetryPolicy::default())
    }

    #[test]
    fn defaults_are_applied() {
        let job = validate(spec()).unwrap();
        assert_eq!(job.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(job.priority, 0);
        assert_eq!(job.idempotency_key, None);
        assert_eq!(job.payload.as_bytes(), br#"{"to":"a@example.com"}"#);
    }

    #[test]
    fn each_violation_names_its_field() {
        let cases: Vec<(JobSpec, &str)> = vec![
            (JobSpec { queue: "bad queue".into(), ..spec() }, "queue"),
            (JobSpec { payload: None, ..spec() }, "payload"),
            (JobSpec { priority: -1, ..spec() }, "priority"),
            (JobSpec { max_attempts: 1001, ..spec() }, "max_attempts"),
            (JobSpec { max_attempts: -3, ..spec() }, "max_attempts"),
            (JobSpec { idempotency_key: "k".repeat(257), ..spec() }, "idempotency_key"),
            (JobSpec { metadata: HashMap::from([("chirpy.x".into(), "1".into())]), ..spec() }, "metadata"),
            (JobSpec { metadata: HashMap::from([("a b".into(), "1".into())]), ..spec() }, "metadata"),
            (JobSpec { metadata: HashMap::from([("k".into(), "v".repeat(1025))]), ..spec() }, "metadata"),
            (JobSpec { metadata: (0..65).map(|i| (format!("k{i}"), String::new())).collect(), ..spec() }, "metadata"),
            (
                JobSpec { retry_policy: Some((Some(Duration::from_millis(10)), None)), ..spec() },
                "retry_policy.initial_backoff",
            ),
            (
                JobSpec { retry_policy: Some((Some(Duration::from_secs(10)), Some(Duration::from_secs(5)))), ..spec() },
                "retry_policy.max_backoff",
            ),
            (
                JobSpec {
                    scheduled_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(MAX_TIMESTAMP_SECS as u64 + 1)),
                    ..spec()
                },
                "scheduled_at",
            ),
        ];
        for (spec, field) in cases {
            assert_eq!(field_of(validate(spec).unwrap_err()), field);
        }
    }

    #[test]
    fn payload_limit_is_inclusive() {
        let limits = Limits { max_payload_bytes: 10 };
        // "\"abcdefgh\"" is exactly 10 bytes of JSON.
        assert!(Payload::encode("payload", &json!("abcdefgh"), &limits).is_ok());
        let err = Payload::encode("payload", &json!("abcdefghi"), &limits).unwrap_err();
        assert_eq!(err.to_string(), "payload: 11 bytes of JSON exceeds the limit of 10 bytes");
    }

    #[test]
    fn past_schedules_run_now_and_future_ones_are_kept() {
        let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
        let job = validate(JobSpec { scheduled_at: Some(past), ..spec() }).unwrap();
        assert!(job.scheduled_at > past);
        let future = SystemTime::now() + Duration::from_secs(3600);
        let job = validate(JobSpec { scheduled_at: Some(future), ..spec() }).unwrap();
        assert_eq!(job.scheduled_at, future);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let policy = RetryPolicy { initial_backoff: Duration::from_secs(2), max_backoff: Duration::from_secs(60) };
        for (attempt, full) in [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (30, 60), (1000, 60)] {
            for _ in 0..50 {
                let wait = policy.backoff(attempt);
                let full = Duration::from_secs(full);
                assert!(
                    wait >= full / 2 && wait <= full,
                    "attempt {attempt}: {wait:?} outside [{:?}, {full:?}]",
                    full / 2
                );
            }
        }
    }

    #[test]
    fn job_ids_round_trip_and_reject_non_ulids() {
        let id = JobId::generate();
        assert_eq!(JobId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(field_of(JobId::parse("nope").unwrap_err()), "id");
    }
}
