//! Results: one [`Row`] per figure, written as JSON and as a Markdown table.

use std::{fmt::Write as _, path::Path, process::Command};

use chirpy_testing::Storage;
use serde::Serialize;

/// One figure, for Chirpy and for embedded Apalis.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub scenario: String,
    /// On which storage.
    pub storage: String,
    /// The unit of the figures.
    pub metric: String,
    /// Through Chirpy.
    pub chirpy: f64,
    /// Embedded Apalis on the same storage, when there is a counterpart.
    pub embedded: Option<f64>,
    /// `chirpy / embedded`.
    pub ratio: Option<f64>,
    /// CPU seconds the server used during the Chirpy measurement.
    pub server_cpu_seconds: Option<f64>,
    /// The server's peak resident memory after it, in MiB.
    pub server_peak_rss_mib: Option<f64>,
    /// Anything that qualifies the figure.
    pub note: String,
}

impl Row {
    /// A row; the ratio is computed.
    pub fn new(scenario: &str, storage: Storage, metric: &str, chirpy: f64, embedded: Option<f64>) -> Self {
        Row {
            scenario: scenario.to_owned(),
            storage: format!("{storage:?}").to_lowercase(),
            metric: metric.to_owned(),
            chirpy,
            embedded,
            ratio: embedded.filter(|e| *e > 0.0).map(|e| chirpy / e),
            server_cpu_seconds: None,
            server_peak_rss_mib: None,
            note: String::new(),
        }
    }

    /// Adds the server's CPU seconds and peak memory.
    #[must_use]
    pub fn server(mut self, (cpu, rss): (f64, f64)) -> Self {
        self.server_cpu_seconds = Some(cpu);
        self.server_peak_rss_mib = Some(rss);
        self
    }

    /// Adds a note.
    #[must_use]
    pub fn note(mut self, note: &str) -> Self {
        self.note = note.to_owned();
        self
    }

    /// One line for the console.
    pub fn line(&self) -> String {
        let embedded = self.embedded.map_or("-".into(), |e| format!("{e:.1}"));
        let ratio = self.ratio.map_or("-".into(), |r| format!("{r:.2}x"));
        format!(
            "{:<10} {:<40} {:<30} chirpy {:>10.1}  embedded {:>10}  ratio {ratio}",
            self.storage, self.scenario, self.metric, self.chirpy, embedded
        )
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When it ran (UTC, RFC 3339).
    pub date: String,
    /// The commit it measured.
    pub commit: String,
    /// The machine it ran on.
    pub machine: String,
    /// The figures.
    pub rows: Vec<Row>,
}

impl Report {
    /// An empty report, stamped with the date, commit and machine.
    pub fn new() -> Self {
        let run = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines().find_map(|l| {
                    l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
                })
            })
            .unwrap_or_default();
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                info.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<f64>().unwrap_or(0.0))
            })
            .unwrap_or(0.0);
        Report {
            date: run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
            // Uncommitted changes to the code make the commit name a lie.
            commit: run("git", &["describe", "--always", "--dirty", "--exclude=*"]),
            machine: format!(
                "{} CPUs ({cpu}), {:.0} GiB, Linux {}",
                run("nproc", &[]),
                memory / 1024.0 / 1024.0,
                run("uname", &["-r"])
            ),
            rows: Vec::new(),
        }
    }

    /// The Markdown table of the report.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Measured {} at commit `{}` on {}. Chirpy: a `chirpy` server process, `chirpy-client` producers and \
             workers over gRPC on loopback; embedded: Apalis in the benchmark process on the same storage. \
             Ratio = Chirpy / embedded (higher is better for throughput, lower for latency and storage operations).\n\n",
            self.date, self.commit, self.machine
        );
        out.push_str(
            "| storage | scenario | metric | Chirpy | embedded Apalis | ratio | server CPU s | server peak RSS MiB |\n",
        );
        out.push_str("|---|---|---|---:|---:|---:|---:|---:|\n");
        for row in &self.rows {
            let num = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} | {} | {} | {} | {} |",
                row.storage,
                row.scenario,
                row.metric,
                row.chirpy,
                num(row.embedded),
                row.ratio.map_or("-".into(), |r| format!("{r:.2}")),
                num(row.server_cpu_seconds),
                num(row.server_peak_rss_mib),
            );
        }
        // Notes under the table: a cell beyond the header's would not show.
        let notes: Vec<&Row> = self.rows.iter().filter(|row| !row.note.is_empty()).collect();
        if !notes.is_empty() {
            out.push('\n');
        }
        for row in notes {
            let _ = writeln!(out, "- {}, {}: {}", row.storage, row.scenario, row.note);
        }
        out
    }

    /// Writes `<dir>/<date>.json` and `<dir>/<date>.md`, and `latest.md`.
    ///
    /// # Errors
    ///
    /// When the files cannot be written.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let stem = self.date.replace(':', "-");
        std::fs::write(dir.join(format!("{stem}.json")), serde_json::to_string_pretty(self)?)?;
        std::fs::write(dir.join(format!("{stem}.md")), self.markdown())?;
        std::fs::write(dir.join("latest.md"), self.markdown())
    }
}

impl Default for Report {
    fn default() -> Self {
        Self::new()
    }
}
