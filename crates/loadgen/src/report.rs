//! `report`: sweeps that become the plots of `docs/BENCHMARKS.md` — fan-out to 1,000 watchers
//! (p99 and deliveries achieved against the load offered, each server up to where it
//! saturates) for Switchboard and both baselines, and server memory against idle connections —
//! written as SVG files with the figures beside them as JSON.

use crate::plot::{line_chart, Series};
use serde_json::{json, Value};
use std::path::Path;

pub async fn run(out: &Path) -> Value {
    std::fs::create_dir_all(out).unwrap();
    let sweep = crate::fanout::sweep(crate::fanout::SweepOptions {
        receivers: 1000,
        rates: crate::fanout::SWEEP_RATES.to_vec(),
        seconds: 3,
        p99_bound_ms: 200.0,
    })
    .await;
    let series_of = |server: crate::sweep::Server, name: &str, y_key: &str| Series {
        name: name.to_string(),
        points: sweep[server.key()]["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|row| Some((row["offeredPerSecond"].as_f64()?, row[y_key].as_f64()?)))
            .collect(),
    };
    let all_series = |y_key: &str| {
        [
            series_of(crate::sweep::Server::Switchboard, "Switchboard", y_key),
            series_of(crate::sweep::Server::Bare, "bare tokio", y_key),
            series_of(crate::sweep::Server::Node, "Node Socket.IO", y_key),
        ]
    };
    let p99_svg = line_chart(
        "Fan-out to 1,000 watchers: p99 latency against load",
        "deliveries offered per second",
        "p99 latency (ms)",
        &all_series("p99Ms"),
    );
    std::fs::write(out.join("fanout-p99.svg"), p99_svg).unwrap();
    let throughput_svg = line_chart(
        "Fan-out to 1,000 watchers: deliveries achieved against offered",
        "deliveries offered per second",
        "deliveries achieved per second",
        &all_series("deliveredPerSecond"),
    );
    std::fs::write(out.join("fanout-throughput.svg"), throughput_svg).unwrap();

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
    let report = json!({"fanoutSweep": sweep, "idle": idle_runs});
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report).unwrap() + "\n",
    )
    .unwrap();
    report
}
