//! The job queue, on SQLite and PostgreSQL: exactly-once under concurrent workers,
//! dedupe, concurrency keys, backoff, dead-lettering and retry, panics, deferral, lease
//! expiry and graceful shutdown. Time is a manual clock; waits poll for conditions.

#[path = "support/db.rs"]
mod testdb;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipewright::clock::Clock;
use pipewright::metrics::Metrics;
use pipewright::queue::store::{self, JobState};
use pipewright::queue::{
    Job, JobError, NewJob, Registry, WorkerHandle, WorkerOptions, WorkerPool, BACKOFF_BASE_MS,
};
use pipewright::Db;
use serde::{Deserialize, Serialize};
use testdb::{wait_until, TestDb};
use tokio::sync::Notify;

const T0: i64 = 1_700_000_000_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Work {
    n: u64,
    key: Option<String>,
    dedupe: Option<String>,
}

impl Job for Work {
    const KIND: &'static str = "test_work";
    const MAX_ATTEMPTS: i64 = 3;
    fn dedupe_key(&self) -> Option<String> {
        self.dedupe.clone()
    }
    fn concurrency_key(&self) -> Option<String> {
        self.key.clone()
    }
}

fn work(n: u64) -> Work {
    Work {
        n,
        key: None,
        dedupe: None,
    }
}

fn options(concurrency: usize) -> WorkerOptions {
    let mut o = WorkerOptions::new(concurrency);
    o.poll_ms = 20;
    o.reap_ms = 20;
    o.heartbeat_ms = 50;
    o.shutdown_grace = Duration::from_millis(300);
    o
}

fn start(
    db: &Db,
    registry: Registry,
    clock: &Clock,
    concurrency: usize,
) -> (WorkerHandle, Arc<Notify>) {
    let notify = Arc::new(Notify::new());
    let pool = WorkerPool::new(
        db.clone(),
        registry,
        clock.clone(),
        options(concurrency),
        notify.clone(),
        Arc::new(Metrics::new()),
    );
    (pool.start(), notify)
}

async fn enqueue(db: &Db, job: &Work, now: i64) -> Option<i64> {
    store::enqueue(db, &NewJob::of(job), now)
        .await
        .expect("enqueue")
}

async fn state_of(db: &Db, id: i64) -> (JobState, i64) {
    let j = store::get(db, id).await.unwrap().unwrap();
    (j.state, j.attempts)
}

