//! Compiles `google.api.http` annotations into routes.
//!
//! Every method of every service in the pool is read; a method with an
//! `HttpRule` yields one route for the rule and one per entry of
//! `additional_bindings`. Everything that can be checked once is checked
//! here, so that a bad annotation stops the server at start-up instead of
//! failing requests: the template grammar, that each variable names a
//! singular field that text can set, that `body` and `response_body` name
//! top-level fields, and that no two routes share a method and a path.
//! Streaming methods are skipped with a warning.

use http::{Method, uri::PathAndQuery};
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor, Value,
};

use crate::{
    BuildError,
    request::settable_from_text,
    route::{BodyRule, Route},
    template::{Segment, Template},
};

/// The HTTP methods `HttpRule` names directly, by field name.
const METHODS: [(&str, Method); 5] = [
    ("get", Method::GET),
    ("put", Method::PUT),
    ("post", Method::POST),
    ("delete", Method::DELETE),
    ("patch", Method::PATCH),
];

/// Builds a route for every binding of every annotated unary method.
pub(crate) fn compile(pool: &DescriptorPool) -> Result<Vec<Route>, BuildError> {
    // Without google/api/http.proto in the pool nothing can be annotated.
    let Some(extension) = pool.get_extension_by_name("google.api.http") else {
        return Ok(Vec::new());
    };
    let mut routes: Vec<Route> = Vec::new();
    for service in pool.services() {
        for method in service.methods() {
            let options = method.options();
            if !options.has_extension(&extension) {
                continue;
            }
            if method.is_client_streaming() || method.is_server_streaming() {
                tracing::warn!(rpc = method.full_name(), "streaming method has an HTTP rule; it is not transcoded");
                continue;
            }
            let Value::Message(rule) = options.get_extension(&extension).into_owned() else {
                continue;
            };
            let extra = additional_bindings(&rule);
            routes.push(binding(&method, &rule, 0)?);
            for (index, extra) in extra.iter().enumerate() {
                if !additional_bindings(extra).is_empty() {
                    return Err(rule_error(
                        &method,
                        "additional_bindings cannot have additional_bindings of their own",
                    ));
                }
                routes.push(binding(&method, extra, index + 1)?);
            }
        }
    }
    check_duplicates(&routes)?;
    Ok(routes)
}

fn additional_bindings(rule: &DynamicMessage) -> Vec<DynamicMessage> {
    match rule.get_field_by_name("additional_bindings").as_deref() {
        Some(Value::List(list)) => list.iter().filter_map(|v| v.as_message().cloned()).collect(),
        _ => Vec::new(),
    }
}

fn string_field(message: &DynamicMessage, name: &str) -> String {
    message.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Compiles one `HttpRule` (the main one, or an additional binding).
fn binding(rpc: &MethodDescriptor, rule: &DynamicMessage, index: usize) -> Result<Route, BuildError> {
    let (method, text) = pattern(rpc, rule)?;
    let template = Template::parse(&text).map_err(|e| BuildError::Template {
        rpc: rpc.full_name().to_owned(),
        template: text.clone(),
        reason: e.to_string(),
    })?;
    let input = rpc.input();
    let path_fields = template
        .variables
        .iter()
        .map(|var| path_field(&input, &var.field_path).map_err(|reason| rule_error(rpc, &reason)))
        .collect::<Result<Vec<_>, _>>()?;
    let body = match string_field(rule, "body").as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::Whole,
        name => BodyRule::Field(top_level(&input, name).map_err(|r| rule_error(rpc, &r))?),
    };
    let response_body = match string_field(rule, "response_body").as_str() {
        "" => None,
        name => Some(top_level(&rpc.output(), name).map_err(|r| rule_error(rpc, &r))?),
    };
    let grpc_path = format!("/{}/{}", rpc.parent_service().full_name(), rpc.name());
    let grpc_path = PathAndQuery::try_from(grpc_path.as_str())
        .map_err(|e| rule_error(rpc, &format!("gRPC path {grpc_path}: {e}")))?;
    Ok(Route { method, text, template, rpc: rpc.clone(), grpc_path, body, response_body, path_fields, binding: index })
}

/// The HTTP method and path template of a rule's `pattern` oneof.
fn pattern(rpc: &MethodDescriptor, rule: &DynamicMessage) -> Result<(Method, String), BuildError> {
    for (name, method) in METHODS {
        if rule.has_field_by_name(name) {
            return Ok((method, string_field(rule, name)));
        }
    }
    if let Some(Value::Message(custom)) = rule.get_field_by_name("custom").as_deref()
        && rule.has_field_by_name("custom")
    {
        let kind = string_field(custom, "kind");
        let method = Method::from_bytes(kind.as_bytes())
            .map_err(|_| rule_error(rpc, &format!("custom kind {kind:?} is not an HTTP method")))?;
        return Ok((method, string_field(custom, "path")));
    }
    Err(rule_error(rpc, "the HTTP rule has no get, put, post, delete, patch or custom"))
}

/// Resolves a template variable's field path in the request message.
fn path_field(input: &MessageDescriptor, path: &[String]) -> Result<Vec<FieldDescriptor>, String> {
    let mut message = input.clone();
    let mut chain = Vec::new();
    for (i, name) in path.iter().enumerate() {
        let dotted = path[..=i].join(".");
        let field = message
            .get_field_by_name(name)
            .ok_or_else(|| format!("path variable `{dotted}`: no such field in {}", message.full_name()))?;
        if field.is_list() || field.is_map() {
            return Err(format!("path variable `{dotted}` is repeated"));
        }
        let last = i + 1 == path.len();
        match field.kind() {
            Kind::Message(next) if !last => message = next,
            _ if !last => return Err(format!("path variable `{dotted}` is not a message")),
            kind if !settable_from_text(&kind) => {
                return Err(format!("path variable `{dotted}` cannot be set from text"));
            }
            _ => {}
        }
        chain.push(field);
    }
    Ok(chain)
}

fn top_level(message: &MessageDescriptor, name: &str) -> Result<FieldDescriptor, String> {
    message.get_field_by_name(name).ok_or_else(|| format!("no field `{name}` in {}", message.full_name()))
}

fn rule_error(rpc: &MethodDescriptor, reason: &str) -> BuildError {
    BuildError::Rule { rpc: rpc.full_name().to_owned(), reason: reason.to_owned() }
}

/// Two routes with one method and the same path shape would make one of them
/// unreachable; that is an authoring mistake, so say so at start-up.
fn check_duplicates(routes: &[Route]) -> Result<(), BuildError> {
    let shape = |t: &Template| -> (Vec<Segment>, Option<String>) { (t.segments.clone(), t.verb.clone()) };
    for (i, a) in routes.iter().enumerate() {
        for b in &routes[i + 1..] {
            if a.method == b.method && shape(&a.template) == shape(&b.template) {
                return Err(BuildError::Duplicate {
                    method: a.method.to_string(),
                    template: b.text.clone(),
                    first: a.rpc().to_owned(),
                    second: b.rpc().to_owned(),
                });
            }
        }
    }
    Ok(())
}
