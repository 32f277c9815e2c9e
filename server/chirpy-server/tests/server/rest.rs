//! The HTTP/JSON API of SPEC §5, transcoded from the proto's annotations:
//! every route over HTTP/1.1 and h2c, the product page's snippets verbatim,
//! the bad-input table, and the OpenAPI document.

use std::{path::Path, process::Command};

use bytes::Bytes;
use chirpy_testing::{Storage, TestServer, each_storage};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};

use crate::support::{CHIRPY, server};

/// An HTTP client for one protocol version.
#[derive(Clone)]
pub struct Http {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    pub fn http1(server: &TestServer) -> Self {
        Http { client: Client::builder(TokioExecutor::new()).build_http(), base: server.url() }
    }

    pub fn h2c(server: &TestServer) -> Self {
        Http { client: Client::builder(TokioExecutor::new()).http2_only(true).build_http(), base: server.url() }
    }

    /// Sends a request; returns status, headers and body (JSON when it parses).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> (u16, http::HeaderMap, Value) {
        let mut request = http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = self.client.request(request.body(Full::new(body.into())).unwrap()).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, body)
    }

    /// Sends a bodiless request with extra headers.
    pub async fn send_with(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, http::HeaderMap, Value) {
        let mut request = http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.client.request(request.body(Full::new(Bytes::new())).unwrap()).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, body)
    }

    pub async fn json(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let (status, _, body) = self.send(method, path, Some("application/json"), body.to_string()).await;
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, body) = self.send("GET", path, None, Bytes::new()).await;
        (status, body)
    }
}

/// Runs the SPEC §5 routes on one protocol.
async fn every_route(http: Http) {
    // POST /queues/{queue}/jobs, with the product page's body.
    let body = json!({
        "payload": { "to": "user@example.com", "subject": "Welcome" },
        "queue": "email",
        "scheduled_at": "2099-07-01T09:00:00Z"
    });
    let (status, pushed) = http.json("POST", "/queues/email/jobs", body).await;
    assert_eq!(status, 200, "{pushed}");
    let job = &pushed["job"];
    assert_eq!(job["state"], "JOB_STATE_SCHEDULED");
    assert_eq!(job["scheduledAt"], "2099-07-01T09:00:00Z");
    assert_eq!(job["payload"], json!({ "to": "user@example.com", "subject": "Welcome" }));
    assert_eq!(job["attempts"], 0, "every field is emitted, defaults included");
    let id = job["id"].as_str().unwrap().to_owned();

    // lowerCamelCase is accepted as well as proto names.
    let (status, other) =
        http.json("POST", "/queues/email/jobs", json!({"payload": 1, "maxAttempts": 3, "idempotencyKey": "k1"})).await;
    assert_eq!(status, 200, "{other}");
    assert_eq!(other["job"]["maxAttempts"], 3);

    // GET /queues/{queue}/jobs/{id}
    let (status, got) = http.get(&format!("/queues/email/jobs/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["job"]["id"], id.as_str());

    // GET /queues/{queue}/jobs with a state filter (by name) and paging.
    let (status, listed) = http.get("/queues/email/jobs?state=JOB_STATE_SCHEDULED&page_size=10").await;
    assert_eq!(status, 200);
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);
    let (_, page) = http.get("/queues/email/jobs?pageSize=1").await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    let token = page["nextPageToken"].as_str().unwrap();
    assert!(!token.is_empty());
    let (status, next) = http.get(&format!("/queues/email/jobs?pageSize=1&pageToken={token}")).await;
    assert_eq!(status, 200);
    assert_ne!(next["jobs"][0]["id"], page["jobs"][0]["id"]);

    // GET /queues and GET /workers
    let (status, queues) = http.get("/queues").await;
    assert_eq!(status, 200);
    assert_eq!(queues["queues"][0]["name"], "email");
    assert_eq!(queues["queues"][0]["scheduled"], "1", "int64 counts are strings in proto3 JSON");
    let (status, workers) = http.get("/workers").await;
    assert_eq!(status, 200);
    assert_eq!(workers, json!({"workers": []}));

    // DELETE /queues/{queue}/jobs/{id} cancels; a second time is a 400.
    let (status, canceled) = http.json("DELETE", &format!("/queues/email/jobs/{id}"), Value::Null).await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["job"]["state"], "JOB_STATE_CANCELED");
    let (status, again) = http.get(&format!("/queues/email/jobs/{id}")).await;
    assert_eq!((status, &again["job"]["state"]), (200, &json!("JOB_STATE_CANCELED")));
    let (status, err) = http.json("DELETE", &format!("/queues/email/jobs/{id}"), Value::Null).await;
    assert_eq!((status, &err["code"]), (400, &json!(9)), "FAILED_PRECONDITION: {err}");

    // Custom methods: :batchPush and :retry.
    let (status, batch) = http
        .json("POST", "/queues/bulk/jobs:batchPush", json!({"jobs": [{"payload": 1}, {"payload": {"two": 2}}]}))
        .await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["results"].as_array().unwrap().len(), 2);
    let bulk_id = batch["results"][0]["job"]["id"].as_str().unwrap();
    let (status, err) = http.json("POST", &format!("/queues/bulk/jobs/{bulk_id}:retry"), json!({})).await;
    assert_eq!((status, &err["code"]), (400, &json!(9)), "only dead jobs retry: {err}");
    let (status, err) = http.get("/queues/email/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV").await;
    assert_eq!((status, &err["code"]), (404, &json!(5)));
}

