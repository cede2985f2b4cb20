//! What the benchmarks share: timing a closure.

use std::time::{Duration, Instant};

/// Median and 95th percentile of `runs` timed calls, after one warm-up call.
#[allow(dead_code)]
pub fn measure(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[runs / 2], times[(runs * 95 / 100).min(runs - 1)])
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> String {
    format!("{:7.2} ms", d.as_secs_f64() * 1000.0)
}
