//! Sweeps: one scenario on each server at rising load until the server saturates, then each
//! one's peak and the most it sustained within a p99 bound, and Switchboard's ratio to each
//! baseline at both. The targets ask for throughput "at equal or better p99"; a single offered
//! load that two servers both meet measures the offer, not the servers, so this is how the
//! scenarios that compare servers (`fanout`, `chat`) are compared.

use serde_json::{json, Value};
use std::future::Future;

/// The three servers a scenario measures, one after another with the same clients.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Switchboard,
    Bare,
    Node,
}

impl Server {
    pub const ALL: [Server; 3] = [Server::Switchboard, Server::Bare, Server::Node];

    /// The key of this server's figures in a scenario's JSON.
    pub fn key(self) -> &'static str {
        match self {
            Server::Switchboard => "switchboard",
            Server::Bare => "bareBaseline",
            Server::Node => "nodeSocketIo",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Server::Switchboard => "switchboard",
            Server::Bare => "bare baseline",
            Server::Node => "node socket.io",
        }
    }
}

/// A run a server did not keep up with: it achieved less than 90% of the load offered, or (where
/// the run counts them) did not deliver every message before its clients gave up. Higher load
/// only shows it falling further behind, so the sweep stops there.
fn saturated(row: &Value, throughput_key: &str) -> bool {
    let achieved = row[throughput_key].as_f64().unwrap_or(0.0);
    let offered = row["offeredPerSecond"].as_f64().unwrap_or(f64::MAX);
    let lost = match (row["delivered"].as_u64(), row["expected"].as_u64()) {
        (Some(delivered), Some(expected)) => delivered < expected,
        _ => false,
    };
    lost || achieved < 0.9 * offered
}

/// The peak of a server's sweep, and its best run that kept up with p99 within the bound:
/// `{"peak": row, "sustained": row}` (either null when no run qualifies).
fn best_of(rows: &[Value], throughput_key: &str, p99_bound_ms: f64) -> Value {
    let achieved = |row: &&Value| row[throughput_key].as_f64().unwrap_or(0.0);
    let by_achieved = |a: &&Value, b: &&Value| achieved(a).total_cmp(&achieved(b));
    let peak = rows.iter().max_by(by_achieved);
    let sustained = rows
        .iter()
        .filter(|row| {
            !saturated(row, throughput_key)
                && row["p99Ms"].as_f64().unwrap_or(f64::MAX) <= p99_bound_ms
        })
        .max_by(by_achieved);
    json!({"peak": peak, "sustained": sustained})
}

/// Measures `scenario` on every server at each of `steps` in turn (rising load; each is what
/// `measure` is given, a rate or a pace, which `step_unit` names) until it saturates or fails.
/// `about` (an object: the scenario's fixed settings) starts the result.
pub async fn run<F, Fut>(
    scenario: &str,
    mut about: Value,
    steps: &[u64],
    step_unit: &str,
    throughput_key: &str,
    p99_bound_ms: f64,
    measure: F,
) -> Value
where
    F: Fn(Server, u64) -> Fut,
    Fut: Future<Output = Result<Value, String>>,
{
    about["scenario"] = json!(format!("{scenario}-sweep"));
    about["throughputKey"] = json!(throughput_key);
    about["p99BoundMs"] = json!(p99_bound_ms);
    let mut result = about;
    for server in Server::ALL {
        let mut rows = Vec::new();
        let mut error = None;
        for &step in steps {
            eprintln!(
                "{scenario} sweep on {}: {step} {step_unit} …",
                server.name()
            );
            match measure(server, step).await {
                Ok(row) => {
                    let stop = saturated(&row, throughput_key);
                    rows.push(row);
                    if stop {
                        break;
                    }
                }
                Err(message) => {
                    error = Some(message);
                    break;
                }
            }
        }
        let best = best_of(&rows, throughput_key, p99_bound_ms);
        result[server.key()] = json!({
            "runs": rows,
            "peak": best["peak"],
            "sustained": best["sustained"],
            "error": error,
        });
    }
    let figure = |result: &Value, server: Server, which: &str| {
        result[server.key()][which][throughput_key]
            .as_f64()
            .unwrap_or(0.0)
    };
    let ratio = |ours: f64, theirs: f64| match theirs > 0.0 {
        true => json!(ours / theirs),
        false => Value::Null,
    };
    for which in ["peak", "sustained"] {
        let ours = figure(&result, Server::Switchboard, which);
        let (bare, node) = (
            figure(&result, Server::Bare, which),
            figure(&result, Server::Node, which),
        );
        result[format!("{which}RatioToBare")] = ratio(ours, bare);
        result[format!("{which}RatioToNode")] = ratio(ours, node);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(offered: u64, achieved: u64, delivered: u64, expected: u64, p99: f64) -> Value {
        json!({
            "offeredPerSecond": offered,
            "deliveredPerSecond": achieved as f64,
            "delivered": delivered,
            "expected": expected,
            "p99Ms": p99,
        })
    }

    #[test]
    fn a_run_that_falls_behind_or_loses_messages_is_saturated() {
        let key = "deliveredPerSecond";
        assert!(!saturated(&row(100_000, 99_000, 500, 500, 5.0), key));
        assert!(saturated(&row(100_000, 80_000, 500, 500, 5.0), key));
        assert!(saturated(&row(100_000, 99_000, 499, 500, 5.0), key));
        // A run that does not count deliveries (chat) is judged by its rate alone.
        let chat = json!({"offeredPerSecond": 2000.0, "messagesPerSecond": 1990.0});
        assert!(!saturated(&chat, "messagesPerSecond"));
    }

    #[test]
    fn the_sustained_figure_keeps_up_within_the_bound_and_the_peak_need_not() {
        let rows = vec![
            row(100_000, 100_000, 10, 10, 8.0),
            row(200_000, 199_000, 10, 10, 150.0),
            row(400_000, 380_000, 10, 10, 900.0),
            row(600_000, 300_000, 9, 10, 5_000.0),
        ];
        let best = best_of(&rows, "deliveredPerSecond", 200.0);
        assert_eq!(best["peak"]["offeredPerSecond"], 400_000);
        assert_eq!(best["sustained"]["offeredPerSecond"], 200_000);
        assert!(best_of(&rows[3..], "deliveredPerSecond", 200.0)["sustained"].is_null());
    }

    #[tokio::test]
    async fn each_server_is_swept_until_it_saturates() {
        let steps = [1, 2, 3];
        let result = run(
            "test",
            json!({"receivers": 1}),
            &steps,
            "per second",
            "deliveredPerSecond",
            200.0,
            |server, step| async move {
                // Switchboard keeps up at every step, the bare server saturates at the second and
                // the Node server fails to start.
                let capacity = match server {
                    Server::Switchboard => 10,
                    Server::Bare => 1,
                    Server::Node => return Err("no node".to_string()),
                };
                let achieved = step.min(capacity) * 1000;
                Ok(row(step * 1000, achieved, 1, 1, 10.0))
            },
        )
        .await;
        assert_eq!(result["switchboard"]["runs"].as_array().unwrap().len(), 3);
        assert_eq!(result["bareBaseline"]["runs"].as_array().unwrap().len(), 2);
        assert_eq!(result["nodeSocketIo"]["error"], "no node");
        assert_eq!(result["peakRatioToBare"], 3.0);
        assert_eq!(result["sustainedRatioToBare"], 3.0);
        assert!(result["peakRatioToNode"].is_null());
    }
}
