//! The server's settings: each an environment variable and a `chirpy` flag
//! of the same meaning (the flag wins), as SPEC §3 lists them.

use std::{net::IpAddr, time::Duration};

use chirpy_core::job::RetryPolicy;

use clap::{
    ArgAction, CommandFactory, Parser, ValueEnum,
    builder::{BoolishValueParser, RangedU64ValueParser},
    error::{ContextKind, ContextValue, ErrorKind},
};

/// A standalone job server on Apalis: push jobs over gRPC, gRPC-web or
/// HTTP/JSON; pull them from workers anywhere.
#[derive(Debug, Clone, Parser)]
#[command(name = "chirpy", version, about, max_term_width = 100)]
pub struct Config {
    /// Where jobs are stored: sqlite://PATH (created on first start),
    /// sqlite::memory:, or postgres://USER:PASSWORD@HOST/DB.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://chirpy.db", value_name = "URL")]
    pub database_url: String,

    /// Address to listen on.
    #[arg(long, env = "CHIRPY_HOST", default_value = "0.0.0.0", value_name = "ADDR")]
    pub host: IpAddr,

    /// The one port for gRPC, gRPC-web, HTTP/JSON, /metrics and the dashboard
    /// (0 picks a free port and logs it).
    #[arg(long, env = "CHIRPY_PORT", default_value_t = 7000, value_name = "PORT")]
    pub port: u16,

    /// Log level or filter, e.g. `debug` or `chirpy=debug,sqlx=warn`.
    #[arg(long, env = "CHIRPY_LOG", default_value = "info", value_name = "FILTER")]
    pub log: String,

    /// Log line format.
    #[arg(long, env = "CHIRPY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Serve the dashboard at /dashboard.
    #[arg(long, env = "CHIRPY_UI", default_value_t = true, action = ArgAction::Set,
          value_parser = BoolishValueParser::new(), value_name = "BOOL")]
    pub ui: bool,

    /// Serve Prometheus metrics at /metrics.
    #[arg(long, env = "CHIRPY_METRICS", default_value_t = true, action = ArgAction::Set,
          value_parser = BoolishValueParser::new(), value_name = "BOOL")]
    pub metrics: bool,

    /// Largest job payload or result, in bytes of JSON (at most 64 MiB).
    #[arg(long, env = "CHIRPY_MAX_PAYLOAD_BYTES", default_value_t = chirpy_core::limits::DEFAULT_MAX_PAYLOAD_BYTES,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=(64 << 20)), value_name = "BYTES")]
    pub max_payload_bytes: usize,

    /// How long a worker's lease on a job lasts without a heartbeat.
    #[arg(long, env = "CHIRPY_LEASE_TTL", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub lease_ttl: Duration,

    /// Wait before the first retry of a failed job pushed without a retry
    /// policy; it doubles with each attempt.
    #[arg(long, env = "CHIRPY_RETRY_INITIAL_BACKOFF", default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub retry_initial_backoff: Duration,

    /// Longest wait between attempts of a failed job pushed without a retry
    /// policy.
    #[arg(long, env = "CHIRPY_RETRY_MAX_BACKOFF", default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    pub retry_max_backoff: Duration,

    /// How long to keep trying to reach the database at start-up.
    #[arg(long, env = "CHIRPY_CONNECT_TIMEOUT", default_value = "15s", value_parser = parse_duration, value_name = "DURATION")]
    pub connect_timeout: Duration,

    /// How long to let in-flight requests finish after SIGTERM or SIGINT.
    #[arg(long, env = "CHIRPY_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_grace: Duration,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A bad setting: the message is one line that names it.
#[derive(Debug)]
pub enum ConfigError {
    /// `--help` or `--version` was asked for; print it and exit 0.
    Display(clap::Error),
    /// A setting is wrong.
    Invalid(String),
}

impl Config {
    /// Reads the settings from the command line and the environment.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] with one line naming the setting, both as its
    /// environment variable and its flag.
    pub fn load() -> Result<Self, ConfigError> {
        Config::try_parse().map_err(|err| match err.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ConfigError::Display(err),
            _ => ConfigError::Invalid(one_line(&err)),
        })
    }

    /// The backoff of jobs pushed without a retry policy.
    pub fn default_retry(&self) -> RetryPolicy {
        RetryPolicy { initial_backoff: self.retry_initial_backoff, max_backoff: self.retry_max_backoff }
    }

    /// The largest gRPC message or HTTP body accepted: room for a batch of
    /// jobs, and always more than one full payload.
    pub fn max_request_bytes(&self) -> usize {
        (16 << 20).max(self.max_payload_bytes + (1 << 20))
    }
}

fn parse_duration(text: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}

/// Rewrites a clap error as one line naming the setting by its variable and
/// its flag, e.g. `CHIRPY_PORT (--port): invalid value "abc": invalid digit
/// found in string`.
fn one_line(err: &clap::Error) -> String {
    let setting = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => {
            let flag = arg.split_whitespace().next().unwrap_or(arg);
            let env = Config::command()
                .get_arguments()
                .find(|a| a.get_long().is_some_and(|long| flag == format!("--{long}")))
                .and_then(|a| a.get_env().map(|env| env.to_string_lossy().into_owned()));
            match env {
                Some(env) => format!("{env} ({flag})"),
                None => flag.to_owned(),
            }
        }
        _ => "command line".to_owned(),
    };
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => format!(" invalid value {value:?}:"),
        _ => String::new(),
    };
    // clap's own rendering is "error: <message>\n\n<usage>"; keep the message.
    let rendered = err.render().to_string();
    let message = rendered
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .rsplit_once(": ")
        .map_or_else(|| rendered.lines().next().unwrap_or_default().to_owned(), |(_, cause)| cause.to_owned());
    format!("{setting}:{value} {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let config = Config::try_parse_from(["chirpy"]).unwrap();
        assert_eq!(config.port, 7000);
        assert_eq!(config.host.to_string(), "0.0.0.0");
        assert_eq!(config.log, "info");
        assert!(config.ui && config.metrics);
        assert_eq!(config.max_payload_bytes, 1 << 20);
    }

    #[test]
    fn a_bad_value_is_one_line_naming_variable_and_flag() {
        let err = Config::try_parse_from(["chirpy", "--port", "abc"]).unwrap_err();
        let line = one_line(&err);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("CHIRPY_PORT (--port): invalid value \"abc\":"), "{line}");
    }

    #[test]
    fn booleans_accept_the_usual_spellings() {
        for (text, want) in [("false", false), ("0", false), ("no", false), ("true", true), ("1", true)] {
            let config = Config::try_parse_from(["chirpy", "--ui", text]).unwrap();
            assert_eq!(config.ui, want, "{text}");
        }
    }
}
