//! The dashboard: apalis-board's UI and API, served by the binary
//! (`CHIRPY_UI`).
//!
//! The UI is apalis-board's prebuilt WebAssembly app. It was compiled to
//! live at `/` and to call its API at `/api/v1`, and it cannot be moved
//! without rebuilding it. So:
//!
//! - `GET /dashboard` (and anything under it) serves its page with a line
//!   of script that shows it the matching path under `/` (`/dashboard/queues`
//!   opens `/queues`);
//! - its assets are served at `/` under their (hashed) names ([`asset`]);
//! - a browser navigating to one of its pages (`/`, `/queues/...`,
//!   `/tasks/...`, `/workers`, `/logs`: a `GET` that accepts `text/html`)
//!   gets the page, so reloads and shared links work; API clients, which do
//!   not ask for HTML, get the JSON API on those paths as before;
//! - its API is [`api`] at `/api/v1`, answered from Chirpy's own store in
//!   apalis-board's types, the same on every storage.

mod api;
mod board;

use std::sync::{Arc, Mutex};

use apalis_board_api::{sse::TracingBroadcaster, ui::ServeUI};
use axum::{
    Router,
    body::Body,
    extract::Path,
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::job_service::Jobs;

/// The dashboard's routes: its page under `/dashboard`, its assets, its API.
pub fn router(jobs: Jobs, broadcaster: Arc<Mutex<TracingBroadcaster>>) -> Router {
    let router = Router::new()
        .route("/dashboard", get(|| async { page("/") }))
        .route("/dashboard/", get(|| async { page("/") }))
        .route("/dashboard/{*path}", get(|Path(path): Path<String>| async move { page(&format!("/{path}")) }));
    router.nest("/api/v1", api::router(jobs, broadcaster))
}

/// Whether a request is a browser opening one of the dashboard's pages
/// directly (a reload, a shared link): it then gets the page, not JSON.
pub fn is_page_navigation(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    let accepts_html =
        headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|accept| accept.contains("text/html"));
    let page = path == "/"
        || ["/queues", "/tasks", "/workers", "/logs"]
            .iter()
            .any(|root| path == *root || path.starts_with(&format!("{root}/")));
    method == Method::GET && accepts_html && page
}

/// The page as served for a navigation: unchanged.
pub fn index() -> Response {
    file("index.html")
}

/// One of the UI's assets (its script, WebAssembly and styles, all at the
/// top level under hashed names), if `path` names one.
pub fn asset(path: &str) -> Option<Response> {
    let name = path.strip_prefix('/')?;
    let is_asset = !name.contains('/') && name.contains('.') && name != "index.html";
    is_asset.then(|| ServeUI::get_file(name).map(|_| file(name))).flatten()
}

/// The page for `/dashboard{path}`: before the app starts, it is shown the
/// address `path`, which its router knows.
fn page(path: &str) -> Response {
    let Some(index) = ServeUI::get_file("index.html") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let html = String::from_utf8_lossy(index.contents());
    let target = serde_json::to_string(path).unwrap_or_else(|_| "\"/\"".into());
    let script = format!("<script>history.replaceState(null, \"\", {target} + location.search);</script>");
    let html = html.replacen("<head>", &format!("<head>\n    {script}"), 1);
    html_response(Body::from(html))
}

fn file(path: &str) -> Response {
    match ServeUI::get_file(path) {
        Some(file) => {
            let name = file.path().to_str().unwrap_or_default();
            let mut response = Response::new(Body::from(file.contents().to_vec()));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ServeUI::content_type(name)));
            if let Some(cache) = ServeUI::cache_control(name) {
                headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static(cache));
            }
            response
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn html_response(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/html; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    response
}
