//! `RepoTree`: a repository snapshot as detection sees it: the list of file paths, plus
//! the contents of only the files detection asked for (see [`super::files_to_read`]).
//! A local checkout and a forge API listing build the same structure, so the engine
//! never knows where files came from. Loading is bounded: files listed, bytes per file,
//! bytes in all; symlinks are never followed.

use std::collections::BTreeMap;
use std::path::Path;

/// Most paths listed; past it the listing stops with a warning.
pub const MAX_FILES: usize = 200_000;
/// Largest file read, in bytes (manifests are small; a larger one is skipped with a warning).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Most bytes read in all, per repository.
pub const MAX_TOTAL_BYTES: u64 = 32 * 1024 * 1024;
/// Most files read per repository (the proxy for forge API calls).
pub const MAX_FILES_READ: usize = 400;

/// Directories never descended into: dependencies, build output, VCS metadata.
pub const SKIP_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "vendor",
    "target",
    "dist",
    "build",
    "out",
    ".venv",
    "venv",
    "env",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".gradle",
    ".idea",
    ".next",
    ".nuxt",
    ".svelte-kit",
    ".turbo",
    "coverage",
    "bower_components",
    "Pods",
    ".dart_tool",
    ".build",
    "_build",
    "deps",
    "zig-cache",
    "zig-out",
    ".stack-work",
    "dist-newstyle",
    "bin",
    "obj",
    ".terraform",
    "site-packages",
];

/// Limits for loading a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// See [`MAX_FILES`].
    pub max_files: usize,
    /// See [`MAX_FILE_BYTES`].
    pub max_file_bytes: u64,
    /// See [`MAX_TOTAL_BYTES`].
    pub max_total_bytes: u64,
    /// See [`MAX_FILES_READ`].
    pub max_files_read: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_files: MAX_FILES,
            max_file_bytes: MAX_FILE_BYTES,
            max_total_bytes: MAX_TOTAL_BYTES,
            max_files_read: MAX_FILES_READ,
        }
    }
}

/// What reading one file produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// UTF-8 text (invalid sequences replaced, with a warning).
    Text(String),
    /// Over the size cap (its size).
    TooLarge(u64),
    /// Binary data (a NUL byte near the start).
    Binary,
    /// Could not be read (why).
    Unreadable(String),
}

/// A repository snapshot.
#[derive(Debug, Clone, Default)]
pub struct RepoTree {
    files: Vec<String>,
    contents: BTreeMap<String, Content>,
    warnings: Vec<String>,
}