each_storage!(every_spec_route_answers_over_http1, |storage| async move {
    let server = server(storage).await;
    every_route(Http::http1(&server)).await;
});

each_storage!(every_spec_route_answers_over_h2c, |storage| async move {
    let server = server(storage).await;
    every_route(Http::h2c(&server)).await;
});

each_storage!(bad_input_gets_a_status_json_and_stores_nothing, |storage| async move {
    let server = TestServer::builder(storage).binary(CHIRPY).env("CHIRPY_MAX_PAYLOAD_BYTES", "1024").start().await;
    let http = Http::http1(&server);
    let json = Some("application/json");
    // method, path, content type, body, HTTP status, google.rpc.Code
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Bytes, u16, i64);
    let cases: Vec<Case> = vec![
        ("POST", "/queues/email/jobs", json, Bytes::from_static(b"{\"payload\": "), 400, 3),
        ("POST", "/queues/email/jobs", json, Bytes::from_static(b"[1, 2]"), 400, 3),
        ("POST", "/queues/email/jobs", json, Bytes::from_static(b"{\"payload\": 1, \"priority\": \"high\"}"), 400, 3),
        (
            "POST",
            "/queues/email/jobs",
            json,
            Bytes::from_static(b"{\"payload\": 1, \"scheduled_at\": \"tomorrow\"}"),
            400,
            3,
        ),
        (
            "POST",
            "/queues/email/jobs",
            json,
            Bytes::from_static(b"{\"payload\": 1, \"scheduled_at\": \"10000-01-01T00:00:00Z\"}"),
            400,
            3,
        ),
        ("POST", "/queues/email/jobs", json, Bytes::from_static(b"{\"payload\": 1, \"metadata\": {\"k\": 5}}"), 400, 3),
        ("POST", "/queues/email/jobs", json, Bytes::from_static(b"{\"payload\": 1, \"queue\": \"sms\"}"), 400, 3),
        ("POST", "/queues/email/jobs", json, Bytes::from(format!("{{\"payload\": \"{}\"}}", "x".repeat(2000))), 400, 3),
        ("POST", "/queues/bad%20queue/jobs", json, Bytes::from_static(b"{\"payload\": 1}"), 400, 3),
        ("POST", "/queues/email/jobs", Some("text/plain"), Bytes::from_static(b"{\"payload\": 1}"), 415, 3),
        (
            "POST",
            "/queues/email/jobs",
            Some("application/x-www-form-urlencoded"),
            Bytes::from_static(b"payload=1"),
            415,
            3,
        ),
        ("GET", "/queues/email/jobs?state=JOB_STATE_NOPE", None, Bytes::new(), 400, 3),
        ("GET", "/queues/email/jobs?page_size=lots", None, Bytes::new(), 400, 3),
        ("GET", "/queues/email/jobs?page_size=5000", None, Bytes::new(), 400, 3),
        ("GET", "/queues/email/jobs/not-a-ulid", None, Bytes::new(), 400, 3),
        ("GET", "/no/such/route", None, Bytes::new(), 404, 5),
        ("PUT", "/queues/email/jobs", json, Bytes::from_static(b"{}"), 405, 12),
        ("PATCH", "/queues", json, Bytes::from_static(b"{}"), 405, 12),
    ];
    for (method, path, content_type, body, want_status, want_code) in cases {
        let (status, headers, reply) = http.send(method, path, content_type, body).await;
        assert_eq!(status, want_status, "{method} {path}: {reply}");
        assert_eq!(reply["code"], want_code, "{method} {path}: {reply}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()), "{reply}");
        assert!(reply["details"].is_array(), "{reply}");
        assert_eq!(headers["content-type"], "application/json");
        if status == 405 {
            assert!(headers.contains_key("allow"), "{method} {path}");
        }
    }
    // A body over the request limit (16 MiB) is refused from its Content-Length,
    // before it is sent: a client writing it would only see the connection close.
    let (status, reply) = announce_body(&server, "/queues/email/jobs", 17 << 20).await;
    assert_eq!((status, &reply["code"]), (413, &json!(8)), "{reply}");
    // A payload over the limit names the field.
    let (_, _, reply) =
        http.send("POST", "/queues/email/jobs", json, format!("{{\"payload\": \"{}\"}}", "x".repeat(2000))).await;
    assert!(reply["message"].as_str().unwrap().starts_with("payload: "), "{reply}");
    assert_eq!(reply["details"][0]["@type"], "type.googleapis.com/google.rpc.BadRequest", "{reply}");
    assert_eq!(reply["details"][0]["fieldViolations"][0]["field"], "payload", "{reply}");
    // Nothing was stored by any of them.
    assert_eq!(http.get("/queues").await.1, json!({"queues": [], "nextPageToken": ""}));
});

