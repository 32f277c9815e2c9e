//! The route table and request path matching.
//!
//! Routes are kept in priority order: a template with a custom verb comes
//! before one without, then more literal segments before fewer, then at the
//! first segment where two templates differ a literal beats `*`, which beats
//! `**`; ties keep the order of the descriptor set. A request is matched
//! against each route in turn. This module knows nothing of JSON or gRPC;
//! building routes from annotations is `rule.rs`.

use std::{cmp::Ordering, fmt};

use http::{Method, uri::PathAndQuery};
use percent_encoding::percent_decode_str;
use prost_reflect::{FieldDescriptor, MethodDescriptor};

use crate::template::{Segment, Template};

/// Where the request body goes in the request message.
#[derive(Debug, Clone)]
pub(crate) enum BodyRule {
    /// No body: everything comes from the path and the query string.
    None,
    /// `body: "*"`: the body is the whole request message.
    Whole,
    /// `body: "field"`: the body is this top-level field.
    Field(FieldDescriptor),
}

/// One HTTP binding of an RPC: a method, a path template and where the
/// request and response bodies go.
#[derive(Debug, Clone)]
pub struct Route {
    pub(crate) method: Method,
    pub(crate) text: String,
    pub(crate) template: Template,
    pub(crate) rpc: MethodDescriptor,
    /// `/package.Service/Method`, the gRPC path to call.
    pub(crate) grpc_path: PathAndQuery,
    pub(crate) body: BodyRule,
    pub(crate) response_body: Option<FieldDescriptor>,
    /// The fields each template variable sets, in `template.variables` order;
    /// each is the chain of fields from the request message to the leaf.
    pub(crate) path_fields: Vec<Vec<FieldDescriptor>>,
    /// 0 for the main binding, n for the n-th of `additional_bindings`.
    pub(crate) binding: usize,
}

impl Route {
    /// The HTTP method: `GET`, `POST`, … or a `custom` kind.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path template as written in the annotation: `/queues/{queue}/jobs`.
    pub fn template(&self) -> &str {
        &self.text
    }

    /// The full name of the RPC: `chirpy.v1.JobService.PushJob`.
    pub fn rpc(&self) -> &str {
        self.rpc.full_name()
    }
}

/// `POST /queues/{queue}/jobs -> chirpy.v1.JobService.PushJob`
impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.method, self.text, self.rpc())
    }
}

/// What matching a request against the table found.
#[derive(Debug)]
pub(crate) enum Match<'a> {
    /// A route, and each template variable's percent-decoded value.
    Found(&'a Route, Vec<String>),
    /// Routes match the path, but none for this method; these are the
    /// methods that would (the `Allow` header).
    MethodNotAllowed(Vec<Method>),
    /// The path matched, but a variable is not valid UTF-8 once decoded.
    BadPath(String),
    NotFound,
}

/// Every route, in priority order.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Sorts `routes` by priority (see the module docs).
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by(|a, b| priority(&a.template, &b.template));
        Self { routes }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// Finds the route for `method` and the request's raw (still
    /// percent-encoded) `path`.
    pub fn find(&self, method: &Method, path: &str) -> Match<'_> {
        let mut allowed: Vec<Method> = Vec::new();
        for route in &self.routes {
            let Some(captures) = match_path(&route.template, path) else {
                continue;
            };
            if route.method != method {
                if !allowed.contains(&route.method) {
                    allowed.push(route.method.clone());
                }
                continue;
            }
            return match captures {
                Ok(values) => Match::Found(route, values),
                Err(reason) => Match::BadPath(reason),
            };
        }
        if allowed.is_empty() { Match::NotFound } else { Match::MethodNotAllowed(allowed) }
    }
}

/// Orders templates so that the more specific comes first.
fn priority(a: &Template, b: &Template) -> Ordering {
    fn rank(segment: &Segment) -> u8 {
        match segment {
            Segment::Literal(_) => 0,
            Segment::Single => 1,
            Segment::Multi => 2,
        }
    }
    b.verb.is_some().cmp(&a.verb.is_some()).then_with(|| b.literal_count().cmp(&a.literal_count())).then_with(|| {
        let ranks = |t: &Template| t.segments.iter().map(rank).collect::<Vec<_>>();
        ranks(a).cmp(&ranks(b))
    })
}

