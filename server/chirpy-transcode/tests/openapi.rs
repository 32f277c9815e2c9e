//! The OpenAPI document: its content for the test proto, and its validity
//! according to `openapi-spec-validator` for the test proto and Chirpy's own.

mod support;

use std::{path::PathBuf, process::Command};

use chirpy_transcode::{Options, Transcoder};
use serde_json::{Value, json};
use support::echo_transcoder;

#[test]
fn every_route_is_an_operation() {
    let doc = echo_transcoder(None).openapi("Echo", "1.2.3");
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc["info"], json!({ "title": "Echo", "version": "1.2.3" }));
    let paths = &doc["paths"];
    let operations = [
        ("/v1/queues/{queue}/things", "post", "EchoService_Echo"),
        ("/v1/queues/{queue}/things/{id}", "get", "EchoService_Echo_1"),
        ("/v1/queues/{queue}/things/{id}", "put", "EchoService_Echo_2"),
        ("/v1/queues/{queue}/things/{id}:retry", "post", "EchoService_Echo_3"),
        ("/v1/{name}", "get", "EchoService_Echo_4"),
        ("/v1/files/{path}", "get", "EchoService_Echo_5"),
        ("/v1/levels/{nested.level}/{state}", "get", "EchoService_Echo_6"),
        ("/v1/fail/{code}", "get", "EchoService_Fail"),
        ("/v1/fetch/{id}", "get", "EchoService_Fetch"),
    ];
    for (path, method, id) in operations {
        assert_eq!(paths[path][method]["operationId"], id, "{method} {path}");
        assert_eq!(
            paths[path][method]["responses"]["default"]["content"]["application/json"]["schema"],
            json!({ "$ref": "#/components/schemas/google.rpc.Status" })
        );
    }
    let count: usize = paths.as_object().expect("paths").values().map(|p| p.as_object().expect("item").len()).sum();
    // PURGE has no place in OpenAPI; streaming is not routed.
    assert_eq!(count, operations.len());

    let echo = &paths["/v1/queues/{queue}/things"]["post"];
    assert_eq!(echo["tags"], json!(["EchoService"]));
    assert!(echo["description"].as_str().expect("description").starts_with("Echoes a thing."));
    // The body is the message less the field the path sets.
    let body = &echo["requestBody"]["content"]["application/json"]["schema"];
    assert!(body["properties"].get("queue").is_none());
    assert!(body["properties"].get("scheduledAt").is_some());

    let get = &paths["/v1/queues/{queue}/things/{id}"]["get"];
    let names: Vec<&str> =
        get["parameters"].as_array().expect("parameters").iter().map(|p| p["name"].as_str().expect("name")).collect();
    for want in ["queue", "id", "count", "big", "state", "tags", "scheduledAt", "nested.label", "nested.level", "limit"]
    {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(!names.contains(&"labels") && !names.contains(&"payload") && !names.contains(&"children"), "{names:?}");
    let tags = get["parameters"].as_array().expect("parameters").iter().find(|p| p["name"] == "tags").expect("tags");
    assert_eq!(tags["schema"], json!({ "type": "array", "items": { "type": "string" } }));

    let put = &paths["/v1/queues/{queue}/things/{id}"]["put"];
    assert_eq!(
        put["requestBody"]["content"]["application/json"]["schema"],
        json!({ "allOf": [{ "$ref": "#/components/schemas/transcode.test.v1.Nested" }] })
    );
    let fetch = &paths["/v1/fetch/{id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(fetch["allOf"][0]["$ref"], "#/components/schemas/transcode.test.v1.Thing");
}

#[test]
fn schemas_follow_the_json_mapping() {
    let doc = echo_transcoder(None).openapi("Echo", "1");
    let schemas = &doc["components"]["schemas"];
    for name in [
        "transcode.test.v1.Thing",
        "transcode.test.v1.Nested",
        "transcode.test.v1.EchoResponse",
        "transcode.test.v1.FailResponse",
        "google.rpc.Status",
    ] {
        assert!(schemas.get(name).is_some(), "{name} missing");
    }
    let thing = &schemas["transcode.test.v1.Thing"];
    assert!(thing["description"].as_str().expect("description").starts_with("A thing with a field"));
    let p = &thing["properties"];
    assert_eq!(p["big"]["type"], "string");
    assert_eq!(p["big"]["format"], "int64");
    assert_eq!(p["count"], json!({ "type": "integer", "format": "int32" }));
    assert_eq!(p["state"]["enum"], json!(["STATE_UNSPECIFIED", "STATE_PENDING", "STATE_DONE"]));
    assert_eq!(p["scheduledAt"], json!({ "type": "string", "format": "date-time" }));
    assert_eq!(p["ttl"]["type"], "string");
    assert_eq!(p["payload"], json!({ "description": "Any JSON value." }));
    assert_eq!(p["attributes"], json!({ "type": "object", "additionalProperties": true }));
    assert_eq!(p["labels"], json!({ "type": "object", "additionalProperties": { "type": "string" } }));
    assert_eq!(p["limit"], json!({ "type": "string", "format": "int64", "nullable": true }));
    assert_eq!(p["data"], json!({ "type": "string", "format": "byte" }));
    assert_eq!(p["children"]["items"], json!({ "$ref": "#/components/schemas/transcode.test.v1.Nested" }));
    assert_eq!(p["id"]["description"], "The id, usually from the path.");
    assert_eq!(p["scheduled_at"], Value::Null, "names are lowerCamelCase");
    let status = &schemas["google.rpc.Status"]["properties"];
    assert_eq!(status["details"]["items"]["properties"]["@type"]["type"], "string");
}

/// The interpreter that has `openapi_spec_validator`, if any: the repo's
/// `.venv` first, then `python3` on the PATH.
fn validator() -> Option<PathBuf> {
    let venv = support::crate_dir().join("../../.venv/bin/python");
    [venv, PathBuf::from("python3")].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import openapi_spec_validator"])
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

fn validate(doc: &Value, name: &str) {
    let Some(python) = validator() else {
        // `make test` sets CHIRPY_REQUIRE_TOOLS: there, a missing tool fails.
        assert!(
            std::env::var_os("CHIRPY_REQUIRE_TOOLS").is_none(),
            "no python with openapi_spec_validator: run `make setup`"
        );
        eprintln!("skipped: no python with openapi_spec_validator (pip install openapi-spec-validator)");
        return;
    };
    let path = std::env::temp_dir().join(format!("chirpy-transcode-{}-{name}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec_pretty(doc).expect("json")).expect("write document");
    let out =
        Command::new(python).args(["-m", "openapi_spec_validator"]).arg(&path).output().expect("run the validator");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_test_document_validates() {
    validate(&echo_transcoder(None).openapi("Echo", "1"), "echo");
}

#[test]
fn chirpys_document_validates_and_has_the_product_routes() {
    let proto = support::crate_dir().join("../../proto");
    let descriptors =
        support::compile(&[proto.as_path()], "chirpy/v1/job_service.proto", None).expect("compile chirpy.v1");
    let transcoder =
        Transcoder::new(&descriptors, tonic::service::Routes::default(), Options::default()).expect("transcoder");
    let routes: Vec<(String, String)> =
        transcoder.routes().map(|r| (r.method().to_string(), r.template().to_owned())).collect();
    // SPEC §5: the product page's routes, exactly.
    for (method, template) in [
        ("POST", "/queues/{queue}/jobs"),
        ("GET", "/queues/{queue}/jobs"),
        ("GET", "/queues/{queue}/jobs/{id}"),
        ("DELETE", "/queues/{queue}/jobs/{id}"),
        ("GET", "/queues"),
        ("GET", "/workers"),
    ] {
        assert!(
            routes.contains(&(method.to_owned(), template.to_owned())),
            "{method} {template} missing from {routes:?}"
        );
    }
    let doc = transcoder.openapi("Chirpy", "0.1.0");
    assert!(doc["components"]["schemas"].get("chirpy.v1.Job").is_some());
    validate(&doc, "chirpy");
}
