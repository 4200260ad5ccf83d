//! The progress line a scenario prints to stderr while it runs: once a second, how long it has
//! been running and its counters so far, the first with its rate over the last second. On a
//! terminal the line is rewritten in place; otherwise (a log, CI) each second is a line of its
//! own.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running count that scenario tasks add to and the progress line reads.
pub type Counter = Arc<AtomicU64>;

pub fn counter() -> Counter {
    Arc::default()
}

/// Prints until dropped.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
    in_place: bool,
}

/// Starts printing `label` and `counters` (name, count) every second.
pub fn start(label: impl Into<String>, counters: &[(&'static str, &Counter)]) -> Progress {
    let label = label.into();
    let counters: Vec<(&'static str, Counter)> = counters
        .iter()
        .map(|(name, counter)| (*name, Arc::clone(counter)))
        .collect();
    let in_place = std::io::stderr().is_terminal();
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut previous = 0;
        loop {
            tick.tick().await;
            let counts: Vec<u64> = counters
                .iter()
                .map(|(_, counter)| counter.load(Ordering::Relaxed))
                .collect();
            let rate = counts.first().map(|first| first.saturating_sub(previous));
            previous = counts.first().copied().unwrap_or(0);
            let line = line(&label, started.elapsed(), &counters, &counts, rate);
            let mut stderr = std::io::stderr().lock();
            let _ = match in_place {
                true => write!(stderr, "\r\x1b[2K{line}"),
                false => writeln!(stderr, "{line}"),
            };
            let _ = stderr.flush();
        }
    });
    Progress { task, in_place }
}

fn line(
    label: &str,
    elapsed: Duration,
    counters: &[(&'static str, Counter)],
    counts: &[u64],
    rate: Option<u64>,
) -> String {
    let figures: Vec<String> = counters
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(index, ((name, _), count))| match (index, rate) {
            (0, Some(rate)) => format!("{} {name} ({}/s)", grouped(*count), grouped(rate)),
            _ => format!("{} {name}", grouped(*count)),
        })
        .collect();
    format!(
        "  [{label}] {:.0} s: {}",
        elapsed.as_secs_f64(),
        figures.join(", ")
    )
}

/// 1234567 → "1,234,567".
fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
        if self.in_place {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_names_its_counters_and_the_first_ones_rate() {
        let (delivered, lost) = (counter(), counter());
        let counters = vec![("delivered", delivered), ("lost", lost)];
        let text = line(
            "fanout · switchboard",
            Duration::from_millis(3_200),
            &counters,
            &[1_234_567, 0],
            Some(590_000),
        );
        assert_eq!(
            text,
            "  [fanout · switchboard] 3 s: 1,234,567 delivered (590,000/s), 0 lost"
        );
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
    }
}
