//! The path template grammar of `google/api/http.proto`:
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! A template is parsed into a flat list of segments; each variable covers a
//! span of them. This module only parses and prints; matching a request path
//! is `route.rs`, and resolving a variable's field path is `rule.rs`.

use std::fmt;

/// One segment of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Matches exactly this text (after percent-decoding the request).
    Literal(String),
    /// `*`: exactly one non-empty segment.
    Single,
    /// `**`: zero or more segments; only allowed last.
    Multi,
}

/// A `{field.path=segments}` variable and the segments it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variable {
    /// The field path, split on `.`: `["nested", "label"]`.
    pub field_path: Vec<String>,
    /// Index of the first segment the variable covers.
    pub start: usize,
    /// Index one past the last segment the variable covers.
    pub end: usize,
}

impl Variable {
    /// The field path as written in the template: `nested.label`.
    pub fn name(&self) -> String {
        self.field_path.join(".")
    }
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub segments: Vec<Segment>,
    pub variables: Vec<Variable>,
    pub verb: Option<String>,
}

/// Why a template does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {position}: {reason}")]
pub(crate) struct TemplateError {
    pub position: usize,
    pub reason: String,
}

impl Template {
    /// Parses `text`, such as `/v1/{name=shelves/*/books/*}:publish`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parser =
            Parser { text, pos: 0, template: Template { segments: Vec::new(), variables: Vec::new(), verb: None } };
        parser.template()?;
        Ok(parser.template)
    }

    /// How many segments are literals; more literals means a more specific route.
    pub fn literal_count(&self) -> usize {
        self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count()
    }

    /// The path in OpenAPI form: each variable becomes `{field.path}`.
    pub fn openapi_path(&self) -> String {
        self.render(|var, _| format!("{{{}}}", var.name()))
    }

    fn render(&self, variable: impl Fn(&Variable, &[Segment]) -> String) -> String {
        let mut parts = Vec::new();
        let mut index = 0;
        while index < self.segments.len() {
            if let Some(var) = self.variables.iter().find(|v| v.start == index) {
                parts.push(variable(var, &self.segments[var.start..var.end]));
                index = var.end.max(index + 1);
            } else {
                parts.push(segment_text(&self.segments[index]).to_owned());
                index += 1;
            }
        }
        let mut out = format!("/{}", parts.join("/"));
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        out
    }
}

fn segment_text(segment: &Segment) -> &str {
    match segment {
        Segment::Literal(text) => text,
        Segment::Single => "*",
        Segment::Multi => "**",
    }
}

/// Prints the canonical form; parsing it again gives the same template.
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.render(|var, covered| {
            if covered == [Segment::Single] {
                format!("{{{}}}", var.name())
            } else {
                let inner: Vec<&str> = covered.iter().map(segment_text).collect();
                format!("{{{}={}}}", var.name(), inner.join("/"))
            }
        });
        f.write_str(&text)
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    template: Template,
}

