//! [`Client`]: push and manage jobs.

use std::time::SystemTime;

use chirpy_proto::{
    json,
    v1::{self as pb, job_service_client::JobServiceClient},
};
use serde::Serialize;
use tonic::transport::Channel;

use crate::error::{Error, channel};

/// A connection to Chirpy's `JobService`. Cheap to clone; clones share the
/// connection.
///
/// ```no_run
/// # async fn example() -> Result<(), chirpy_client::Error> {
/// use chirpy_client::{Client, PushOptions};
///
/// let client = Client::connect("http://127.0.0.1:7000").await?;
/// let job = client.push("email", &serde_json::json!({"to": "user@example.com"})).await?;
/// let later = PushOptions::new().priority(5).idempotency_key("welcome-42");
/// let pushed = client.push_with("email", &serde_json::json!({"to": "b@example.com"}), later).await?;
/// println!("{} {}", job.id, pushed.deduplicated);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    jobs: JobServiceClient<Channel>,
}

/// Optional settings of a push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    request: pb::PushJobRequest,
}

/// The outcome of a push.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The job as stored.
    pub job: pb::Job,
    /// True when an existing job with the same idempotency key was returned.
    pub deduplicated: bool,
}

impl PushOptions {
    /// No options: run now, priority 0, 25 attempts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run no earlier than `at`.
    #[must_use]
    pub fn scheduled_at(mut self, at: SystemTime) -> Self {
        self.request.scheduled_at = Some(at.into());
        self
    }

    /// Higher runs first (zero or more).
    #[must_use]
    pub fn priority(mut self, priority: i32) -> Self {
        self.request.priority = priority;
        self
    }

    /// Attempts before the job is dead (1 to 1000).
    #[must_use]
    pub fn max_attempts(mut self, max_attempts: i32) -> Self {
        self.request.max_attempts = max_attempts;
        self
    }

    /// Deduplicates pushes within the queue.
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.request.idempotency_key = key.into();
        self
    }

    /// Adds a metadata pair.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.metadata.insert(key.into(), value.into());
        self
    }

    /// The job's own exponential backoff between attempts.
    #[must_use]
    pub fn retry_policy(mut self, initial_backoff: std::time::Duration, max_backoff: std::time::Duration) -> Self {
        let duration = |d: std::time::Duration| prost_types::Duration::try_from(d).unwrap_or_default();
        self.request.retry_policy = Some(pb::RetryPolicy {
            initial_backoff: Some(duration(initial_backoff)),
            max_backoff: Some(duration(max_backoff)),
        });
        self
    }

    /// The request for `payload` on `queue` with these options.
    pub(crate) fn request(mut self, queue: &str, payload: prost_types::Value) -> pb::PushJobRequest {
        self.request.queue = queue.to_owned();
        self.request.payload = Some(payload);
        self.request
    }
}

