//! Index 2: each installation's own repositories, with the conventions their CI shows.
//! One usearch index per installation (a tenant never shares an index, and every
//! database read names the installation), built from `repo_conventions` + `embeddings`,
//! persisted under the data directory, and kept current incrementally so that several
//! replicas writing the same database converge.
//!
//! A proposal asks for the nearest siblings *with CI* of the same primary stack; their
//! conventions are merged by [`adopt`] into what the proposal takes over.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::index::VectorIndex;
use super::model::DIMENSIONS;
use crate::analyze::conventions::{version_key, Conventions, ReusableCall};
use crate::clock::Millis;
use crate::db::learn::{self as store, decode_vector, NewConventions};
use crate::db::Db;

/// Siblings a proposal learns from, at most.
pub const MAX_SIBLINGS: usize = 3;
/// A sibling must be at least this similar (after the same-stack filter).
pub const MIN_SIBLING_SIMILARITY: f32 = 0.3;
/// Rows recorded this long before the last one seen are read again on every sync, in
/// milliseconds: replicas' clocks and commit order may differ a little, and a row
/// committed late with an earlier timestamp must not be missed.
pub const SYNC_OVERLAP_MS: i64 = 5 * 60 * 1000;

/// What the index knows about one repository.
#[derive(Debug, Clone)]
pub struct Member {
    /// Display name.
    pub full_name: String,
    /// Primary stack.
    pub language: String,
    /// Has CI.
    pub has_ci: bool,
    /// Active on the forge.
    pub active: bool,
    /// When it was recorded.
    pub updated_at: i64,
    /// Its conventions.
    pub conventions: Conventions,
}

/// A repository a proposal learned from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sibling {
    /// Display name (`org/repo`).
    pub full_name: String,
    /// Cosine similarity of the fingerprints.
    pub similarity: f32,
    /// Its conventions.
    #[serde(skip)]
    pub conventions: Conventions,
}

/// Sidecar of a persisted index: which rows (and versions) it holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Sidecar {
    model_hash: String,
    installation: i64,
    /// repository id → updated_at of the vector held.
    entries: BTreeMap<u64, i64>,
}

