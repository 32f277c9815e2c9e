//! An OpenAPI 3.0.3 document for the routes, from the same descriptors.
//!
//! One operation per binding: `operationId` is `Service_Method`, with `_1`,
//! `_2`… for `additional_bindings`. Path variables and query parameters are
//! parameters; the body and the answer are schemas in `components/schemas`,
//! named by the message's full name, with field names in lowerCamelCase as
//! the JSON is. Errors are the `default` response, a `google.rpc.Status`.
//! Proto comments become descriptions, `google.api.field_behavior` becomes
//! `required` and `readOnly`.
//!
//! The JSON mapping drives the schema of each kind: 64-bit integers are
//! strings (`format: int64`), enums are strings with their value names,
//! Timestamp is a `date-time` string, Duration and FieldMask are strings,
//! Struct is an object, Value is any JSON value (`{}`), maps are objects with
//! `additionalProperties`, wrappers are their nullable scalar. Routes whose
//! method OpenAPI cannot name (a `custom` kind such as `PURGE`) are left out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost_reflect::{DescriptorPool, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor, Value};
use serde_json::{Map, Value as Json, json};

use crate::{
    json::is_well_known,
    request::settable_from_text,
    route::{BodyRule, Route},
};

/// How deep query parameters go into nested messages (`a.b.c`).
const QUERY_DEPTH: usize = 3;

/// Builds the document for `routes`.
pub(crate) fn document<'a>(
    pool: &DescriptorPool,
    routes: impl Iterator<Item = &'a Route>,
    title: &str,
    version: &str,
) -> Json {
    let mut generator = Generator::new(pool);
    let mut paths: BTreeMap<String, Map<String, Json>> = BTreeMap::new();
    let mut tags: BTreeMap<String, Json> = BTreeMap::new();
    for route in routes {
        let method = route.method.as_str().to_ascii_lowercase();
        if !matches!(method.as_str(), "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace") {
            continue;
        }
        let service = route.rpc.parent_service();
        tags.entry(service.name().to_owned()).or_insert_with(|| {
            let mut tag = json!({ "name": service.name() });
            generator.describe(&mut tag, service.parent_file().name(), service.path());
            tag
        });
        let item = paths.entry(route.template.openapi_path()).or_default();
        // Two templates can print the same (`{name=a/*}`, `{name=b/*}`);
        // OpenAPI has room for one operation per path and method.
        if !item.contains_key(&method) {
            item.insert(method, generator.operation(route));
        }
    }
    generator.add_status();
    generator.drain();
    json!({
        "openapi": "3.0.3",
        "info": { "title": title, "version": version },
        "tags": tags.into_values().collect::<Vec<_>>(),
        "paths": paths,
        "components": { "schemas": generator.schemas },
    })
}

fn schema_ref(name: &str) -> Json {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

struct Generator<'p> {
    pool: &'p DescriptorPool,
    schemas: BTreeMap<String, Json>,
    /// Messages referenced but not yet in `schemas`.
    pending: Vec<MessageDescriptor>,
    /// Leading comments by file name and source path.
    comments: HashMap<(String, Vec<i32>), String>,
    field_behavior: Option<ExtensionDescriptor>,
}

impl<'p> Generator<'p> {
    fn new(pool: &'p DescriptorPool) -> Self {
        let mut comments = HashMap::new();
        for file in pool.files() {
            let Some(info) = &file.file_descriptor_proto().source_code_info else {
                continue;
            };
            for location in &info.location {
                if let Some(text) = location.leading_comments.as_deref().and_then(clean_comment) {
                    comments.insert((file.name().to_owned(), location.path.clone()), text);
                }
            }
        }
        Self {
            pool,
            schemas: BTreeMap::new(),
            pending: Vec::new(),
            comments,
            field_behavior: pool.get_extension_by_name("google.api.field_behavior"),
        }
    }

    /// Adds the comment at `path` of `file` as `description`, if there is one.
    fn describe(&self, target: &mut Json, file: &str, path: &[i32]) {
        if let Some(text) = self.comments.get(&(file.to_owned(), path.to_vec())) {
            insert(target, "description", Json::String(text.clone()));
        }
    }

