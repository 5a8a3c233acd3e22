//! The worker pool of one process: claims due jobs in batches up to its free slots, runs
//! each on its own task (a panic fails the job, not the worker), keeps leases alive with
//! one heartbeat statement for all its jobs, batches completions into one statement, and
//! reaps expired leases left by dead workers. Jobs run outside any transaction.
//!
//! Shutdown (SIGTERM): stop claiming, let running jobs finish within a grace period, then
//! put the rest back in the queue without counting the attempt.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn, Instrument as _};

use super::registry::{JobRun, Registry};
use super::store::{self, ClaimedJob, FailOutcome};
use super::{backoff_delay, JobError};
use crate::clock::{Clock, Millis};
use crate::db::Db;
use crate::metrics::Metrics;

/// How long a claimed job's lease lasts without a heartbeat, in milliseconds.
pub const LEASE_MS: Millis = 30_000;
/// How often a worker extends its leases, in milliseconds (a third of the lease).
pub const HEARTBEAT_MS: Millis = 10_000;
/// How often an idle worker polls for due jobs, in milliseconds (enqueues in the same
/// process wake it at once; this catches other processes and deferred jobs).
pub const POLL_MS: Millis = 500;
/// How often a worker returns expired leases to the queue, in milliseconds.
pub const REAP_MS: Millis = 5_000;
/// Longest a single job may run, in seconds, before it is failed and retried.
pub const JOB_TIMEOUT_SECS: u64 = 15 * 60;
/// How long running jobs may take to finish after a shutdown request, in seconds.
pub const SHUTDOWN_GRACE_SECS: u64 = 30;
/// Most completions written in one statement.
const COMPLETE_BATCH: usize = 512;

/// Tunables of a [`WorkerPool`]; the defaults are the named constants above.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs run at once.
    pub concurrency: usize,
    /// Lease length, ms.
    pub lease_ms: Millis,
    /// Heartbeat period, ms.
    pub heartbeat_ms: Millis,
    /// Idle poll period, ms.
    pub poll_ms: Millis,
    /// Reaper period, ms.
    pub reap_ms: Millis,
    /// Per-job timeout.
    pub job_timeout: Duration,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// This worker's identity in `locked_by` (unique per pool).
    pub worker_id: String,
}

impl WorkerOptions {
    /// Defaults with the given concurrency and a fresh unique worker id.
    pub fn new(concurrency: usize) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        WorkerOptions {
            concurrency,
            lease_ms: LEASE_MS,
            heartbeat_ms: HEARTBEAT_MS,
            poll_ms: POLL_MS,
            reap_ms: REAP_MS,
            job_timeout: Duration::from_secs(JOB_TIMEOUT_SECS),
            shutdown_grace: Duration::from_secs(SHUTDOWN_GRACE_SECS),
            worker_id: format!(
                "{host}:{}:{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        }
    }
}

/// A pool of worker tasks in this process.
pub struct WorkerPool {
    db: Db,
    registry: Registry,
    clock: Clock,
    options: WorkerOptions,
    notify: Arc<Notify>,
    metrics: Arc<Metrics>,
}

/// Controls a started pool.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// Graceful stop: no new claims, running jobs get the grace period, the rest are
    /// released to the queue. Returns when everything is written.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.done.await {
            error!(error = %e, "worker pool task ended abnormally");
        }
    }

    /// True once the pool's task has ended (after shutdown, or if it crashed).
    pub fn is_finished(&self) -> bool {
        self.done.is_finished()
    }
}

struct Shared {
    /// Durable pool, handed to job handlers.
    db: Db,
    /// Relaxed-durability pool for claim/heartbeat/complete/fail (see `Db::relaxed_for_queue`).
    queue_db: Db,
    registry: Registry,
    clock: Clock,
    options: WorkerOptions,
    metrics: Arc<Metrics>,
    running: Mutex<HashSet<i64>>,
    completions: mpsc::UnboundedSender<i64>,
}

impl WorkerPool {
    /// A pool over `db` running the kinds of `registry`. `notify` is signalled by
    /// in-process enqueues to wake idle workers.
    pub fn new(
        db: Db,
        registry: Registry,
        clock: Clock,
        options: WorkerOptions,
        notify: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Self {
        WorkerPool {
            db,
            registry,
            clock,
            options,
            notify,
            metrics,
        }
    }

    /// Starts the claim loop, heartbeat, reaper and completion writer.
    pub fn start(self) -> WorkerHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue_db: self.db.relaxed_for_queue(),
            db: self.db,
            registry: self.registry,
            clock: self.clock,
            options: self.options,
            metrics: self.metrics,
            running: Mutex::new(HashSet::new()),
            completions: done_tx,
        });
        let span = tracing::info_span!("worker", worker = %shared.options.worker_id);
        let done = tokio::spawn(run_pool(shared, self.notify, stop_rx, done_rx).instrument(span));
        WorkerHandle {
            stop: stop_tx,
            done,
        }
    }
}

