//! Interpolation of `${name.path}` references, and the argument shorthands
//! the driver expands before a runner sees them.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use serde_json::{Map, Value};

/// The values a case's steps may refer to.
#[derive(Default)]
pub struct Vars(HashMap<String, Value>);

impl Vars {
    pub fn set(&mut self, name: &str, value: Value) {
        self.0.insert(name.to_owned(), value);
    }

    /// `value` with every `${...}` replaced.
    pub fn resolve(&self, value: &Value) -> Result<Value, String> {
        Ok(match value {
            Value::String(text) => self.interpolate(text)?,
            Value::Array(items) => Value::Array(items.iter().map(|v| self.resolve(v)).collect::<Result<_, _>>()?),
            Value::Object(map) => Value::Object(
                map.iter().map(|(k, v)| Ok((k.clone(), self.resolve(v)?))).collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }

    fn interpolate(&self, text: &str) -> Result<Value, String> {
        if let Some(path) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}'))
            && !path.contains("${")
        {
            return self.lookup(path).cloned();
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let end = rest[start..].find('}').ok_or_else(|| format!("unclosed ${{ in {text:?}"))? + start;
            out.push_str(&rest[..start]);
            match self.lookup(&rest[start + 2..end])? {
                Value::String(s) => out.push_str(s),
                other => out.push_str(&other.to_string()),
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(Value::String(out))
    }

    fn lookup(&self, path: &str) -> Result<&Value, String> {
        let mut parts = path.split('.');
        let name = parts.next().unwrap_or_default();
        let mut value = self.0.get(name).ok_or_else(|| format!("${{{path}}}: nothing saved as {name:?}"))?;
        for part in parts {
            value = match value {
                Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
                Value::Object(map) => map.get(part),
                _ => None,
            }
            .ok_or_else(|| format!("${{{path}}}: no {part:?} in {value}"))?;
        }
        Ok(value)
    }
}

/// Expands `{$string_of_length: N}` and `scheduled_in_ms: N` in step
/// arguments (see the README), anywhere in them.
pub fn expand_args(value: Value) -> Result<Value, String> {
    Ok(match value {
        Value::Array(items) => Value::Array(items.into_iter().map(expand_args).collect::<Result<_, _>>()?),
        Value::Object(map) if map.len() == 1 && map.contains_key("$string_of_length") => {
            let length = map["$string_of_length"].as_u64().ok_or("$string_of_length takes a number")?;
            Value::String("x".repeat(length as usize))
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                if key == "scheduled_in_ms" {
                    let ms = value.as_u64().ok_or("scheduled_in_ms takes a number")?;
                    let at = prost_types::Timestamp::from(SystemTime::now() + Duration::from_millis(ms));
                    out.insert("scheduled_at".into(), Value::String(at.to_string()));
                } else {
                    out.insert(key, expand_args(value)?);
                }
            }
            Value::Object(out)
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn references_keep_their_type_alone_and_become_text_inside_strings() {
        let mut vars = Vars::default();
        vars.set("queue", json!("q1"));
        vars.set("job", json!({"id": "01J", "attempts": 2, "list": [{"n": 7}]}));
        let resolved = vars
            .resolve(&json!({"a": "${job.attempts}", "b": "${queue}-b", "c": ["${job.list.0.n}"], "d": 3}))
            .unwrap();
        assert_eq!(resolved, json!({"a": 2, "b": "q1-b", "c": [7], "d": 3}));
        assert!(vars.resolve(&json!("${nothing.here}")).unwrap_err().contains("nothing saved"));
        assert!(vars.resolve(&json!("${job.missing}")).unwrap_err().contains("missing"));
    }

    #[test]
    fn shorthands_expand() {
        let args =
            expand_args(json!({"payload": {"$string_of_length": 3}, "jobs": [{"scheduled_in_ms": 1000}]})).unwrap();
        assert_eq!(args["payload"], json!("xxx"));
        let at: prost_types::Timestamp = args["jobs"][0]["scheduled_at"].as_str().unwrap().parse().unwrap();
        let at = SystemTime::try_from(at).unwrap();
        assert!(at > SystemTime::now() && at < SystemTime::now() + Duration::from_secs(2));
    }
}
