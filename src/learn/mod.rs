//! Learned detection: the embedding model and the two usearch indexes behind it.
//!
//! - [`model`]: all-MiniLM-L6-v2 on Candle, loaded once per process and shared.
//! - [`archetypes`] (index 1): a corpus of repository archetypes we ship; when rules find
//!   no project or are unsure, the nearest archetypes vote and their recipe becomes a
//!   project like any other.
//! - [`siblings`] (index 2): each installation's own repositories with the conventions
//!   their CI shows; a proposal adopts those of its nearest siblings.
//!
//! `analyze` stays pure: this module does the IO (model files, the database cache of
//! vectors, index files under the data directory) and hands `analyze` a refiner whose
//! vectors were computed beforehand. Without a model the bot runs on rules alone.

pub mod archetypes;
mod bert;
pub mod index;
pub mod model;
pub mod siblings;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use tracing::{info, warn};

use crate::analyze::conventions;
use crate::analyze::fingerprint::{fingerprint, Fingerprint};
use crate::analyze::{analyze, analyze_with, Analysis, RepoTree};
use crate::clock::Millis;
use crate::db::learn::{self as store, NewConventions};
use crate::db::Db;

pub use archetypes::{ArchetypeIndex, ArchetypeRefiner, Corpus};
pub use model::{Embedder, ModelError};
pub use siblings::{adopt, Adoption, Sibling, Siblings};

/// Whether learned detection runs in this process (shown by `/readyz` and at start-up).
#[derive(Debug, Clone)]
pub enum Status {
    /// Rules only, and why.
    Off(String),
    /// The model and the archetype index are loaded.
    On {
        /// Model files' hash.
        model_hash: String,
        /// Archetype exemplars indexed.
        exemplars: usize,
    },
}

impl Status {
    /// The line `/readyz` adds to its body.
    pub fn describe(&self) -> String {
        match self {
            Status::Off(why) => {
                format!("degraded: learned detection off ({why}); detecting with rules only")
            }
            Status::On {
                model_hash,
                exemplars,
            } => format!(
                "learned detection on (model {model_hash}, {exemplars} archetype exemplars)"
            ),
        }
    }
}

/// The model and its indexes, shared by every worker of a process.
#[derive(Debug)]
pub struct Learner {
    embedder: Arc<Embedder>,
    archetypes: ArchetypeIndex,
    siblings: Siblings,
    data_dir: Option<PathBuf>,
}

/// What learning contributes to one proposal: vectors for the archetype refiner and
/// what the siblings' conventions adopt.
#[derive(Debug, Clone, Default)]
pub struct Learned {
    /// Vectors of the fingerprints the archetype refiner looks at, by hash.
    pub vectors: HashMap<String, Vec<f32>>,
    /// Conventions adopted from siblings.
    pub adoption: Adoption,
}

impl Learner {
    /// Loads the model from `model_dir` and the archetype index (from `data_dir` when
    /// persisted for this model and corpus, else built and saved there).
    pub fn load(model_dir: &Path, data_dir: Option<&Path>) -> anyhow::Result<Learner> {
        let started = Instant::now();
        let embedder = Embedder::load(model_dir).with_context(|| {
            format!(
                "cannot load the embedding model from {}",
                model_dir.display()
            )
        })?;
        let model_ms = started.elapsed().as_millis() as u64;
        let learner = Learner::with_embedder(Arc::new(embedder), data_dir)?;
        info!(
            model = %learner.embedder.hash(),
            model_ms,
            total_ms = started.elapsed().as_millis() as u64,
            "embedding model loaded"
        );
        Ok(learner)
    }

