//! Matching an answer against a case's expectation (the README's
//! "Matching").

use serde_json::Value;

/// Whether `actual` matches `expected`; the error says where it does not.
pub fn check(expected: &Value, actual: &Value) -> Result<(), String> {
    at("", expected, actual)
}

fn at(path: &str, expected: &Value, actual: &Value) -> Result<(), String> {
    let mismatch = || Err(format!("{}: expected {}, got {}", shown(path), brief(expected), brief(actual)));
    match expected {
        Value::Object(map) if map.len() == 1 && map.keys().all(|k| k.starts_with('$')) => {
            let (operator, operand) = map.iter().next().expect("one entry");
            operator_at(path, operator, operand, actual)
        }
        Value::Object(map) => {
            if !actual.is_object() {
                return mismatch();
            }
            map.iter().try_for_each(|(key, e)| at(&format!("{path}.{key}"), e, actual.get(key).unwrap_or(&Value::Null)))
        }
        Value::Array(items) => match actual.as_array() {
            Some(actual) if actual.len() == items.len() => {
                items.iter().zip(actual).enumerate().try_for_each(|(i, (e, a))| at(&format!("{path}.{i}"), e, a))
            }
            _ => mismatch(),
        },
        Value::Number(e) => match actual.as_f64() {
            Some(a) if e.as_f64() == Some(a) => Ok(()),
            _ => mismatch(),
        },
        _ if expected == actual => Ok(()),
        _ => mismatch(),
    }
}

fn operator_at(path: &str, operator: &str, operand: &Value, actual: &Value) -> Result<(), String> {
    let fail = |what: String| Err(format!("{}: expected {what}, got {}", shown(path), brief(actual)));
    let matches = |e: &Value, a: &Value| at(path, e, a).is_ok();
    let number = || operand.as_f64().ok_or_else(|| format!("{operator} takes a number"));
    let list = || operand.as_array().ok_or_else(|| format!("{operator} takes a list"));
    match operator {
        "$exists" if operand == &Value::Bool(!actual.is_null()) => Ok(()),
        "$exists" => fail(format!("$exists: {operand}")),
        "$absent" if operand == &Value::Bool(absent(actual)) => Ok(()),
        "$absent" => fail(format!("$absent: {operand}")),
        "$len" => {
            let len = match actual {
                Value::Array(items) => Some(items.len()),
                Value::String(text) => Some(text.chars().count()),
                Value::Object(map) => Some(map.len()),
                _ => None,
            };
            if len.map(|l| l as f64) == Some(number()?) { Ok(()) } else { fail(format!("length {operand}")) }
        }
        "$contains" => {
            let items = actual.as_array().map(Vec::as_slice).unwrap_or_default();
            match list()?.iter().find(|e| !items.iter().any(|a| matches(e, a))) {
                None if actual.is_array() => Ok(()),
                None => fail("a list".into()),
                Some(missing) => fail(format!("a list with an item matching {}", brief(missing))),
            }
        }
        "$in_order" => {
            let mut items = actual.as_array().map(Vec::as_slice).unwrap_or_default().iter();
            match list()?.iter().find(|e| !items.any(|a| matches(e, a))) {
                None => Ok(()),
                Some(missing) => fail(format!("{} in order, missing {}", brief(operand), brief(missing))),
            }
        }
        "$each" => match actual.as_array() {
            Some(items) => items.iter().enumerate().try_for_each(|(i, a)| at(&format!("{path}.{i}"), operand, a)),
            None => fail("a list".into()),
        },
        "$not" if matches(operand, actual) => fail(format!("anything but {}", brief(operand))),
        "$not" => Ok(()),
        "$includes" => {
            let needle = operand.as_str().ok_or("$includes takes a string")?.to_lowercase();
            match actual.as_str() {
                Some(text) if text.to_lowercase().contains(&needle) => Ok(()),
                _ => fail(format!("text including {operand}")),
            }
        }
        "$gte" | "$lte" => {
            let bound = number()?;
            match actual.as_f64() {
                Some(a) if (operator == "$gte" && a >= bound) || (operator == "$lte" && a <= bound) => Ok(()),
                _ => fail(format!("{operator} {operand}")),
            }
        }
        "$one_of" if list()?.iter().any(|e| matches(e, actual)) => Ok(()),
        "$one_of" => fail(format!("one of {}", brief(operand))),
        other => Err(format!("{}: unknown operator {other}", shown(path))),
    }
}

/// Missing, null or empty.
fn absent(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "the result" } else { &path[1..] }
}

/// A value in a failure message, cut short.
pub fn brief(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::check;

    #[test]
    fn objects_match_on_the_keys_they_list() {
        let job = json!({"id": "a", "state": "PENDING", "attempts": 0, "metadata": {"k": "v"}, "result": null});
        assert!(check(&json!({"state": "PENDING", "attempts": 0.0}), &job).is_ok());
        assert!(check(&json!({"metadata": {"k": "v"}, "missing": null}), &job).is_ok());
        let err = check(&json!({"state": "DEAD"}), &job).unwrap_err();
        assert_eq!(err, r#"state: expected "DEAD", got "PENDING""#);
        assert!(check(&json!([1, 2]), &json!([1, 2, 3])).is_err());
    }

    #[test]
    fn operators() {
        let events = json!([{"job": "a", "event": "started"}, {"job": "b", "event": "started"}, {"job": "a", "event": "succeeded"}]);
        assert!(check(&json!({"$contains": [{"job": "a", "event": "succeeded"}]}), &events).is_ok());
        assert!(check(&json!({"$contains": [{"job": "c"}]}), &events).is_err());
        assert!(check(&json!({"$in_order": [{"job": "b"}, {"event": "succeeded"}]}), &events).is_ok());
        assert!(check(&json!({"$in_order": [{"event": "succeeded"}, {"job": "b"}]}), &events).is_err());
        assert!(check(&json!({"$len": 3}), &events).is_ok());
        assert!(check(&json!({"$each": {"job": {"$one_of": ["a", "b"]}}}), &events).is_ok());
        assert!(check(&json!({"$each": {"job": "a"}}), &events).unwrap_err().starts_with("1.job"));
        assert!(check(&json!({"x": {"$exists": true}}), &json!({"x": 0})).is_ok());
        assert!(check(&json!({"x": {"$exists": true}}), &json!({})).is_err());
        assert!(check(&json!({"x": {"$absent": true}}), &json!({"x": ""})).is_ok());
        assert!(check(&json!({"$includes": "QUEUE"}), &json!("queue: bad name")).is_ok());
        assert!(check(&json!({"$gte": 2}), &json!(2)).is_ok());
        assert!(check(&json!({"$lte": 1}), &json!(2)).is_err());
        assert!(check(&json!({"$not": "a"}), &json!("b")).is_ok());
        assert!(check(&json!({"$one_of": ["a", "b"]}), &json!("c")).is_err());
        assert!(check(&json!({"$nope": 1}), &json!(1)).unwrap_err().contains("unknown operator"));
    }
}
