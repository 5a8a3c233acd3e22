//! Prometheus metrics (`GET /metrics`): deliveries, signature failures, job outcomes,
//! durations and queue latency, plus job counts and queue depth read from the database
//! at scrape time (so every replica reports the same shared queue).

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::clock::Millis;
use crate::db::Db;
use crate::forge::client::ApiCallTotals;
use crate::queue::store;

type Labels = Vec<(&'static str, String)>;

/// All metrics of one process.
pub struct Metrics {
    registry: Registry,
    deliveries: Family<Labels, Counter>,
    signature_failures: Family<Labels, Counter>,
    job_runs: Family<Labels, Counter>,
    job_duration: Family<Labels, Histogram>,
    queue_latency: Family<Labels, Histogram>,
    jobs: Family<Labels, Gauge>,
    queue_depth: Gauge,
    api_calls: Family<Labels, Counter>,
    api_jobs: Family<Labels, Counter>,
    api_job_calls: Family<Labels, Counter>,
    api_totals: Mutex<Option<Arc<ApiCallTotals>>>,
    first_runs: Family<Labels, Gauge>,
    scrape_lock: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every pipewright metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pipewright");
        let deliveries = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries by forge, event and outcome",
            deliveries.clone(),
        );
        let signature_failures = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_signature_failures",
            "Webhook deliveries rejected for a missing or bad signature",
            signature_failures.clone(),
        );
        let job_runs = Family::<Labels, Counter>::default();
        registry.register(
            "job_runs",
            "Job attempts by kind and outcome",
            job_runs.clone(),
        );
        let job_duration = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 4.0, 10))
        });
        registry.register(
            "job_duration_seconds",
            "Time a job attempt ran, by kind and outcome",
            job_duration.clone(),
        );
        let queue_latency = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 4.0, 12))
        });
        registry.register(
            "job_queue_latency_seconds",
            "Time from a job being due to a worker starting it",
            queue_latency.clone(),
        );
        let jobs = Family::<Labels, Gauge>::default();
        registry.register("jobs", "Jobs in the queue by kind and state", jobs.clone());
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Jobs due now and waiting for a worker",
            queue_depth.clone(),
        );
        let api_calls = Family::<Labels, Counter>::default();
        registry.register(
            "forge_api_calls",
            "Forge API calls by forge, operation and outcome",
            api_calls.clone(),
        );
        let api_jobs = Family::<Labels, Counter>::default();
        registry.register(
            "forge_api_jobs",
            "Jobs that used the forge API, by forge and kind (denominator of calls per job)",
            api_jobs.clone(),
        );
        let api_job_calls = Family::<Labels, Counter>::default();
        registry.register(
            "forge_api_job_calls",
            "Forge API calls made by jobs, by forge and kind",
            api_job_calls.clone(),
        );
        let first_runs = Family::<Labels, Gauge>::default();
        registry.register(
            "first_run_outcomes",
            "First CI runs of pipewright's proposals by forge, failure class (or passed) and the action taken",
            first_runs.clone(),
        );
        Metrics {
            first_runs,
            api_calls,
            api_jobs,
            api_job_calls,
            api_totals: Mutex::new(None),
            registry,
            deliveries,
            signature_failures,
            job_runs,
            job_duration,
            queue_latency,
            jobs,
            queue_depth,
            scrape_lock: Mutex::new(()),
        }
    }

    /// Counts one delivery.
    pub fn delivery(&self, forge: &str, event: &str, outcome: &'static str) {
        self.deliveries
            .get_or_create(&vec![
                ("forge", forge.to_owned()),
                ("event", event.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// Counts one rejected signature.
    pub fn signature_failure(&self, forge: &str) {
        self.signature_failures
            .get_or_create(&vec![("forge", forge.to_owned())])
            .inc();
    }

    /// Records one job attempt.
    pub fn observe_job(&self, kind: &str, outcome: &'static str, secs: f64) {
        let labels = vec![("kind", kind.to_owned()), ("outcome", outcome.to_owned())];
        self.job_runs.get_or_create(&labels).inc();
        self.job_duration.get_or_create(&labels).observe(secs);
    }

    /// Records how long a job waited after it was due.
    pub fn observe_queue_latency(&self, kind: &str, secs: f64) {
        self.queue_latency
            .get_or_create(&vec![("kind", kind.to_owned())])
            .observe(secs);
    }

    /// Exports the forge API call counters of `totals` at every scrape.
    pub fn attach_api_calls(&self, totals: Arc<ApiCallTotals>) {
        *self
            .api_totals
            .lock()
            .expect("metrics lock is never poisoned") = Some(totals);
    }

    fn sync_api_calls(&self) {
        let Some(totals) = self
            .api_totals
            .lock()
            .expect("metrics lock is never poisoned")
            .clone()
        else {
            return;
        };
        let bump = |c: &Counter, to: u64| {
            let now = c.get();
            if to > now {
                c.inc_by(to - now);
            }
        };
        for ((forge, op, outcome), n) in totals.snapshot() {
            let l = vec![
                ("forge", forge.as_str().to_owned()),
                ("operation", op.to_owned()),
                ("outcome", outcome.to_owned()),
            ];
            bump(&self.api_calls.get_or_create(&l), n);
        }
        for ((forge, kind), (jobs, calls)) in totals.per_job() {
            let l = vec![
                ("forge", forge.as_str().to_owned()),
                ("kind", kind.to_owned()),
            ];
            bump(&self.api_jobs.get_or_create(&l), jobs);
            bump(&self.api_job_calls.get_or_create(&l), calls);
        }
    }

    /// Reads queue state from the database and renders the text exposition format.
    pub async fn render(&self, db: &Db, now: Millis) -> anyhow::Result<String> {
        let counts = store::counts(db).await?;
        let depth = store::ready_depth(db, now).await?;
        let first_runs = crate::db::first_runs::counts(db).await?;
        // One scrape at a time, so two scrapes never interleave clear/set.
        let _guard = self
            .scrape_lock
            .lock()
            .expect("scrape lock is never poisoned");
        self.jobs.clear();
        for (kind, state, n) in counts {
            self.jobs
                .get_or_create(&vec![("kind", kind), ("state", state.as_str().to_owned())])
                .set(n);
        }
        self.queue_depth.set(depth);
        self.first_runs.clear();
        for (forge, class, action, n) in first_runs {
            self.first_runs
                .get_or_create(&vec![
                    ("forge", forge),
                    ("class", class),
                    ("action", action),
                ])
                .set(n);
        }
        self.sync_api_calls();
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
