//! `make bench`: runs every scenario and writes `bench/results/`.

use std::path::PathBuf;

use chirpy_bench::{Group, Scale, run};
use chirpy_testing::Storage;
use clap::Parser;

/// Chirpy against embedded Apalis on the same storage.
#[derive(Parser)]
struct Args {
    /// Storages to measure, comma-separated: sqlite, postgres, redis.
    #[arg(long, value_delimiter = ',', value_parser = storage, default_value = "sqlite,postgres,redis")]
    storages: Vec<Storage>,
    /// Scenario groups to run, comma-separated (all by default).
    #[arg(long, value_delimiter = ',', value_enum, default_value = "push,drain,steady,idle")]
    only: Vec<Group>,
    /// Tiny counts: check the harness, measure nothing.
    #[arg(long)]
    smoke: bool,
    /// Where to write the results.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let scale = if args.smoke { Scale::smoke() } else { Scale::full() };
    let report = run(&args.storages, &args.only, &scale).await;
    if !args.smoke {
        report.write(&args.out)?;
        eprintln!("\nwrote {}", args.out.display());
    }
    println!("{}", report.markdown());
    Ok(())
}

fn storage(name: &str) -> Result<Storage, String> {
    Storage::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| format!("{name:?}: use sqlite, postgres, redis"))
}