/// Matches a raw request path against `template`.
///
/// `None`: no match. `Some(Err)`: the path matches but a variable is not
/// UTF-8 once decoded. `Some(Ok)`: the decoded value of each variable.
fn match_path(template: &Template, path: &str) -> Option<Result<Vec<String>, String>> {
    let path = path.strip_prefix('/')?;
    let path = match &template.verb {
        Some(verb) => path.strip_suffix(verb.as_str())?.strip_suffix(':')?,
        None => path,
    };
    let segments: Vec<&str> = if path.is_empty() { Vec::new() } else { path.split('/').collect() };
    // Where each template segment starts in the request; `**` takes the rest.
    let multi = template.segments.last() == Some(&Segment::Multi);
    let fixed = template.segments.len() - usize::from(multi);
    if segments.len() < fixed || (!multi && segments.len() != fixed) {
        return None;
    }
    for (pattern, raw) in template.segments.iter().zip(&segments) {
        match pattern {
            Segment::Literal(text) => {
                if percent_decode_str(raw).decode_utf8().ok()? != text.as_str() {
                    return None;
                }
            }
            Segment::Single if raw.is_empty() => return None,
            Segment::Single | Segment::Multi => {}
        }
    }
    let captures = template.variables.iter().map(|var| {
        // A variable that ends with `**` takes every remaining segment.
        let end = if multi && var.end == template.segments.len() { segments.len() } else { var.end };
        let covered = &segments[var.start..end];
        if let [one] = covered
            && var.end - var.start == 1
            && template.segments[var.start] == Segment::Single
        {
            decode(one, var.name())
        } else {
            // http.proto: a multi-segment variable is decoded, except that
            // `%2F` stays encoded so that it is not confused with `/`.
            covered
                .iter()
                .map(|raw| {
                    let parts: Result<Vec<String>, String> =
                        split_keep_slash(raw).map(|part| decode(part, var.name())).collect();
                    parts.map(|p| p.join("%2F"))
                })
                .collect::<Result<Vec<String>, String>>()
                .map(|parts| parts.join("/"))
        }
    });
    Some(captures.collect())
}

/// Splits a raw segment on `%2F` (either case), for reserved-slash decoding.
fn split_keep_slash(raw: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(raw);
    std::iter::from_fn(move || {
        let text = rest?;
        // Byte search: `%2F` is ASCII, so both ends are char boundaries.
        let found = text.as_bytes().windows(3).position(|w| w.eq_ignore_ascii_case(b"%2F"));
        match found {
            Some(i) => {
                rest = Some(&text[i + 3..]);
                Some(&text[..i])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

fn decode(raw: &str, name: String) -> Result<String, String> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("{name}: the path segment is not valid UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(template: &str, path: &str) -> Option<Vec<String>> {
        let t = Template::parse(template).expect(template);
        match_path(&t, path).map(|r| r.expect("utf-8"))
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn matches_and_captures() {
        let cases: &[(&str, &str, Option<&[&str]>)] = &[
            ("/queues", "/queues", Some(&[])),
            ("/queues", "/queues/", None),
            ("/queues/{queue}/jobs", "/queues/email/jobs", Some(&["email"])),
            ("/queues/{queue}/jobs", "/queues//jobs", None),
            ("/queues/{queue}/jobs", "/queues/email/jobs/x", None),
            ("/queues/{queue}/jobs/{id}:retry", "/queues/q/jobs/7:retry", Some(&["q", "7"])),
            ("/queues/{queue}/jobs/{id}:retry", "/queues/q/jobs/7", None),
            ("/queues/{queue}/jobs/{id}:retry", "/queues/q/jobs/7:cancel", None),
            // Without a verb in the template the colon is part of the value.
            ("/queues/{queue}/jobs/{id}", "/queues/q/jobs/7:retry", Some(&["q", "7:retry"])),
            ("/v1/{name=queues/*/jobs/*}", "/v1/queues/a/jobs/b", Some(&["queues/a/jobs/b"])),
            ("/v1/{name=queues/*/jobs/*}", "/v1/queues/a/jobs", None),
            ("/v1/{name=queues/*/jobs/*}", "/v1/shelves/a/jobs/b", None),
            ("/v1/files/{path=**}", "/v1/files/a/b/c", Some(&["a/b/c"])),
            ("/v1/files/{path=**}", "/v1/files", Some(&[""])),
            ("/v1/files/{path=**}:get", "/v1/files/a/b:get", Some(&["a/b"])),
            // Percent-decoding: a single segment is fully decoded ...
            ("/queues/{queue}", "/queues/a%2Fb%20c", Some(&["a/b c"])),
            ("/queues/{queue}", "/queues/caf%C3%A9", Some(&["café"])),
            // ... a multi-segment variable keeps %2F encoded (http.proto).
            ("/v1/files/{path=**}", "/v1/files/a%2Fb/c%20d", Some(&["a%2Fb/c d"])),
            ("/v1/files/{path=**}", "/v1/files/a%2fb", Some(&["a%2Fb"])),
            // Literals are compared decoded.
            ("/queues/{q}", "/%71ueues/x", Some(&["x"])),
        ];
        for (template, path, want) in cases {
            let want = want.map(strings);
            assert_eq!(capture(template, path), want, "{template} vs {path}");
        }
    }

    #[test]
    fn invalid_utf8_is_reported_not_dropped() {
        let t = Template::parse("/queues/{queue}").expect("parses");
        let got = match_path(&t, "/queues/%FF").expect("the path matches");
        assert!(got.expect_err("not utf-8").starts_with("queue:"));
    }

    #[test]
    fn priority_prefers_verbs_then_literals() {
        let mut templates = vec!["/v1/{a}/{b}", "/v1/**", "/v1/{a}/x", "/v1/x/{b}", "/v1/x/y", "/v1/{a}/{b}:run"];
        templates.sort_by(|a, b| priority(&Template::parse(a).expect(a), &Template::parse(b).expect(b)));
        assert_eq!(templates, ["/v1/{a}/{b}:run", "/v1/x/y", "/v1/x/{b}", "/v1/{a}/x", "/v1/{a}/{b}", "/v1/**"]);
    }
}
