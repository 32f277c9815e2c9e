//! The results: SDK × storage × case, judged against the known-failing
//! lists, printed and written as JSON and Markdown.

use std::{collections::BTreeMap, fmt::Write, path::Path, time::Duration};

use serde_json::{Value, json};

/// What became of one case on one SDK and storage.
#[derive(Debug, Clone)]
pub enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
    /// Failed, and listed as known to fail.
    KnownFailing(String),
    /// Passed although listed as known to fail: the list is out of date.
    UnexpectedPass,
}

impl Outcome {
    fn symbol(&self) -> &'static str {
        match self {
            Outcome::Passed => "✓",
            Outcome::Failed(_) => "✗",
            Outcome::Skipped(_) => "–",
            Outcome::KnownFailing(_) => "k",
            Outcome::UnexpectedPass => "!",
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped(_) => "skipped",
            Outcome::KnownFailing(_) => "known failing",
            Outcome::UnexpectedPass => "passed, but listed as known failing",
        }
    }

    fn message(&self) -> Option<&str> {
        match self {
            Outcome::Failed(m) | Outcome::Skipped(m) | Outcome::KnownFailing(m) => Some(m),
            _ => None,
        }
    }

    /// Whether it turns the matrix red.
    pub fn is_bad(&self) -> bool {
        matches!(self, Outcome::Failed(_) | Outcome::UnexpectedPass)
    }
}

/// Every outcome of a run.
pub struct Matrix {
    pub sdks: Vec<String>,
    pub storages: Vec<String>,
    pub cases: Vec<String>,
    /// What each case checks, by name.
    pub descriptions: BTreeMap<String, String>,
    /// By (case, sdk, storage).
    pub outcomes: BTreeMap<(String, String, String), Outcome>,
    pub duration: Duration,
}

impl Matrix {
    /// Applies `sdk`'s known-failing patterns (names or globs).
    pub fn apply_known_failing(&mut self, sdk: &str, patterns: &[glob::Pattern]) {
        for ((case, s, _), outcome) in self.outcomes.iter_mut() {
            if s != sdk || !patterns.iter().any(|p| p.matches(case)) {
                continue;
            }
            *outcome = match &*outcome {
                Outcome::Failed(m) => Outcome::KnownFailing(m.clone()),
                Outcome::Passed => Outcome::UnexpectedPass,
                other => other.clone(),
            };
        }
    }

    pub fn is_green(&self) -> bool {
        !self.outcomes.values().any(Outcome::is_bad)
    }

    fn get(&self, case: &str, sdk: &str, storage: &str) -> Option<&Outcome> {
        self.outcomes.get(&(case.to_owned(), sdk.to_owned(), storage.to_owned()))
    }

    fn count(&self, sdk: &str, storage: &str, name: &str) -> usize {
        self.cases.iter().filter(|c| self.get(c, sdk, storage).is_some_and(|o| o.name() == name)).count()
    }

    /// The per-case table, for a terminal: one column per SDK and storage.
    pub fn text(&self) -> String {
        let width = self.cases.iter().map(|c| c.chars().count()).max().unwrap_or(4).max(4);
        let storage_width = self.storages.iter().map(String::len).max().unwrap_or(1).min(3);
        let column = (storage_width + 1) * self.storages.len() + 2;
        let mut out = format!("{:width$}", "case");
        for sdk in &self.sdks {
            let _ = write!(out, "  {sdk:column$}");
        }
        let _ = write!(out, "\n{:width$}", "");
        for _ in &self.sdks {
            out.push_str("  ");
            for storage in &self.storages {
                let _ = write!(out, "{:storage_width$} ", &storage[..storage_width.min(storage.len())]);
            }
            out.push_str("  ");
        }
        out.push('\n');
        for case in &self.cases {
            let _ = write!(out, "{case:width$}");
            for sdk in &self.sdks {
                out.push_str("  ");
                for storage in &self.storages {
                    let symbol = self.get(case, sdk, storage).map_or(" ", Outcome::symbol);
                    let _ = write!(out, "{symbol:storage_width$} ");
                }
                out.push_str("  ");
            }
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.summary_text());
        out.push_str(&self.problems());
        out
    }

