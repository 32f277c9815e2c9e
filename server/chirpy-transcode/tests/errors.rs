//! Client mistakes and service errors: each is a google.rpc.Status JSON body
//! with grpc-gateway's HTTP status, and a bad annotation stops the build.

mod support;

use http::StatusCode;
use serde_json::json;
use support::{assert_invalid, echo_source, echo_transcoder, send};

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn a_path_variable_and_a_different_body_value_conflict() {
    let t = echo_transcoder(None);
    let r = send(&t, "POST", "/v1/queues/email/things", &[JSON], r#"{"queue":"sms"}"#).await;
    assert_invalid(&r, "queue");
    assert_eq!(r.json["message"], r#"queue: the body says "sms" but the path says "email""#);
    let r = send(&t, "POST", "/v1/queues/email/things", &[JSON], r#"{"queue":"email"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn client_mistakes_in_the_body_are_400_naming_the_field() {
    let t = echo_transcoder(None);
    let cases = [
        (r#"{"count": "abc"}"#, "count"),
        (r#"{"count": 1.5}"#, "count"),
        (r#"{"nested": {"level": "x"}}"#, "nested.level"),
        (r#"{"children": [{}, {"level": true}]}"#, "children[1].level"),
        (r#"{"state": "STATE_NOPE"}"#, "state"),
        (r#"{"scheduledAt": "yesterday"}"#, "scheduledAt"),
        (r#"{"scheduled_at": "2026-13-01T00:00:00Z"}"#, "scheduled_at"),
        (r#"{"ttl": "soon"}"#, "ttl"),
        (r#"{"tags": "not-a-list"}"#, "tags"),
    ];
    for (body, field) in cases {
        let r = send(&t, "POST", "/v1/queues/q/things", &[JSON], body).await;
        assert_invalid(&r, field);
    }
    // prost-reflect names the oneof, not the field, and no path is tracked.
    let r = send(&t, "POST", "/v1/queues/q/things", &[JSON], r#"{"left": "a", "right": 1}"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json["message"].as_str().expect("message").contains("'choice'"), "{}", r.json);
    for body in ["{", "[1,2]", "\"text\"", "{\"count\": 1,}"] {
        let r = send(&t, "POST", "/v1/queues/q/things", &[JSON], body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.json);
        assert_eq!(r.json["code"], 3);
    }
}

#[tokio::test]
async fn client_mistakes_in_the_query_are_400_naming_the_parameter() {
    let t = echo_transcoder(None);
    for (query, field) in [
        ("count=abc", "count"),
        ("state=NOPE", "state"),
        ("flag=maybe", "flag"),
        ("count=1&count=2", "count"),
        ("scheduledAt=yesterday", "scheduledAt"),
        ("labels=x", "labels"),
        ("data=%%%", "data"),
    ] {
        let r = send(&t, "GET", &format!("/v1/queues/q/things/7?{query}"), &[], "").await;
        assert_invalid(&r, field);
    }
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let t = echo_transcoder(None);
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(2000));
    let r = send(&t, "POST", "/v1/queues/q/things", &[JSON], &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.json);
    assert_eq!(r.json["code"], 8);
    let r = send(&t, "POST", "/v1/queues/q/things", &[JSON, ("content-length", "5000")], &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn only_json_bodies_are_accepted() {
    let t = echo_transcoder(None);
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let r = send(&t, "POST", "/v1/queues/q/things", &[("content-type", content_type)], "{}").await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        assert_eq!(r.json["code"], 3);
        let message = r.json["message"].as_str().expect("message");
        assert!(message.contains("Content-Type: application/json"), "{message}");
    }
    for headers in [&[][..], &[("content-type", "application/json; charset=utf-8")][..]] {
        let r = send(&t, "POST", "/v1/queues/q/things", headers, "{}").await;
        assert_eq!(r.status, StatusCode::OK, "{headers:?}");
    }
    // A method without a body does not look at the content type.
    let r = send(&t, "GET", "/v1/queues/q/things/1", &[("content-type", "text/plain")], "").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let t = echo_transcoder(None);
    for path in ["/nope", "/v1/queues", "/v1/queues/q/things/7/more", "/v1/watch", "/"] {
        let r = send(&t, "GET", path, &[], "").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.json["code"], 5, "{path}");
    }
    let r = send(&t, "DELETE", "/v1/queues/q/things", &[], "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.json["code"], 12);
    assert_eq!(r.headers["allow"], "POST");
    let r = send(&t, "PATCH", "/v1/queues/q/things/7", &[], "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let mut allow: Vec<&str> = r.headers["allow"].to_str().expect("ascii").split(", ").collect();
    allow.sort_unstable();
    assert_eq!(allow, ["GET", "PUT"]);
}

#[tokio::test]
async fn service_errors_are_status_json_with_decoded_details() {
    let t = echo_transcoder(None);
    let r = send(&t, "GET", "/v1/fail/5", &[], "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.json,
        json!({
            "code": 5,
            "message": "thing x was not found",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ResourceInfo",
                "resourceType": "thing",
                "resourceName": "queues/q/things/x",
                "owner": "",
                "description": "",
            }],
        })
    );
    for (code, http) in [(9, 400), (6, 409), (14, 503), (16, 401), (13, 500)] {
        let r = send(&t, "GET", &format!("/v1/fail/{code}"), &[], "").await;
        assert_eq!(r.status.as_u16(), http, "code {code}");
        assert_eq!(r.json["code"], code);
    }
}

#[tokio::test]
async fn grpc_requests_for_unknown_methods_get_a_grpc_answer() {
    let t = echo_transcoder(None);
    let r = send(&t, "POST", "/nope.v1.Svc/Call", &[("content-type", "application/grpc")], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["grpc-status"], "12");
}

#[test]
fn bad_annotations_stop_the_build() {
    let cases = [
        (r#"get: "/v1/fail/{code}""#, r#"get: "/v1/fail/{missing}""#, "missing"),
        (r#"get: "/v1/fail/{code}""#, r#"get: "/v1/fail/{code""#, "invalid path template"),
        (r#"get: "/v1/fetch/{id}""#, r#"get: "/v1/fail/{id}""#, "bound twice"),
        (r#"response_body: "thing""#, r#"response_body: "nothing""#, "nothing"),
        (r#"body: "nested""#, r#"body: "nowhere""#, "nowhere"),
        (r#"get: "/v1/files/{path=**}""#, r#"get: "/v1/files/{tags}""#, "repeated"),
        (r#"get: "/v1/files/{path=**}""#, r#"get: "/v1/files/{nested}""#, "cannot be set from text"),
    ];
    for (from, to, error) in cases {
        let source = echo_source().replace(from, to);
        assert_ne!(source, echo_source(), "{from} not found in echo.proto");
        let descriptors = support::echo_descriptors(Some(&source));
        let grpc = tonic::service::Routes::default();
        let err = chirpy_transcode::Transcoder::new(&descriptors, grpc, Default::default()).expect_err(to).to_string();
        assert!(err.contains(error), "{to}: {err}");
    }
    let err = chirpy_transcode::Transcoder::new(
        b"not a descriptor set",
        tonic::service::Routes::default(),
        Default::default(),
    )
    .expect_err("garbage");
    assert!(err.to_string().starts_with("invalid file descriptor set"), "{err}");
}
