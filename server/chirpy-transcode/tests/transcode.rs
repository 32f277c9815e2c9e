//! The transcoder end to end: real `http::Request`s through `Transcoder::handle`,
//! an in-process tonic service behind it, routes from `tests/proto` only.

mod support;

use http::StatusCode;
use serde_json::json;
use support::{assert_invalid, echo_source, echo_transcoder, send};

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn body_star_is_the_whole_message_and_the_path_fills_in() {
    let t = echo_transcoder(None);
    let body = json!({
        "scheduled_at": "2026-01-02T03:04:05Z",
        "count": 3,
        "big": "9007199254740993",
        "state": "STATE_DONE",
        "tags": ["a", "b"],
        "nested": { "label": "x", "notAField": true },
        "labels": { "k": "v" },
        "payload": { "any": [1, "two", null] },
        "ttl": "1.5s",
        "limit": 8,
        "unknownField": { "deep": 1 },
    });
    // With `body: "*"` the query string is ignored.
    let r = send(&t, "POST", "/v1/queues/email/things?count=9", &[JSON], &body.to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.headers["content-type"], "application/json");
    let thing = &r.json["thing"];
    assert_eq!(r.json["rpc"], "Echo");
    assert_eq!(thing["queue"], "email");
    assert_eq!(thing["scheduledAt"], "2026-01-02T03:04:05Z");
    assert_eq!(thing["count"], 3);
    assert_eq!(thing["big"], "9007199254740993");
    assert_eq!(thing["state"], "STATE_DONE");
    assert_eq!(thing["tags"], json!(["a", "b"]));
    assert_eq!(thing["nested"], json!({ "label": "x", "level": 0 }));
    assert_eq!(thing["labels"], json!({ "k": "v" }));
    assert_eq!(thing["payload"], json!({ "any": [1, "two", null] }));
    assert_eq!(thing["ttl"], "1.500s");
    assert_eq!(thing["limit"], "8");
}