async fn run_pool(
    shared: Arc<Shared>,
    notify: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    completions: mpsc::UnboundedReceiver<i64>,
) {
    let kinds = shared.registry.kinds();
    info!(
        concurrency = shared.options.concurrency,
        kinds = ?kinds,
        "worker pool started"
    );
    let completer = tokio::spawn(write_completions(shared.clone(), completions));
    let background = tokio::spawn(heartbeat_and_reap(
        shared.clone(),
        stop.clone(),
        notify.clone(),
    ));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut backoff_on_error = Duration::from_millis(100);

    while !*stop.borrow() {
        // Count only live tasks, so one claim can fill every slot that has freed up.
        while let Some(res) = tasks.try_join_next() {
            log_task_end(res);
        }
        let free = shared.options.concurrency.saturating_sub(tasks.len());
        let mut claimed_full = false;
        if free > 0 {
            let now = shared.clock.now();
            let started = Instant::now();
            match store::claim(
                &shared.queue_db,
                &shared.options.worker_id,
                &kinds,
                free as i64,
                now,
                shared.options.lease_ms,
            )
            .await
            {
                Ok(jobs) => {
                    backoff_on_error = Duration::from_millis(100);
                    claimed_full = jobs.len() == free;
                    if !jobs.is_empty() {
                        debug!(
                            n = jobs.len(),
                            took_ms = started.elapsed().as_millis() as u64,
                            "claimed"
                        );
                    }
                    for job in jobs {
                        shared
                            .running
                            .lock()
                            .expect("running set lock is never poisoned: no panics while held")
                            .insert(job.id);
                        tasks.spawn(run_one(shared.clone(), job));
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot claim jobs; backing off");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff_on_error) => {}
                        _ = stop.changed() => {}
                    }
                    backoff_on_error = (backoff_on_error * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
        }
        if claimed_full && tasks.len() < shared.options.concurrency {
            continue;
        }
        if free > 0 && !claimed_full && tasks.len() < shared.options.concurrency {
            // Idle capacity: wait for an enqueue, a finished job, the poll tick or stop.
            tokio::select! {
                _ = notify.notified() => {}
                Some(res) = tasks.join_next(), if !tasks.is_empty() => log_task_end(res),
                _ = tokio::time::sleep(Duration::from_millis(shared.options.poll_ms as u64)) => {}
                _ = stop.changed() => {}
            }
        } else {
            // Full: wait for a slot.
            tokio::select! {
                Some(res) = tasks.join_next(), if !tasks.is_empty() => log_task_end(res),
                _ = stop.changed() => {}
            }
        }
    }

    info!(running = tasks.len(), "worker pool stopping: no new claims");
    let grace = tokio::time::sleep(shared.options.shutdown_grace);
    tokio::pin!(grace);
    while !tasks.is_empty() {
        tokio::select! {
            Some(res) = tasks.join_next() => log_task_end(res),
            _ = &mut grace => {
                warn!(running = tasks.len(), "grace period over: releasing unfinished jobs");
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
            }
        }
    }
    let leftover: Vec<i64> = shared
        .running
        .lock()
        .expect("running set lock is never poisoned")
        .drain()
        .collect();
    let now = shared.clock.now();
    for id in leftover {
        match store::defer(
            &shared.queue_db,
            &shared.options.worker_id,
            id,
            now,
            Some("released at shutdown"),
            now,
        )
        .await
        {
            Ok(true) => info!(job.id = id, "released to the queue"),
            Ok(false) => {}
            Err(e) => warn!(job.id = id, error = %e, "cannot release job; its lease will expire"),
        }
    }
    background.abort();
    let _ = background.await;
    drop(shared);
    // The completer ends when the last sender (held by `shared` clones) is gone.
    if let Err(e) = completer.await {
        error!(error = %e, "completion writer ended abnormally");
    }
    info!("worker pool stopped");
}

fn log_task_end(res: Result<(), tokio::task::JoinError>) {
    if let Err(e) = res {
        if !e.is_cancelled() {
            error!(error = %e, "job task ended abnormally");
        }
    }
}

async fn run_one(shared: Arc<Shared>, job: ClaimedJob) {
    let span = tracing::info_span!(
        "job",
        job.id = job.id,
        job.kind = %job.kind,
        attempt = job.attempt
    );
    async {
        let now = shared.clock.now();
        shared
            .metrics
            .observe_queue_latency(&job.kind, (now - job.run_at).max(0) as f64 / 1000.0);
        let run = JobRun {
            id: job.id,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            db: shared.db.clone(),
        };
        let started = Instant::now();
        let fut = shared.registry.start(&job.kind, run, &job.payload);
        // Its own task, so a panic surfaces as a JoinError instead of unwinding here.
        let inner = tokio::spawn(fut);
        let abort = inner.abort_handle();
        let result = match tokio::time::timeout(shared.options.job_timeout, inner).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) if join.is_panic() => Err(JobError::Retry(anyhow::anyhow!(
                "job panicked: {}",
                panic_message(join.into_panic())
            ))),
            Ok(Err(join)) => Err(JobError::Retry(anyhow::anyhow!("job task failed: {join}"))),
            Err(_) => {
                abort.abort();
                Err(JobError::Retry(anyhow::anyhow!(
                    "job timed out after {}s",
                    shared.options.job_timeout.as_secs()
                )))
            }
        };
        let secs = started.elapsed().as_secs_f64();
        finish(&shared, &job, result, secs).await;
        shared
            .running
            .lock()
            .expect("running set lock is never poisoned")
            .remove(&job.id);
    }
    .instrument(span)
    .await
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

async fn finish(shared: &Shared, job: &ClaimedJob, result: Result<(), JobError>, secs: f64) {
    let worker = &shared.options.worker_id;
    let now = shared.clock.now();
    match result {
        Ok(()) => {
            shared.metrics.observe_job(&job.kind, "succeeded", secs);
            debug!(took_s = secs, "job succeeded");
            // Batched with other completions; if this process dies first the lease expires
            // and the job runs again, which at-least-once allows.
            let _ = shared.completions.send(job.id);
        }
        Err(JobError::Defer { until, reason }) => {
            shared.metrics.observe_job(&job.kind, "deferred", secs);
            info!(until, reason = %reason, "job deferred");
            if let Err(e) =
                store::defer(&shared.queue_db, worker, job.id, until, Some(&reason), now).await
            {
                warn!(error = %e, "cannot defer job; its lease will expire");
            }
        }
        Err(err) => {
            let permanent = matches!(err, JobError::Permanent(_));
            let message = err.to_string();
            let delay = backoff_delay(job.attempt, rand::random::<f64>());
            match store::fail(
                &shared.queue_db,
                worker,
                job.id,
                &message,
                now + delay,
                permanent,
                now,
            )
            .await
            {
                Ok(FailOutcome::Dead) => {
                    shared.metrics.observe_job(&job.kind, "dead", secs);
                    error!(error = %message, "job is dead (dead-lettered); `pipewright jobs retry` revives it");
                }
                Ok(FailOutcome::WillRetry(at)) => {
                    shared.metrics.observe_job(&job.kind, "failed", secs);
                    warn!(error = %message, retry_in_ms = at - now, "job failed; will retry");
                }
                Ok(FailOutcome::NotHeld) => {
                    warn!(error = %message, "job failed after its lease was lost");
                }
                Err(e) => warn!(error = %e, "cannot record job failure; its lease will expire"),
            }
        }
    }
}

async fn write_completions(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<i64>) {
    // `shared` holds a sender; drop our reference's ability to keep the channel alive by
    // only using the db/clock/options from it.
    let db = shared.queue_db.clone();
    let clock = shared.clock.clone();
    let worker = shared.options.worker_id.clone();
    drop(shared);
    let mut batch = Vec::with_capacity(COMPLETE_BATCH);
    while let Some(id) = rx.recv().await {
        batch.push(id);
        while batch.len() < COMPLETE_BATCH {
            match rx.try_recv() {
                Ok(id) => batch.push(id),
                Err(_) => break,
            }
        }
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=5 {
            match store::complete(&db, &worker, &batch, clock.now()).await {
                Ok(held) => {
                    if held.len() < batch.len() {
                        warn!(
                            lost = batch.len() - held.len(),
                            "completed jobs whose lease was lost; they may run again"
                        );
                    }
                    break;
                }
                Err(e) if attempt < 5 => {
                    warn!(error = %e, attempt, "cannot record completions; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => error!(
                    error = %e,
                    n = batch.len(),
                    "cannot record completions; these jobs will run again after their lease"
                ),
            }
        }
        batch.clear();
    }
}

async fn heartbeat_and_reap(shared: Arc<Shared>, stop: watch::Receiver<bool>, notify: Arc<Notify>) {
    let mut heartbeat =
        tokio::time::interval(Duration::from_millis(shared.options.heartbeat_ms as u64));
    let mut reap = tokio::time::interval(Duration::from_millis(shared.options.reap_ms as u64));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let held = shared.running.lock().map(|r| r.len()).unwrap_or(0);
                if held == 0 {
                    continue;
                }
                if let Err(e) = store::heartbeat(
                    &shared.queue_db,
                    &shared.options.worker_id,
                    shared.clock.now(),
                    shared.options.lease_ms,
                ).await {
                    warn!(error = %e, "heartbeat failed; leases may expire");
                }
            }
            _ = reap.tick() => {
                match store::reap_expired(&shared.queue_db, shared.clock.now()).await {
                    Ok(0) => {}
                    Ok(n) => {
                        warn!(n, "returned jobs with expired leases to the queue");
                        notify.notify_one();
                    }
                    Err(e) => warn!(error = %e, "cannot reap expired leases"),
                }
            }
        }
        if *stop.borrow() {
            break;
        }
    }
}
