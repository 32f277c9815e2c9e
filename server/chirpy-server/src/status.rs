//! The one mapping from Chirpy's [`Error`] to a gRPC [`Status`].
//!
//! Invalid arguments also carry a `google.rpc.BadRequest` detail naming the
//! field, so typed clients (and the HTTP/JSON `details` array) can point at
//! it without parsing the message.

use chirpy_core::Error;
use chirpy_proto::rpc;
use prost::Message;
use tonic::{Code, Status};

/// Converts a domain error, logging what the client will not see.
pub fn to_status(err: Error) -> Status {
    match err {
        Error::NotFound { .. } => Status::not_found(err.to_string()),
        Error::InvalidArgument { ref field, ref reason } => {
            let violation = rpc::bad_request::FieldViolation {
                field: field.clone(),
                description: reason.clone(),
                ..Default::default()
            };
            let detail = prost_types::Any {
                type_url: "type.googleapis.com/google.rpc.BadRequest".into(),
                value: rpc::BadRequest { field_violations: vec![violation] }.encode_to_vec(),
            };
            with_details(Code::InvalidArgument, err.to_string(), vec![detail])
        }
        Error::FailedPrecondition { .. } => Status::failed_precondition(err.to_string()),
        Error::Unavailable(ref cause) => {
            tracing::warn!(cause = %cause, "storage unavailable");
            Status::unavailable("storage unavailable; retry later")
        }
        Error::Storage(ref cause) => {
            tracing::error!(cause = %cause, "storage error");
            Status::internal("internal storage error; see the server log")
        }
    }
}

fn with_details(code: Code, message: String, details: Vec<prost_types::Any>) -> Status {
    let status = rpc::Status { code: code as i32, message: message.clone(), details };
    Status::with_details(code, message, status.encode_to_vec().into())
}
