//! Proto3 JSON in and out, on top of prost-reflect's serde support.
//!
//! In: the body is parsed to a `serde_json::Value`, fields the message does
//! not have are dropped (grpc-gateway's `DiscardUnknown`), and the rest is
//! deserialized strictly, so that an unknown enum name is still an error.
//! `serde_path_to_error` names the field that failed (`jobs[0].scheduledAt`).
//!
//! Out: every field is emitted, like grpc-gateway v2's `EmitUnpopulated`:
//! scalars with their default, and unset message fields as `null` (members
//! of a real `oneof` are left out when unset, as protojson does). Doubles
//! with no fraction are written as integers (`1`, not `1.0`), as protojson
//! writes them: a payload's `{"n": 1}` comes back as it went in.
//!
//! Mapping the path and the query string is `request.rs`.

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, SerializeOptions,
};
use serde_json::{Map, Value as Json};

/// The well-known types whose JSON form is not an object of their fields.
pub(crate) fn is_well_known(full_name: &str) -> bool {
    matches!(
        full_name,
        "google.protobuf.Any"
            | "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.Struct"
            | "google.protobuf.FloatValue"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.Int32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
            | "google.protobuf.FieldMask"
            | "google.protobuf.ListValue"
            | "google.protobuf.Value"
            | "google.protobuf.Empty"
    )
}

/// Parses a request body as the message `desc`. An empty body is an empty
/// message, as in grpc-gateway.
///
/// # Errors
///
/// A message for the client: malformed JSON, or the field that has the
/// wrong type or value and why.
pub(crate) fn decode_body(desc: &MessageDescriptor, body: &[u8]) -> Result<DynamicMessage, String> {
    match parse(body)? {
        None => Ok(DynamicMessage::new(desc.clone())),
        Some(json) => decode(desc, json),
    }
}

/// Parses a request body as the value of the top-level `field` of `desc`.
pub(crate) fn decode_body_field(
    desc: &MessageDescriptor,
    field: &FieldDescriptor,
    body: &[u8],
) -> Result<DynamicMessage, String> {
    match parse(body)? {
        None => Ok(DynamicMessage::new(desc.clone())),
        Some(json) => {
            let mut wrapper = Map::new();
            wrapper.insert(field.json_name().to_owned(), json);
            decode(desc, Json::Object(wrapper))
        }
    }
}

fn parse(body: &[u8]) -> Result<Option<Json>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| format!("the body is not valid JSON: {e}"))
}

fn decode(desc: &MessageDescriptor, mut json: Json) -> Result<DynamicMessage, String> {
    prune(desc, &mut json);
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(json, &mut track);
    // Unknown fields are already gone; strict mode makes unknown enum names fail.
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    DynamicMessage::deserialize_with_options(desc.clone(), deserializer, &options).map_err(|e| {
        let path = track.path();
        if path.iter().next().is_none() { e.to_string() } else { format!("{path}: {e}") }
    })
}

fn field_by_key(desc: &MessageDescriptor, key: &str) -> Option<FieldDescriptor> {
    desc.get_field_by_json_name(key).or_else(|| desc.get_field_by_name(key))
}

/// Removes the object keys that are not fields of `desc`, at every depth.
fn prune(desc: &MessageDescriptor, json: &mut Json) {
    let Json::Object(map) = json else { return };
    match desc.full_name() {
        "google.protobuf.Any" => prune_any(desc, map),
        name if is_well_known(name) => {}
        _ => prune_fields(desc, map, false),
    }
}

fn prune_fields(desc: &MessageDescriptor, map: &mut Map<String, Json>, keep_type: bool) {
    map.retain(|key, _| (keep_type && key == "@type") || field_by_key(desc, key).is_some());
    for (key, value) in map.iter_mut() {
        if let Some(field) = field_by_key(desc, key) {
            prune_field(&field, value);
        }
    }
}

fn prune_field(field: &FieldDescriptor, value: &mut Json) {
    each_message(field, value, prune);
}

/// Applies `f` to every message a field's JSON value holds: the value itself,
/// each list item, or each map value. Scalar fields hold none.
fn each_message(field: &FieldDescriptor, value: &mut Json, f: fn(&MessageDescriptor, &mut Json)) {
    let Kind::Message(message) = field.kind() else {
        return;
    };
    if field.is_map() {
        let Kind::Message(inner) = message.map_entry_value_field().kind() else {
            return;
        };
        if let Json::Object(entries) = value {
            entries.values_mut().for_each(|v| f(&inner, v));
        }
    } else if field.is_list() {
        if let Json::Array(items) = value {
            items.iter_mut().for_each(|v| f(&message, v));
        }
    } else {
        f(&message, value);
    }
}

