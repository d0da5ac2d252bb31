//! Counters, gauges and histograms of the server, written in Prometheus' text format for
//! `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets.
const LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A Prometheus histogram: cumulative counts per bucket, a sum and a count.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    state: Mutex<HistogramState>,
}

#[derive(Debug, Default)]
struct HistogramState {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, state: Mutex::new(HistogramState { counts: vec![0; bounds.len()], ..Default::default() }) }
    }

    /// Records one observation.
    pub fn observe(&self, seconds: f64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = self.bounds.iter().position(|&b| seconds <= b) {
            s.counts[i] += 1;
        }
        s.sum += seconds;
        s.count += 1;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).count
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&s.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ =
            writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}", s.count, s.sum, s.count);
    }
}

/// Everything `/metrics` reports. Shared by the handlers and the scheduler.
#[derive(Debug)]
pub struct Metrics {
    /// Requests to `/v1/completions`.
    pub completion_requests: AtomicU64,
    /// Requests to `/v1/chat/completions`.
    pub chat_requests: AtomicU64,
    /// Requests refused with a 4xx (bad input, authentication, a full queue).
    pub rejected_requests: AtomicU64,
    /// Requests refused because the queue was full.
    pub queue_full_rejections: AtomicU64,
    /// Jobs whose client left before they finished.
    pub cancelled_jobs: AtomicU64,
    /// Jobs that ran to the end.
    pub finished_jobs: AtomicU64,
    /// Prompt tokens of admitted jobs.
    pub prompt_tokens: AtomicU64,
    /// Prompt tokens found in the KV cache instead of recomputed.
    pub reused_prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generated_tokens: AtomicU64,
    /// Forward steps the scheduler ran.
    pub steps: AtomicU64,
    /// Sequences in the running batch.
    pub active_sequences: AtomicU64,
    /// Time from a request's arrival to its first token.
    pub time_to_first_token: Histogram,
    /// Time between consecutive tokens of one request.
    pub inter_token_latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            completion_requests: AtomicU64::new(0),
            chat_requests: AtomicU64::new(0),
            rejected_requests: AtomicU64::new(0),
            queue_full_rejections: AtomicU64::new(0),
            cancelled_jobs: AtomicU64::new(0),
            finished_jobs: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            reused_prompt_tokens: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            steps: AtomicU64::new(0),
            active_sequences: AtomicU64::new(0),
            time_to_first_token: Histogram::new(LATENCY_BUCKETS),
            inter_token_latency: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Seconds of a duration, for the histograms.
pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Metrics {
    /// The Prometheus text exposition; `queue_depth` is the number of requests waiting now.
    pub fn render(&self, queue_depth: usize) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut out,
            "zoo_requests_total",
            "Generation requests received, by endpoint.",
            &[
                ("endpoint=\"completions\"", get(&self.completion_requests)),
                ("endpoint=\"chat_completions\"", get(&self.chat_requests)),
            ],
        );
        for (name, help, value) in self.plain_counters() {
            counter(&mut out, name, help, &[("", get(value))]);
        }
        gauge(&mut out, "zoo_queue_depth", "Requests waiting for a batch slot.", queue_depth as u64);
        gauge(&mut out, "zoo_active_sequences", "Sequences in the running batch.", get(&self.active_sequences));
        for (name, help, histogram) in self.histograms() {
            histogram.write(&mut out, name, help);
        }
        out
    }

    /// The counters without labels: name, help and value.
    fn plain_counters(&self) -> [(&'static str, &'static str, &AtomicU64); 8] {
        [
            ("zoo_requests_rejected_total", "Requests refused with a 4xx status.", &self.rejected_requests),
            ("zoo_queue_full_total", "Requests refused because the queue was full.", &self.queue_full_rejections),
            ("zoo_jobs_finished_total", "Generations that ran to the end.", &self.finished_jobs),
            ("zoo_jobs_cancelled_total", "Generations whose client disconnected.", &self.cancelled_jobs),
            ("zoo_prompt_tokens_total", "Prompt tokens of admitted requests.", &self.prompt_tokens),
            ("zoo_prompt_tokens_reused_total", "Prompt tokens found in the KV cache.", &self.reused_prompt_tokens),
            ("zoo_generated_tokens_total", "Tokens generated.", &self.generated_tokens),
            ("zoo_forward_steps_total", "Forward passes of the running batch.", &self.steps),
        ]
    }

    /// The histograms: name, help and histogram.
    fn histograms(&self) -> [(&'static str, &'static str, &Histogram); 2] {
        [
            (
                "zoo_time_to_first_token_seconds",
                "Time from a request's arrival to its first token.",
                &self.time_to_first_token,
            ),
            (
                "zoo_inter_token_latency_seconds",
                "Time between consecutive tokens of a request.",
                &self.inter_token_latency,
            ),
        ]
    }
}

fn counter(out: &mut String, name: &str, help: &str, values: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, value) in values {
        let labels = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_cumulatively_and_the_text_format_has_every_series() {
        let m = Metrics::default();
        m.time_to_first_token.observe(0.02);
        m.time_to_first_token.observe(0.3);
        m.time_to_first_token.observe(100.0);
        add(&m.chat_requests, 2);
        let text = m.render(3);
        assert!(text.contains("zoo_time_to_first_token_seconds_bucket{le=\"0.025\"} 1\n"), "{text}");
        assert!(text.contains("zoo_time_to_first_token_seconds_bucket{le=\"0.5\"} 2\n"), "{text}");
        assert!(text.contains("zoo_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("zoo_time_to_first_token_seconds_count 3\n"), "{text}");
        assert!(text.contains("zoo_requests_total{endpoint=\"chat_completions\"} 2\n"), "{text}");
        assert!(text.contains("zoo_queue_depth 3\n"), "{text}");
        assert!(text.contains("# TYPE zoo_inter_token_latency_seconds histogram\n"), "{text}");
    }
}
