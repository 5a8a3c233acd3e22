//! Fingerprints: a short, deterministic text per (sub-)project that the embedding model
//! turns into a vector. It says what a person skimming the repository would notice —
//! notable file names, the mix of extensions, manifests and their dependency names, tool
//! configuration files, and the README's first lines — and nothing that changes from
//! commit to commit without changing what the project is (no sizes, no versions, no
//! dates), so an unchanged project keeps its cached vector.
//!
//! Pure, like the rest of `analyze`: input is a [`RepoTree`] (the README must have been
//! read: [`learned_files_to_read`] names it), output is text.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::rules::ECOSYSTEMS;
use super::RepoTree;

/// Notable file names listed, at most.
const MAX_FILES: usize = 24;
/// Extensions listed (most frequent first), at most.
const MAX_EXTENSIONS: usize = 10;
/// Dependency names listed, at most.
const MAX_DEPENDENCIES: usize = 24;
/// Characters of README text kept.
const README_CHARS: usize = 280;
/// Upper bound on a fingerprint's length, in characters: the model reads at most 256
/// tokens, and short texts embed fast.
pub const MAX_FINGERPRINT_CHARS: usize = 1200;

/// README names, in the order they are preferred.
const READMES: &[&str] = &[
    "README.md",
    "README",
    "README.rst",
    "README.txt",
    "README.markdown",
    "readme.md",
    "Readme.md",
    "README.adoc",
    "README.org",
];

/// Tool configuration files that say how a project is checked or built, beyond the
/// ecosystems' manifests (which rules already know).
const TOOL_FILES: &[&str] = &[
    ".shellcheckrc",
    ".editorconfig",
    ".pre-commit-config.yaml",
    ".markdownlint.json",
    ".markdownlint.yaml",
    ".markdownlint-cli2.yaml",
    ".yamllint",
    ".yamllint.yml",
    ".ansible-lint",
    ".sqlfluff",
    ".hadolint.yaml",
    ".latexmkrc",
    "latexmkrc",
    "ruff.toml",
    ".ruff.toml",
    "mypy.ini",
    ".flake8",
    "noxfile.py",
    "tox.ini",
    "pytest.ini",
    "platformio.ini",
    "dbt_project.yml",
    "profiles.yml",
    "packages.yml",
    "sqlfluff.cfg",
    "ansible.cfg",
    "galaxy.yml",
    "requirements.yml",
    "molecule.yml",
    "Chart.yaml",
    "values.yaml",
    "helmfile.yaml",
    "kustomization.yaml",
    "Vagrantfile",
    "Brewfile",
    "install.sh",
    "bootstrap.sh",
    ".chezmoiroot",
    ".stow-local-ignore",
    "environment.yml",
    "index.html",
    "netlify.toml",
    "vercel.json",
    "CNAME",
    "library.properties",
    "library.json",
    "sketch.yaml",
    "west.yml",
    "Makefile",
    "justfile",
    "Dockerfile",
    "docker-compose.yml",
    "mkdocs.yml",
    "book.toml",
    "_quarto.yml",
    ".readthedocs.yaml",
];

/// Files never listed: they say nothing about what a repository is.
const NOISE: &[&str] = &[
    "LICENSE",
    "LICENSE.md",
    "LICENSE.txt",
    "COPYING",
    ".gitignore",
    ".gitattributes",
    ".gitmodules",
    "CODE_OF_CONDUCT.md",
    "CONTRIBUTING.md",
    "SECURITY.md",
    ".DS_Store",
];

/// The text the model embeds for one project directory, and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The project directory (`.` for the root).
    pub path: String,
    /// The text.
    pub text: String,
}

impl Fingerprint {
    /// 32 hex digits of the text's sha256: the key of the cached embedding.
    pub fn hash(&self) -> String {
        text_hash(&self.text)
    }
}

/// 32 hex digits of `text`'s sha256.
pub fn text_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

/// Files the learned detection reads beyond [`super::files_to_read`]: the READMEs of the
/// root and of directories up to two levels deep (sub-project candidates). Read in the
/// same batched call as the manifests.
pub fn learned_files_to_read(paths: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = paths
        .iter()
        .filter(|p| {
            let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
            READMES.contains(&name) && dir.matches('/').count() < 2 && !super::is_sample_dir(dir)
        })
        .map(|p| (*p).to_owned())
        .collect();
    let preference = |p: &str| {
        let name = p.rsplit('/').next().unwrap_or(p);
        READMES
            .iter()
            .position(|r| *r == name)
            .unwrap_or(usize::MAX)
    };
    out.sort_by_key(|p| {
        let dir = p.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
        (
            dir.matches('/').count() + usize::from(!dir.is_empty()),
            dir,
            preference(p),
        )
    });
    // One README per directory: the preferred name.
    let mut seen = BTreeSet::new();
    out.retain(|p| seen.insert(p.rsplit_once('/').map_or("", |(d, _)| d).to_owned()));
    out
}

