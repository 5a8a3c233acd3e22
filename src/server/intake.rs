//! Group commit for webhook intake. Handlers hand an accepted delivery to a writer task
//! and wait for its commit; the writer takes everything that queued up while the previous
//! transaction was committing and writes it in one transaction. Idle, a delivery commits
//! alone (no added latency); under load, one fsync covers hundreds of deliveries. A
//! delivery is answered 202 only after its row and its job's row are durable.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex, Notify};
use tracing::{error, warn};

use crate::clock::Clock;
use crate::db::deliveries::{self, NewDelivery, Recorded};
use crate::db::{Backend, Db};

/// Most deliveries written in one transaction.
pub const MAX_BATCH: usize = 1_000;
/// Deliveries waiting for a writer before handlers wait to hand theirs over (backpressure).
pub const QUEUE_CAPACITY: usize = 65_536;
/// Concurrent writer transactions on PostgreSQL (overlaps one batch's fsync with the
/// next batch's round trip). SQLite has one writer, so it gets one.
pub const PG_WRITERS: usize = 2;

struct Request {
    delivery: NewDelivery,
    reply: oneshot::Sender<Result<Recorded, String>>,
}

/// Why a delivery could not be stored (answered 503 so the sender may retry).
#[derive(Debug, thiserror::Error)]
#[error("cannot store the delivery: {0}")]
pub struct IntakeError(String);

/// The handle handlers use to store deliveries.
#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Intake")
    }
}

impl Intake {
    /// Starts the writer task(s). `notify` wakes in-process workers after a commit.
    pub fn start(
        db: Db,
        clock: Clock,
        notify: Arc<Notify>,
    ) -> (Intake, Vec<tokio::task::JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let rx = Arc::new(Mutex::new(rx));
        let writers = match db.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => PG_WRITERS,
        };
        let handles = (0..writers)
            .map(|_| {
                tokio::spawn(write_loop(
                    db.clone(),
                    clock.clone(),
                    notify.clone(),
                    rx.clone(),
                ))
            })
            .collect();
        (Intake { tx }, handles)
    }

    /// Stores a delivery and its job; returns once committed.
    pub async fn submit(&self, delivery: NewDelivery) -> Result<Recorded, IntakeError> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(Request { delivery, reply })
            .await
            .map_err(|_| IntakeError("intake is shutting down".into()))?;
        match wait.await {
            Ok(result) => result.map_err(IntakeError),
            Err(_) => Err(IntakeError("intake writer stopped".into())),
        }
    }
}

async fn write_loop(
    db: Db,
    clock: Clock,
    notify: Arc<Notify>,
    rx: Arc<Mutex<mpsc::Receiver<Request>>>,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            // Hold the receiver only while collecting, so another writer can collect the
            // next batch while this one commits.
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(first) => batch.push(first),
                None => return,
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
        }
        let items: Vec<NewDelivery> = batch.iter().map(|r| r.delivery.clone()).collect();
        match deliveries::record_batch(&db, &items, clock.now()).await {
            Ok(results) => {
                let any_new = results
                    .iter()
                    .any(|r| matches!(r, Recorded::Accepted { job_id: Some(_) }));
                for (req, result) in batch.drain(..).zip(results) {
                    let _ = req.reply.send(Ok(result));
                }
                if any_new {
                    notify.notify_one();
                }
            }
            Err(e) if batch.len() > 1 => {
                // One bad row must not fail its neighbours: write them one by one.
                warn!(error = %e, n = batch.len(), "batch insert failed; retrying deliveries one by one");
                for req in batch.drain(..) {
                    let result = deliveries::record_batch(
                        &db,
                        std::slice::from_ref(&req.delivery),
                        clock.now(),
                    )
                    .await
                    .map(|mut r| r.pop().unwrap_or(Recorded::Duplicate))
                    .map_err(|e| e.to_string());
                    if let Err(e) = &result {
                        error!(error = %e, delivery = %req.delivery.delivery_id, "cannot store delivery");
                    } else {
                        notify.notify_one();
                    }
                    let _ = req.reply.send(result);
                }
            }
            Err(e) => {
                error!(error = %e, "cannot store delivery");
                for req in batch.drain(..) {
                    let _ = req.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