/// One installation's index.
#[derive(Debug)]
struct Tenant {
    index: VectorIndex,
    state: std::sync::Mutex<TenantState>,
    /// One sync at a time per tenant (concurrent jobs would otherwise add twice).
    sync: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct TenantState {
    members: HashMap<u64, Member>,
    entries: BTreeMap<u64, i64>,
    watermark: i64,
}

/// Every installation's index, loaded on first use (or at start-up by [`Siblings::warm`]).
#[derive(Debug)]
pub struct Siblings {
    model_hash: String,
    data_dir: Option<PathBuf>,
    tenants: std::sync::Mutex<HashMap<i64, Arc<Tenant>>>,
}

/// Size of one installation's index, for `pipewright index stats`.
#[derive(Debug, Clone, Serialize)]
pub struct TenantStats {
    /// Installation row id.
    pub installation: i64,
    /// Vectors in the index.
    pub vectors: usize,
    /// Repositories recorded in the database.
    pub recorded: usize,
    /// Bytes of the persisted index file (0: not saved yet).
    pub bytes_on_disk: u64,
}

impl Siblings {
    /// Indexes for vectors of `model_hash`, persisted under `data_dir` when given.
    pub fn new(model_hash: &str, data_dir: Option<&Path>) -> Siblings {
        Siblings {
            model_hash: model_hash.to_owned(),
            data_dir: data_dir.map(Path::to_owned),
            tenants: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn files(&self, installation: i64) -> Option<(PathBuf, PathBuf)> {
        let dir = self.data_dir.as_ref()?.join("index");
        let stem = format!("installation-{installation}-{}", self.model_hash);
        Some((
            dir.join(format!("{stem}.usearch")),
            dir.join(format!("{stem}.json")),
        ))
    }

    fn cached(&self, installation: i64) -> Option<Arc<Tenant>> {
        self.tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&installation)
            .cloned()
    }

    /// The installation's index, loaded (from its file, else rebuilt from the database)
    /// and brought up to date with the database.
    async fn tenant(&self, db: &Db, installation: i64) -> anyhow::Result<Arc<Tenant>> {
        let tenant = match self.cached(installation) {
            Some(t) => t,
            None => {
                let (opened, how) = self.open(installation)?;
                // A concurrent first use may have won the race: keep the one inserted.
                let t = {
                    let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
                    tenants
                        .entry(installation)
                        .or_insert_with(|| Arc::new(opened))
                        .clone()
                };
                if how == "file" {
                    // Members older than the file's watermark are not re-read by the
                    // sync below; read their metadata once (no vectors).
                    self.load_members(db, installation, &t).await?;
                }
                t
            }
        };
        self.sync(db, installation, &tenant).await?;
        Ok(tenant)
    }

    fn open(&self, installation: i64) -> anyhow::Result<(Tenant, &'static str)> {
        if let Some((index_path, sidecar_path)) = self.files(installation) {
            if index_path.is_file() && sidecar_path.is_file() {
                let loaded = (|| -> anyhow::Result<Tenant> {
                    let sidecar: Sidecar = serde_json::from_slice(
                        &std::fs::read(&sidecar_path)
                            .with_context(|| format!("cannot read {}", sidecar_path.display()))?,
                    )
                    .with_context(|| format!("invalid {}", sidecar_path.display()))?;
                    anyhow::ensure!(
                        sidecar.model_hash == self.model_hash
                            && sidecar.installation == installation,
                        "{} belongs to another model or installation",
                        sidecar_path.display()
                    );
                    let index = VectorIndex::load(&index_path, DIMENSIONS)?;
                    anyhow::ensure!(
                        index.len() == sidecar.entries.len(),
                        "{} holds {} vectors, its sidecar lists {}",
                        index_path.display(),
                        index.len(),
                        sidecar.entries.len()
                    );
                    let watermark = sidecar.entries.values().copied().max().unwrap_or(0);
                    Ok(Tenant {
                        index,
                        state: std::sync::Mutex::new(TenantState {
                            members: HashMap::new(),
                            entries: sidecar.entries,
                            watermark,
                        }),
                        sync: tokio::sync::Mutex::new(()),
                    })
                })();
                match loaded {
                    Ok(t) => return Ok((t, "file")),
                    Err(e) => {
                        warn!(installation, error = %format!("{e:#}"), "persisted sibling index unusable; rebuilding from the database")
                    }
                }
            }
        }
        Ok((
            Tenant {
                index: VectorIndex::new(DIMENSIONS)?,
                state: std::sync::Mutex::new(TenantState::default()),
                sync: tokio::sync::Mutex::new(()),
            },
            "new",
        ))
    }

    async fn load_members(&self, db: &Db, installation: i64, t: &Tenant) -> anyhow::Result<()> {
        let rows = store::installation_conventions(db, installation, 0, &self.model_hash, false)
            .await
            .context("cannot read the installation's repositories")?;
        let mut state = t.state.lock().unwrap_or_else(|p| p.into_inner());
        for row in rows {
            let key = row.repository_id as u64;
            if state.entries.get(&key) == Some(&row.updated_at) {
                state.members.insert(key, member(&row));
            }
        }
        Ok(())
    }

    async fn sync(&self, db: &Db, installation: i64, t: &Tenant) -> anyhow::Result<()> {
        let _one = t.sync.lock().await;
        // Fewer rows than members known: another process forgot the installation (an
        // uninstall). Start again from the database.
        let recorded = store::installation_count(db, installation)
            .await
            .context("cannot count the installation's repositories")?;
        let known = t
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .members
            .len();
        if (recorded as usize) < known {
            let keys: Vec<u64> = {
                let mut s = t.state.lock().unwrap_or_else(|p| p.into_inner());
                let keys = s.entries.keys().copied().collect();
                *s = TenantState::default();
                keys
            };
            for k in keys {
                t.index.remove(k)?;
            }
        }
        let since = {
            let s = t.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.watermark == 0 {
                0
            } else {
                s.watermark - SYNC_OVERLAP_MS
            }
        };
        let rows = store::installation_conventions(db, installation, since, &self.model_hash, true)
            .await
            .context("cannot read the installation's repositories")?;
        for row in rows {
            let key = row.repository_id as u64;
            let known = t
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entries
                .get(&key)
                .copied();
            if known == Some(row.updated_at) {
                continue;
            }
            match row.vector.as_deref().and_then(decode_vector) {
                Some(v) if v.len() == DIMENSIONS => t.index.add(key, &v)?,
                // No vector under this model (yet): not searchable, but keep its
                // conventions (a later analysis embeds it).
                _ => t.index.remove(key)?,
            }
            let mut s = t.state.lock().unwrap_or_else(|p| p.into_inner());
            s.members.insert(key, member(&row));
            if t.index.contains(key) {
                s.entries.insert(key, row.updated_at);
            } else {
                s.entries.remove(&key);
            }
            s.watermark = s.watermark.max(row.updated_at);
        }
        Ok(())
    }

    /// Records what an analysis learned about a repository (database first, then the
    /// in-process index, which other replicas pick up on their next sync).
    pub async fn record(
        &self,
        db: &Db,
        row: &NewConventions<'_>,
        now: Millis,
    ) -> anyhow::Result<()> {
        store::upsert_conventions(db, row, now)
            .await
            .context("cannot record the repository's conventions")?;
        self.tenant(db, row.installation_id).await?;
        Ok(())
    }

    /// The nearest repositories of `installation` with CI and the same primary stack as
    /// `language`, other than `exclude`, most similar first.
    pub async fn nearest(
        &self,
        db: &Db,
        installation: i64,
        exclude: i64,
        language: &str,
        vector: &[f32],
    ) -> anyhow::Result<Vec<Sibling>> {
        let t = self.tenant(db, installation).await?;
        let hits = {
            let state = t.state.lock().unwrap_or_else(|p| p.into_inner());
            let eligible = |key: u64| {
                key != exclude as u64
                    && state.members.get(&key).is_some_and(|m| {
                        m.active && m.has_ci && m.language == language && !m.conventions.is_empty()
                    })
            };
            t.index.search(vector, MAX_SIBLINGS, eligible)?
        };
        let hits: Vec<_> = hits
            .into_iter()
            .filter(|h| h.similarity >= MIN_SIBLING_SIMILARITY)
            .collect();
        // Re-read the hits from the database, filtered by installation again: what a
        // proposal learns from is what the database holds for this tenant now.
        let ids: Vec<i64> = hits.iter().map(|h| h.key as i64).collect();
        let rows = store::conventions_of(db, installation, &ids)
            .await
            .context("cannot read the siblings")?;
        Ok(hits
            .into_iter()
            .filter_map(|h| {
                let row = rows.iter().find(|r| r.repository_id as u64 == h.key)?;
                let m = member(row);
                (m.active && m.has_ci && m.language == language).then_some(Sibling {
                    full_name: m.full_name,
                    similarity: h.similarity,
                    conventions: m.conventions,
                })
            })
            .collect())
    }

    /// Forgets an installation (uninstalled): its rows, its index, its files.
    pub async fn forget(&self, db: &Db, installation: i64) -> anyhow::Result<u64> {
        let n = store::forget_installation(db, installation)
            .await
            .context("cannot forget the installation's repositories")?;
        self.tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&installation);
        if let Some((a, b)) = self.files(installation) {
            for f in [a, b] {
                if let Err(e) = std::fs::remove_file(&f) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        warn!(file = %f.display(), error = %e, "cannot remove an index file");
                    }
                }
            }
        }
        Ok(n)
    }

    /// Drops an installation's index (memory and files) and builds it again from the
    /// database; returns the vectors it holds.
    pub async fn rebuild(&self, db: &Db, installation: i64) -> anyhow::Result<usize> {
        self.tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&installation);
        if let Some((a, b)) = self.files(installation) {
            for f in [a, b] {
                match std::fs::remove_file(&f) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot remove {}", f.display()))
                    }
                }
            }
        }
        let t = self.tenant(db, installation).await?;
        self.save_all()?;
        Ok(t.index.len())
    }

    /// Writes every loaded index to the data directory (no-op without one).
    pub fn save_all(&self) -> anyhow::Result<usize> {
        let tenants: Vec<(i64, Arc<Tenant>)> = self
            .tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let mut saved = 0;
        for (installation, t) in tenants {
            let Some((index_path, sidecar_path)) = self.files(installation) else {
                return Ok(0);
            };
            let sidecar = {
                let s = t.state.lock().unwrap_or_else(|p| p.into_inner());
                Sidecar {
                    model_hash: self.model_hash.clone(),
                    installation,
                    entries: s.entries.clone(),
                }
            };
            t.index.save(&index_path)?;
            let tmp = sidecar_path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec(&sidecar)?)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, &sidecar_path)
                .with_context(|| format!("cannot write {}", sidecar_path.display()))?;
            saved += 1;
        }
        Ok(saved)
    }

    /// Loads (or rebuilds) the index of every installation that has recorded
    /// repositories, saves rebuilt ones, and logs how long it took.
    pub async fn warm(&self, db: &Db) -> anyhow::Result<()> {
        let started = Instant::now();
        let counts = store::installation_counts(db)
            .await
            .context("cannot list installations")?;
        let mut vectors = 0;
        let mut from_file = 0;
        let mut rebuilt = 0;
        for (id, _, _, _, state, recorded) in counts {
            if recorded == 0 || state != "active" {
                continue;
            }
            let had_file = self.files(id).is_some_and(|(a, _)| a.is_file());
            let t = self.tenant(db, id).await?;
            vectors += t.index.len();
            if had_file {
                from_file += 1;
            } else {
                rebuilt += 1;
            }
        }
        if rebuilt > 0 {
            self.save_all()?;
        }
        info!(
            installations = from_file + rebuilt,
            from_file,
            rebuilt_from_database = rebuilt,
            vectors,
            ms = started.elapsed().as_millis() as u64,
            "sibling indexes ready"
        );
        Ok(())
    }

    /// Per installation: vectors held, repositories recorded, bytes on disk.
    pub async fn stats(&self, db: &Db) -> anyhow::Result<Vec<TenantStats>> {
        let counts = store::installation_counts(db)
            .await
            .context("cannot list installations")?;
        let mut out = Vec::new();
        for (id, _, _, _, _, recorded) in counts {
            if recorded == 0 {
                continue;
            }
            let t = self.tenant(db, id).await?;
            out.push(TenantStats {
                installation: id,
                vectors: t.index.len(),
                recorded: recorded as usize,
                bytes_on_disk: self
                    .files(id)
                    .and_then(|(a, _)| std::fs::metadata(a).ok())
                    .map_or(0, |m| m.len()),
            });
        }
        Ok(out)
    }
}