async fn count_in(db: &Db, state: JobState) -> usize {
    store::list(
        db,
        &store::ListFilter {
            state: Some(state),
            kind: None,
            limit: 100_000,
        },
    )
    .await
    .unwrap()
    .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m_jobs_with_n_workers_each_succeed_exactly_once() {
    for t in TestDb::all().await {
        let clock = Clock::manual(T0);
        const M: u64 = 300;
        for n in 0..M {
            enqueue(&t.db, &work(n), T0).await.unwrap();
        }
        let runs: Arc<Mutex<HashMap<u64, usize>>> = Arc::default();
        let mut handles = Vec::new();
        // Four pools with distinct worker ids compete, as four processes would.
        for _ in 0..4 {
            let runs = runs.clone();
            let registry = Registry::new().register::<Work, _, _>(move |_run, job| {
                let runs = runs.clone();
                async move {
                    *runs.lock().unwrap().entry(job.n).or_default() += 1;
                    tokio::task::yield_now().await;
                    Ok(())
                }
            });
            handles.push(start(&t.db, registry, &clock, 4).0);
        }
        let db = t.db.clone();
        wait_until("all jobs succeeded", || {
            let db = db.clone();
            async move { count_in(&db, JobState::Succeeded).await == M as usize }
        })
        .await;
        for h in handles {
            h.shutdown().await;
        }
        let runs = runs.lock().unwrap();
        assert_eq!(runs.len(), M as usize, "{}", t.name);
        assert!(
            runs.values().all(|&c| c == 1),
            "{}: a job ran twice: {runs:?}",
            t.name
        );
    }
}

#[tokio::test]
async fn dedupe_key_is_unique_among_live_jobs_only() {
    for t in TestDb::all().await {
        let clock = Clock::manual(T0);
        let job = Work {
            n: 1,
            key: None,
            dedupe: Some("analyze:42:abc".into()),
        };
        let first = enqueue(&t.db, &job, T0).await;
        assert!(first.is_some());
        assert_eq!(
            enqueue(&t.db, &job, T0).await,
            None,
            "{}: duplicate queued",
            t.name
        );

        let registry = Registry::new().register::<Work, _, _>(|_, _| async { Ok(()) });
        let (h, _) = start(&t.db, registry, &clock, 1);
        let db = t.db.clone();
        let id = first.unwrap();
        wait_until("job done", || {
            let db = db.clone();
            async move { state_of(&db, id).await.0 == JobState::Succeeded }
        })
        .await;
        h.shutdown().await;
        // Once the first is done, the same key may be queued again.
        assert!(enqueue(&t.db, &job, T0).await.is_some(), "{}", t.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_sharing_a_concurrency_key_never_overlap() {
    for t in TestDb::all().await {
        let clock = Clock::manual(T0);
        for n in 0..12 {
            let key = Some(if n % 2 == 0 { "repo:a" } else { "repo:b" }.to_owned());
            enqueue(
                &t.db,
                &Work {
                    n,
                    key,
                    dedupe: None,
                },
                T0,
            )
            .await
            .unwrap();
        }
        let in_flight: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let max_per_key = Arc::new(AtomicUsize::new(0));
        let max_total = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..2 {
            let (in_flight, max_per_key, max_total, total) = (
                in_flight.clone(),
                max_per_key.clone(),
                max_total.clone(),
                total.clone(),
            );
            let registry = Registry::new().register::<Work, _, _>(move |_, job| {
                let (in_flight, max_per_key, max_total, total) = (
                    in_flight.clone(),
                    max_per_key.clone(),
                    max_total.clone(),
                    total.clone(),
                );
                async move {
                    let key = job.key.clone().unwrap();
                    {
                        let mut m = in_flight.lock().unwrap();
                        let c = m.entry(key.clone()).or_default();
                        *c += 1;
                        max_per_key.fetch_max(*c, Ordering::SeqCst);
                    }
                    let now = total.fetch_add(1, Ordering::SeqCst) + 1;
                    max_total.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    total.fetch_sub(1, Ordering::SeqCst);
                    *in_flight.lock().unwrap().get_mut(&key).unwrap() -= 1;
                    Ok(())
                }
            });
            handles.push(start(&t.db, registry, &clock, 4).0);
        }
        let db = t.db.clone();
        wait_until("all done", || {
            let db = db.clone();
            async move { count_in(&db, JobState::Succeeded).await == 12 }
        })
        .await;
        for h in handles {
            h.shutdown().await;
        }
        assert_eq!(
            max_per_key.load(Ordering::SeqCst),
            1,
            "{}: same key ran twice at once",
            t.name
        );
        assert_eq!(
            max_total.load(Ordering::SeqCst),
            2,
            "{}: different keys should overlap",
            t.name
        );
    }
}

#[tokio::test]
async fn failures_back_off_then_dead_letter_and_retry_revives() {
    for t in TestDb::all().await {
        let clock = Clock::manual(T0);
        let id = enqueue(&t.db, &work(7), T0).await.unwrap();
        let succeed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = succeed.clone();
        let registry = Registry::new().register::<Work, _, _>(move |run, _| {
            let s = s.clone();
            async move {
                if s.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err(JobError::Retry(anyhow::anyhow!(
                        "boom on attempt {}",
                        run.attempt
                    )))
                }
            }
        });
        let (h, notify) = start(&t.db, registry, &clock, 1);
        for attempt in 1..=2_i64 {
            let db = t.db.clone();
            wait_until("failed attempt", || {
                let db = db.clone();
                async move { state_of(&db, id).await == (JobState::Failed, attempt) }
            })
            .await;
            let job = store::get(&t.db, id).await.unwrap().unwrap();
            let delay = job.run_at - clock.now();
            let full = BACKOFF_BASE_MS << (attempt - 1);
            assert!(
                (full / 2..=full).contains(&delay),
                "{}: attempt {attempt} delay {delay} not in [{}, {full}]",
                t.name,
                full / 2
            );
            assert_eq!(
                job.last_error.as_deref(),
                Some(&*format!("boom on attempt {attempt}"))
            );
            // Not due yet: nothing runs until the clock passes run_at.
            tokio::time::sleep(Duration::from_millis(60)).await;
            assert_eq!(state_of(&t.db, id).await, (JobState::Failed, attempt));
            clock.advance(delay + 1);
            notify.notify_one();
        }
        let db = t.db.clone();
        wait_until("dead", || {
            let db = db.clone();
            async move { state_of(&db, id).await.0 == JobState::Dead }
        })
        .await;
        let dead = store::get(&t.db, id).await.unwrap().unwrap();
        assert_eq!(dead.attempts, 3);
        assert_eq!(dead.last_error.as_deref(), Some("boom on attempt 3"));

        succeed.store(true, Ordering::SeqCst);
        store::retry(&t.db, id, clock.now()).await.unwrap();
        notify.notify_one();
        let db = t.db.clone();
        wait_until("revived job succeeded", || {
            let db = db.clone();
            async move { state_of(&db, id).await == (JobState::Succeeded, 1) }
        })
        .await;
        h.shutdown().await;
        assert!(matches!(
            store::retry(&t.db, id, clock.now()).await,
            Err(store::RetryError::WrongState { .. })
        ));
        assert!(matches!(
            store::retry(&t.db, 999_999, clock.now()).await,
            Err(store::RetryError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn a_panic_fails_the_job_not_the_worker_and_permanent_errors_are_dead_at_once() {
    for t in TestDb::all().await {
        let clock = Clock::manual(T0);
        let panicking = enqueue(&t.db, &work(1), T0).await.unwrap();
        let permanent = enqueue(&t.db, &work(2), T0).await.unwrap();
        let fine = enqueue(&t.db, &work(3), T0).await.unwrap();
        let registry = Registry::new().register::<Work, _, _>(|_, job| async move {
            match job.n {
                1 => panic!("handler bug"),
                2 => Err(JobError::Permanent(anyhow::anyhow!("404 repository gone"))),
                _ => Ok(()),
            }
        });
        let (h, _) = start(&t.db, registry, &clock, 1);
        let db = t.db.clone();
        wait_until("all three settled", || {
            let db = db.clone();
            async move {
                state_of(&db, panicking).await.0 == JobState::Failed
                    && state_of(&db, permanent).await.0 == JobState::Dead
                    && state_of(&db, fine).await.0 == JobState::Succeeded
            }
        })
        .await;
        h.shutdown().await;
        let p = store::get(&t.db, panicking).await.unwrap().unwrap();
        assert_eq!(
            p.last_error.as_deref(),
            Some("job panicked: handler bug"),
            "{}",
            t.name
        );
        let d = store::get(&t.db, permanent).await.unwrap().unwrap();
        assert_eq!(
            (d.attempts, d.last_error.as_deref()),
            (1, Some("404 repository gone"))
        );
    }
}

#[tokio::test]
async fn a_deferred_job_keeps_its_attempts_and_runs_after_the_deadline() {
    for t in TestDb::all().await {
        let clock = Clock::manual(T0);
        let id = enqueue(&t.db, &work(1), T0).await.unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let (c, until) = (calls.clone(), T0 + 60_000);
        let registry = Registry::new().register::<Work, _, _>(move |_, _| {
            let c = c.clone();
            async move {
                if c.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(JobError::Defer {
                        until,
                        reason: "rate limited (retry-after 60)".into(),
                    })
                } else {
                    Ok(())
                }
            }
        });
        let (h, notify) = start(&t.db, registry, &clock, 1);
        let db = t.db.clone();
        wait_until("deferred", || {
            let db = db.clone();
            async move { store::get(&db, id).await.unwrap().unwrap().run_at == until }
        })
        .await;
        assert_eq!(
            state_of(&t.db, id).await,
            (JobState::Queued, 0),
            "{}",
            t.name
        );
        clock.advance(60_001);
        notify.notify_one();
        let db = t.db.clone();
        wait_until("ran after deadline", || {
            let db = db.clone();
            async move { state_of(&db, id).await == (JobState::Succeeded, 1) }
        })
        .await;
        h.shutdown().await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}

#[tokio::test]
async fn an_expired_lease_is_reclaimed_and_the_lost_worker_cannot_finish_it() {
    for t in TestDb::all().await {
        let clock = Clock::manual(T0);
        let id = enqueue(&t.db, &work(1), T0).await.unwrap();
        // A worker that claims and then vanishes (no heartbeat).
        let kinds = vec![Work::KIND.to_owned()];
        let claimed = store::claim(&t.db, "ghost", &kinds, 10, T0, 30_000)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(store::claim(&t.db, "other", &kinds, 10, T0, 30_000)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(store::reap_expired(&t.db, T0 + 29_999).await.unwrap(), 0);
        assert_eq!(store::reap_expired(&t.db, T0 + 30_001).await.unwrap(), 1);
        let job = store::get(&t.db, id).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.last_error.as_deref()),
            (JobState::Failed, Some(store::LEASE_EXPIRED_ERROR))
        );
        // Someone else claims it; the ghost's late completion must not count.
        let again = store::claim(&t.db, "other", &kinds, 10, T0 + 30_001, 30_000)
            .await
            .unwrap();
        assert_eq!(again[0].attempt, 2, "{}", t.name);
        assert!(store::complete(&t.db, "ghost", &[id], T0 + 30_002)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(state_of(&t.db, id).await.0, JobState::Running);
        assert_eq!(
            store::complete(&t.db, "other", &[id], T0 + 30_003)
                .await
                .unwrap(),
            vec![id]
        );
        assert_eq!(state_of(&t.db, id).await, (JobState::Succeeded, 2));
        drop(clock);
    }
}

#[tokio::test]
async fn heartbeats_keep_a_long_job_alive() {
    for t in TestDb::all().await {
        let kinds = vec![Work::KIND.to_owned()];
        let id = enqueue(&t.db, &work(1), T0).await.unwrap();
        store::claim(&t.db, "w1", &kinds, 1, T0, 30_000)
            .await
            .unwrap();
        assert_eq!(
            store::heartbeat(&t.db, "w1", T0 + 20_000, 30_000)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store::heartbeat(&t.db, "w2", T0 + 20_000, 30_000)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store::reap_expired(&t.db, T0 + 45_000).await.unwrap(),
            0,
            "{}",
            t.name
        );
        assert_eq!(store::reap_expired(&t.db, T0 + 50_001).await.unwrap(), 1);
        assert_eq!(state_of(&t.db, id).await.0, JobState::Failed);
    }
}

#[tokio::test]
async fn shutdown_lets_short_jobs_finish_and_releases_long_ones() {
    for t in TestDb::all().await {
        let clock = Clock::manual(T0);
        let short = enqueue(&t.db, &work(1), T0).await.unwrap();
        let long = enqueue(&t.db, &work(2), T0).await.unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let registry = Registry::new().register::<Work, _, _>(move |_, job| {
            let s = s.clone();
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                let ms = if job.n == 1 { 100 } else { 60_000 };
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
        });
        let (h, _) = start(&t.db, registry, &clock, 2);
        let s = started.clone();
        wait_until("both started", || {
            let s = s.clone();
            async move { s.load(Ordering::SeqCst) == 2 }
        })
        .await;
        h.shutdown().await; // grace 300 ms
        assert_eq!(
            state_of(&t.db, short).await,
            (JobState::Succeeded, 1),
            "{}",
            t.name
        );
        let released = store::get(&t.db, long).await.unwrap().unwrap();
        assert_eq!(
            (released.state, released.attempts),
            (JobState::Queued, 0),
            "{}",
            t.name
        );
        assert_eq!(released.locked_by, None);
    }
}

#[tokio::test]
async fn workers_claim_only_kinds_they_know() {
    for t in TestDb::all().await {
        let clock = Clock::manual(T0);
        let unknown = NewJob {
            kind: "from_the_future".into(),
            payload: "{}".into(),
            dedupe_key: None,
            concurrency_key: None,
            priority: 100,
            run_at: None,
            max_attempts: 3,
        };
        let unknown_id = store::enqueue(&t.db, &unknown, T0).await.unwrap().unwrap();
        let known = enqueue(&t.db, &work(1), T0).await.unwrap();
        let registry = Registry::new().register::<Work, _, _>(|_, _| async { Ok(()) });
        let (h, _) = start(&t.db, registry, &clock, 1);
        let db = t.db.clone();
        wait_until("known job ran", || {
            let db = db.clone();
            async move { state_of(&db, known).await.0 == JobState::Succeeded }
        })
        .await;
        h.shutdown().await;
        assert_eq!(
            state_of(&t.db, unknown_id).await,
            (JobState::Queued, 0),
            "{}",
            t.name
        );
    }
}

#[tokio::test]
async fn a_payload_that_does_not_decode_is_dead_with_a_clear_error() {
    for t in TestDb::all().await {
        let clock = Clock::manual(T0);
        let bad = NewJob {
            kind: Work::KIND.into(),
            payload: "{\"n\":\"not a number\"}".into(),
            dedupe_key: None,
            concurrency_key: None,
            priority: 0,
            run_at: None,
            max_attempts: 3,
        };
        let id = store::enqueue(&t.db, &bad, T0).await.unwrap().unwrap();
        let registry = Registry::new().register::<Work, _, _>(|_, _| async { Ok(()) });
        let (h, _) = start(&t.db, registry, &clock, 1);
        let db = t.db.clone();
        wait_until("dead", || {
            let db = db.clone();
            async move { state_of(&db, id).await.0 == JobState::Dead }
        })
        .await;
        h.shutdown().await;
        let err = store::get(&t.db, id)
            .await
            .unwrap()
            .unwrap()
            .last_error
            .unwrap();
        assert!(
            err.starts_with("cannot decode test_work payload: invalid type"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn purge_and_priority_order() {
    for t in TestDb::all().await {
        let kinds = vec![Work::KIND.to_owned()];
        let low = enqueue(&t.db, &work(1), T0).await.unwrap();
        let mut high_job = NewJob::of(&work(2));
        high_job.priority = 50;
        let high = store::enqueue(&t.db, &high_job, T0 + 5)
            .await
            .unwrap()
            .unwrap();
        let later = store::enqueue(&t.db, &NewJob::of(&work(3)).run_at(T0 + 10_000), T0)
            .await
            .unwrap()
            .unwrap();
        let c = store::claim(&t.db, "w", &kinds, 10, T0 + 10, 1_000)
            .await
            .unwrap();
        let ids: Vec<i64> = c.iter().map(|j| j.id).collect();
        assert_eq!(ids.len(), 2, "{}: the deferred job is not due", t.name);
        assert!(ids.contains(&high) && ids.contains(&low) && !ids.contains(&later));
        for j in &c {
            store::fail(&t.db, "w", j.id, "x", T0, true, T0 + 20)
                .await
                .unwrap();
        }
        assert_eq!(count_in(&t.db, JobState::Dead).await, 2);
        assert_eq!(store::purge_dead(&t.db, T0 + 20).await.unwrap(), 0);
        assert_eq!(store::purge_dead(&t.db, T0 + 21).await.unwrap(), 2);
        // Ordering: a single-slot claim takes the highest priority first.
        let a = enqueue(&t.db, &work(4), T0).await.unwrap();
        let mut b_job = NewJob::of(&work(5));
        b_job.priority = 9;
        let b = store::enqueue(&t.db, &b_job, T0 + 1)
            .await
            .unwrap()
            .unwrap();
        let first = store::claim(&t.db, "w", &kinds, 1, T0 + 20_000, 1_000)
            .await
            .unwrap();
        assert_eq!(first[0].id, b);
        let second = store::claim(&t.db, "w", &kinds, 1, T0 + 20_000, 1_000)
            .await
            .unwrap();
        assert!(second[0].id == a || second[0].id == later);
    }
}