    /// A learner around an already loaded model.
    pub fn with_embedder(
        embedder: Arc<Embedder>,
        data_dir: Option<&Path>,
    ) -> anyhow::Result<Learner> {
        let corpus = Corpus::builtin()?;
        let started = Instant::now();
        let path = data_dir.map(|d| ArchetypeIndex::path(d, embedder.hash(), &corpus));
        let mut loaded = None;
        if let Some(p) = path.as_ref().filter(|p| p.is_file()) {
            match ArchetypeIndex::load(corpus.clone(), embedder.hash(), p) {
                Ok(i) => {
                    info!(path = %p.display(), ms = started.elapsed().as_millis() as u64, "archetype index loaded");
                    loaded = Some(i);
                }
                Err(e) => warn!(error = %format!("{e:#}"), "archetype index unusable; rebuilding"),
            }
        }
        let archetypes = match loaded {
            Some(i) => i,
            None => {
                let texts: Vec<&str> = corpus.exemplars().iter().map(|(_, _, t)| *t).collect();
                let vectors = embedder.embed(&texts)?;
                let index = ArchetypeIndex::build(corpus.clone(), embedder.hash(), &vectors)?;
                if let Some(p) = &path {
                    match index.save(p) {
                        Ok(()) => {}
                        Err(e) => {
                            warn!(error = %format!("{e:#}"), "cannot persist the archetype index")
                        }
                    }
                }
                info!(
                    exemplars = index.len(),
                    corpus = %corpus.hash,
                    ms = started.elapsed().as_millis() as u64,
                    "archetype index built"
                );
                index
            }
        };
        let siblings = Siblings::new(embedder.hash(), data_dir);
        Ok(Learner {
            embedder,
            archetypes,
            siblings,
            data_dir: data_dir.map(Path::to_owned),
        })
    }

    /// The model.
    pub fn embedder(&self) -> &Arc<Embedder> {
        &self.embedder
    }

    /// The model files' hash.
    pub fn model_hash(&self) -> &str {
        self.embedder.hash()
    }

    /// Index 1.
    pub fn archetypes(&self) -> &ArchetypeIndex {
        &self.archetypes
    }

    /// Index 2.
    pub fn siblings(&self) -> &Siblings {
        &self.siblings
    }

    /// The data directory, if persistence is on.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// What `/readyz` reports.
    pub fn status(&self) -> Status {
        Status::On {
            model_hash: self.model_hash().to_owned(),
            exemplars: self.archetypes.len(),
        }
    }

    /// Embeds fingerprints here and now (the caller is on a blocking thread or a CLI).
    pub fn embed(&self, fps: &[Fingerprint]) -> anyhow::Result<HashMap<String, Vec<f32>>> {
        let texts: Vec<&str> = fps.iter().map(|f| f.text.as_str()).collect();
        let vectors = self.embedder.embed(&texts)?;
        Ok(fps.iter().map(Fingerprint::hash).zip(vectors).collect())
    }

    /// Vectors of `fps`, from the database cache where present; the rest are embedded
    /// on a blocking thread (the model is CPU-bound) and cached.
    pub async fn embed_cached(
        self: &Arc<Self>,
        db: &Db,
        fps: &[Fingerprint],
        now: Millis,
    ) -> anyhow::Result<HashMap<String, Vec<f32>>> {
        let hashes: Vec<String> = fps.iter().map(Fingerprint::hash).collect();
        let mut found = store::get_embeddings(db, self.model_hash(), &hashes)
            .await
            .context("cannot read cached embeddings")?;
        found.retain(|_, v| v.len() == model::DIMENSIONS);
        let mut missing: Vec<Fingerprint> = fps
            .iter()
            .filter(|f| !found.contains_key(&f.hash()))
            .cloned()
            .collect();
        let mut seen = std::collections::HashSet::new();
        missing.retain(|f| seen.insert(f.hash()));
        if !missing.is_empty() {
            let me = self.clone();
            let fresh = tokio::task::spawn_blocking(move || me.embed(&missing))
                .await
                .context("the embedding task failed")??;
            let rows: Vec<(String, Vec<f32>)> =
                fresh.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            store::put_embeddings(db, self.model_hash(), &rows, now)
                .await
                .context("cannot cache embeddings")?;
            found.extend(fresh);
        }
        Ok(found)
    }

    /// The archetype refiner over precomputed vectors.
    pub fn refiner<'a>(&'a self, vectors: &'a HashMap<String, Vec<f32>>) -> ArchetypeRefiner<'a> {
        ArchetypeRefiner {
            index: &self.archetypes,
            vectors,
        }
    }