/// Sends only the headers of a POST announcing `length` bytes of JSON, and
/// reads the answer: status and JSON body.
async fn announce_body(server: &TestServer, path: &str, length: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: chirpy\r\ncontent-type: application/json\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

each_storage!(the_product_page_snippets_run_verbatim, |storage| async move {
    let server = server(storage).await;
    let snippets = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snippets");
    let dir = tempfile::tempdir().unwrap();
    let retarget = |text: String| text.replace("http://chirpy.internal:7000", &server.url());

    let python = retarget(std::fs::read_to_string(snippets.join("push.py")).unwrap());
    let script = dir.path().join("push.py");
    std::fs::write(&script, python).unwrap();
    let status = Command::new(crate::support::python()).arg(&script).status().unwrap();
    assert!(status.success(), "the Python snippet failed");

    let go = retarget(std::fs::read_to_string(snippets.join("push.go")).unwrap());
    let program = format!("package main\n\nimport (\n\t\"net/http\"\n\t\"strings\"\n)\n\nfunc main() {{\n{go}}}\n");
    std::fs::write(dir.path().join("main.go"), program).unwrap();
    let status = Command::new("go")
        .args(["run", "main.go"])
        .current_dir(dir.path())
        .env("GOFLAGS", "-mod=mod")
        .status()
        .unwrap();
    assert!(status.success(), "the Go snippet failed");

    let http = Http::http1(&server);
    let (_, listed) = http.get("/queues/email/jobs").await;
    let payloads: Vec<_> = listed["jobs"].as_array().unwrap().iter().map(|j| j["payload"].clone()).collect();
    assert_eq!(payloads, [json!({"to": "user@example.com", "subject": "Welcome"}), json!({"to": "user@example.com"})]);
});

#[tokio::test]
async fn json_numbers_come_back_as_they_went_in() {
    let server = server(Storage::Sqlite).await;
    let http = Http::http1(&server);
    let body = r#"{"payload": {"n": 1, "list": [-2, 2.5, 0], "big": 9007199254740992}}"#;
    let (status, _, _) = http.send("POST", "/queues/numbers/jobs", Some("application/json"), body).await;
    assert_eq!(status, 200);
    let (_, _, listed) = http.send("GET", "/queues/numbers/jobs", None, Bytes::new()).await;
    // Compared as text: serde_json would take 1.0 for 1 once parsed.
    let payload = listed["jobs"][0]["payload"].to_string();
    assert_eq!(payload, r#"{"big":9007199254740992,"list":[-2,2.5,0],"n":1}"#);
}

#[tokio::test]
async fn the_openapi_document_validates_and_fuzzing_finds_no_server_error() {
    let server = server(Storage::Sqlite).await;
    let (status, document) = Http::http1(&server).get("/openapi.json").await;
    assert_eq!(status, 200);
    for path in ["/queues/{queue}/jobs", "/queues/{queue}/jobs/{id}", "/queues", "/workers"] {
        assert!(document["paths"].get(path).is_some(), "{path} missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document.to_string()).unwrap();
    let python = crate::support::python();
    let status = Command::new(&python).args(["-m", "openapi_spec_validator"]).arg(&file).status().unwrap();
    assert!(status.success(), "openapi-spec-validator rejected /openapi.json");

    // A bounded schemathesis run: any 5xx fails it.
    let output = Command::new(&python)
        .args(["-m", "schemathesis.cli", "run", &format!("{}/openapi.json", server.url())])
        .args(["--checks", "not_a_server_error", "--max-examples", "25", "--seed", "1", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "schemathesis found problems:\n{report}");
}
