//! The one error type of Chirpy's domain and storage layers.

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request could not be carried out.
///
/// Each variant maps to one gRPC code in the server (`From<Error> for
/// tonic::Status`); messages name the offending field or resource so that a
/// client can act on them without reading server logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resource does not exist, e.g. `job queues/email/jobs/01J... not found`.
    #[error("{what} not found")]
    NotFound {
        /// The resource, as `queues/{queue}/jobs/{id}`.
        what: String,
    },

    /// A field of the request is malformed or out of its range.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The field, as the API names it (`payload`, `jobs[3].queue`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The request is valid, but the resource is not in a state that allows
    /// it, e.g. canceling a job that already succeeded.
    #[error("{reason}")]
    FailedPrecondition {
        /// Why the request does not apply now.
        reason: String,
    },

    /// The storage cannot be reached right now; the request may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] BoxError),

    /// The storage failed in a way retrying will not fix.
    #[error("storage error: {0}")]
    Storage(#[source] BoxError),
}

/// A boxed error from a lower layer (sqlx, redis, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// An [`Error::InvalidArgument`] for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { field: field.into(), reason: reason.into() }
    }

    /// An [`Error::FailedPrecondition`].
    pub fn precondition(reason: impl Into<String>) -> Self {
        Error::FailedPrecondition { reason: reason.into() }
    }

    /// An [`Error::NotFound`] for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// Renames the field of an [`Error::InvalidArgument`], for a value parsed
    /// by a type that names its usual field (`JobId::parse` says `id`; in a
    /// list that is `ids[3]`). Other variants are returned unchanged.
    #[must_use]
    pub fn for_field(self, field: &str) -> Self {
        match self {
            Error::InvalidArgument { reason, .. } => Error::InvalidArgument { field: field.to_owned(), reason },
            other => other,
        }
    }

    /// Prefixes the field of an [`Error::InvalidArgument`], so that errors of
    /// a nested message name their full path (`jobs[3]` + `payload` gives
    /// `jobs[3].payload`). Other variants are returned unchanged.
    #[must_use]
    pub fn within(self, prefix: &str) -> Self {
        match self {
            Error::InvalidArgument { field, reason } => {
                Error::InvalidArgument { field: format!("{prefix}.{field}"), reason }
            }
            other => other,
        }
    }
}
