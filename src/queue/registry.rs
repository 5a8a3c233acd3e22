//! Which handler runs which stored job kind. A worker claims only the kinds its registry
//! knows, so jobs whose handler ships in a later version wait, visible, in the queue.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::anyhow;

use super::{Job, JobError};
use crate::db::Db;

/// What a handler knows about the run it is part of.
#[derive(Debug, Clone)]
pub struct JobRun {
    /// Job id.
    pub id: i64,
    /// Attempt number (1 = first).
    pub attempt: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// The database.
    pub db: Db,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;
type Handler = Arc<dyn Fn(JobRun, &str) -> BoxFuture + Send + Sync>;

/// Stored kind → handler.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Handler>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.handlers.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the handler of `J`. Panics if the kind is registered twice: that is a
    /// programming error caught by the registry test.
    pub fn register<J, F, Fut>(mut self, handler: F) -> Self
    where
        J: Job,
        F: Fn(JobRun, J) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |run: JobRun, payload: &str| -> BoxFuture {
            match serde_json::from_str::<J>(payload) {
                Ok(job) => Box::pin(handler(run, job)),
                Err(e) => {
                    let err = anyhow!("cannot decode {} payload: {e}", J::KIND);
                    Box::pin(async move { Err(JobError::Permanent(err)) })
                }
            }
        });
        let previous = self.handlers.insert(J::KIND, erased);
        assert!(
            previous.is_none(),
            "job kind `{}` registered twice",
            J::KIND
        );
        self
    }

    /// The kinds this registry can run.
    pub fn kinds(&self) -> Vec<String> {
        self.handlers.keys().map(|k| (*k).to_owned()).collect()
    }

    /// Starts the handler for `kind`; an unknown kind fails permanently.
    pub(crate) fn start(&self, kind: &str, run: JobRun, payload: &str) -> BoxFuture {
        match self.handlers.get(kind) {
            Some(h) => h(run, payload),
            None => {
                let err = anyhow!("no handler for job kind `{kind}` in this binary");
                Box::pin(async move { Err(JobError::Permanent(err)) })
            }
        }
    }
}
