//! The body of pipewright's pull request. The bot owns only the region between two
//! hidden markers and rewrites only that region, so text people add above or below it
//! survives every update. The region ends with the bot's state for the PR (the files it
//! proposed and a hash of their content), base64 in an HTML comment, so the truth
//! survives a lost database and cannot be broken by repository data.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::wording::Words;
use crate::analyze::Analysis;
use crate::forge::Forge;
use crate::generate::{GeneratedFile, Provider};

/// Start of the bot's region.
pub const BEGIN: &str = "<!-- pipewright:begin -->";
/// End of the bot's region.
pub const END: &str = "<!-- pipewright:end -->";
const STATE_OPEN: &str = "<!-- pipewright:state ";
const STATE_CLOSE: &str = " -->";
/// Version of the state format (bump on incompatible changes).
pub const STATE_VERSION: u32 = 1;

/// What pipewright proposed in a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrState {
    /// State format version.
    pub version: u32,
    /// CI provider of the proposal.
    pub provider: Provider,
    /// Repository paths of the proposed files.
    pub files: Vec<String>,
    /// [`files_hash`] of the proposal.
    pub hash: String,
    /// Last commit pipewright wrote to the branch: a different branch tip means people
    /// committed to it, and pipewright must not overwrite their work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// The `head` at which pipewright told people it will not push over their commits
    /// (said once per takeover of the branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified: Option<String>,
}

/// SHA-256 over the files' paths and contents, in path order: equal proposals have equal
/// hashes, so an unchanged analysis does not touch the PR.
pub fn files_hash(files: &[GeneratedFile]) -> String {
    let mut sorted: Vec<&GeneratedFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut h = Sha256::new();
    for f in sorted {
        h.update(f.path.as_bytes());
        h.update([0]);
        h.update(f.content.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Repository text inside Markdown: no HTML, no table breaks, one line.
fn md(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '|' => "\\|".to_owned(),
            '`' => "'".to_owned(),
            '\n' | '\r' => " ".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// What a generated file does, in one line (the PR body and the `explain` command).
pub fn describe(path: &str) -> &'static str {
    if path.ends_with("/release.yml") {
        "publishes on `v*` tags and creates the release"
    } else if path.starts_with(".github/workflows/") {
        "runs lint, build and tests on pull requests and on pushes to the default branch"
    } else if path == ".gitlab-ci.yml" {
        "GitLab CI pipeline for merge requests and the default branch"
    } else if path == "bitbucket-pipelines.yml" {
        "Bitbucket Pipelines for pull requests and the default branch"
    } else {
        "generated for the detected stack"
    }
}

/// The bot's region: what was detected, what each file does, how to customise it, the
/// commands, and the hidden state, in `forge`'s words.
pub fn render(
    analysis: &Analysis,
    files: &[GeneratedFile],
    provider: Provider,
    forge: Forge,
    command_word: &str,
    head: Option<&str>,
) -> String {
    let state = PrState {
        version: STATE_VERSION,
        provider,
        files: files.iter().map(|f| f.path.clone()).collect(),
        hash: files_hash(files),
        head: head.map(str::to_owned),
        notified: None,
    };
    render_with_state(analysis, files, forge, command_word, &state)
}

/// Adds what a proposal learned from the organisation's own repositories to a rendered
/// region: the siblings (with their similarity) and what was adopted from them, before
/// the file list. A region without siblings is returned unchanged.
pub fn with_learned(region: String, siblings: &[(String, f32)], adopted: &[String]) -> String {
    use std::fmt::Write as _;
    if siblings.is_empty() {
        return region;
    }
    let mut section = String::from(
        "### Learned from this organisation

",
    );
    section.push_str(
        "The CI follows the conventions of the most similar repositories here that have CI:

",
    );
    for (name, sim) in siblings {
        let _ = writeln!(section, "- `{}` (similarity {sim:.2})", md(name));
    }
    if !adopted.is_empty() {
        section.push_str(
            "
Adopted: ",
        );
        section.push_str(&adopted.iter().map(|a| md(a)).collect::<Vec<_>>().join("; "));
        section.push_str(
            ".
",
        );
    }
    section.push('\n');
    match region.find("### Files") {
        Some(i) => format!("{}{section}{}", &region[..i], &region[i..]),
        None => region + &section,
    }
}

/// [`render`] with an explicit state.
pub fn render_with_state(
    analysis: &Analysis,
    files: &[GeneratedFile],
    forge: Forge,
    command_word: &str,
    state: &PrState,
) -> String {
    use std::fmt::Write as _;
    let w = Words(forge);
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    s.push_str("pipewright detected how this repository builds and proposes the CI it is missing.\n\n### What was detected\n\n");
    s.push_str("| project | language | package manager | frameworks | tests | versions | evidence |\n|---|---|---|---|---|---|---|\n");
    for p in &analysis.projects {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            md(&p.path),
            p.language,
            p.package_manager.map(|m| m.to_string()).unwrap_or_default(),
            p.frameworks
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            p.test_tool.map(|t| t.to_string()).unwrap_or_default(),
            md(&p.runtime_versions.join(", ")),
            md(&p.evidence.join(", ")),
        );
    }
    if analysis.projects.is_empty() {
        s.push_str("| (no project; Dockerfiles only) | | | | | | |\n");
    }
    let foreign: Vec<String> = analysis
        .foreign_ci()
        .filter(|c| c.kind == "ci")
        .map(|c| format!("`{}`", md(&c.path)))
        .collect();
    if !foreign.is_empty() {
        let _ = writeln!(
            s,
            "\n{} found too, but {forge_name} does not run {}, so this repository has no CI \
             here yet.",
            foreign.join(", "),
            if foreign.len() == 1 { "it" } else { "them" },
            forge_name = forge_name(forge),
        );
    }
    s.push_str("\n### Files\n\n");
    for f in files {
        let _ = writeln!(s, "- `{}`: {}", md(&f.path), describe(&f.path));
    }
    let _ = write!(
        s,
        "\nEvery action is pinned to a commit, the token is read-only, and credentials are not kept \
         in the checkout.\n\n### Customise\n\nAdd a `.pipewright.yml` (branches, features such as \
         `security`, `coverage` or `release`, extra steps, runner labels) and pipewright updates this \
         {pr}.\n\n### Commands\n\nComment on this {pr}:\n\n",
        pr = w.pr()
    );
    let regenerate = format!(
        "analyse the default branch again and update this {}",
        w.pr()
    );
    let ignore = format!("close this {} and never propose again", w.pr());
    for (cmd, what) in [
        ("help", "what pipewright can do here"),
        ("explain", "why each file looks the way it does"),
        ("regenerate", regenerate.as_str()),
        (
            "add security",
            "switch a feature on (also coverage, release, docker, matrix, lint)",
        ),
        ("remove lint", "switch a feature off"),
        ("ignore", ignore.as_str()),
    ] {
        let _ = writeln!(s, "- `/{command_word} {cmd}`: {what}");
    }
    let json = serde_json::to_vec(state).expect("the state serializes");
    let _ = writeln!(
        s,
        "\n{STATE_OPEN}{}{STATE_CLOSE}",
        base64::engine::general_purpose::STANDARD.encode(json)
    );
    s.push_str(END);
    s
}

/// The product name of a forge, for prose.
pub fn forge_name(forge: Forge) -> &'static str {
    match forge {
        Forge::Github => "GitHub",
        Forge::Gitlab => "GitLab",
        Forge::Bitbucket => "Bitbucket",
    }
}

/// The PR body with the bot's region replaced by `region`; everything outside it is kept.
/// A body without the region (a person removed it) gets the region on top.
pub fn merge(existing: Option<&str>, region: &str) -> String {
    let Some(body) = existing.filter(|b| !b.trim().is_empty()) else {
        return region.to_owned();
    };
    match (body.find(BEGIN), body.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{}{}", &body[..b], region, &body[e + END.len()..])
        }
        _ => format!("{region}\n\n{body}"),
    }
}

