//! Reading script replies: jobs (as the SQL stores' [`JobRow`], so that one
//! state table and one fencing diagnosis serve every store) and the values
//! around them.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chirpy_core::{Error, Job, Result};
use redis::Value;

use crate::apalis_sql::JobRow;

/// The fields apalis-redis keeps in a job's meta hash: not the producer's
/// metadata.
const APALIS_FIELDS: [&str; 8] =
    ["attempts", "max_attempts", "status", "idempotency_key", "result", "done_at", "locked_at", "locked_by"];

/// A job as a script returned it, with its Chirpy lease expiry if leased.
#[derive(Debug)]
pub(super) struct Reply {
    pub row: JobRow,
    /// When its Chirpy lease expires, in Unix ms.
    pub lease_expiry_ms: Option<i64>,
}

impl Reply {
    /// The job, its state derived as of `now`.
    pub fn into_job(self, now: SystemTime, lease_ttl: Duration) -> Result<Job> {
        let mut job = self.row.into_job(now, lease_ttl)?;
        if let (Some(lease), Some(ms)) = (job.lease.as_mut(), self.lease_expiry_ms) {
            lease.expires_at = Some(from_millis(ms));
        }
        Ok(job)
    }
}

/// A script's error for a reply it did not expect.
pub(super) fn malformed(what: &str) -> Error {
    Error::Storage(format!("unexpected reply from a Redis script: {what}").into())
}

/// The items of an array reply.
pub(super) fn array(value: Value) -> Result<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(malformed(&format!("{other:?} is not an array"))),
    }
}

/// A string reply; `None` for nil or false.
pub(super) fn string(value: &Value) -> Result<Option<String>> {
    match value {
        Value::Nil | Value::Boolean(false) => Ok(None),
        Value::BulkString(bytes) => Ok(Some(String::from_utf8_lossy(bytes).into_owned())),
        Value::SimpleString(s) => Ok(Some(s.clone())),
        Value::Okay => Ok(Some("OK".into())),
        Value::Int(i) => Ok(Some(i.to_string())),
        other => Err(malformed(&format!("{other:?} is not a string"))),
    }
}

/// An integer reply (Lua numbers arrive as integers, scores as strings);
/// `None` for nil or false.
pub(super) fn int(value: &Value) -> Result<Option<i64>> {
    match value {
        Value::Int(i) => Ok(Some(*i)),
        Value::Double(d) => Ok(Some(*d as i64)),
        other => match string(other)? {
            None => Ok(None),
            Some(s) => {
                s.parse::<f64>().map(|f| Some(f as i64)).map_err(|_| malformed(&format!("{s:?} is not a number")))
            }
        },
    }
}

/// An integer reply that must be there.
pub(super) fn required_int(value: &Value) -> Result<i64> {
    int(value)?.ok_or_else(|| malformed("a number is missing"))
}

/// Splits a reply `{now_ms, rest...}`.
pub(super) fn with_clock(value: Value) -> Result<(SystemTime, Vec<Value>)> {
    let mut items = array(value)?.into_iter();
    let now = items.next().as_ref().map(required_int).transpose()?.ok_or_else(|| malformed("no clock"))?;
    Ok((from_millis(now), items.collect()))
}

