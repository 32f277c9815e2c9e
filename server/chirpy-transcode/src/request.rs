//! Builds the request message from an HTTP request, as grpc-gateway does.
//!
//! In this order:
//! 1. the body: the whole message (`body: "*"`), one field (`body: "field"`),
//!    or nothing;
//! 2. the path variables, converted from text to the field's kind; a
//!    variable whose field the body also set to another value is an error;
//! 3. the query string, for every field not bound by the path or the body:
//!    `a.b=1` sets a nested field, names may be proto names or lowerCamelCase,
//!    repeated keys append to a repeated field, unknown keys are ignored.
//!    With `body: "*"` the query string is ignored.
//!
//! Text becomes a value by [`from_text`]: numbers, `true`/`false` (and the
//! other spellings Go's `strconv.ParseBool` takes), enums by name or by
//! number (a number must be a defined value), base64 bytes, and the
//! well-known types that have a string form (Timestamp, Duration, FieldMask,
//! the wrappers).

use base64::Engine as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, Value};

use crate::{
    json,
    route::{BodyRule, Route},
    status::ErrorReply,
};

/// Whether a field of this kind can be set from a path or query value.
pub(crate) fn settable_from_text(kind: &Kind) -> bool {
    match kind {
        Kind::Message(message) => {
            matches!(
                message.full_name(),
                "google.protobuf.Timestamp" | "google.protobuf.Duration" | "google.protobuf.FieldMask"
            ) || wrapped_field(message.full_name()).is_some()
        }
        _ => true,
    }
}

/// For a wrapper type (`google.protobuf.Int64Value`…), its `value` field's name.
fn wrapped_field(full_name: &str) -> Option<&'static str> {
    matches!(
        full_name,
        "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
    .then_some("value")
}

