//! `report`: sweeps that become the plots of `docs/BENCHMARKS.md` — fan-out to 1,000 watchers
//! and chat in 1,000 conversations (p99 and what was achieved against the load offered, each
//! server up to where it saturates) for Switchboard and both baselines, and server memory
//! against idle connections — written as SVG files with the figures beside them as JSON.

use crate::plot::{line_chart, Axis, Series};
use crate::sweep::Server;
use serde_json::{json, Value};
use std::path::Path;

/// The plots `report` writes into its directory, beside `report.json`.
pub const PLOTS: [&str; 5] = [
    "fanout-p99.svg",
    "fanout-throughput.svg",
    "chat-p99.svg",
    "chat-throughput.svg",
    "idle-memory.svg",
];

/// Runs the sweeps, writes their figures to `out/report.json` and draws the plots from them.
pub async fn run(out: &Path) -> Value {
    std::fs::create_dir_all(out).unwrap();
    let fanout = crate::fanout::sweep(crate::fanout::SweepOptions {
        receivers: 1000,
        rates: crate::fanout::SWEEP_RATES.to_vec(),
        seconds: 3,
        p99_bound_ms: 200.0,
    })
    .await;
    let chat = crate::chat::sweep(crate::chat::ChatSweepOptions {
        conversations: 1000,
        seconds: 5,
        periods_ms: crate::chat::SWEEP_PERIODS_MS.to_vec(),
        p99_bound_ms: 5.0,
        postgres: false,
    })
    .await;
    let mut idle_runs = Vec::new();
    for connections in [1_000usize, 4_000, 10_000] {
        idle_runs.push(crate::idle::run(connections).await);
    }
    let report = json!({"fanoutSweep": fanout, "chatSweep": chat, "idle": idle_runs});
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report).unwrap() + "\n",
    )
    .unwrap();
    plot(out, &report);
    report
}

/// Draws the plots again from the figures `run` wrote to `out/report.json` (after a change to
/// the plots, without measuring again).
pub fn replot(out: &Path) -> Result<(), String> {
    let path = out.join("report.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let report: Value = serde_json::from_str(&text)
        .map_err(|error| format!("{} is not a report: {error}", path.display()))?;
    plot(out, &report);
    Ok(())
}

/// Draws every plot of [`PLOTS`] from a report's figures.
fn plot(out: &Path, report: &Value) {
    plot_sweep(
        out,
        &report["fanoutSweep"],
        "fanout",
        "Fan-out to 1,000 watchers",
        "deliveries offered per second",
        ("deliveredPerSecond", "deliveries achieved per second"),
    );
    plot_sweep(
        out,
        &report["chatSweep"],
        "chat",
        "Chat in 1,000 conversations",
        "messages offered per second",
        ("messagesPerSecond", "messages achieved per second"),
    );
    let memory = Series {
        name: "Switchboard".into(),
        points: report["idle"]
            .as_array()
            .into_iter()
            .flatten()
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
        Axis::linear("idle subscribed connections"),
        Axis::linear("server RSS (MiB)"),
        &[memory],
    );
    std::fs::write(out.join("idle-memory.svg"), idle_svg).unwrap();
}

/// Writes a sweep's two plots, `<file>-p99.svg` and `<file>-throughput.svg`: each server's p99,
/// and what it achieved (`achieved`: the runs' key and the axis label), against the load
/// offered.
fn plot_sweep(
    out: &Path,
    sweep: &Value,
    file: &str,
    title: &str,
    offered_label: &str,
    achieved: (&str, &str),
) {
    let series = |y_key: &str| {
        Server::ALL.map(|server| Series {
            name: server.name().to_string(),
            points: sweep[server.key()]["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|row| Some((row["offeredPerSecond"].as_f64()?, row[y_key].as_f64()?)))
                .collect(),
        })
    };
    // The p99 plot marks the bound the sweep judged "sustained" by. Both axes of both plots span
    // several powers of ten (a load from thousands to millions a second, a p99 from a
    // millisecond to a second), so both are logarithmic. (`f64`'s `Display` writes 5.0 as 5.)
    let bound = sweep["p99BoundMs"]
        .as_f64()
        .map(|bound| (bound, format!("the sweep's bound, p99 {bound} ms")));
    let mut p99_axis = Axis::log("p99 latency (ms)");
    if let Some((bound, label)) = &bound {
        p99_axis = p99_axis.marked(*bound, label);
    }
    let p99_svg = line_chart(
        &format!("{title}: p99 latency against load"),
        Axis::log(offered_label),
        p99_axis,
        &series("p99Ms"),
    );
    std::fs::write(out.join(format!("{file}-p99.svg")), p99_svg).unwrap();
    let throughput_svg = line_chart(
        &format!("{title}: achieved against offered"),
        Axis::log(offered_label),
        Axis::log(achieved.1),
        &series(achieved.0),
    );
    std::fs::write(out.join(format!("{file}-throughput.svg")), throughput_svg).unwrap();
}
