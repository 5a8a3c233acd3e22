//! Index 1: the archetype corpus (`templates/archetypes/*.toml`, embedded in the binary),
//! its usearch index, and the refiner that lets the nearest archetypes fill what rules
//! left empty or unsure.
//!
//! Rules stay first. The refiner acts on a repository only when rules found no project,
//! and on a project only when its confidence is below [`CONFIDENT`]; it adds a project
//! only where there was none, and on a low-confidence project it only fills empty fields
//! when the archetype agrees on the language. Every contribution is recorded as evidence
//! (`embedding: archetype <id>`) and as a reason listing the neighbours and their
//! similarity (`analyze --explain`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::index::VectorIndex;
use super::model::DIMENSIONS;
use crate::analyze::fingerprint::{fingerprint, Fingerprint};
use crate::analyze::{
    Analysis, Commands, Framework, Language, PackageManager, Project, Reason, Refiner, RepoTree,
    TestTool,
};

/// Projects the rules are at least this sure of are never touched.
pub const CONFIDENT: f64 = 0.8;
/// Nearest exemplars that vote.
pub const NEIGHBOURS: usize = 5;
/// Exemplars less similar than this do not vote. Fingerprints share their layout
/// (`files:`, `extensions:`, `readme:`), so even unrelated repositories score 0.3–0.6
/// with this model; measured on the fixtures, unrelated pairs stay below ≈0.6.
pub const MIN_VOTE_SIMILARITY: f32 = 0.5;
/// The winning archetype's best exemplar must be at least this similar for its recipe to
/// be used; below, the neighbours are only shown. Measured: the learned fixtures' right
/// archetype scores 0.75–0.98; the best wrong match of any fixture 0.63 (a container-only
/// repository, which has no recipe, scores 0.77 and is right).
pub const ACCEPT_SIMILARITY: f32 = 0.68;
/// Confidence given to a project an archetype proposed: always below [`CONFIDENT`], so a
/// later refiner (or a person reading `--explain`) knows it was learned.
const LEARNED_CONFIDENCE_CAP: f64 = 0.65;
/// The rule id learned conclusions carry.
pub const RULE_ID: &str = "learned/archetype";

/// The corpus files, embedded. `tests` checks that this list matches the directory.
pub const CORPUS_FILES: &[(&str, &str)] = &[
    (
        "ansible-role.toml",
        include_str!("../../templates/archetypes/ansible-role.toml"),
    ),
    (
        "arduino-sketch.toml",
        include_str!("../../templates/archetypes/arduino-sketch.toml"),
    ),
    (
        "container-only.toml",
        include_str!("../../templates/archetypes/container-only.toml"),
    ),
    (
        "data-only.toml",
        include_str!("../../templates/archetypes/data-only.toml"),
    ),
    (
        "dbt.toml",
        include_str!("../../templates/archetypes/dbt.toml"),
    ),
    (
        "docs-only.toml",
        include_str!("../../templates/archetypes/docs-only.toml"),
    ),
    (
        "dotfiles.toml",
        include_str!("../../templates/archetypes/dotfiles.toml"),
    ),
    (
        "go-module.toml",
        include_str!("../../templates/archetypes/go-module.toml"),
    ),
    (
        "helm-chart.toml",
        include_str!("../../templates/archetypes/helm-chart.toml"),
    ),
    (
        "latex.toml",
        include_str!("../../templates/archetypes/latex.toml"),
    ),
    (
        "node-package.toml",
        include_str!("../../templates/archetypes/node-package.toml"),
    ),
    (
        "notebooks.toml",
        include_str!("../../templates/archetypes/notebooks.toml"),
    ),
    (
        "platformio.toml",
        include_str!("../../templates/archetypes/platformio.toml"),
    ),
    (
        "python-package.toml",
        include_str!("../../templates/archetypes/python-package.toml"),
    ),
    (
        "python-scripts.toml",
        include_str!("../../templates/archetypes/python-scripts.toml"),
    ),
    (
        "rust-crate.toml",
        include_str!("../../templates/archetypes/rust-crate.toml"),
    ),
    (
        "shell-scripts.toml",
        include_str!("../../templates/archetypes/shell-scripts.toml"),
    ),
    (
        "sql-scripts.toml",
        include_str!("../../templates/archetypes/sql-scripts.toml"),
    ),
    (
        "static-site.toml",
        include_str!("../../templates/archetypes/static-site.toml"),
    ),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchetypeFile {
    id: String,
    summary: String,
    recipe: Option<RecipeFile>,
    #[serde(rename = "exemplar")]
    exemplars: Vec<ExemplarFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeFile {
    language: String,
    package_manager: Option<String>,
    #[serde(default)]
    frameworks: Vec<String>,
    test_tool: Option<String>,
    install: Option<String>,
    #[serde(default)]
    lint: Vec<String>,
    build: Option<String>,
    test: Option<String>,
    #[serde(default)]
    runtime_versions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExemplarFile {
    files: Vec<String>,
    readme: Option<String>,
    #[serde(default)]
    contents: BTreeMap<String, String>,
}

/// What an archetype's repositories get: a project like the rules would write.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// Language.
    pub language: Language,
    /// Package manager.
    pub package_manager: Option<PackageManager>,
    /// Frameworks and tools.
    pub frameworks: Vec<Framework>,
    /// Test runner.
    pub test_tool: Option<TestTool>,
    /// Commands.
    pub commands: Commands,
    /// Runtime versions.
    pub runtime_versions: Vec<String>,
}

/// One archetype of the corpus.
#[derive(Debug, Clone)]
pub struct Archetype {
    /// Stable id (the file name without `.toml`).
    pub id: String,
    /// One line for people.
    pub summary: String,
    /// Its CI, or `None` for archetypes that get none.
    pub recipe: Option<Recipe>,
    /// Fingerprints of its exemplars.
    pub exemplars: Vec<String>,
}

/// The parsed corpus and its hash.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Archetypes, in file order.
    pub archetypes: Vec<Archetype>,
    /// 16 hex digits over every file: a change rebuilds the persisted index.
    pub hash: String,
}

fn vocab<T: Copy + 'static>(
    all: &'static [T],
    name: &str,
    s: &str,
    f: fn(T) -> &'static str,
) -> anyhow::Result<T> {
    all.iter()
        .copied()
        .find(|v| f(*v) == s)
        .with_context(|| format!("unknown {name} `{s}`"))
}

