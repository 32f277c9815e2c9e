//! The one listener: gRPC, gRPC-web and HTTP/JSON on the same port.
//!
//! Request routing, from the outside in: CORS for browsers on other origins;
//! then the gRPC services (with gRPC-web translated in front of them only,
//! because tonic-web rejects every other HTTP/1.1 request); then plain HTTP
//! routes (`/healthz`, `/metrics`, the dashboard); everything else falls through to the HTTP/JSON
//! transcoder built from the proto's `google.api.http` annotations.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use apalis_board_api::sse::TracingBroadcaster;

use axum::{http::HeaderName, routing::get};
use chirpy_core::Limits;
use chirpy_proto::{
    FILE_DESCRIPTOR_SET,
    v1::{job_service_server::JobServiceServer, worker_service_server::WorkerServiceServer},
};
use chirpy_storage::JobStore;
use chirpy_transcode::{self as transcode, Transcoder};
use tokio::net::TcpListener;
use tonic::{service::Routes, transport::server::TcpIncoming};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::{
    config::Config, dashboard, health, job_service::Jobs, metrics, reaper, shutdown::Shutdown, worker_service::Workers,
};

/// Serves until `shutdown`, then lets in-flight requests finish.
///
/// # Errors
///
/// When the descriptor set cannot be read (a build defect) or the listener
/// fails.
pub async fn serve(
    config: &Config,
    store: Arc<dyn JobStore>,
    listener: TcpListener,
    shutdown: Shutdown,
    log_broadcaster: Arc<Mutex<TracingBroadcaster>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let max_message = config.max_request_bytes();
    let limits = Limits { max_payload_bytes: config.max_payload_bytes };
    let jobs = Jobs { store: store.clone(), limits, default_retry: config.default_retry() };
    let dashboard = config.ui.then(|| dashboard::router(jobs.clone(), log_broadcaster));
    let workers = Workers { store: store.clone(), limits, lease_ttl: config.lease_ttl, shutdown: shutdown.clone() };
    tokio::spawn(reaper::run(store.clone(), config.lease_ttl, shutdown.clone()));

    let (reporter, health_service) = tonic_health::server::health_reporter();
    health::start(store.clone(), reporter, shutdown.clone()).await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let grpc = Routes::new(
        JobServiceServer::new(jobs).max_decoding_message_size(max_message).max_encoding_message_size(max_message),
    )
    .add_service(
        WorkerServiceServer::new(workers).max_decoding_message_size(max_message).max_encoding_message_size(max_message),
    )
    .add_service(health_service)
    .add_service(reflection().build_v1()?)
    .add_service(reflection().build_v1alpha()?);

    let rest = Transcoder::new(FILE_DESCRIPTOR_SET, grpc.clone(), transcode::Options { max_body_bytes: max_message })?;
    for route in rest.routes() {
        tracing::debug!(%route, "HTTP/JSON route");
    }
    let openapi = Arc::new(rest.openapi("Chirpy", env!("CARGO_PKG_VERSION")));

    let mut app = grpc
        .into_axum_router()
        .layer(tonic_web::GrpcWebLayer::new())
        .route("/healthz", get(health::healthz).with_state(store.clone()))
        .route("/openapi.json", get(move || async move { axum::Json(openapi.as_ref().clone()) }));
    if config.metrics {
        let scrape = metrics::install(store.clone())?;
        app = app.route("/metrics", get(metrics::serve).with_state(scrape));
    }
    let ui = dashboard.is_some();
    if let Some(dashboard) = dashboard {
        app = app.merge(dashboard);
    }
    let mut app = app.fallback(move |request: axum::extract::Request| async move {
        if ui {
            if dashboard::is_page_navigation(request.method(), request.uri().path(), request.headers()) {
                return dashboard::index();
            }
            if let Some(asset) = dashboard::asset(request.uri().path()) {
                return asset;
            }
        }
        rest.handle(request).await
    });
    if config.metrics {
        app = app.layer(axum::middleware::from_fn(metrics::requests::track));
    }

    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut shutdown = shutdown;
    tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(cors())
        .add_routes(Routes::from(app))
        .serve_with_incoming_shutdown(incoming, async move { shutdown.wait().await })
        .await?;
    Ok(())
}

/// CORS for browsers calling gRPC-web or the JSON API from another origin:
/// any origin, method and header, and the gRPC trailers exposed so that
/// gRPC-web clients can read the status.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(24 * 3600))
}
