//! Every limit a request is checked against.
//!
//! The fixed limits are constants, documented in the proto and the README;
//! the ones an operator may change live in [`Limits`]. A request that breaks
//! one is rejected whole with [`Error::InvalidArgument`](crate::Error) naming
//! the field, and nothing is stored.

/// Longest queue name, in characters.
pub const MAX_QUEUE_NAME_LEN: usize = 128;
/// Longest name of a queue looked up as stored (an embedded Apalis
/// producer's name, which Chirpy does not check), in bytes.
pub const MAX_STORED_QUEUE_NAME_LEN: usize = 1024;
/// Longest worker id, in characters.
pub const MAX_WORKER_ID_LEN: usize = 128;
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;
/// Most metadata entries on one job.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// Longest metadata key, in characters.
pub const MAX_METADATA_KEY_LEN: usize = 128;
/// Longest metadata value, in bytes.
pub const MAX_METADATA_VALUE_BYTES: usize = 1024;
/// Metadata keys with this prefix are Chirpy's own.
pub const RESERVED_METADATA_PREFIX: &str = "chirpy.";
/// Attempts a job gets when the push does not say.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 25;
/// Most attempts a push may ask for.
pub const MAX_MAX_ATTEMPTS: i32 = 1000;
/// Most jobs in one batch push.
pub const MAX_BATCH_JOBS: usize = 1000;
/// Page size of a list call that does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page a list call may ask for.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Latest accepted timestamp: 9999-12-31T23:59:59Z, the end of RFC 3339.
pub const MAX_TIMESTAMP_SECS: i64 = 253_402_300_799;
/// Longest error message kept from a failed attempt, in bytes.
pub const MAX_ERROR_BYTES: usize = 16 * 1024;
/// Most queues one lease call or worker may name.
pub const MAX_WORKER_QUEUES: usize = 16;
/// Most jobs one lease call may ask for.
pub const MAX_LEASE_JOBS: usize = 1000;
/// Most running jobs one heartbeat may report.
pub const MAX_HEARTBEAT_JOBS: usize = 10_000;
/// Longest wait of a lease call.
pub const MAX_LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// Wait of a lease call that does not say.
pub const DEFAULT_LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
/// Payload limit when the operator does not set one: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// The limits an operator can configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest job payload (and job result), in bytes of JSON.
    pub max_payload_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES }
    }
}