impl Corpus {
    /// The corpus shipped in the binary.
    pub fn builtin() -> anyhow::Result<Corpus> {
        Corpus::parse(CORPUS_FILES)
    }

    /// Parses corpus files (name, TOML text).
    pub fn parse(files: &[(&str, &str)]) -> anyhow::Result<Corpus> {
        let mut hasher = Sha256::new();
        let mut archetypes = Vec::new();
        for (name, text) in files {
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(text.as_bytes());
            hasher.update([0]);
            let f: ArchetypeFile =
                toml::from_str(text).with_context(|| format!("archetype {name}"))?;
            anyhow::ensure!(
                name.strip_suffix(".toml") == Some(f.id.as_str()),
                "archetype {name}: id `{}` must match the file name",
                f.id
            );
            anyhow::ensure!(!f.exemplars.is_empty(), "archetype {name}: no exemplar");
            let recipe = match f.recipe {
                None => None,
                Some(r) => Some(Recipe {
                    language: vocab(Language::ALL, "language", &r.language, Language::as_str)
                        .with_context(|| format!("archetype {name}"))?,
                    package_manager: r
                        .package_manager
                        .as_deref()
                        .map(|p| {
                            vocab(
                                PackageManager::ALL,
                                "package manager",
                                p,
                                PackageManager::as_str,
                            )
                        })
                        .transpose()
                        .with_context(|| format!("archetype {name}"))?,
                    frameworks: r
                        .frameworks
                        .iter()
                        .map(|x| vocab(Framework::ALL, "framework", x, Framework::as_str))
                        .collect::<anyhow::Result<_>>()
                        .with_context(|| format!("archetype {name}"))?,
                    test_tool: r
                        .test_tool
                        .as_deref()
                        .map(|t| vocab(TestTool::ALL, "test tool", t, TestTool::as_str))
                        .transpose()
                        .with_context(|| format!("archetype {name}"))?,
                    commands: Commands {
                        install: r.install,
                        lint: r.lint,
                        build: r.build,
                        test: r.test,
                    },
                    runtime_versions: r.runtime_versions,
                }),
            };
            let mut exemplars = Vec::new();
            for (i, e) in f.exemplars.iter().enumerate() {
                let mut tree = RepoTree::from_paths(e.files.iter().map(String::as_str));
                if let Some(readme) = &e.readme {
                    let path = e
                        .files
                        .iter()
                        .find(|p| p.as_str() == "README.md" || p.as_str() == "README")
                        .cloned()
                        .unwrap_or_else(|| "README.md".to_owned());
                    tree.insert_content(&path, readme.as_bytes());
                }
                for (path, text) in &e.contents {
                    anyhow::ensure!(
                        e.files.contains(path),
                        "archetype {name}: exemplar {i} has contents for {path}, which is not in its files"
                    );
                    tree.insert_content(path, text.as_bytes());
                }
                let fp = fingerprint(&tree, ".")
                    .with_context(|| format!("archetype {name}: exemplar {i} has no files"))?;
                exemplars.push(fp.text);
            }
            archetypes.push(Archetype {
                id: f.id,
                summary: f.summary,
                recipe,
                exemplars,
            });
        }
        Ok(Corpus {
            archetypes,
            hash: hex::encode(&hasher.finalize()[..8]),
        })
    }

