//! Latency samples and their percentiles, and the counters every timed phase
//! keeps (requests, failures by kind, bytes received).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::{Failure, Outcome};

/// What a batch of requests did.
#[derive(Default)]
pub struct Samples {
    micros: Vec<u64>,
    pub errors: u64,
    pub resets: u64,
    pub bytes: u64,
    /// The first failure's status and body, to show what went wrong.
    pub first_error: Option<String>,
}

/// Percentiles of one batch, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Samples {
    pub fn record(&mut self, outcome: &Outcome) {
        self.micros
            .push(u64::try_from(outcome.elapsed.as_micros()).unwrap_or(u64::MAX));
        self.bytes += outcome.body.len() as u64;
        match outcome.failure {
            None => {}
            Some(kind) => {
                if kind == Failure::Reset {
                    self.resets += 1;
                } else {
                    self.errors += 1;
                }
                if self.first_error.is_none() {
                    let what = outcome.error.clone().unwrap_or_else(|| {
                        String::from_utf8_lossy(&outcome.body)
                            .chars()
                            .take(300)
                            .collect()
                    });
                    self.first_error = Some(format!("{kind:?} {:?} {what}", outcome.status));
                }
            }
        }
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
        self.resets += other.resets;
        self.bytes += other.bytes;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn count(&self) -> u64 {
        self.micros.len() as u64
    }

    /// Percentiles by the nearest-rank method; `None` without samples.
    pub fn latency(&mut self) -> Option<Latency> {
        if self.micros.is_empty() {
            return None;
        }
        self.micros.sort_unstable();
        let at = |q: f64| nearest_rank(&self.micros, q) as f64 / 1000.0;
        Some(Latency {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
        })
    }
}

/// The `q` quantile (0–1) of non-empty `sorted` by the nearest-rank method.
pub fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> T {
    let n = sorted.len();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

/// Seconds as a float, rounded to the microsecond.
pub fn secs(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ms: u64) -> Outcome {
        Outcome {
            status: None,
            body: bytes::Bytes::new(),
            elapsed: Duration::from_millis(ms),
            failure: None,
            error: None,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples = Samples::default();
        for ms in (1..=1000).rev() {
            samples.record(&outcome(ms));
        }
        let latency = samples.latency().unwrap();
        assert_eq!(latency.p50_ms, 500.0);
        assert_eq!(latency.p99_ms, 990.0);
        assert_eq!(latency.p999_ms, 999.0);
        assert_eq!(latency.max_ms, 1000.0);
    }

    #[test]
    fn no_samples_no_percentiles() {
        assert!(Samples::default().latency().is_none());
    }
}