/// Converts path or query text to a value of `kind`.
///
/// # Errors
///
/// Why the text is not a value of that kind, for the client.
pub(crate) fn from_text(kind: &Kind, text: &str) -> Result<Value, String> {
    let invalid = || format!("{text:?} is not a valid {}", kind_name(kind));
    let value = match kind {
        Kind::Double => Value::F64(text.parse().map_err(|_| invalid())?),
        Kind::Float => Value::F32(text.parse().map_err(|_| invalid())?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(text.parse().map_err(|_| invalid())?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(text.parse().map_err(|_| invalid())?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(text.parse().map_err(|_| invalid())?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(text.parse().map_err(|_| invalid())?),
        Kind::Bool => Value::Bool(match text {
            "true" | "True" | "TRUE" | "t" | "T" | "1" => true,
            "false" | "False" | "FALSE" | "f" | "F" | "0" => false,
            _ => return Err(invalid()),
        }),
        Kind::String => Value::String(text.to_owned()),
        Kind::Bytes => Value::Bytes(decode_base64(text).ok_or_else(invalid)?.into()),
        Kind::Enum(desc) => {
            let by_name = desc.get_value_by_name(text);
            let by_number = || text.parse::<i32>().ok().and_then(|n| desc.get_value(n));
            let value = by_name.or_else(by_number).ok_or_else(invalid)?;
            Value::EnumNumber(value.number())
        }
        Kind::Message(desc) => {
            if let Some(name) = wrapped_field(desc.full_name()) {
                let field = desc.get_field_by_name(name).ok_or_else(invalid)?;
                let inner = from_text(&field.kind(), text).map_err(|_| invalid())?;
                let mut message = DynamicMessage::new(desc.clone());
                message.set_field(&field, inner);
                Value::Message(message)
            } else if settable_from_text(kind) {
                let json = serde_json::Value::String(text.to_owned());
                let message = DynamicMessage::deserialize(desc.clone(), json)
                    .map_err(|e| format!("{text:?} is not a valid {}: {e}", desc.full_name()))?;
                Value::Message(message)
            } else {
                return Err(format!("a {} cannot be set from text", desc.full_name()));
            }
        }
    };
    Ok(value)
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed = text.trim_end_matches('=');
    STANDARD_NO_PAD.decode(trimmed).or_else(|_| URL_SAFE_NO_PAD.decode(trimmed)).ok()
}

fn kind_name(kind: &Kind) -> String {
    let name = match kind {
        Kind::Double => "double",
        Kind::Float => "float",
        Kind::Int32 => "int32",
        Kind::Int64 => "int64",
        Kind::Uint32 => "uint32",
        Kind::Uint64 => "uint64",
        Kind::Sint32 => "sint32",
        Kind::Sint64 => "sint64",
        Kind::Fixed32 => "fixed32",
        Kind::Fixed64 => "fixed64",
        Kind::Sfixed32 => "sfixed32",
        Kind::Sfixed64 => "sfixed64",
        Kind::Bool => "bool",
        Kind::String => "string",
        Kind::Bytes => "base64 bytes",
        Kind::Message(m) => return m.full_name().to_owned(),
        Kind::Enum(e) => return format!("value of {}", e.full_name()),
    };
    name.to_owned()
}

/// Builds the request message of `route` from the decoded path variables
/// (`captures`, in template order), the raw query string and the body.
///
/// # Errors
///
/// `INVALID_ARGUMENT` naming the field, for anything the client got wrong.
pub(crate) fn build(
    route: &Route,
    captures: &[String],
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, ErrorReply> {
    let input = route.rpc.input();
    let mut message = match &route.body {
        BodyRule::None => DynamicMessage::new(input),
        BodyRule::Whole => json::decode_body(&input, body).map_err(ErrorReply::invalid)?,
        BodyRule::Field(field) => json::decode_body_field(&input, field, body).map_err(ErrorReply::invalid)?,
    };
    for ((var, chain), text) in route.template.variables.iter().zip(&route.path_fields).zip(captures) {
        set_from_path(&mut message, chain, &var.name(), text)?;
    }
    if !matches!(route.body, BodyRule::Whole)
        && let Some(query) = query
    {
        set_from_query(&mut message, route, query)?;
    }
    Ok(message)
}

fn set_from_path(
    message: &mut DynamicMessage,
    chain: &[FieldDescriptor],
    name: &str,
    text: &str,
) -> Result<(), ErrorReply> {
    let (leaf, parents) = split_chain(chain)?;
    let value = from_text(&leaf.kind(), text).map_err(|e| ErrorReply::invalid(format!("{name}: {e}")))?;
    let parent = descend(message, parents)?;
    if parent.has_field(leaf) {
        let existing = parent.get_field(leaf);
        if *existing != value {
            return Err(ErrorReply::invalid(format!(
                "{name}: the body says {} but the path says {}",
                show(&existing, &leaf.kind()),
                show(&value, &leaf.kind())
            )));
        }
    }
    parent.set_field(leaf, value);
    Ok(())
}

fn set_from_query(message: &mut DynamicMessage, route: &Route, query: &str) -> Result<(), ErrorReply> {
    // Keys in first-seen order, each with all its values.
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match params.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => values.push(value.into_owned()),
            None => params.push((key.into_owned(), vec![value.into_owned()])),
        }
    }
    for (key, values) in params {
        // grpc-gateway ignores parameters that name no field.
        let Some(chain) = resolve(&route.rpc.input(), &key) else {
            continue;
        };
        if bound(route, &chain) {
            continue;
        }
        let (leaf, parents) = split_chain(&chain)?;
        let kind = leaf.kind();
        if leaf.is_map() || !settable_from_text(&kind) {
            return Err(ErrorReply::invalid(format!("{key}: this field cannot be set from a query parameter")));
        }
        let mut parsed = values
            .iter()
            .map(|text| from_text(&kind, text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ErrorReply::invalid(format!("{key}: {e}")))?;
        let parent = descend(message, parents)?;
        if leaf.is_list() {
            if let Value::List(list) = parent.get_field_mut(leaf) {
                list.append(&mut parsed);
            }
        } else if let [value] = parsed.as_slice() {
            parent.set_field(leaf, value.clone());
        } else {
            return Err(ErrorReply::invalid(format!(
                "{key}: this field takes one value, the query has {}",
                parsed.len()
            )));
        }
    }
    Ok(())
}

/// Resolves a dotted query key to a chain of fields, by proto or JSON name,
/// through singular message fields only.
fn resolve(input: &prost_reflect::MessageDescriptor, key: &str) -> Option<Vec<FieldDescriptor>> {
    let mut message = input.clone();
    let mut chain: Vec<FieldDescriptor> = Vec::new();
    for name in key.split('.') {
        if let Some(last) = chain.last() {
            match last.kind() {
                Kind::Message(next) if !last.is_list() && !last.is_map() => message = next,
                _ => return None,
            }
        }
        let field = message.get_field_by_name(name).or_else(|| message.get_field_by_json_name(name))?;
        chain.push(field);
    }
    Some(chain)
}

/// Whether the path or the body already owns this field.
fn bound(route: &Route, chain: &[FieldDescriptor]) -> bool {
    let by_body = match &route.body {
        BodyRule::Field(field) => chain.first() == Some(field),
        BodyRule::Whole => true,
        BodyRule::None => false,
    };
    by_body || route.path_fields.iter().any(|path| path.starts_with(chain) || chain.starts_with(path))
}

fn split_chain(chain: &[FieldDescriptor]) -> Result<(&FieldDescriptor, &[FieldDescriptor]), ErrorReply> {
    chain.split_last().ok_or_else(|| ErrorReply::new(tonic::Code::Internal, "empty field path"))
}

/// The message that holds the last field of a chain, created on the way.
fn descend<'m>(
    message: &'m mut DynamicMessage,
    parents: &[FieldDescriptor],
) -> Result<&'m mut DynamicMessage, ErrorReply> {
    let mut current = message;
    for field in parents {
        match current.get_field_mut(field) {
            Value::Message(next) => current = next,
            // rule.rs and `resolve` only let singular message fields through.
            _ => {
                return Err(ErrorReply::new(
                    tonic::Code::Internal,
                    format!("{} is not a message field", field.full_name()),
                ));
            }
        }
    }
    Ok(current)
}

/// A value as the client would have written it, for error messages.
fn show(value: &Value, kind: &Kind) -> String {
    match (value, kind) {
        (Value::String(s), _) => serde_json::Value::String(s.clone()).to_string(),
        (Value::EnumNumber(n), Kind::Enum(e)) => e.get_value(*n).map_or_else(|| n.to_string(), |v| v.name().to_owned()),
        (Value::Message(m), _) => json::encode(m).map_or_else(|_| format!("{m:?}"), |j| j.to_string()),
        (Value::Bool(b), _) => b.to_string(),
        (Value::I32(n), _) => n.to_string(),
        (Value::I64(n), _) => n.to_string(),
        (Value::U32(n), _) => n.to_string(),
        (Value::U64(n), _) => n.to_string(),
        (Value::F32(n), _) => n.to_string(),
        (Value::F64(n), _) => n.to_string(),
        (other, _) => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_from_text() {
        assert_eq!(from_text(&Kind::Int32, "-7"), Ok(Value::I32(-7)));
        assert_eq!(from_text(&Kind::Uint64, "18446744073709551615"), Ok(Value::U64(u64::MAX)));
        assert_eq!(from_text(&Kind::Bool, "t"), Ok(Value::Bool(true)));
        assert_eq!(from_text(&Kind::Double, "2.5"), Ok(Value::F64(2.5)));
        assert_eq!(from_text(&Kind::Bytes, "aGk"), Ok(Value::Bytes("hi".into())));
        assert_eq!(from_text(&Kind::Bytes, "_-8="), Ok(Value::Bytes(vec![0xff, 0xef].into())));
        assert_eq!(from_text(&Kind::Int32, "x"), Err("\"x\" is not a valid int32".to_owned()));
        assert!(from_text(&Kind::Bool, "yes").is_err());
        assert!(from_text(&Kind::Int32, "4294967296").is_err());
    }
}
