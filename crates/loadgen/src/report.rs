//! `report`: sweeps that become the plots of `docs/BENCHMARKS.md` — fan-out p99 against load
//! for Switchboard and both baselines, and server memory against idle connections — written as
//! SVG files with the figures beside them as JSON.

use crate::plot::{line_chart, Series};
use serde_json::{json, Value};
use std::path::Path;

pub async fn run(out: &Path) -> Value {
    std::fs::create_dir_all(out).unwrap();
    let mut fanout_runs = Vec::new();
    for rate in [100u64, 300, 1000] {
        let result = crate::fanout::run(crate::fanout::FanoutOptions {
            receivers: 100,
            rate,
            seconds: 3,
        })
        .await;
        fanout_runs.push(result);
    }
    let series_of = |key: &str, name: &str| Series {
        name: name.to_string(),
        points: fanout_runs
            .iter()
            .filter_map(|run| {
                let row = &run[key];
                Some((row["offeredPerSecond"].as_f64()?, row["p99Ms"].as_f64()?))
            })
            .collect(),
    };
    let fanout_svg = line_chart(
        "Fan-out to 100 watchers: p99 latency against load",
        "deliveries offered per second",
        "p99 latency (ms)",
        &[
            series_of("switchboard", "Switchboard"),
            series_of("bareBaseline", "bare tokio"),
            series_of("nodeSocketIo", "Node Socket.IO"),
        ],
    );
    std::fs::write(out.join("fanout-p99.svg"), fanout_svg).unwrap();

    let mut idle_runs = Vec::new();
    for connections in [1_000usize, 4_000, 10_000] {
        idle_runs.push(crate::idle::run(connections).await);
    }
    let memory = Series {
        name: "Switchboard".into(),
        points: idle_runs
            .iter()
            .filter_map(|run| {
                Some((
                    run["connections"].as_f64()?,
                    run["serverRssAfterKiB"].as_f64()? / 1024.0,
                ))
            })
            .collect(),
    };
    let idle_svg = line_chart(
        "Server memory against idle connections",
        "idle subscribed connections",
        "server RSS (MiB)",
        &[memory],
    );
    std::fs::write(out.join("idle-memory.svg"), idle_svg).unwrap();
    let report = json!({"fanout": fanout_runs, "idle": idle_runs});
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report).unwrap() + "\n",
    )
    .unwrap();
    report
}
