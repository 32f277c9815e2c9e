//! `google.protobuf.Value` ↔ `serde_json::Value`: job payloads and results
//! are JSON, carried in protobuf as `Value`. Shared by the server and the
//! Rust client so both convert the same way.

use prost_types::value::Kind;
use serde_json::Value as Json;

/// A protobuf number JSON cannot hold (NaN or an infinity).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("{0} is not a JSON number")]
pub struct NotJson(pub f64);

/// JSON as a protobuf `Value`.
pub fn from_json(json: Json) -> prost_types::Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        // Every JSON number has an f64 reading; integers beyond 2^53 lose
        // precision, as in every proto3 JSON client.
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => {
            Kind::ListValue(prost_types::ListValue { values: items.into_iter().map(from_json).collect() })
        }
        Json::Object(map) => {
            Kind::StructValue(prost_types::Struct { fields: map.into_iter().map(|(k, v)| (k, from_json(v))).collect() })
        }
    };
    prost_types::Value { kind: Some(kind) }
}

/// A protobuf `Value` as JSON. Whole numbers become JSON integers: a worker
/// that decodes `{"n": 3}` into an integer type must not receive `3.0`.
///
/// # Errors
///
/// [`NotJson`] for NaN or infinite numbers.
pub fn to_json(value: prost_types::Value) -> Result<Json, NotJson> {
    Ok(match value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(b),
        Some(Kind::NumberValue(n)) => number(n).ok_or(NotJson(n))?,
        Some(Kind::StringValue(s)) => Json::String(s),
        Some(Kind::ListValue(list)) => Json::Array(list.values.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Some(Kind::StructValue(object)) => {
            Json::Object(object.fields.into_iter().map(|(k, v)| Ok((k, to_json(v)?))).collect::<Result<_, _>>()?)
        }
    })
}

fn number(n: f64) -> Option<Json> {
    // 2^53: beyond it an f64 no longer holds every integer.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= EXACT {
        Some(Json::from(n as i64))
    } else {
        serde_json::Number::from_f64(n).map(Json::Number)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_round_trips_and_whole_numbers_stay_integers() {
        let original = json!({"to": "a@b.c", "n": 3, "x": 1.5, "ok": true, "none": null, "list": [1, "two"]});
        let back = to_json(from_json(original.clone())).unwrap();
        assert_eq!(back, original);
        assert_eq!(serde_json::to_string(&back["n"]).unwrap(), "3");
    }

    #[test]
    fn nan_is_not_json() {
        let nan = prost_types::Value { kind: Some(Kind::NumberValue(f64::NAN)) };
        assert!(to_json(nan).is_err());
    }
}