fn member(row: &store::ConventionsRow) -> Member {
    Member {
        full_name: row.full_name.clone(),
        language: row.language.clone(),
        has_ci: row.has_ci,
        active: row.state == "active",
        updated_at: row.updated_at,
        conventions: serde_json::from_str(&row.conventions).unwrap_or_default(),
    }
}

/// What a proposal takes over from its siblings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Adoption {
    /// The siblings learned from, most similar first.
    pub siblings: Vec<Sibling>,
    /// The org's reusable workflow to call instead of inlining jobs.
    pub reusable_workflow: Option<ReusableCall>,
    /// Runner labels.
    pub runs_on: Vec<String>,
    /// Python versions.
    pub python_versions: Vec<String>,
    /// How the toolchain is installed (`astral-sh/setup-uv`, `pip install nox`, …).
    pub toolchain_setup: Vec<String>,
    /// Lint tools the siblings run.
    pub lint_tools: Vec<String>,
    /// Test runners the siblings run.
    pub test_runners: Vec<String>,
}

impl Adoption {
    /// Nothing to adopt.
    pub fn is_empty(&self) -> bool {
        self.siblings.is_empty()
    }

    /// What [`crate::bot::proposal::adopt_conventions`] applies, for people (keep the two
    /// in sync).
    pub fn applied(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(call) = &self.reusable_workflow {
            match &call.pinned {
                Some(sha) => out.push(format!(
                    "the reusable workflow {} (GitHub), pinned to {}",
                    call.uses,
                    &sha[..sha.len().min(12)]
                )),
                None if call.is_pinned() => {
                    out.push(format!("the reusable workflow {} (GitHub)", call.uses))
                }
                // Not called: its ref could not be pinned to a commit (the plan says so).
                None => {}
            }
        }
        if !self.runs_on.is_empty() {
            out.push(format!("runner labels {}", self.runs_on.join(", ")));
        }
        if !self.python_versions.is_empty() {
            out.push(format!("Python {}", self.python_versions.join(", ")));
        }
        out
    }
}