/// The fingerprint of the project in `dir` (`""` or `.` for the root), or `None` when
/// the directory holds no files.
pub fn fingerprint(tree: &RepoTree, dir: &str) -> Option<Fingerprint> {
    let dir = if dir == "." { "" } else { dir };
    let prefix_len = if dir.is_empty() { 0 } else { dir.len() + 1 };
    let files: Vec<&str> = tree
        .under(dir)
        .map(|p| &p[prefix_len..])
        .filter(|rel| {
            let (d, _) = rel.rsplit_once('/').unwrap_or(("", rel));
            !super::is_sample_dir(d)
        })
        .collect();
    if files.is_empty() {
        return None;
    }
    let mut lines = Vec::new();

    // Notable names: shallow first, noise and deep vendored paths left out.
    let mut notable: Vec<&str> = files
        .iter()
        .copied()
        .filter(|rel| {
            let name = rel.rsplit('/').next().unwrap_or(rel);
            rel.matches('/').count() <= 1 && !NOISE.contains(&name)
        })
        .collect();
    notable.sort_by_key(|rel| (rel.matches('/').count(), *rel));
    notable.truncate(MAX_FILES);
    lines.push(format!("files: {}", notable.join(", ")));

    let mut exts: BTreeMap<String, usize> = BTreeMap::new();
    for rel in &files {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        if NOISE.contains(&name) {
            continue;
        }
        let ext = match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() && ext.len() <= 12 => ext.to_ascii_lowercase(),
            _ => "none".to_owned(),
        };
        *exts.entry(ext).or_default() += 1;
    }
    let mut exts: Vec<(String, usize)> = exts.into_iter().collect();
    exts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    exts.truncate(MAX_EXTENSIONS);
    lines.push(format!(
        "extensions: {}",
        exts.iter()
            .map(|(e, n)| format!("{e} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let names: BTreeSet<&str> = files
        .iter()
        .map(|rel| rel.rsplit('/').next().unwrap_or(rel))
        .collect();
    let manifests: BTreeSet<&str> = names
        .iter()
        .copied()
        .filter(|n| {
            ECOSYSTEMS
                .iter()
                .any(|e| e.markers.contains(n) || e.marker_suffixes.iter().any(|s| n.ends_with(s)))
        })
        .collect();
    if !manifests.is_empty() {
        lines.push(format!(
            "manifests: {}",
            manifests.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let deps = dependencies(tree, dir);
    if !deps.is_empty() {
        lines.push(format!(
            "dependencies: {}",
            deps.into_iter()
                .take(MAX_DEPENDENCIES)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let tools: Vec<&str> = TOOL_FILES
        .iter()
        .copied()
        .filter(|t| names.contains(t))
        .collect();
    if !tools.is_empty() {
        lines.push(format!("tools: {}", tools.join(", ")));
    }
    if let Some(readme) = readme(tree, dir) {
        lines.push(format!("readme: {readme}"));
    }
    let mut text = lines.join("\n");
    if text.len() > MAX_FINGERPRINT_CHARS {
        let mut cut = MAX_FINGERPRINT_CHARS;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Some(Fingerprint {
        path: if dir.is_empty() {
            ".".to_owned()
        } else {
            dir.to_owned()
        },
        text,
    })
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Dependency names from the manifests in `dir` that were read: names only (versions
/// change without the project changing), lowercased, sorted.
fn dependencies(tree: &RepoTree, dir: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(pkg) = tree
        .text(&join(dir, "package.json"))
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
    {
        for key in ["dependencies", "devDependencies"] {
            if let Some(obj) = pkg.get(key).and_then(|v| v.as_object()) {
                out.extend(obj.keys().map(|k| k.to_ascii_lowercase()));
            }
        }
    }
    for name in ["requirements.txt", "requirements-dev.txt"] {
        if let Some(text) = tree.text(&join(dir, name)) {
            out.extend(text.lines().filter_map(requirement_name));
        }
    }
    if let Some(doc) = tree
        .text(&join(dir, "pyproject.toml"))
        .and_then(|t| t.parse::<toml::Table>().ok())
    {
        if let Some(list) = doc
            .get("project")
            .and_then(|p| p.get("dependencies"))
            .and_then(|d| d.as_array())
        {
            out.extend(
                list.iter()
                    .filter_map(|v| v.as_str())
                    .filter_map(requirement_name),
            );
        }
    }
    if let Some(doc) = tree
        .text(&join(dir, "Cargo.toml"))
        .and_then(|t| t.parse::<toml::Table>().ok())
    {
        for key in ["dependencies", "dev-dependencies"] {
            if let Some(t) = doc.get(key).and_then(|d| d.as_table()) {
                out.extend(t.keys().map(|k| k.to_ascii_lowercase()));
            }
        }
    }
    out.retain(|d| !d.is_empty() && d.len() <= 64);
    out
}

/// `requests>=2 ; python_version<"3.9"` → `requests`.
fn requirement_name(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
        return None;
    }
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    let name = &line[..end];
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// The README's first prose, with Markdown/HTML markup, badges and links' targets
/// dropped, whitespace collapsed, cut at [`README_CHARS`].
fn readme(tree: &RepoTree, dir: &str) -> Option<String> {
    let text = READMES.iter().find_map(|n| tree.text(&join(dir, n)))?;
    let mut out = String::new();
    let mut in_fence = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("```") || l.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence
            || l.is_empty()
            || l.starts_with('<')
            || l.starts_with("[![")
            || l.starts_with("![")
            || l.starts_with('|')
            || l.starts_with("..")
            || l.chars().all(|c| matches!(c, '=' | '-' | '*' | '_' | '#'))
        {
            continue;
        }
        let cleaned = strip_markup(l);
        if cleaned.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&cleaned);
        if out.len() >= README_CHARS {
            break;
        }
    }
    if out.len() > README_CHARS {
        let mut cut = README_CHARS;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    (!out.is_empty()).then_some(out)
}

/// `## A [link](http://x) to **bold** \`code\`` → `A link to bold code`.
fn strip_markup(line: &str) -> String {
    let line = line.trim_start_matches(['#', '>', '*', '-', '+', ' ']);
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // [text](target): keep the text, drop the target.
            ']' if chars.peek() == Some(&'(') => {
                for c in chars.by_ref() {
                    if c == ')' {
                        break;
                    }
                }
            }
            '[' | ']' | '*' | '`' | '_' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> RepoTree {
        let mut t = RepoTree::from_paths(files.iter().map(|(p, _)| *p));
        for (p, c) in files {
            if !c.is_empty() {
                t.insert_content(p, c.as_bytes());
            }
        }
        t
    }

    #[test]
    fn says_what_a_person_would_notice() {
        let t = tree(&[
            ("README.md", "# dotfiles\n\n[![ci](x)](y)\nMy **configuration** for [zsh](https://zsh.org) and vim.\n"),
            ("install.sh", ""),
            (".zshrc", ""),
            ("vim/.vimrc", ""),
            ("LICENSE", ""),
            ("package.json", r#"{"devDependencies": {"Prettier": "3"}}"#),
        ]);
        let f = fingerprint(&t, ".").unwrap();
        assert_eq!(
            f.text,
            "files: .zshrc, README.md, install.sh, package.json, vim/.vimrc\n\
             extensions: none 2, json 1, md 1, sh 1\n\
             manifests: package.json\n\
             dependencies: prettier\n\
             tools: install.sh\n\
             readme: dotfiles My configuration for zsh and vim."
        );
        assert_eq!(f.hash().len(), 32);
        assert_eq!(
            f.hash(),
            fingerprint(&t, "").unwrap().hash(),
            "deterministic"
        );
    }

    #[test]
    fn a_sub_project_sees_only_its_directory() {
        let t = tree(&[
            ("tools/x.py", ""),
            ("app/Cargo.toml", "[dependencies]\nserde = \"1\"\n"),
            ("app/src/main.rs", ""),
        ]);
        let f = fingerprint(&t, "app").unwrap();
        assert!(
            f.text.contains("files: Cargo.toml, src/main.rs"),
            "{}",
            f.text
        );
        assert!(f.text.contains("dependencies: serde"));
        assert!(!f.text.contains("x.py"));
        assert_eq!(f.path, "app");
        assert!(fingerprint(&t, "missing").is_none());
    }

    #[test]
    fn hostile_content_stays_short_and_never_panics() {
        let long = "é".repeat(10_000);
        let readme = format!("{long}\n```\ncode\n```\n\u{0}\u{7}");
        let many: Vec<String> = (0..500)
            .map(|i| format!("d{i}/f{i}.{}", "x".repeat(i % 20)))
            .collect();
        let mut files: Vec<(&str, &str)> = many.iter().map(|p| (p.as_str(), "")).collect();
        files.push(("README.md", &readme));
        files.push((
            "requirements.txt",
            "-r other.txt\n# c\n\nFlask[async]>=2 ; x\n",
        ));
        files.push(("pyproject.toml", "not toml ["));
        let f = fingerprint(&tree(&files), ".").unwrap();
        assert!(f.text.len() <= MAX_FINGERPRINT_CHARS);
        assert!(f.text.contains("dependencies: flask"));
    }

    #[test]
    fn readmes_are_read_at_the_top_levels_only() {
        assert_eq!(
            learned_files_to_read(&[
                "README.md",
                "README",
                "a/README.md",
                "a/b/README.md",
                "a/b/c/README.md",
                "examples/README.md",
                "src/x.rs"
            ]),
            ["README.md", "a/README.md", "a/b/README.md"]
        );
    }
}