impl RepoTree {
    /// A snapshot from a list of `/`-separated relative paths (a forge tree listing).
    /// Paths inside [`SKIP_DIRS`] are dropped, so both sources see the same files.
    pub fn from_paths<I, S>(paths: I) -> RepoTree
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut files: Vec<String> = paths
            .into_iter()
            .map(Into::into)
            .filter(|p| {
                !p.is_empty()
                    && !p
                        .split('/')
                        .any(|c| SKIP_DIRS.contains(&c) || c == ".." || c.is_empty())
            })
            .collect();
        files.sort_unstable();
        files.dedup();
        RepoTree {
            files,
            contents: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Stores the bytes of a file detection asked for.
    pub fn insert_content(&mut self, path: &str, bytes: &[u8]) {
        let sniff = &bytes[..bytes.len().min(8192)];
        let content = if sniff.contains(&0) {
            self.warn(format!(
                "{path}: binary content where a text manifest was expected; ignored"
            ));
            Content::Binary
        } else {
            match std::str::from_utf8(bytes) {
                Ok(s) => Content::Text(s.to_owned()),
                Err(_) => {
                    self.warn(format!(
                        "{path}: not valid UTF-8; read with replacement characters"
                    ));
                    Content::Text(String::from_utf8_lossy(bytes).into_owned())
                }
            }
        };
        self.contents.insert(path.to_owned(), content);
    }

    /// Records that a file could not be read, or was too large.
    pub fn insert_unread(&mut self, path: &str, content: Content) {
        match &content {
            Content::TooLarge(n) => {
                self.warn(format!("{path}: {n} bytes is over the read limit; skipped"))
            }
            Content::Unreadable(why) => self.warn(format!("{path}: cannot read: {why}")),
            _ => {}
        }
        self.contents.insert(path.to_owned(), content);
    }

    /// Adds a warning for the output.
    pub fn warn(&mut self, message: String) {
        if !self.warnings.contains(&message) {
            self.warnings.push(message);
        }
    }

    /// All listed paths, sorted.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Warnings collected while building the snapshot.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Number of files whose content was read.
    pub fn files_read(&self) -> usize {
        self.contents
            .values()
            .filter(|c| matches!(c, Content::Text(_) | Content::Binary))
            .count()
    }

    /// Is this path in the listing?
    pub fn has(&self, path: &str) -> bool {
        self.files
            .binary_search_by(|p| p.as_str().cmp(path))
            .is_ok()
    }

    /// The text of a file that was read.
    pub fn text(&self, path: &str) -> Option<&str> {
        match self.contents.get(path) {
            Some(Content::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// Paths directly inside `dir` ("" = root).
    pub fn children<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let start = self.files.partition_point(|p| p.as_str() < prefix.as_str());
        let len = prefix.len();
        self.files[start..]
            .iter()
            .take_while(move |p| p.starts_with(&prefix))
            .map(String::as_str)
            .filter(move |p| !p[len..].contains('/'))
    }

    /// Every path under `dir` (any depth).
    pub fn under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let start = self.files.partition_point(|p| p.as_str() < prefix.as_str());
        self.files[start..]
            .iter()
            .take_while(move |p| p.starts_with(&prefix))
            .map(String::as_str)
    }
}

/// Lists a local checkout (respecting .gitignore, skipping [`SKIP_DIRS`], never following
/// symlinks), then reads exactly the files detection wants, within `limits`.
pub fn load_local(root: &Path, limits: &Limits) -> anyhow::Result<RepoTree> {
    load_local_reading(root, limits, false)
}

/// [`load_local`], also reading the READMEs learned detection fingerprints (after the
/// manifests, within the same limits).
pub fn load_local_learned(root: &Path, limits: &Limits) -> anyhow::Result<RepoTree> {
    load_local_reading(root, limits, true)
}

fn load_local_reading(root: &Path, limits: &Limits, learned: bool) -> anyhow::Result<RepoTree> {
    anyhow::ensure!(root.is_dir(), "{} is not a directory", root.display());
    let mut paths = Vec::new();
    let mut truncated = false;
    let mut symlinks = 0usize;
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .follow_links(false)
        .git_ignore(true)
        .git_exclude(false)
        .git_global(false)
        .require_git(false)
        .parents(false)
        .filter_entry(|e| {
            let skip = e.file_type().is_some_and(|t| t.is_dir())
                && e.file_name()
                    .to_str()
                    .is_some_and(|n| SKIP_DIRS.contains(&n));
            !skip
        })
        .build();
    for entry in walker {
        let Ok(entry) = entry else { continue };
        let Some(ft) = entry.file_type() else {
            continue;
        };
        if ft.is_symlink() {
            symlinks += 1;
            continue;
        }
        if !ft.is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel.to_str() else { continue };
        if paths.len() >= limits.max_files {
            truncated = true;
            break;
        }
        paths.push(rel.replace('\\', "/"));
    }
    let mut tree = RepoTree::from_paths(paths);
    if truncated {
        tree.warn(format!(
            "listing stopped at {} files; the rest of the repository was not examined",
            limits.max_files
        ));
    }
    if symlinks > 0 {
        tree.warn(format!("{symlinks} symbolic link(s) not followed"));
    }
    let listed: Vec<&str> = tree.files.iter().map(String::as_str).collect();
    let mut wanted = super::files_to_read(&listed);
    if learned {
        wanted.extend(super::fingerprint::learned_files_to_read(&listed));
    }
    let mut total = 0u64;
    let mut read = 0usize;
    for path in wanted {
        if read >= limits.max_files_read || total >= limits.max_total_bytes {
            tree.warn(format!(
                "read limit reached ({read} files, {total} bytes); later manifests skipped"
            ));
            break;
        }
        let full = root.join(&path);
        // symlink_metadata: a file replaced by a symlink since listing is still not followed.
        match std::fs::symlink_metadata(&full) {
            Ok(m) if !m.is_file() => continue,
            Ok(m) if m.len() > limits.max_file_bytes => {
                tree.insert_unread(&path, Content::TooLarge(m.len()));
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tree.insert_unread(&path, Content::Unreadable(e.to_string()));
                continue;
            }
        }
        match std::fs::read(&full) {
            Ok(bytes) => {
                total += bytes.len() as u64;
                read += 1;
                tree.insert_content(&path, &bytes);
            }
            Err(e) => tree.insert_unread(&path, Content::Unreadable(e.to_string())),
        }
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_drops_dependency_dirs_and_walks_children() {
        let t = RepoTree::from_paths([
            "a/b.txt",
            "a/c/d.txt",
            "node_modules/x/package.json",
            "Cargo.toml",
            "a/../etc/passwd",
            "",
        ]);
        assert_eq!(t.files(), ["Cargo.toml", "a/b.txt", "a/c/d.txt"]);
        assert_eq!(t.children("").collect::<Vec<_>>(), ["Cargo.toml"]);
        assert_eq!(t.children("a").collect::<Vec<_>>(), ["a/b.txt"]);
        assert_eq!(t.under("a").count(), 2);
        assert!(t.has("a/c/d.txt") && !t.has("a/c"));
    }

    #[test]
    fn binary_and_invalid_utf8_are_warned_about() {
        let mut t = RepoTree::from_paths(["x", "y"]);
        t.insert_content("x", b"\x00\x01ELF");
        t.insert_content("y", b"name = \"\xff\"");
        assert_eq!(t.text("x"), None);
        assert_eq!(t.text("y"), Some("name = \"\u{fffd}\""));
        assert_eq!(t.warnings().len(), 2);
    }
}