/// Replaces the state block of the bot's region in `body` (the rest is untouched).
pub fn replace_state(body: &str, state: &PrState) -> Option<String> {
    let b = body.find(BEGIN)?;
    let e = body[b..].find(END)? + b;
    let start = body[b..e].rfind(STATE_OPEN)? + b;
    let json = serde_json::to_vec(state).expect("the state serializes");
    Some(format!(
        "{}{STATE_OPEN}{}{STATE_CLOSE}\n{}",
        &body[..start],
        base64::engine::general_purpose::STANDARD.encode(json),
        &body[e..]
    ))
}

/// The bot's state from a PR body, if the region holds a valid one.
pub fn parse_state(body: &str) -> Option<PrState> {
    let b = body.find(BEGIN)?;
    let e = body[b..].find(END)? + b;
    let region = &body[b..e];
    let start = region.rfind(STATE_OPEN)? + STATE_OPEN.len();
    let encoded = region[start..].split(STATE_CLOSE).next()?.trim();
    let json = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    serde_json::from_slice::<PrState>(&json)
        .ok()
        .filter(|s| s.version == STATE_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_siblings_are_named_before_the_files_and_escaped() {
        let region = "intro\n### Files\n- x\n".to_owned();
        assert_eq!(with_learned(region.clone(), &[], &[]), region);
        let out = with_learned(
            region,
            &[("acme/lib-a".into(), 0.8123), ("acme/<b>|`c`".into(), 0.5)],
            &["runner labels self-hosted".into()],
        );
        let learned = out.find("### Learned from this organisation").unwrap();
        assert!(learned < out.find("### Files").unwrap());
        assert!(out.contains("- `acme/lib-a` (similarity 0.81)"), "{out}");
        assert!(out.contains("acme/&lt;b&gt;\\|'c'"), "{out}");
        assert!(out.contains("Adopted: runner labels self-hosted."));
    }
    use crate::analyze::{analyze, RepoTree};

    fn sample() -> (Analysis, Vec<GeneratedFile>) {
        let mut tree = RepoTree::from_paths([
            "Cargo.toml",
            "Cargo.lock",
            "weird <!-- pipewright:end --> |x`/package.json",
        ]);
        tree.insert_content(
            "Cargo.toml",
            b"[package]\nname = \"a\"\nversion = \"0.1.0\"\n",
        );
        tree.insert_content(
            "weird <!-- pipewright:end --> |x`/package.json",
            b"{\"scripts\": {\"test\": \"jest\"}}",
        );
        let files = vec![GeneratedFile {
            path: ".github/workflows/ci.yml".into(),
            content: "name: CI\n".into(),
        }];
        (analyze(&tree), files)
    }

    #[test]
    fn state_round_trips_and_hostile_paths_cannot_close_the_region() {
        let (a, files) = sample();
        let region = render(
            &a,
            &files,
            Provider::Github,
            Forge::Github,
            "pipewright",
            None,
        );
        assert_eq!(region.matches(END).count(), 1, "{region}");
        assert!(
            region.contains("&lt;!-- pipewright:end --&gt; \\|x'"),
            "{region}"
        );
        let state = parse_state(&region).unwrap();
        assert_eq!(state.files, [".github/workflows/ci.yml"]);
        assert_eq!(state.hash, files_hash(&files));
        assert!(region.contains("- `/pipewright regenerate`"));
    }

    #[test]
    fn only_the_region_is_rewritten() {
        let (a, files) = sample();
        let first = merge(
            None,
            &render(
                &a,
                &files,
                Provider::Github,
                Forge::Github,
                "pipewright",
                None,
            ),
        );
        let edited = format!("Thanks, bot!\n\n{first}\n\n> reviewer notes stay here");
        let changed = vec![GeneratedFile {
            path: ".github/workflows/ci.yml".into(),
            content: "name: CI2\n".into(),
        }];
        let updated = merge(
            Some(&edited),
            &render(
                &a,
                &changed,
                Provider::Github,
                Forge::Github,
                "pipewright",
                None,
            ),
        );
        assert!(
            updated.starts_with("Thanks, bot!\n\n")
                && updated.ends_with("> reviewer notes stay here")
        );
        assert_eq!(parse_state(&updated).unwrap().hash, files_hash(&changed));
        // A body whose region was deleted gets it back on top, the human text kept.
        let restored = merge(
            Some("just my text"),
            &render(
                &a,
                &files,
                Provider::Github,
                Forge::Github,
                "pipewright",
                None,
            ),
        );
        assert!(restored.starts_with(BEGIN) && restored.ends_with("just my text"));
    }

    #[test]
    fn the_body_speaks_each_forges_words() {
        let (a, _) = sample();
        let gitlab_files = vec![GeneratedFile {
            path: ".gitlab-ci.yml".into(),
            content: "stages: [test]\n".into(),
        }];
        let gitlab = render(
            &a,
            &gitlab_files,
            Provider::Gitlab,
            Forge::Gitlab,
            "pipewright",
            None,
        );
        assert!(
            gitlab.contains("Comment on this merge request:")
                && gitlab.contains("update this merge request"),
            "{gitlab}"
        );
        assert!(!gitlab.contains("pull request"), "{gitlab}");
        let (_, files) = sample();
        for forge in [Forge::Github, Forge::Bitbucket] {
            let body = render(&a, &files, Provider::Github, forge, "pipewright", None);
            assert!(body.contains("Comment on this pull request:"), "{body}");
            assert!(!body.contains("merge request"), "{body}");
        }
    }

    #[test]
    fn garbage_state_is_no_state() {
        for body in [
            "",
            "no markers",
            "<!-- pipewright:begin --><!-- pipewright:state !!! --><!-- pipewright:end -->",
            "<!-- pipewright:begin --><!-- pipewright:state e30= --><!-- pipewright:end -->",
            "<!-- pipewright:end --><!-- pipewright:state e30= --><!-- pipewright:begin -->",
        ] {
            assert_eq!(parse_state(body), None, "{body}");
        }
    }

    #[test]
    fn hash_ignores_order_but_not_content() {
        let a = GeneratedFile {
            path: "a".into(),
            content: "1".into(),
        };
        let b = GeneratedFile {
            path: "b".into(),
            content: "2".into(),
        };
        assert_eq!(
            files_hash(&[a.clone(), b.clone()]),
            files_hash(&[b.clone(), a.clone()])
        );
        let b2 = GeneratedFile {
            path: "b".into(),
            content: "3".into(),
        };
        assert_ne!(files_hash(&[a.clone(), b]), files_hash(&[a, b2]));
    }

    #[test]
    fn the_state_can_be_replaced_without_touching_the_rest() {
        let (a, files) = sample();
        let body = merge(
            Some("notes by a person"),
            &render(
                &a,
                &files,
                Provider::Github,
                Forge::Github,
                "pipewright",
                Some("abc"),
            ),
        );
        let mut st = parse_state(&body).unwrap();
        assert_eq!(st.head.as_deref(), Some("abc"));
        st.notified = Some("h2".into());
        let new = replace_state(&body, &st).unwrap();
        assert_eq!(parse_state(&new).unwrap(), st);
        assert!(new.ends_with("notes by a person"));
        assert!(replace_state("no region", &st).is_none());
    }
}