    fn operation(&mut self, route: &Route) -> Json {
        let rpc = &route.rpc;
        let mut id = format!("{}_{}", rpc.parent_service().name(), rpc.name());
        if route.binding > 0 {
            id.push_str(&format!("_{}", route.binding));
        }
        let mut parameters = Vec::new();
        for (var, chain) in route.template.variables.iter().zip(&route.path_fields) {
            let Some(leaf) = chain.last() else { continue };
            let mut parameter = json!({
                "name": var.name(),
                "in": "path",
                "required": true,
                "schema": self.kind_schema(&leaf.kind()),
            });
            self.describe(&mut parameter, leaf.parent_file().name(), leaf.path());
            parameters.push(parameter);
        }
        if !matches!(route.body, BodyRule::Whole) {
            let mut visiting = BTreeSet::new();
            self.query_parameters(route, &rpc.input(), &[], &mut visiting, &mut parameters);
        }
        let mut operation = json!({
            "operationId": id,
            "tags": [rpc.parent_service().name()],
            "parameters": parameters,
            "responses": {
                "200": { "description": "OK", "content": { "application/json": {
                    "schema": match &route.response_body {
                        Some(field) => self.field_schema(field),
                        None => self.message_ref(&rpc.output()),
                    }
                }}},
                "default": { "description": "An error, as a google.rpc.Status.",
                    "content": { "application/json": { "schema": schema_ref("google.rpc.Status") } } },
            },
        });
        self.describe(&mut operation, rpc.parent_file().name(), rpc.path());
        let body = match &route.body {
            BodyRule::None => None,
            BodyRule::Field(field) => Some(self.field_schema(field)),
            BodyRule::Whole => Some(self.whole_body(route)),
        };
        if let Some(schema) = body {
            let content = json!({ "content": { "application/json": { "schema": schema } } });
            insert(&mut operation, "requestBody", content);
        }
        operation
    }

    /// `body: "*"`: the input message, less the top-level fields the path sets.
    fn whole_body(&mut self, route: &Route) -> Json {
        let input = route.rpc.input();
        let in_path: Vec<&FieldDescriptor> = route
            .path_fields
            .iter()
            .filter_map(|chain| match chain.as_slice() {
                [only] => Some(only),
                _ => None,
            })
            .collect();
        if in_path.is_empty() { self.message_ref(&input) } else { self.message_schema(&input, &in_path) }
    }

    fn query_parameters(
        &mut self,
        route: &Route,
        message: &MessageDescriptor,
        prefix: &[FieldDescriptor],
        visiting: &mut BTreeSet<String>,
        out: &mut Vec<Json>,
    ) {
        if prefix.len() >= QUERY_DEPTH || !visiting.insert(message.full_name().to_owned()) {
            return;
        }
        for field in message.fields() {
            let mut chain = prefix.to_vec();
            chain.push(field.clone());
            let by_body = matches!(&route.body, BodyRule::Field(f) if chain.first() == Some(f));
            let by_path = route.path_fields.iter().any(|p| p.starts_with(&chain) || chain.starts_with(p));
            if by_body || by_path || field.is_map() || self.is_output_only(&field) {
                continue;
            }
            let kind = field.kind();
            if settable_from_text(&kind) {
                let name: Vec<&str> = chain.iter().map(FieldDescriptor::json_name).collect();
                let mut schema = self.kind_schema(&kind);
                if field.is_list() {
                    schema = json!({ "type": "array", "items": schema });
                }
                let mut parameter = json!({ "name": name.join("."), "in": "query", "schema": schema });
                self.describe(&mut parameter, field.parent_file().name(), field.path());
                out.push(parameter);
            } else if let Kind::Message(inner) = kind
                && !field.is_list()
                && !is_well_known(inner.full_name())
            {
                self.query_parameters(route, &inner, &chain, visiting, out);
            }
        }
        visiting.remove(message.full_name());
    }

    fn message_ref(&mut self, message: &MessageDescriptor) -> Json {
        if !self.schemas.contains_key(message.full_name()) && !self.pending.iter().any(|m| m == message) {
            self.pending.push(message.clone());
        }
        schema_ref(message.full_name())
    }

    /// Generates every schema referenced so far, and those they reference.
    fn drain(&mut self) {
        while let Some(message) = self.pending.pop() {
            if !self.schemas.contains_key(message.full_name()) {
                let schema = self.message_schema(&message, &[]);
                self.schemas.insert(message.full_name().to_owned(), schema);
            }
        }
    }

    /// `google.rpc.Status`, from the pool when it is there.
    fn add_status(&mut self) {
        if let Some(status) = self.pool.get_message_by_name("google.rpc.Status") {
            self.message_ref(&status);
        } else {
            self.schemas.insert(
                "google.rpc.Status".to_owned(),
                json!({
                    "type": "object",
                    "properties": {
                        "code": { "type": "integer", "format": "int32" },
                        "message": { "type": "string" },
                        "details": { "type": "array", "items": any_schema() },
                    },
                }),
            );
        }
    }

    fn message_schema(&mut self, message: &MessageDescriptor, skip: &[&FieldDescriptor]) -> Json {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for field in message.fields() {
            if skip.contains(&&field) {
                continue;
            }
            if self.has_behavior(&field, "REQUIRED") {
                required.push(Json::String(field.json_name().to_owned()));
            }
            properties.insert(field.json_name().to_owned(), self.field_schema(&field));
        }
        let mut schema = json!({ "type": "object", "properties": properties });
        if !required.is_empty() {
            insert(&mut schema, "required", Json::Array(required));
        }
        self.describe(&mut schema, message.parent_file().name(), message.path());
        schema
    }