    /// Rules, then the archetypes, on a local tree (`pipewright analyze`): no database.
    pub fn analyze_local(&self, tree: &RepoTree) -> anyhow::Result<Analysis> {
        let rules = analyze(tree);
        let vectors = self.embed(&archetypes::targets(tree, &rules))?;
        Ok(analyze_with(tree, &[&self.refiner(&vectors)]))
    }

    /// What a worker learns from one analysed repository: its vectors (cached), its
    /// conventions recorded for its installation's siblings, and — when it has no CI yet
    /// — what its nearest siblings with CI adopt.
    pub async fn learn_repository(
        self: &Arc<Self>,
        db: &Db,
        repo: RepoRef<'_>,
        tree: &RepoTree,
        now: Millis,
    ) -> anyhow::Result<Learned> {
        let rules = analyze(tree);
        let root = fingerprint(tree, ".");
        let mut fps = archetypes::targets(tree, &rules);
        fps.extend(root.clone());
        let vectors = self.embed_cached(db, &fps, now).await?;
        let refined = analyze_with(tree, &[&self.refiner(&vectors)]);
        let language = refined
            .projects
            .first()
            .map(|p| p.language.as_str())
            .unwrap_or("");
        let has_ci = refined.existing_ci.iter().any(|c| c.kind == "ci");
        let mut adoption = Adoption::default();
        if let Some(root) = &root {
            let conventions = conventions::extract(tree);
            let json = serde_json::to_string(&conventions).context("conventions serialize")?;
            let hash = root.hash();
            self.siblings
                .record(
                    db,
                    &NewConventions {
                        repository_id: repo.id,
                        installation_id: repo.installation_id,
                        language,
                        fingerprint_hash: &hash,
                        fingerprint: &root.text,
                        has_ci,
                        conventions: &json,
                    },
                    now,
                )
                .await?;
            if let (false, false, Some(v)) = (has_ci, language.is_empty(), vectors.get(&hash)) {
                let found = self
                    .siblings
                    .nearest(db, repo.installation_id, repo.id, language, v)
                    .await?;
                let org = repo.full_name.split('/').next().unwrap_or("");
                adoption = adopt(found, org);
            }
        }
        Ok(Learned { vectors, adoption })
    }
}

/// The repository a worker is learning from.
#[derive(Debug, Clone, Copy)]
pub struct RepoRef<'a> {
    /// Repository row id.
    pub id: i64,
    /// Its installation's row id.
    pub installation_id: i64,
    /// `owner/name` (the owner decides whose reusable workflows may be adopted).
    pub full_name: &'a str,
}

/// Starts learned detection for a server or worker process: loads the model when
/// `model_dir` is set, says once why it is off otherwise, and warms the sibling indexes
/// (from their files, else rebuilt from the database, timed in the log).
pub async fn start(
    model_dir: Option<&Path>,
    data_dir: &Path,
    db: &Db,
) -> (Option<Arc<Learner>>, Status) {
    let Some(dir) = model_dir else {
        let why = "PIPEWRIGHT_MODEL_DIR is not set".to_owned();
        warn!("learned detection off: {why}; detecting with rules only (see README: learned detection)");
        return (None, Status::Off(why));
    };
    let (dir, data) = (dir.to_owned(), data_dir.to_owned());
    let loaded = tokio::task::spawn_blocking(move || Learner::load(&dir, Some(&data))).await;
    let learner = match loaded {
        Ok(Ok(l)) => Arc::new(l),
        Ok(Err(e)) => {
            let why = format!("{e:#}");
            warn!("learned detection off: {why}; detecting with rules only");
            return (None, Status::Off(why));
        }
        Err(e) => {
            let why = format!("the model loader failed: {e}");
            warn!("learned detection off: {why}; detecting with rules only");
            return (None, Status::Off(why));
        }
    };
    if let Err(e) = learner.siblings.warm(db).await {
        warn!(error = %format!("{e:#}"), "cannot warm the sibling indexes; they load on first use");
    }
    let status = learner.status();
    (Some(learner), status)
}