/// An `Any` is `{"@type": url, ...fields}`, or `{"@type": url, "value": json}`
/// for a well-known type. An unknown type is left for prost-reflect to reject.
fn prune_any(desc: &MessageDescriptor, map: &mut Map<String, Json>) {
    let Some(name) = map.get("@type").and_then(Json::as_str).and_then(|url| url.rsplit('/').next()) else {
        return;
    };
    let Some(inner) = desc.parent_pool().get_message_by_name(name) else {
        return;
    };
    if is_well_known(inner.full_name()) {
        if let Some(value) = map.get_mut("value") {
            prune(&inner, value);
        }
    } else {
        prune_fields(&inner, map, true);
    }
}

/// Serializes `message` with every field emitted (see the module docs).
///
/// # Errors
///
/// Only if the message holds an `Any` whose type is not in the pool.
pub(crate) fn encode(message: &DynamicMessage) -> Result<Json, serde_json::Error> {
    let options = SerializeOptions::new().skip_default_fields(false);
    let mut json = message.serialize_with_options(serde_json::value::Serializer, &options)?;
    fill_nulls(&message.descriptor(), &mut json);
    integral_numbers(&mut json);
    Ok(json)
}

/// Rewrites every whole double that an `i64` holds exactly (up to 2^53) as
/// an integer.
fn integral_numbers(json: &mut Json) {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match json {
        Json::Number(n) if n.is_f64() => {
            if let Some(x) = n.as_f64().filter(|x| x.fract() == 0.0 && x.abs() <= EXACT) {
                *json = Json::from(x as i64);
            }
        }
        Json::Array(items) => items.iter_mut().for_each(integral_numbers),
        Json::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// prost-reflect leaves out unset fields that have presence even when asked
/// to emit defaults; protojson's `EmitUnpopulated` writes them as `null`.
fn fill_nulls(desc: &MessageDescriptor, json: &mut Json) {
    if is_well_known(desc.full_name()) {
        return;
    }
    let Json::Object(map) = json else { return };
    for field in desc.fields() {
        let in_real_oneof = field.containing_oneof().is_some_and(|o| !o.is_synthetic());
        match map.get_mut(field.json_name()) {
            None if !in_real_oneof => {
                map.insert(field.json_name().to_owned(), Json::Null);
            }
            None => {}
            Some(value) => fill_field(&field, value),
        }
    }
}

fn fill_field(field: &FieldDescriptor, value: &mut Json) {
    each_message(field, value, fill_nulls);
}

/// Renders one `google.protobuf.Any` (an error detail) as proto3 JSON, with
/// its type resolved in the pool of `any_desc`'s pool. A type the pool does not
/// know is shown as its URL and base64 bytes rather than dropped.
pub(crate) fn any_to_json(pool: &prost_reflect::DescriptorPool, type_url: &str, value: &[u8]) -> Json {
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    let decoded = pool
        .get_message_by_name(name)
        .and_then(|desc| DynamicMessage::decode(desc, value).ok())
        .and_then(|message| encode(&message).ok().map(|json| (message, json)));
    let mut out = Map::new();
    out.insert("@type".to_owned(), Json::String(type_url.to_owned()));
    match decoded {
        Some((message, Json::Object(fields))) if !is_well_known(message.descriptor().full_name()) => {
            out.extend(fields);
        }
        Some((_, json)) => {
            out.insert("value".to_owned(), json);
        }
        None => {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD.encode(value);
            out.insert("value".to_owned(), Json::String(bytes));
        }
    }
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_whitespace_bodies_are_no_body() {
        assert_eq!(parse(b"").expect("empty"), None);
        assert_eq!(parse(b" \n").expect("blank"), None);
        assert!(parse(b"{").expect_err("malformed").contains("not valid JSON"));
    }

    #[test]
    fn whole_doubles_are_written_as_integers() {
        let mut json = serde_json::json!({"n": 1.0, "list": [-3.0, 2.5, 1e300], "big": 9007199254740994.0, "s": "1.0"});
        integral_numbers(&mut json);
        assert_eq!(json.to_string(), r#"{"big":9007199254740994.0,"list":[-3,2.5,1e+300],"n":1,"s":"1.0"}"#);
    }
}