    /// Every exemplar fingerprint with its (archetype, exemplar) position, in key order.
    pub fn exemplars(&self) -> Vec<(usize, usize, &str)> {
        self.archetypes
            .iter()
            .enumerate()
            .flat_map(|(a, arch)| {
                arch.exemplars
                    .iter()
                    .enumerate()
                    .map(move |(e, t)| (a, e, t.as_str()))
            })
            .collect()
    }
}

/// Index keys pack (archetype, exemplar) so no side table is needed.
fn key(archetype: usize, exemplar: usize) -> u64 {
    ((archetype as u64) << 16) | exemplar as u64
}

fn unkey(k: u64) -> (usize, usize) {
    ((k >> 16) as usize, (k & 0xFFFF) as usize)
}

/// A neighbour of a fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    /// Archetype id.
    pub archetype: String,
    /// Cosine similarity.
    pub similarity: f32,
}

/// What the nearest archetypes say about one fingerprint.
#[derive(Debug, Clone)]
pub struct Vote {
    /// The k nearest exemplars, most similar first.
    pub neighbours: Vec<Neighbour>,
    /// The winning archetype (index into the corpus) and its best similarity, when one
    /// is similar enough to be used.
    pub winner: Option<(usize, f32)>,
}

/// The archetype corpus and its index.
#[derive(Debug)]
pub struct ArchetypeIndex {
    corpus: Corpus,
    index: VectorIndex,
    model_hash: String,
}

impl ArchetypeIndex {
    /// Where the index for this model and corpus lives under `data_dir`.
    pub fn path(data_dir: &Path, model_hash: &str, corpus: &Corpus) -> PathBuf {
        data_dir
            .join("index")
            .join(format!("archetypes-{model_hash}-{}.usearch", corpus.hash))
    }

    /// Builds the index from exemplar vectors (in [`Corpus::exemplars`] order).
    pub fn build(
        corpus: Corpus,
        model_hash: &str,
        vectors: &[Vec<f32>],
    ) -> anyhow::Result<ArchetypeIndex> {
        let exemplars = corpus.exemplars();
        anyhow::ensure!(
            exemplars.len() == vectors.len(),
            "{} exemplars but {} vectors",
            exemplars.len(),
            vectors.len()
        );
        let index = VectorIndex::new(DIMENSIONS)?;
        for ((a, e, _), v) in exemplars.iter().zip(vectors) {
            index.add(key(*a, *e), v)?;
        }
        Ok(ArchetypeIndex {
            corpus,
            index,
            model_hash: model_hash.to_owned(),
        })
    }

    /// Loads a persisted index; refuses one whose size does not match the corpus.
    pub fn load(corpus: Corpus, model_hash: &str, path: &Path) -> anyhow::Result<ArchetypeIndex> {
        let index = VectorIndex::load(path, DIMENSIONS)?;
        anyhow::ensure!(
            index.len() == corpus.exemplars().len(),
            "index {} holds {} vectors, the corpus {} exemplars",
            path.display(),
            index.len(),
            corpus.exemplars().len()
        );
        Ok(ArchetypeIndex {
            corpus,
            index,
            model_hash: model_hash.to_owned(),
        })
    }

