//! Latency histograms and the summaries the report prints.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Microsecond histogram from 1 µs to 60 s at three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds the crate accepts")
}

pub fn record(hist: &mut Histogram<u64>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    hist.saturating_record(micros);
}

/// Count, p50 and p99 in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Summary {
    pub fn of(hist: &Histogram<u64>) -> Summary {
        if hist.is_empty() {
            return Summary::default();
        }
        Summary {
            count: hist.len(),
            p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        }
    }
}

/// The median of some values (the mean of the middle two for an even
/// count); zero for none.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}