impl Client {
    /// Connects to the Chirpy server at `url` (`http://host:7000`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] or [`Error::Connect`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, Error> {
        Ok(Self::from_channel(channel(url.into()).await?))
    }

    /// A client on an existing channel (e.g. one with TLS or interceptors).
    pub fn from_channel(channel: Channel) -> Self {
        Client { jobs: JobServiceClient::new(channel) }
    }

    /// Pushes `payload` to `queue` to run now.
    ///
    /// # Errors
    ///
    /// [`Error::Status`] when the server rejects it, e.g. `INVALID_ARGUMENT`.
    pub async fn push<T: Serialize + ?Sized>(&self, queue: &str, payload: &T) -> Result<pb::Job, Error> {
        Ok(self.push_with(queue, payload, PushOptions::new()).await?.job)
    }

    /// Pushes `payload` to `queue` with `options`.
    ///
    /// # Errors
    ///
    /// [`Error::Status`] when the server rejects it.
    pub async fn push_with<T: Serialize + ?Sized>(
        &self,
        queue: &str,
        payload: &T,
        options: PushOptions,
    ) -> Result<Pushed, Error> {
        let request = options.request(queue, json::from_json(serde_json::to_value(payload)?));
        let response = self.jobs.clone().push_job(request).await?.into_inner();
        Ok(Pushed { job: response.job.ok_or(Error::Incomplete("job"))?, deduplicated: response.deduplicated })
    }

    /// Pushes many payloads to `queue` in one transaction: all or none.
    ///
    /// # Errors
    ///
    /// [`Error::Status`] when the server rejects any of them.
    pub async fn batch_push<T: Serialize>(
        &self,
        queue: &str,
        payloads: impl IntoIterator<Item = T>,
    ) -> Result<Vec<pb::Job>, Error> {
        let jobs = payloads
            .into_iter()
            .map(|p| Ok(PushOptions::new().request("", json::from_json(serde_json::to_value(&p)?))))
            .collect::<Result<Vec<_>, Error>>()?;
        let request = pb::BatchPushJobsRequest { queue: queue.to_owned(), jobs };
        let response = self.jobs.clone().batch_push_jobs(request).await?.into_inner();
        response.results.into_iter().map(|r| r.job.ok_or(Error::Incomplete("job"))).collect()
    }

    /// Pushes many payloads to `queue`, each with its own options, in one
    /// transaction: all or none. The results are in the order given.
    ///
    /// # Errors
    ///
    /// [`Error::Status`] when the server rejects any of them.
    pub async fn batch_push_with<T: Serialize>(
        &self,
        queue: &str,
        jobs: impl IntoIterator<Item = (T, PushOptions)>,
    ) -> Result<Vec<Pushed>, Error> {
        let jobs = jobs
            .into_iter()
            .map(|(payload, options)| Ok(options.request("", json::from_json(serde_json::to_value(&payload)?))))
            .collect::<Result<Vec<_>, Error>>()?;
        let request = pb::BatchPushJobsRequest { queue: queue.to_owned(), jobs };
        let response = self.jobs.clone().batch_push_jobs(request).await?.into_inner();
        response
            .results
            .into_iter()
            .map(|r| Ok(Pushed { job: r.job.ok_or(Error::Incomplete("job"))?, deduplicated: r.deduplicated }))
            .collect()
    }

    /// Returns a job.
    ///
    /// # Errors
    ///
    /// [`Error::Status`] with `NOT_FOUND` for an unknown job.
    pub async fn get(&self, queue: &str, id: &str) -> Result<pb::Job, Error> {
        let request = pb::GetJobRequest { queue: queue.to_owned(), id: id.to_owned() };
        self.jobs.clone().get_job(request).await?.into_inner().job.ok_or(Error::Incomplete("job"))
    }

    /// Lists a page of `queue`'s jobs, oldest first, optionally in one state.
    /// Returns the jobs and the token of the next page, if any.
    ///
    /// # Errors
    ///
    /// [`Error::Status`] for a bad page size or token.
    pub async fn list(
        &self,
        queue: &str,
        state: Option<pb::JobState>,
        page_size: i32,
        page_token: Option<String>,
    ) -> Result<(Vec<pb::Job>, Option<String>), Error> {
        let request = pb::ListJobsRequest {
            queue: queue.to_owned(),
            state: state.unwrap_or(pb::JobState::Unspecified).into(),
            page_size,
            page_token: page_token.unwrap_or_default(),
        };
        let response = self.jobs.clone().list_jobs(request).await?.into_inner();
        let next = (!response.next_page_token.is_empty()).then_some(response.next_page_token);
        Ok((response.jobs, next))
    }

    /// Cancels a job that has not finished.
    ///
    /// # Errors
    ///
    /// [`Error::Status`] with `FAILED_PRECONDITION` for a finished job.
    pub async fn cancel(&self, queue: &str, id: &str) -> Result<pb::Job, Error> {
        let request = pb::CancelJobRequest { queue: queue.to_owned(), id: id.to_owned() };
        self.jobs.clone().cancel_job(request).await?.into_inner().job.ok_or(Error::Incomplete("job"))
    }

    /// Brings a dead job back to pending.
    ///
    /// # Errors
    ///
    /// [`Error::Status`] with `FAILED_PRECONDITION` unless the job is dead.
    pub async fn retry(&self, queue: &str, id: &str) -> Result<pb::Job, Error> {
        let request = pb::RetryJobRequest { queue: queue.to_owned(), id: id.to_owned() };
        self.jobs.clone().retry_job(request).await?.into_inner().job.ok_or(Error::Incomplete("job"))
    }

    /// Retries every dead job of `queue`; returns their ids.
    ///
    /// # Errors
    ///
    /// [`Error::Status`] for a bad queue name.
    pub async fn retry_dead(&self, queue: &str) -> Result<Vec<String>, Error> {
        let request = pb::BatchRetryJobsRequest { queue: queue.to_owned(), ids: Vec::new() };
        Ok(self.jobs.clone().batch_retry_jobs(request).await?.into_inner().retried_ids)
    }

    /// Lists every queue with its per-state counts.
    ///
    /// # Errors
    ///
    /// [`Error::Status`] when the storage fails.
    pub async fn queues(&self) -> Result<Vec<pb::Queue>, Error> {
        let mut queues = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = pb::ListQueuesRequest { page_size: 1000, page_token };
            let response = self.jobs.clone().list_queues(request).await?.into_inner();
            queues.extend(response.queues);
            if response.next_page_token.is_empty() {
                return Ok(queues);
            }
            page_token = response.next_page_token;
        }
    }

    /// Lists the workers heard from in the last five minutes.
    ///
    /// # Errors
    ///
    /// [`Error::Status`] when the storage fails.
    pub async fn workers(&self) -> Result<Vec<pb::Worker>, Error> {
        Ok(self.jobs.clone().list_workers(pb::ListWorkersRequest {}).await?.into_inner().workers)
    }

    /// The payload of `job` decoded as `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] when it does not decode.
    pub fn payload<T: serde::de::DeserializeOwned>(job: &pb::Job) -> Result<T, Error> {
        let value = job.payload.clone().map(json::to_json).transpose()?.unwrap_or_default();
        Ok(serde_json::from_value(value)?)
    }
}
