//! The benchmark harness with tiny counts, so it keeps working. It measures
//! nothing; `make bench` does.

use chirpy_bench::{Group, Scale, run};
use chirpy_testing::Storage;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_harness_runs_every_scenario_on_every_storage() {
    let report = run(&Storage::ALL, &[Group::Push, Group::Drain, Group::Steady, Group::Idle], &Scale::smoke()).await;
    for storage in ["sqlite", "postgres", "redis"] {
        let rows: Vec<_> = report.rows.iter().filter(|r| r.storage == storage).collect();
        assert!(rows.len() >= 9, "{storage}: {rows:?}");
        for row in rows {
            assert!(row.chirpy.is_finite() && row.chirpy > 0.0, "{row:?}");
            if let Some(embedded) = row.embedded {
                assert!(embedded.is_finite() && embedded >= 0.0, "{row:?}");
            }
        }
    }
    assert!(report.markdown().contains("| postgres | end to end, burn-down of 300 |"));
}