    fn field_schema(&mut self, field: &FieldDescriptor) -> Json {
        let mut schema = if field.is_map() {
            let value = match field.kind() {
                Kind::Message(entry) => self.kind_schema(&entry.map_entry_value_field().kind()),
                _ => json!({}),
            };
            json!({ "type": "object", "additionalProperties": value })
        } else if field.is_list() {
            json!({ "type": "array", "items": self.kind_schema(&field.kind()) })
        } else {
            self.kind_schema(&field.kind())
        };
        // Siblings of `$ref` are ignored in OpenAPI 3.0; wrap it to add any.
        if schema.get("$ref").is_some() {
            schema = json!({ "allOf": [schema] });
        }
        self.describe(&mut schema, field.parent_file().name(), field.path());
        if self.is_output_only(field) {
            insert(&mut schema, "readOnly", Json::Bool(true));
        }
        schema
    }

    fn kind_schema(&mut self, kind: &Kind) -> Json {
        match kind {
            Kind::Double => json!({ "type": "number", "format": "double" }),
            Kind::Float => json!({ "type": "number", "format": "float" }),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({ "type": "integer", "format": "int32" })
            }
            Kind::Uint32 | Kind::Fixed32 => json!({ "type": "integer", "format": "uint32" }),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({ "type": "string", "format": "int64" })
            }
            Kind::Uint64 | Kind::Fixed64 => json!({ "type": "string", "format": "uint64" }),
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::String => json!({ "type": "string" }),
            Kind::Bytes => json!({ "type": "string", "format": "byte" }),
            Kind::Enum(desc) => {
                let names: Vec<String> = desc.values().map(|v| v.name().to_owned()).collect();
                let mut schema = json!({ "type": "string", "enum": names });
                self.describe(&mut schema, desc.parent_file().name(), desc.path());
                schema
            }
            Kind::Message(desc) => self.message_kind_schema(desc),
        }
    }

    fn message_kind_schema(&mut self, desc: &MessageDescriptor) -> Json {
        match desc.full_name() {
            "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
            "google.protobuf.Duration" => json!({
                "type": "string",
                "description": "A duration in seconds with an `s` suffix, such as `3.5s`.",
            }),
            "google.protobuf.FieldMask" => json!({
                "type": "string",
                "description": "Comma-separated lowerCamelCase field paths.",
            }),
            "google.protobuf.Struct" => json!({ "type": "object", "additionalProperties": true }),
            "google.protobuf.Value" => json!({}),
            "google.protobuf.ListValue" => json!({ "type": "array", "items": {} }),
            "google.protobuf.Empty" => json!({ "type": "object" }),
            "google.protobuf.Any" => any_schema(),
            name if is_well_known(name) => {
                // A wrapper: its `value` field's schema, which may be null.
                let mut schema = match desc.get_field_by_name("value") {
                    Some(value) => self.kind_schema(&value.kind()),
                    None => json!({}),
                };
                insert(&mut schema, "nullable", Json::Bool(true));
                schema
            }
            _ => self.message_ref(desc),
        }
    }

    fn is_output_only(&self, field: &FieldDescriptor) -> bool {
        self.has_behavior(field, "OUTPUT_ONLY")
    }

    /// Whether `google.api.field_behavior` on `field` lists `name`.
    fn has_behavior(&self, field: &FieldDescriptor, name: &str) -> bool {
        let Some(extension) = &self.field_behavior else {
            return false;
        };
        let Kind::Enum(behavior) = extension.kind() else {
            return false;
        };
        let options = field.options();
        if !options.has_extension(extension) {
            return false;
        }
        match options.get_extension(extension).as_ref() {
            Value::List(values) => values
                .iter()
                .any(|v| v.as_enum_number().and_then(|n| behavior.get_value(n)).is_some_and(|v| v.name() == name)),
            _ => false,
        }
    }
}

/// Sets `key` on a JSON object; every schema built here is one.
fn insert(target: &mut Json, key: &str, value: Json) {
    if let Json::Object(map) = target {
        map.insert(key.to_owned(), value);
    }
}

fn any_schema() -> Json {
    json!({
        "type": "object",
        "description": "Any message, with its type URL in `@type`.",
        "properties": { "@type": { "type": "string" } },
        "additionalProperties": true,
    })
}

/// A proto comment as a description: one leading space per line removed,
/// blank edges trimmed; `None` when nothing is left.
fn clean_comment(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end()).collect();
    let joined = lines.join("\n").trim().to_owned();
    (!joined.is_empty()).then_some(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_lose_the_leading_space() {
        assert_eq!(
            clean_comment(" Pushes one job.\n Second line.\n"),
            Some("Pushes one job.\nSecond line.".to_owned())
        );
        assert_eq!(clean_comment("\n \n"), None);
    }
}
