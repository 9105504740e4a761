//! What `/metrics` exposes on a serving process, in Prometheus' text format: requests,
//! errors and latency per served version, model load times and failures, and which
//! version each followed reference serves now.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

pub struct ServeMetrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    load_seconds: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    load_failures: Family<Labels, Counter>,
    serving: Family<Labels, Gauge>,
    /// The labels of each reference's `serving` series now set to 1, to clear on a swap.
    serving_now: Mutex<Vec<(String, Labels)>>,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~13 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

impl Default for ServeMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cairn_serve");
        let requests = Family::<Labels, Counter>::default();
        let latency = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let load_seconds = Family::default();
        let load_failures = Family::default();
        let serving = Family::default();
        registry.register(
            "requests",
            "Scoring requests answered, by served version and HTTP status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer a scoring request, by served version",
            latency.clone(),
        );
        registry.register(
            "model_load_seconds",
            "Time the last load of a version took (download, verification and onnxruntime)",
            load_seconds.clone(),
        );
        registry.register(
            "model_load_failures",
            "Versions that could not be fetched, verified or loaded, by followed reference",
            load_failures.clone(),
        );
        registry.register(
            "serving",
            "1 for the version each followed reference serves now",
            serving.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            load_seconds,
            load_failures,
            serving,
            serving_now: Mutex::default(),
        }
    }
}

impl ServeMetrics {
    /// A request answered by `version` (`NAME@N`, or `none`) with `status`.
    pub fn request(&self, version: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&vec![
                ("version", version.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&vec![("version", version.to_owned())])
            .observe(took.as_secs_f64());
    }

    /// `reference` now serves `version` (digest `digest`), loaded in `took`.
    pub fn loaded(&self, reference: &str, version: &str, digest: &str, took: Duration) {
        self.load_seconds
            .get_or_create(&vec![("version", version.to_owned())])
            .set(took.as_secs_f64());
        let labels = vec![
            ("reference", reference.to_owned()),
            ("version", version.to_owned()),
            ("digest", digest.to_owned()),
        ];
        let mut now = self.serving_now.lock().expect("metrics lock");
        if let Some(at) = now.iter().position(|(r, _)| r == reference) {
            let (_, old) = now.remove(at);
            self.serving.remove(&old);
        }
        self.serving.get_or_create(&labels).set(1);
        now.push((reference.to_owned(), labels));
    }

    pub fn load_failed(&self, reference: &str) {
        self.load_failures
            .get_or_create(&vec![("reference", reference.to_owned())])
            .inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