    /// Saves the index at `path`.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        self.index.save(path)
    }

    /// The corpus.
    pub fn corpus(&self) -> &Corpus {
        &self.corpus
    }

    /// Exemplar vectors held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Holds nothing.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The model the vectors came from.
    pub fn model_hash(&self) -> &str {
        &self.model_hash
    }

    /// The k nearest exemplars of `vector` vote: each archetype scores the sum of its
    /// exemplars' similarities (those above [`MIN_VOTE_SIMILARITY`]); the top scorer wins
    /// if its best exemplar reaches [`ACCEPT_SIMILARITY`].
    pub fn vote(&self, vector: &[f32]) -> anyhow::Result<Vote> {
        let hits = self.index.search(vector, NEIGHBOURS, |_| true)?;
        let mut scores: BTreeMap<usize, (f32, f32)> = BTreeMap::new();
        let mut neighbours = Vec::new();
        for h in &hits {
            let (a, _) = unkey(h.key);
            let Some(arch) = self.corpus.archetypes.get(a) else {
                continue;
            };
            neighbours.push(Neighbour {
                archetype: arch.id.clone(),
                similarity: h.similarity,
            });
            if h.similarity >= MIN_VOTE_SIMILARITY {
                let s = scores.entry(a).or_default();
                s.0 += h.similarity;
                s.1 = s.1.max(h.similarity);
            }
        }
        let winner = scores
            .into_iter()
            .max_by(|x, y| x.1 .0.total_cmp(&y.1 .0).then_with(|| y.0.cmp(&x.0)))
            .filter(|(_, (_, best))| *best >= ACCEPT_SIMILARITY)
            .map(|(a, (_, best))| (a, best));
        Ok(Vote { neighbours, winner })
    }
}

/// The fingerprints the archetype refiner will look at for `analysis` of `tree`: the root
/// when rules found no project, else every project below [`CONFIDENT`].
pub fn targets(tree: &RepoTree, analysis: &Analysis) -> Vec<Fingerprint> {
    if analysis.projects.is_empty() {
        return fingerprint(tree, ".").into_iter().collect();
    }
    analysis
        .projects
        .iter()
        .filter(|p| p.confidence < CONFIDENT)
        .filter_map(|p| fingerprint(tree, &p.path))
        .collect()
}

/// Lets the nearest archetypes fill gaps, with vectors computed beforehand (keyed by
/// fingerprint hash): refining does no IO, so it runs inside the pure `analyze`.
pub struct ArchetypeRefiner<'a> {
    /// The index.
    pub index: &'a ArchetypeIndex,
    /// Vectors of [`targets`], by fingerprint hash; a missing vector means no opinion.
    pub vectors: &'a HashMap<String, Vec<f32>>,
}

