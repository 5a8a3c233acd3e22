//! A usearch HNSW index of unit vectors under cosine distance, with the few operations
//! the learned detection needs: add (replacing a key), k-nearest search with a key
//! filter, and atomic save/load. One instance per corpus (the archetypes) or tenant (an
//! installation's repositories); it holds no metadata — callers keep a key → record map.
//!
//! usearch needs room reserved before adding; this wrapper grows it geometrically, and
//! serialises access behind a mutex (queries take well under a millisecond, and usearch's
//! per-thread search contexts are sized at reservation time).

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context as _;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

/// Capacity reserved for a new index (vectors); it doubles as needed.
const INITIAL_CAPACITY: usize = 64;

/// A vector index keyed by `u64`.
pub struct VectorIndex {
    inner: Mutex<Index>,
    dimensions: usize,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("dimensions", &self.dimensions)
            .field("len", &self.len())
            .finish()
    }
}

/// One search hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The key.
    pub key: u64,
    /// Cosine similarity to the query (1 = same direction).
    pub similarity: f32,
}

fn options(dimensions: usize) -> IndexOptions {
    IndexOptions {
        dimensions,
        metric: MetricKind::Cos,
        // f16 halves memory and disk; similarity differences stay far below what the
        // thresholds distinguish (≈1e-3).
        quantization: ScalarKind::F16,
        connectivity: 0,
        expansion_add: 0,
        expansion_search: 0,
        multi: false,
    }
}

impl VectorIndex {
    /// An empty index for vectors of `dimensions`.
    pub fn new(dimensions: usize) -> anyhow::Result<VectorIndex> {
        let index = Index::new(&options(dimensions)).context("cannot create a usearch index")?;
        index
            .reserve(INITIAL_CAPACITY)
            .context("cannot reserve index capacity")?;
        Ok(VectorIndex {
            inner: Mutex::new(index),
            dimensions,
        })
    }

    /// Loads an index saved by [`VectorIndex::save`]; refuses one of other dimensions.
    pub fn load(path: &Path, dimensions: usize) -> anyhow::Result<VectorIndex> {
        let p = path
            .to_str()
            .with_context(|| format!("{} is not a UTF-8 path", path.display()))?;
        let index = Index::new(&options(dimensions)).context("cannot create a usearch index")?;
        index
            .load(p)
            .with_context(|| format!("cannot load index {}", path.display()))?;
        anyhow::ensure!(
            index.dimensions() == dimensions,
            "index {} holds {}-dimensional vectors, expected {dimensions}",
            path.display(),
            index.dimensions()
        );
        // A loaded index has exactly its size reserved; keep room to add and search.
        let room = (index.size() * 2).max(INITIAL_CAPACITY);
        index
            .reserve(room)
            .context("cannot reserve index capacity")?;
        Ok(VectorIndex {
            inner: Mutex::new(index),
            dimensions,
        })
    }

    /// Writes the index to `path` atomically (a temporary file, then a rename), creating
    /// the directory.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let t = tmp
            .to_str()
            .with_context(|| format!("{} is not a UTF-8 path", tmp.display()))?;
        self.lock()
            .save(t)
            .with_context(|| format!("cannot save index {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot move the index to {}", path.display()))?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding the lock leaves usearch's state as consistent as any
        // single call; keep serving rather than poison every later query.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `vector` under `key`, replacing an earlier vector with that key.
    pub fn add(&self, key: u64, vector: &[f32]) -> anyhow::Result<()> {
        anyhow::ensure!(
            vector.len() == self.dimensions,
            "vector has {} dimensions, the index {}",
            vector.len(),
            self.dimensions
        );
        anyhow::ensure!(
            vector.iter().all(|x| x.is_finite()),
            "vector has non-finite values"
        );
        let index = self.lock();
        if index.contains(key) {
            index.remove(key).context("cannot replace an index entry")?;
        }
        if index.size() + 1 > index.capacity() {
            index
                .reserve((index.capacity() * 2).max(INITIAL_CAPACITY))
                .context("cannot grow the index")?;
        }
        index.add(key, vector).context("cannot add to the index")?;
        Ok(())
    }