/// A job reply: `{queue, id, payload, meta fields, lease expiry or false}`.
pub(super) fn reply(value: Value) -> Result<Reply> {
    let items = array(value)?;
    let [queue, id, payload, meta, expiry] = <[Value; 5]>::try_from(items).map_err(|_| malformed("a job"))?;
    let payload = match payload {
        Value::BulkString(bytes) => bytes,
        _ => Vec::new(),
    };
    let mut fields = HashMap::new();
    let meta = array(meta)?;
    for pair in meta.chunks_exact(2) {
        if let (Some(key), Some(value)) = (string(&pair[0])?, string(&pair[1])?) {
            fields.insert(key, value);
        }
    }
    let number = |name: &str| fields.get(name).and_then(|v| v.parse::<f64>().ok()).map(|f| f as i64);
    let canceled = fields.contains_key("chirpy.canceled");
    let lease_expiry_ms = int(&expiry)?;
    let lock_by = fields.get("locked_by").cloned();
    let row = JobRow {
        id: string(&id)?.unwrap_or_default(),
        queue: string(&queue)?.unwrap_or_default(),
        payload,
        // A cancel outlasts whatever status an Apalis worker wrote after it.
        status: if canceled { "Killed".into() } else { fields.get("status").cloned().unwrap_or("Pending".into()) },
        attempts: number("attempts").unwrap_or(0),
        max_attempts: number("max_attempts").unwrap_or(25),
        run_at_us: number("chirpy.run_at").unwrap_or(0).saturating_mul(1_000_000),
        last_result: fields.get("result").and_then(|r| serde_json::from_str(r).ok()),
        lock_at_us: number("locked_at").map(|s| s.saturating_mul(1_000_000)),
        lock_kind: match (&lock_by, lease_expiry_ms) {
            (_, Some(_)) => Some(crate::apalis_sql::CHIRPY_WORKER_KIND.to_owned()),
            (Some(_), None) => Some("RedisStorage".to_owned()),
            (None, None) => None,
        },
        lock_by,
        done_at_us: number("done_at").map(|s| s.saturating_mul(1_000_000)),
        priority: number("chirpy.priority").unwrap_or(0),
        metadata: metadata(&fields),
        idempotency_key: fields.get("idempotency_key").filter(|k| !k.is_empty()).cloned(),
    };
    Ok(Reply { row, lease_expiry_ms })
}

/// The producer's metadata, plus the retry policy under Chirpy's reserved
/// keys (for `chirpy_metadata::split`). Chirpy keeps a producer's map whole
/// in `chirpy.metadata`; a job an Apalis producer pushed has only the plain
/// fields apalis-redis merged into the hash.
fn metadata(fields: &HashMap<String, String>) -> BTreeMap<String, String> {
    let mut metadata: BTreeMap<String, String> = match fields.get("chirpy.metadata") {
        Some(json) => serde_json::from_str::<BTreeMap<String, serde_json::Value>>(json)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        None => fields
            .iter()
            .filter(|(k, _)| !APALIS_FIELDS.contains(&k.as_str()) && !k.starts_with("chirpy."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    for key in ["chirpy.retry.initial_backoff_ms", "chirpy.retry.max_backoff_ms"] {
        if let Some(value) = fields.get(key) {
            metadata.insert(key.to_owned(), value.clone());
        }
    }
    metadata
}

/// The time `ms` Unix milliseconds after the epoch.
pub(super) fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// Unix milliseconds of `t`.
pub(super) fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn job(meta: &[(&str, &str)], expiry: Value) -> Value {
        let meta = meta.iter().flat_map(|(k, v)| [bulk(k), bulk(v)]).collect();
        Value::Array(vec![
            bulk("email"),
            bulk("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            bulk(r#"{"to":"a@b.c"}"#),
            Value::Array(meta),
            expiry,
        ])
    }

    #[test]
    fn an_apalis_producers_job_reads_with_its_plain_metadata() {
        let reply = reply(job(
            &[
                ("status", "Pending"),
                ("attempts", "0"),
                ("max_attempts", "25"),
                ("tenant", "acme"),
                ("chirpy.run_at", "5"),
            ],
            Value::Boolean(false),
        ))
        .unwrap();
        assert_eq!(reply.row.metadata, BTreeMap::from([("tenant".to_string(), "acme".to_string())]));
        assert_eq!((reply.row.max_attempts, reply.row.run_at_us), (25, 5_000_000));
        assert_eq!(reply.lease_expiry_ms, None);
    }

    #[test]
    fn chirpys_own_fields_win_and_a_cancel_outlasts_a_later_status() {
        let reply = reply(job(
            &[
                ("status", "Done"),
                ("chirpy.canceled", "1"),
                ("chirpy.metadata", r#"{"status":"x"}"#),
                ("status2", "ignored"),
                ("chirpy.retry.initial_backoff_ms", "2000"),
                ("result", r#"{"Err":"boom"}"#),
            ],
            bulk("1234"),
        ))
        .unwrap();
        assert_eq!(reply.row.status, "Killed");
        assert_eq!(reply.row.metadata.get("status").map(String::as_str), Some("x"));
        assert!(!reply.row.metadata.contains_key("status2"));
        assert!(reply.row.metadata.contains_key("chirpy.retry.initial_backoff_ms"));
        assert_eq!(reply.lease_expiry_ms, Some(1234));
        assert_eq!(reply.row.last_result, Some(serde_json::json!({"Err": "boom"})));
    }
}