fn describe(vote: &Vote) -> String {
    vote.neighbours
        .iter()
        .map(|n| format!("{} {:.2}", n.archetype, n.similarity))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Refiner for ArchetypeRefiner<'_> {
    fn refine(&self, tree: &RepoTree, analysis: &mut Analysis) {
        for fp in targets(tree, analysis) {
            let Some(vector) = self.vectors.get(&fp.hash()) else {
                continue;
            };
            let vote = match self.index.vote(vector) {
                Ok(v) => v,
                Err(e) => {
                    analysis
                        .warnings
                        .push(format!("learned detection unavailable: {e:#}"));
                    return;
                }
            };
            let neighbours = describe(&vote);
            let winner = vote
                .winner
                .and_then(|(a, sim)| self.index.corpus.archetypes.get(a).map(|x| (x, sim)));
            let existing = analysis.projects.iter().position(|p| p.path == fp.path);
            match (existing, winner) {
                (None, Some((arch, sim))) => {
                    let Some(recipe) = &arch.recipe else {
                        analysis.warnings.push(format!(
                            "looks like {} ({}; nearest: {neighbours})",
                            arch.id, arch.summary
                        ));
                        continue;
                    };
                    let confidence =
                        (f64::from(sim).min(LEARNED_CONFIDENCE_CAP) * 100.0).round() / 100.0;
                    analysis.projects.insert(
                        0,
                        Project {
                            path: fp.path.clone(),
                            language: recipe.language,
                            package_manager: recipe.package_manager,
                            frameworks: recipe.frameworks.clone(),
                            test_tool: recipe.test_tool,
                            commands: recipe.commands.clone(),
                            runtime_versions: recipe.runtime_versions.clone(),
                            confidence,
                            evidence: vec![format!("embedding: archetype {}", arch.id)],
                            reasons: vec![Reason {
                                rule: RULE_ID,
                                file: fp.path.clone(),
                                conclusion: format!(
                                    "{} ({:.2}); nearest: {neighbours}",
                                    arch.summary, sim
                                ),
                            }],
                            members: Vec::new(),
                            // Recipes declare no tool configuration beyond their commands.
                            toolbox: Default::default(),
                        },
                    );
                    if !analysis.existing_ci.iter().any(|c| c.kind == "cd")
                        && !analysis.missing.contains(&"cd")
                    {
                        analysis.missing.push("cd");
                    }
                }
                (None, None) => {}
                (Some(i), winner) => {
                    let p = &mut analysis.projects[i];
                    let agrees = winner
                        .and_then(|(a, sim)| a.recipe.as_ref().map(|r| (a, r, sim)))
                        .filter(|(_, r, _)| r.language == p.language);
                    match agrees {
                        Some((arch, recipe, sim)) => {
                            let mut filled = Vec::new();
                            if p.test_tool.is_none() && recipe.test_tool.is_some() {
                                p.test_tool = recipe.test_tool;
                                filled.push("test tool");
                            }
                            let c = &mut p.commands;
                            if c.install.is_none()
                                && recipe.commands.install.is_some()
                                && c.test.is_none()
                                && recipe.commands.test.is_some()
                            {
                                c.install.clone_from(&recipe.commands.install);
                                filled.push("install");
                            }
                            if c.test.is_none() && recipe.commands.test.is_some() {
                                c.test.clone_from(&recipe.commands.test);
                                filled.push("test");
                            }
                            if c.build.is_none() && recipe.commands.build.is_some() {
                                c.build.clone_from(&recipe.commands.build);
                                filled.push("build");
                            }
                            if c.lint.is_empty() && !recipe.commands.lint.is_empty() {
                                c.lint.clone_from(&recipe.commands.lint);
                                filled.push("lint");
                            }
                            p.evidence.push(format!("embedding: archetype {}", arch.id));
                            p.reasons.push(Reason {
                                rule: RULE_ID,
                                file: fp.path.clone(),
                                conclusion: format!(
                                    "agrees: {} ({sim:.2}){}; nearest: {neighbours}",
                                    arch.summary,
                                    if filled.is_empty() {
                                        String::new()
                                    } else {
                                        format!(", filled {}", filled.join(", "))
                                    }
                                ),
                            });
                        }
                        None => p.reasons.push(Reason {
                            rule: RULE_ID,
                            file: fp.path.clone(),
                            conclusion: format!("no change; nearest: {neighbours}"),
                        }),
                    }
                }
            }
        }
        analysis
            .missing
            .sort_by_key(|m| if *m == "ci" { 0 } else { 1 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_corpus_parses_and_lists_every_file() {
        let c = Corpus::builtin().unwrap();
        assert!(c.archetypes.len() >= 15);
        assert_eq!(c.hash.len(), 16);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/archetypes");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = CORPUS_FILES.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            on_disk, listed,
            "CORPUS_FILES must list every archetype file"
        );
        for a in &c.archetypes {
            for e in &a.exemplars {
                assert!(e.starts_with("files: "), "{}: {e}", a.id);
            }
        }
    }

    #[test]
    fn bad_corpus_files_are_refused_with_their_name() {
        let err = |files: &[(&str, &str)]| format!("{:#}", Corpus::parse(files).unwrap_err());
        assert!(err(&[(
            "x.toml",
            "id = \"y\"\nsummary = \"s\"\n[[exemplar]]\nfiles = [\"a\"]\n"
        )])
        .contains("must match"));
        assert!(err(&[("x.toml", "id = \"x\"\nsummary = \"s\"\n[recipe]\nlanguage = \"cobol\"\n[[exemplar]]\nfiles = [\"a\"]\n")]).contains("unknown language `cobol`"));
        assert!(
            err(&[("x.toml", "id = \"x\"\nsummary = \"s\"\nexemplar = []\n")])
                .contains("no exemplar")
        );
        assert!(err(&[(
            "x.toml",
            "id = \"x\"\nsummary = \"s\"\ntypo = 1\n[[exemplar]]\nfiles = [\"a\"]\n"
        )])
        .contains("x.toml"));
    }

    #[test]
    fn keys_round_trip() {
        assert_eq!(unkey(key(17, 3)), (17, 3));
    }
}