    /// Removes `key` (no error when absent).
    pub fn remove(&self, key: u64) -> anyhow::Result<()> {
        let index = self.lock();
        if index.contains(key) {
            index.remove(key).context("cannot remove an index entry")?;
        }
        Ok(())
    }

    /// The `k` nearest vectors whose key passes `filter`, most similar first.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: impl Fn(u64) -> bool,
    ) -> anyhow::Result<Vec<Hit>> {
        anyhow::ensure!(
            query.len() == self.dimensions,
            "query has {} dimensions, the index {}",
            query.len(),
            self.dimensions
        );
        let index = self.lock();
        if index.size() == 0 || k == 0 {
            return Ok(Vec::new());
        }
        let matches = index
            .filtered_search(query, k, filter)
            .context("index search failed")?;
        Ok(matches
            .keys
            .iter()
            .zip(&matches.distances)
            .map(|(key, d)| Hit {
                key: *key,
                similarity: 1.0 - d,
            })
            .collect())
    }

    /// Is a vector held under `key`?
    pub fn contains(&self, key: u64) -> bool {
        self.lock().contains(key)
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.lock().size()
    }

    /// Holds no vector.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of memory the index uses.
    pub fn memory_usage(&self) -> usize {
        self.lock().memory_usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dims: usize) -> Vec<f32> {
        // A deterministic pseudo-random unit vector (xorshift).
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut v: Vec<f32> = (0..dims)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.iter_mut().for_each(|a| *a /= n);
        v
    }

    #[test]
    fn finds_filters_replaces_and_survives_a_round_trip() {
        let idx = VectorIndex::new(16).unwrap();
        for k in 0..200u64 {
            idx.add(k, &unit(k, 16)).unwrap();
        }
        assert_eq!(idx.len(), 200);
        let hits = idx.search(&unit(7, 16), 3, |_| true).unwrap();
        assert_eq!(hits[0].key, 7);
        assert!(hits[0].similarity > 0.99);
        let odd = idx.search(&unit(7, 16), 3, |k| k % 2 == 0).unwrap();
        assert!(odd.iter().all(|h| h.key % 2 == 0));
        // Replacing a key keeps one entry for it.
        idx.add(7, &unit(1000, 16)).unwrap();
        assert_eq!(idx.len(), 200);
        assert_eq!(idx.search(&unit(1000, 16), 1, |_| true).unwrap()[0].key, 7);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.usearch");
        idx.save(&path).unwrap();
        let back = VectorIndex::load(&path, 16).unwrap();
        assert_eq!(back.len(), 200);
        assert_eq!(back.search(&unit(42, 16), 1, |_| true).unwrap()[0].key, 42);
        back.add(500, &unit(500, 16)).unwrap();
        assert!(
            VectorIndex::load(&path, 32).is_err(),
            "other dimensions refused"
        );
        assert!(VectorIndex::load(&dir.path().join("missing"), 16).is_err());
        std::fs::write(dir.path().join("junk"), b"not an index").unwrap();
        assert!(VectorIndex::load(&dir.path().join("junk"), 16).is_err());
    }

    #[test]
    fn bad_vectors_are_refused() {
        let idx = VectorIndex::new(4).unwrap();
        assert!(idx.add(1, &[1.0, 0.0]).is_err());
        assert!(idx.add(1, &[f32::NAN, 0.0, 0.0, 0.0]).is_err());
        assert!(idx.search(&[1.0], 1, |_| true).is_err());
        assert!(idx
            .search(&[1.0, 0.0, 0.0, 0.0], 1, |_| true)
            .unwrap()
            .is_empty());
    }
}
