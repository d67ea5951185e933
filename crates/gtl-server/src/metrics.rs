//! The Prometheus recorder behind `GET /metrics`: the libraries record
//! through the `metrics` facade; the server installs the one recorder of
//! the process and renders it. docs/operations.md lists every metric.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets of every `*_seconds` metric: 100 µs (the gateway's
/// own added latency) to 5 minutes (a long generation).
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// How often histograms' recent samples are folded in when nobody scrapes.
pub(crate) const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Gauges the facade can only express as gauges (its counters count
/// integers) but that only ever go up: typed `counter` in the output.
const FLOAT_COUNTERS: &[&str] = &["gtl_cost_usd_total"];

/// The process's Prometheus recorder.
#[derive(Debug, Clone)]
pub struct PrometheusMetrics {
    handle: PrometheusHandle,
}

impl PrometheusMetrics {
    /// Installs the recorder for this process, once; later calls share it.
    /// `None` when another recorder was installed first (an application
    /// embedding the gateway with its own): the gateway's metrics go there
    /// and `/metrics` is not served.
    pub fn install() -> Option<Arc<Self>> {
        static INSTALLED: OnceLock<Option<Arc<PrometheusMetrics>>> = OnceLock::new();
        INSTALLED
            .get_or_init(|| {
                let builder = PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                    .expect("the buckets are not empty");
                match builder.install_recorder() {
                    Ok(handle) => {
                        describe();
                        gauge!("gtl_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
                        Some(Arc::new(Self { handle }))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics recorder not installed; /metrics is off");
                        None
                    }
                }
            })
            .clone()
    }

    /// Folds recent histogram samples in (run every [`UPKEEP_EVERY`]).
    pub(crate) fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

impl gtl_transport_http::MetricsRender for PrometheusMetrics {
    fn render(&self) -> String {
        let mut text = self.handle.render();
        for name in FLOAT_COUNTERS {
            text = text.replace(
                &format!("# TYPE {name} gauge\n"),
                &format!("# TYPE {name} counter\n"),
            );
        }
        text
    }
}

/// The help text of every metric (what `promtool check metrics` asks for).
fn describe() {
    describe_counter!(
        "gtl_requests_total",
        "Calls by operation (route), transport, provider, model and outcome (ok, cancelled or \
         the GTL error code); provider `routed` for calls through a route, `other` for names \
         the configuration does not know."
    );
    describe_histogram!(
        "gtl_request_duration_seconds",
        Unit::Seconds,
        "From the call service receiving a call to the end of its generation."
    );
    describe_histogram!(
        "gtl_time_to_first_token_seconds",
        Unit::Seconds,
        "From the call service receiving a call to its first output event handed to the \
         client's transport."
    );
    describe_histogram!(
        "gtl_upstream_time_to_first_token_seconds",
        Unit::Seconds,
        "Per upstream attempt: from calling the provider to its first output event."
    );
    describe_histogram!(
        "gtl_added_latency_seconds",
        Unit::Seconds,
        "The gateway's own time before the first token: call received to first upstream \
         request, plus upstream first output to that output handed to the client's transport."
    );
    describe_counter!(
        "gtl_tokens_total",
        "Tokens by direction (in, out), provider and model, as the providers reported them."
    );
    describe_counter!(
        "gtl_cost_usd_total",
        "Cost in USD by provider and model, from the providers' usage and the price table."
    );
    describe_gauge!(
        "gtl_active_sessions",
        "Generations running now (sessions whose provider stream is open)."
    );
    describe_gauge!(
        "gtl_active_connections",
        "Open client connections, by transport."
    );
    describe_counter!("gtl_resumes_total", "Resumes by transport and outcome.");
    describe_counter!(
        "gtl_provider_errors_total",
        "Errors from upstream attempts, by provider and GTL error code."
    );
    describe_counter!(
        "gtl_retries_total",
        "Routed attempts that retried the same target."
    );
    describe_counter!(
        "gtl_failovers_total",
        "Routed attempts that moved on to another target."
    );
    describe_gauge!(
        "gtl_circuit_open",
        "1 while a configured route target's circuit breaker is open, else 0."
    );
    describe_gauge!("gtl_build_info", "Always 1; the version is the label.");
}

#[cfg(test)]
mod tests {
    use gtl_transport_http::MetricsRender as _;

    use super::*;

    #[test]
    fn dollars_are_a_counter_with_help() {
        let metrics = PrometheusMetrics::install().expect("the test binary's first recorder");
        gauge!("gtl_cost_usd_total", "provider" => "p", "model" => "m").increment(0.25);
        let text = metrics.render();
        assert!(
            text.contains("# TYPE gtl_cost_usd_total counter\n"),
            "{text}"
        );
        assert!(text.contains("gtl_cost_usd_total{provider=\"p\",model=\"m\"} 0.25\n"));
        assert!(text.contains("# HELP gtl_cost_usd_total "), "{text}");
        assert!(text.contains("gtl_build_info{version=\""), "{text}");
        // Installing again shares the recorder.
        assert!(PrometheusMetrics::install().is_some());
    }
}