impl Parser<'_> {
    fn template(&mut self) -> Result<(), TemplateError> {
        self.expect('/')?;
        // `/` alone (no segments) is accepted: it is the root path.
        if self.pos < self.text.len() {
            self.segments(false)?;
        }
        if self.eat(':') {
            let verb = self.literal()?;
            self.template.verb = Some(verb);
        }
        if self.pos != self.text.len() {
            return Err(self.error("unexpected character"));
        }
        let segments = &self.template.segments;
        if let Some(i) = segments.iter().position(|s| *s == Segment::Multi)
            && i + 1 != segments.len()
        {
            return Err(self.error("`**` must be the last segment"));
        }
        Ok(())
    }

    /// `Segment { "/" Segment }`, inside a variable when `in_variable`.
    fn segments(&mut self, in_variable: bool) -> Result<(), TemplateError> {
        loop {
            self.segment(in_variable)?;
            if !self.eat('/') {
                return Ok(());
            }
        }
    }

    fn segment(&mut self, in_variable: bool) -> Result<(), TemplateError> {
        if self.eat_str("**") {
            self.template.segments.push(Segment::Multi);
        } else if self.eat('*') {
            self.template.segments.push(Segment::Single);
        } else if self.peek() == Some('{') {
            if in_variable {
                return Err(self.error("variables cannot be nested"));
            }
            self.variable()?;
        } else {
            let literal = self.literal()?;
            self.template.segments.push(Segment::Literal(literal));
        }
        Ok(())
    }

    fn variable(&mut self) -> Result<(), TemplateError> {
        self.expect('{')?;
        let mut field_path = vec![self.ident()?];
        while self.eat('.') {
            field_path.push(self.ident()?);
        }
        let start = self.template.segments.len();
        if self.eat('=') {
            self.segments(true)?;
        } else {
            self.template.segments.push(Segment::Single);
        }
        self.expect('}')?;
        if self.template.variables.iter().any(|v| v.field_path == field_path) {
            return Err(self.error(&format!("variable `{}` appears twice", field_path.join("."))));
        }
        let end = self.template.segments.len();
        self.template.variables.push(Variable { field_path, start, end });
        Ok(())
    }

    fn ident(&mut self) -> Result<String, TemplateError> {
        let rest = &self.text[self.pos..];
        let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let ident = &rest[..len];
        if ident.is_empty() || ident.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(self.error("expected a field name"));
        }
        self.pos += len;
        Ok(ident.to_owned())
    }

    fn literal(&mut self) -> Result<String, TemplateError> {
        let rest = &self.text[self.pos..];
        let len = rest.find(['/', '{', '}', '*', ':', '=']).unwrap_or(rest.len());
        if len == 0 {
            return Err(self.error("expected a literal"));
        }
        self.pos += len;
        Ok(rest[..len].to_owned())
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.pos += c.len_utf8();
        }
        found
    }

    fn eat_str(&mut self, s: &str) -> bool {
        let found = self.text[self.pos..].starts_with(s);
        if found {
            self.pos += s.len();
        }
        found
    }

    fn expect(&mut self, c: char) -> Result<(), TemplateError> {
        if self.eat(c) { Ok(()) } else { Err(self.error(&format!("expected `{c}`"))) }
    }

    fn error(&self, reason: &str) -> TemplateError {
        TemplateError { position: self.pos, reason: reason.to_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.to_owned())
    }

    fn var(path: &str, start: usize, end: usize) -> Variable {
        Variable { field_path: path.split('.').map(str::to_owned).collect(), start, end }
    }

    #[test]
    fn parses_the_grammar() {
        use Segment::{Multi, Single};
        // (template, segments, variables, verb)
        type Case = (&'static str, Vec<Segment>, Vec<Variable>, Option<&'static str>);
        let cases: Vec<Case> = vec![
            ("/", vec![], vec![], None),
            ("/queues", vec![lit("queues")], vec![], None),
            ("/queues/{queue}/jobs", vec![lit("queues"), Single, lit("jobs")], vec![var("queue", 1, 2)], None),
            (
                "/queues/{queue}/jobs/{id}:retry",
                vec![lit("queues"), Single, lit("jobs"), Single],
                vec![var("queue", 1, 2), var("id", 3, 4)],
                Some("retry"),
            ),
            (
                "/v1/{name=queues/*/jobs/*}",
                vec![lit("v1"), lit("queues"), Single, lit("jobs"), Single],
                vec![var("name", 1, 5)],
                None,
            ),
            ("/v1/files/{path=**}", vec![lit("v1"), lit("files"), Multi], vec![var("path", 2, 3)], None),
            ("/v1/*/x/{a.b_c}:do", vec![lit("v1"), Single, lit("x"), Single], vec![var("a.b_c", 3, 4)], Some("do")),
            ("/v1.2/**", vec![lit("v1.2"), Multi], vec![], None),
        ];
        for (text, segments, variables, verb) in cases {
            let t = Template::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(t.segments, segments, "{text}");
            assert_eq!(t.variables, variables, "{text}");
            assert_eq!(t.verb.as_deref(), verb, "{text}");
        }
    }

    #[test]
    fn rejects_what_the_grammar_does_not_allow() {
        for text in [
            "", "queues", "/queues/", "//queues", "/{queue", "/{}", "/{1abc}", "/{a={b}}", "/**/x", "/{a}/{a}", "/x:",
            "/x:a:b", "/x}", "/{a=}",
        ] {
            assert!(Template::parse(text).is_err(), "{text:?} should not parse");
        }
    }

    #[test]
    fn prints_and_parses_back() {
        for text in [
            "/",
            "/queues/{queue}/jobs/{id}:retry",
            "/v1/{name=queues/*/jobs/*}",
            "/v1/files/{path=**}",
            "/v1/*/x/{a.b}:do",
        ] {
            let t = Template::parse(text).expect(text);
            assert_eq!(t.to_string(), text);
            assert_eq!(Template::parse(&t.to_string()).expect(text), t);
        }
    }

    #[test]
    fn openapi_path_names_variables_only() {
        let t = Template::parse("/v1/{name=queues/*/jobs/*}:run").expect("parses");
        assert_eq!(t.openapi_path(), "/v1/{name}:run");
    }
}
