//! The cases, as read from `conformance/cases/*.yaml`.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

/// One case: steps run in order through one SDK against one server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The storages it applies to; all when absent.
    pub storages: Option<Vec<String>>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    pub steps: Vec<Step>,
}

fn default_timeout_ms() -> u64 {
    30_000
}

/// One step: its kind and arguments, and what to do with its answer.
#[derive(Debug)]
pub struct Step {
    pub kind: String,
    pub args: Value,
    /// The name its result is saved under.
    pub save_as: Option<String>,
    pub expect: Option<Value>,
    pub expect_error: Option<Value>,
    /// Repeat until the expectation holds, for at most this long.
    pub until_ms: Option<u64>,
}

impl<'de> Deserialize<'de> for Step {
    /// A map of the optional keys and exactly one other key, the kind.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = Map::<String, Value>::deserialize(deserializer)?;
        let save_as = match map.remove("as") {
            Some(Value::String(name)) => Some(name),
            Some(other) => return Err(D::Error::custom(format!("`as` must be a name, not {other}"))),
            None => None,
        };
        let until_ms = match map.remove("until_ms") {
            Some(ms) => Some(ms.as_u64().ok_or_else(|| D::Error::custom("`until_ms` must be a number"))?),
            None => None,
        };
        let (expect, expect_error) = (map.remove("expect"), map.remove("expect_error"));
        if expect.is_some() && expect_error.is_some() {
            return Err(D::Error::custom("a step has `expect` or `expect_error`, not both"));
        }
        let mut rest = map.into_iter();
        let (kind, args) = match (rest.next(), rest.next()) {
            (Some(kind), None) => kind,
            _ => return Err(D::Error::custom("a step has exactly one kind (push, get, ...) besides its options")),
        };
        let args = if args.is_null() { Value::Object(Map::new()) } else { args };
        Ok(Step { kind, args, save_as, expect, expect_error, until_ms })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    cases: Vec<Case>,
}

/// Every case of the `*.yaml` files in `dir`, by file name then order.
pub fn load(dir: &Path) -> Result<Vec<Case>, String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    let mut cases: Vec<Case> = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: File = serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for case in file.cases {
            if cases.iter().any(|c| c.name == case.name) {
                return Err(format!("{}: case {:?} is defined twice", path.display(), case.name));
            }
            cases.push(case);
        }
    }
    if cases.is_empty() {
        return Err(format!("{}: no cases", dir.display()));
    }
    Ok(cases)
}