    fn summary_text(&self) -> String {
        let mut out = String::new();
        for sdk in &self.sdks {
            for storage in &self.storages {
                let (passed, failed) = (self.count(sdk, storage, "passed"), self.count(sdk, storage, "failed"));
                let (skipped, known) = (self.count(sdk, storage, "skipped"), self.count(sdk, storage, "known failing"));
                let _ = writeln!(
                    out,
                    "{sdk:>10} × {storage:<8}  {passed:>3} passed  {failed:>3} failed  {skipped:>3} skipped  {known:>3} known failing"
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{} cases × {} SDKs × {} storages in {:.1} s: {}",
            self.cases.len(),
            self.sdks.len(),
            self.storages.len(),
            self.duration.as_secs_f64(),
            if self.is_green() { "all green" } else { "RED" }
        );
        out
    }

    /// Every bad or known-failing outcome, with its message.
    fn problems(&self) -> String {
        let mut out = String::new();
        for ((case, sdk, storage), outcome) in &self.outcomes {
            if outcome.is_bad() || matches!(outcome, Outcome::KnownFailing(_)) {
                let _ = writeln!(out, "\n{} {case} [{sdk} × {storage}]", outcome.name().to_uppercase());
                if let Some(description) = self.descriptions.get(case).filter(|d| !d.is_empty()) {
                    let _ = writeln!(out, "    ({description})");
                }
                if let Some(message) = outcome.message() {
                    let _ = writeln!(out, "    {message}");
                }
            }
        }
        out
    }

    pub fn json(&self) -> Value {
        let cases: Vec<Value> = self
            .cases
            .iter()
            .map(|case| {
                let mut results = serde_json::Map::new();
                for sdk in &self.sdks {
                    let mut by_storage = serde_json::Map::new();
                    for storage in &self.storages {
                        if let Some(outcome) = self.get(case, sdk, storage) {
                            by_storage.insert(
                                storage.clone(),
                                json!({"status": outcome.name(), "message": outcome.message()}),
                            );
                        }
                    }
                    results.insert(sdk.clone(), Value::Object(by_storage));
                }
                json!({"name": case, "description": self.descriptions.get(case), "results": results})
            })
            .collect();
        json!({
            "green": self.is_green(),
            "duration_seconds": self.duration.as_secs_f64(),
            "sdks": self.sdks,
            "storages": self.storages,
            "cases": cases,
        })
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from("# Conformance matrix\n\n| case |");
        let mut rule = String::from("|---|");
        for sdk in &self.sdks {
            for storage in &self.storages {
                let _ = write!(out, " {sdk} {storage} |");
                rule.push_str(":-:|");
            }
        }
        let _ = writeln!(out, "\n{rule}");
        for case in &self.cases {
            let _ = write!(out, "| `{case}` |");
            for sdk in &self.sdks {
                for storage in &self.storages {
                    let _ = write!(out, " {} |", self.get(case, sdk, storage).map_or("", Outcome::symbol));
                }
            }
            out.push('\n');
        }
        let _ = write!(out, "\n```\n{}{}```\n", self.summary_text(), self.problems());
        out
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("matrix.json"), format!("{:#}\n", self.json()))?;
        std::fs::write(dir.join("matrix.md"), self.markdown())
    }
}

/// `sdk`'s known-failing patterns, from `dir/<sdk>.yaml` (none if absent).
pub fn known_failing(dir: &Path, sdk: &str) -> Result<Vec<glob::Pattern>, String> {
    let path = dir.join(format!("{sdk}.yaml"));
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(Vec::new()) };
    let names: Option<Vec<String>> = serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    names
        .unwrap_or_default()
        .iter()
        .map(|n| glob::Pattern::new(n).map_err(|e| format!("{}: {n:?}: {e}", path.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(outcome: Outcome) -> Matrix {
        let key = ("cancel/running".to_owned(), "go".to_owned(), "sqlite".to_owned());
        Matrix {
            sdks: vec!["go".into()],
            storages: vec!["sqlite".into()],
            cases: vec![key.0.clone()],
            descriptions: BTreeMap::new(),
            outcomes: BTreeMap::from([(key, outcome)]),
            duration: Duration::from_secs(1),
        }
    }

    #[test]
    fn known_failures_are_tolerated_and_known_failures_that_pass_are_not() {
        let patterns = [glob::Pattern::new("cancel/*").unwrap()];
        let mut failing = matrix(Outcome::Failed("boom".into()));
        assert!(!failing.is_green());
        failing.apply_known_failing("go", &patterns);
        assert!(failing.is_green());
        let mut passing = matrix(Outcome::Passed);
        passing.apply_known_failing("go", &patterns);
        assert!(!passing.is_green());
        let mut other_sdk = matrix(Outcome::Failed("boom".into()));
        other_sdk.apply_known_failing("rust", &patterns);
        assert!(!other_sdk.is_green());
    }
}
