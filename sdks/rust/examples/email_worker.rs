//! The product page's worker, verbatim but for where the URL comes from:
//! `CHIRPY_URL` if set (the tests point it at their server), else the page's.
//!
//! ```sh
//! CHIRPY_URL=http://127.0.0.1:7000 cargo run -p chirpy-client --example email_worker
//! curl localhost:7000/queues/email/jobs -H 'content-type: application/json' \
//!      -d '{"payload": {"to": "user@example.com", "subject": "Welcome"}}'
//! ```
use apalis::prelude::*;
use chirpy_client::ChirpyBackend;
use serde::{Deserialize, Serialize};

/// The payload the product page pushes.
#[derive(Debug, Serialize, Deserialize)]
struct Email {
    to: String,
    #[serde(default)]
    subject: String,
}

async fn send_email(email: Email) -> Result<(), BoxDynError> {
    // handler logic
    println!("sending {:?} to {}", email.subject, email.to);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxDynError> {
    let url = std::env::var("CHIRPY_URL").unwrap_or_else(|_| "http://chirpy.internal:7000".into());
    let backend = ChirpyBackend::connect(url).queue("email").await?;

    WorkerBuilder::new("email-worker").backend(backend).enable_tracing().build(send_email).run().await?;
    Ok(())
}
