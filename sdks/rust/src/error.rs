//! The client's one error type.

/// What went wrong talking to Chirpy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server URL is not a valid URI.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The server could not be reached.
    #[error("cannot connect to Chirpy: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The server answered with an error status.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// A payload or result is not valid JSON for its type.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A job's payload holds a number JSON cannot (NaN or infinity).
    #[error("{0}")]
    NotJson(#[from] chirpy_proto::json::NotJson),
    /// The server returned a response without a field it always sets.
    #[error("the server's response has no {0}")]
    Incomplete(&'static str),
}

impl Error {
    /// The gRPC code, when the server answered with an error.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status(status) => Some(status.code()),
            _ => None,
        }
    }
}

/// Connects a gRPC channel to `url`.
pub(crate) async fn channel(url: String) -> Result<tonic::transport::Channel, Error> {
    let endpoint = tonic::transport::Channel::from_shared(url.clone())
        .map_err(|e| Error::InvalidUrl { url, reason: e.to_string() })?
        .tcp_nodelay(true);
    Ok(endpoint.connect().await?)
}
