//! Latency percentiles and rates.
//!
//! Latencies go into an HdrHistogram in microseconds with three significant digits: exact
//! enough for a p99.9 of a few milliseconds, constant memory for millions of samples, and
//! mergeable, so that each client can record locally and merge once.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms hold, in microseconds (10 minutes); larger values are
/// clamped, which only happens when something is badly wrong, and `max` still shows it.
const HIGHEST_MICROS: u64 = 600_000_000;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("valid histogram bounds"),
        }
    }

    pub fn record_micros(&mut self, micros: u64) {
        self.histogram.saturating_record(micros.clamp(1, HIGHEST_MICROS));
    }

    pub fn record_nanos(&mut self, nanos: u64) {
        self.record_micros(nanos / 1_000);
    }

    pub fn merge(&mut self, other: &Latencies) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms share their bounds");
    }

    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The latency at percentile `p` (0–100), in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        self.histogram.value_at_percentile(p) as f64 / 1_000.0
    }

    pub fn summary(&self) -> LatencySummary {
        if self.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.len(),
            mean_ms: round3(self.histogram.mean() / 1_000.0),
            p50_ms: round3(self.percentile_ms(50.0)),
            p90_ms: round3(self.percentile_ms(90.0)),
            p99_ms: round3(self.percentile_ms(99.0)),
            p999_ms: round3(self.percentile_ms(99.9)),
            max_ms: round3(self.histogram.max() as f64 / 1_000.0),
        }
    }

    /// `(percentile, latency in ms)` points for a percentile-distribution plot: denser
    /// towards the tail, where the interesting part is.
    pub fn distribution(&self) -> Vec<(f64, f64)> {
        if self.is_empty() {
            return Vec::new();
        }
        self.histogram
            .iter_quantiles(4)
            .map(|v| (v.quantile_iterated_to() * 100.0, v.value_iterated_to() as f64 / 1_000.0))
            .collect()
    }
}

fn round3(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

/// The figures the report and the summary show for one histogram; all zero when empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Events per second; zero for an empty window rather than infinity or NaN.
pub fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        (count as f64 / seconds * 10.0).round() / 10.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within the histogram's three significant digits.
    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.001 + 0.001
    }

    /// Percentiles of 1..=1000 ms: within precision, and off by at most one sample (1 ms),
    /// since which sample a percentile lands on at a boundary is a rounding convention.
    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let close = |actual: f64, expected: f64| (actual - expected).abs() <= expected * 0.001 + 1.0;
        let mut latencies = Latencies::new();
        for ms in 1..=1000 {
            latencies.record_micros(ms * 1_000);
        }
        let s = latencies.summary();
        assert_eq!(s.count, 1000);
        assert!(close(s.p50_ms, 500.0), "{s:?}");
        assert!(close(s.p90_ms, 900.0), "{s:?}");
        assert!(close(s.p99_ms, 990.0), "{s:?}");
        assert!(close(s.p999_ms, 999.0), "{s:?}");
        assert!(close(s.max_ms, 1000.0), "{s:?}");
        assert!(close(s.mean_ms, 500.5), "{s:?}");
    }

    #[test]
    fn a_single_outlier_shows_in_the_tail_only() {
        let mut latencies = Latencies::new();
        for _ in 0..9_999 {
            latencies.record_micros(2_000);
        }
        latencies.record_micros(250_000);
        let s = latencies.summary();
        assert!(
            close(s.p50_ms, 2.0) && close(s.p99_ms, 2.0) && close(s.p999_ms, 2.0),
            "{s:?}"
        );
        assert!(close(s.max_ms, 250.0), "{s:?}");
    }

    #[test]
    fn merged_histograms_equal_one_histogram_of_everything() {
        let (mut a, mut b, mut all) = (Latencies::new(), Latencies::new(), Latencies::new());
        for us in 1..=500u64 {
            a.record_micros(us * 10);
            all.record_micros(us * 10);
        }
        for us in 501..=1000u64 {
            b.record_micros(us * 10);
            all.record_micros(us * 10);
        }
        a.merge(&b);
        assert_eq!(a.summary(), all.summary());
    }

    #[test]
    fn nanoseconds_are_recorded_as_microseconds_and_extremes_are_clamped() {
        let mut latencies = Latencies::new();
        latencies.record_nanos(1_500_000);
        assert!(close(latencies.summary().max_ms, 1.5));
        latencies.record_nanos(0);
        latencies.record_micros(u64::MAX);
        assert_eq!(latencies.len(), 3);
        assert!(latencies.summary().max_ms >= 599_000.0);
    }

    #[test]
    fn an_empty_histogram_summarises_to_zeros_and_plots_nothing() {
        let latencies = Latencies::new();
        assert_eq!(latencies.summary(), LatencySummary::default());
        assert!(latencies.distribution().is_empty());
    }

    #[test]
    fn the_distribution_rises_to_the_maximum() {
        let mut latencies = Latencies::new();
        for us in 1..=10_000u64 {
            latencies.record_micros(us);
        }
        let points = latencies.distribution();
        assert!(points.len() > 10);
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let (p, ms) = *points.last().unwrap();
        assert!(close(p, 100.0) && close(ms, 10.0), "{p} {ms}");
    }

    #[test]
    fn rates_handle_an_empty_window() {
        assert_eq!(per_second(100, 2.0), 50.0);
        assert_eq!(per_second(100, 0.0), 0.0);
    }
}