#[tokio::test]
async fn every_field_is_emitted() {
    let t = echo_transcoder(None);
    let r = send(&t, "GET", "/v1/queues/q/things/7", &[], "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let thing = r.json["thing"].as_object().expect("thing");
    let want = json!({
        "queue": "q", "id": "7", "name": "", "path": "", "count": 0, "big": "0",
        "state": "STATE_UNSPECIFIED", "tags": [], "states": [], "scheduledAt": null, "ttl": null,
        "payload": null, "nested": null, "labels": {}, "flag": false, "data": "", "limit": null,
        "children": [], "note": null, "attributes": null,
    });
    for (key, value) in want.as_object().expect("object") {
        assert_eq!(thing.get(key), Some(value), "field {key} in {thing:?}");
    }
    // Members of a real oneof are left out when unset, as protojson does.
    assert!(!thing.contains_key("left") && !thing.contains_key("right"));
    assert_eq!(r.json["metadata"], json!({}));
}

#[tokio::test]
async fn query_parameters_fill_unbound_fields() {
    let t = echo_transcoder(None);
    let query = "count=5&big=12&state=STATE_PENDING&states=STATE_DONE&states=1&tags=a&tags=b%20c\
        &nested.label=hi&nested.level=4&scheduledAt=2026-05-06T07:08:09Z&ttl=90s&flag=true\
        &limit=8&data=aGk&unknown=1&queue=ignored-the-path-wins&note=n&right=3";
    let r = send(&t, "GET", &format!("/v1/queues/q/things/7?{query}"), &[], "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let thing = &r.json["thing"];
    assert_eq!(thing["queue"], "q");
    assert_eq!(thing["count"], 5);
    assert_eq!(thing["big"], "12");
    assert_eq!(thing["state"], "STATE_PENDING");
    assert_eq!(thing["states"], json!(["STATE_DONE", "STATE_PENDING"]));
    assert_eq!(thing["tags"], json!(["a", "b c"]));
    assert_eq!(thing["nested"], json!({ "label": "hi", "level": 4 }));
    assert_eq!(thing["scheduledAt"], "2026-05-06T07:08:09Z");
    assert_eq!(thing["ttl"], "90s");
    assert_eq!(thing["flag"], true);
    assert_eq!(thing["limit"], "8");
    assert_eq!(thing["data"], "aGk=");
    assert_eq!(thing["note"], "n");
    assert_eq!(thing["right"], 3);

    // Proto names work as well as lowerCamelCase.
    let r = send(&t, "GET", "/v1/queues/q/things/7?scheduled_at=2026-05-06T07:08:09Z", &[], "").await;
    assert_eq!(r.json["thing"]["scheduledAt"], "2026-05-06T07:08:09Z");
}

#[tokio::test]
async fn path_variables_are_percent_decoded() {
    let t = echo_transcoder(None);
    let r = send(&t, "GET", "/v1/queues/a%20b/things/x%2Fy", &[], "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["thing"]["queue"], "a b");
    assert_eq!(r.json["thing"]["id"], "x/y");
}

#[tokio::test]
async fn body_field_is_that_field_and_the_query_still_applies() {
    let t = echo_transcoder(None);
    let r =
        send(&t, "PUT", "/v1/queues/q/things/7?count=4&nested.label=ignored", &[JSON], r#"{"label":"L","level":2}"#)
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["thing"]["nested"], json!({ "label": "L", "level": 2 }));
    assert_eq!(r.json["thing"]["count"], 4);
    assert_eq!(r.json["thing"]["id"], "7");
}

#[tokio::test]
async fn custom_verbs_and_multi_segment_variables() {
    let t = echo_transcoder(None);
    let r = send(&t, "POST", "/v1/queues/q/things/7:retry", &[JSON], "{}").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["thing"]["id"], "7");

    let r = send(&t, "GET", "/v1/shelves/s1/things/t1", &[], "").await;
    assert_eq!(r.json["thing"]["name"], "shelves/s1/things/t1");

    let r = send(&t, "GET", "/v1/files/a/b%2Fc/d%20e", &[], "").await;
    assert_eq!(r.json["thing"]["path"], "a/b%2Fc/d e");

    let r = send(&t, "PURGE", "/v1/cache/9", &[], "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["rpc"], "Purge");
}

#[tokio::test]
async fn enums_in_the_path_by_name_or_number() {
    let t = echo_transcoder(None);
    for state in ["STATE_DONE", "2"] {
        let r = send(&t, "GET", &format!("/v1/levels/3/{state}"), &[], "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["thing"]["state"], "STATE_DONE");
        assert_eq!(r.json["thing"]["nested"]["level"], 3);
    }
    for state in ["STATE_NOPE", "7"] {
        let r = send(&t, "GET", &format!("/v1/levels/3/{state}"), &[], "").await;
        assert_invalid(&r, "state");
    }
    let r = send(&t, "GET", "/v1/levels/three/STATE_DONE", &[], "").await;
    assert_invalid(&r, "nested.level");
}

#[tokio::test]
async fn response_body_selects_a_field() {
    let t = echo_transcoder(None);
    let r = send(&t, "GET", "/v1/fetch/9", &[], "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["id"], "9");
    assert_eq!(r.json["count"], 0);
    assert!(r.json.get("rpc").is_none());
}

#[tokio::test]
async fn authorization_and_x_headers_become_metadata() {
    let t = echo_transcoder(None);
    let headers = [("authorization", "Bearer t"), ("x-request-id", "r1"), ("cookie", "c=1")];
    let r = send(&t, "GET", "/v1/queues/q/things/7", &headers, "").await;
    assert_eq!(r.json["metadata"], json!({ "authorization": "Bearer t", "x-request-id": "r1" }));
}

#[tokio::test]
async fn routes_list_every_binding_but_not_streaming() {
    let t = echo_transcoder(None);
    let routes: Vec<String> = t.routes().map(ToString::to_string).collect();
    for want in [
        "POST /v1/queues/{queue}/things -> transcode.test.v1.EchoService.Echo",
        "GET /v1/queues/{queue}/things/{id} -> transcode.test.v1.EchoService.Echo",
        "PUT /v1/queues/{queue}/things/{id} -> transcode.test.v1.EchoService.Echo",
        "POST /v1/queues/{queue}/things/{id}:retry -> transcode.test.v1.EchoService.Echo",
        "GET /v1/{name=shelves/*/things/*} -> transcode.test.v1.EchoService.Echo",
        "GET /v1/files/{path=**} -> transcode.test.v1.EchoService.Echo",
        "GET /v1/levels/{nested.level}/{state} -> transcode.test.v1.EchoService.Echo",
        "GET /v1/fail/{code} -> transcode.test.v1.EchoService.Fail",
        "GET /v1/fetch/{id} -> transcode.test.v1.EchoService.Fetch",
        "PURGE /v1/cache/{id} -> transcode.test.v1.EchoService.Purge",
    ] {
        assert!(routes.iter().any(|r| r == want), "{want} missing from {routes:#?}");
    }
    assert_eq!(routes.len(), 10, "{routes:#?}");
    assert_eq!(routes[0], "POST /v1/queues/{queue}/things/{id}:retry -> transcode.test.v1.EchoService.Echo");
}

#[tokio::test]
async fn a_new_annotation_is_a_new_route() {
    let before = echo_transcoder(None);
    let r = send(&before, "GET", "/v2/brand-new/5", &[], "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let source = echo_source().replace(
        r#"get: "/v1/fetch/{id}""#,
        r#"get: "/v1/fetch/{id}"
      additional_bindings {get: "/v2/brand-new/{id}"}"#,
    );
    let after = echo_transcoder(Some(&source));
    let r = send(&after, "GET", "/v2/brand-new/5?count=2", &[], "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    // An additional binding has its own response_body (none here).
    assert_eq!(r.json["rpc"], "Fetch");
    assert_eq!(r.json["thing"]["id"], "5");
    assert_eq!(r.json["thing"]["count"], 2);
}

#[test]
fn the_handle_future_is_send_as_axum_needs() {
    fn is_send<T: Send>(_: &T) {}
    let t = echo_transcoder(None);
    let request = http::Request::new(axum::body::Body::empty());
    let future = t.handle(request);
    is_send(&future);
}