/// Merges the siblings' conventions: each choice is the one the most similar siblings
/// share (similarity-weighted vote). A reusable workflow is adopted only when it belongs
/// to the same owner as the repository (`org`): the org's own workflow, never a third
/// party's.
pub fn adopt(siblings: Vec<Sibling>, org: &str) -> Adoption {
    if siblings.is_empty() {
        return Adoption::default();
    }
    fn best<T: Ord + Clone>(votes: BTreeMap<T, f32>) -> Option<T> {
        votes
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
            .map(|(k, _)| k)
    }
    let mut calls: BTreeMap<ReusableCall, f32> = BTreeMap::new();
    let mut labels: BTreeMap<Vec<String>, f32> = BTreeMap::new();
    let mut pythons: BTreeMap<Vec<String>, f32> = BTreeMap::new();
    let mut setups: BTreeMap<Vec<String>, f32> = BTreeMap::new();
    let mut lint: BTreeMap<Vec<String>, f32> = BTreeMap::new();
    let mut tests: BTreeMap<Vec<String>, f32> = BTreeMap::new();
    for s in &siblings {
        let c = &s.conventions;
        for r in c
            .reusable_workflows
            .iter()
            .filter(|r| r.owner().eq_ignore_ascii_case(org))
        {
            *calls.entry(r.clone()).or_default() += s.similarity;
        }
        for l in &c.runner_labels {
            *labels.entry(l.clone()).or_default() += s.similarity;
        }
        if !c.python_versions.is_empty() {
            *pythons.entry(c.python_versions.clone()).or_default() += s.similarity;
        }
        if !c.toolchain_setup.is_empty() {
            *setups.entry(c.toolchain_setup.clone()).or_default() += s.similarity;
        }
        if !c.lint_tools.is_empty() {
            *lint.entry(c.lint_tools.clone()).or_default() += s.similarity;
        }
        if !c.test_runners.is_empty() {
            *tests.entry(c.test_runners.clone()).or_default() += s.similarity;
        }
    }
    let mut python_versions = best(pythons).unwrap_or_default();
    python_versions.sort_by_key(|v| version_key(v));
    Adoption {
        reusable_workflow: best(calls),
        runs_on: best(labels).unwrap_or_default(),
        python_versions,
        toolchain_setup: best(setups).unwrap_or_default(),
        lint_tools: best(lint).unwrap_or_default(),
        test_runners: best(tests).unwrap_or_default(),
        siblings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sib(name: &str, sim: f32, c: Conventions) -> Sibling {
        Sibling {
            full_name: name.into(),
            similarity: sim,
            conventions: c,
        }
    }

    #[test]
    fn the_most_similar_majority_wins_and_only_the_orgs_workflow_is_called() {
        let call = |u: &str| ReusableCall {
            uses: u.into(),
            with: BTreeMap::new(),
            secrets_inherit: true,
            typed: None,
            pinned: None,
        };
        let a = Conventions {
            reusable_workflows: vec![call("acme/.github/.github/workflows/py.yml@v2")],
            runner_labels: vec![vec!["acme-runner".into(), "linux".into()]],
            python_versions: vec!["3.12".into(), "3.11".into()],
            ..Default::default()
        };
        let b = Conventions {
            reusable_workflows: vec![call("evil/x/.github/workflows/py.yml@main")],
            runner_labels: vec![vec!["ubuntu-latest".into()]],
            ..Default::default()
        };
        let ad = adopt(
            vec![
                sib("acme/a", 0.8, a.clone()),
                sib("acme/b", 0.5, b),
                sib("acme/c", 0.6, a),
            ],
            "ACME",
        );
        assert_eq!(
            ad.reusable_workflow.unwrap().uses,
            "acme/.github/.github/workflows/py.yml@v2"
        );
        assert_eq!(ad.runs_on, ["acme-runner", "linux"]);
        assert_eq!(ad.python_versions, ["3.11", "3.12"]);
        assert_eq!(ad.siblings.len(), 3);
        assert!(adopt(Vec::new(), "acme").is_empty());
        let only_third_party = adopt(
            vec![sib(
                "acme/b",
                0.9,
                Conventions {
                    reusable_workflows: vec![call("evil/x/.github/workflows/py.yml@main")],
                    ..Default::default()
                },
            )],
            "acme",
        );
        assert!(only_third_party.reusable_workflow.is_none());
    }
}
