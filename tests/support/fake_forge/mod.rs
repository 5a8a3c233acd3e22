//! A stateful, in-memory fake of the GitHub, GitLab and Bitbucket HTTP APIs, exactly as
//! pipewright's clients (`src/forge/*/client.rs`) use them, so end-to-end tests can drive
//! the bot against it.
//!
//! ```ignore
//! #[path = "support/fake_forge/mod.rs"]
//! mod fake_forge;
//! use fake_forge::{FakeForge, RepoSpec};
//!
//! let forge = FakeForge::github().await;          // or gitlab() / bitbucket()
//! let head = forge.world().add_repo(RepoSpec::new(1, "acme/app", "42").file("Cargo.toml", "…"));
//! // configure pipewright with `forge.url` (and `fake_forge::APP_ID` / `forge.token()`), run it…
//! assert_eq!(forge.world().prs("acme/app").len(), 1);
//! forge.stop();
//! ```
//!
//! One [`World`] per server holds git-like state per repository (commits with full trees,
//! branches, pull requests, issues, comments, reactions, permissions), the request log and
//! injected faults. Each forge module (`github.rs`, `gitlab.rs`, `bitbucket.rs`) answers
//! with the real API's status codes, shapes and error messages, and refuses what the real
//! API refuses (auth, body validation, unknown objects, duplicate refs and PRs, non
//! fast-forward updates, workflow files without `workflows: write`, …).
//!
//! Credentials: GitHub verifies the App JWT (RS256, `tests/data/keys/test-app.pub.pem`,
//! `iss` = [`APP_ID`]) and issues installation tokens; GitLab wants `PRIVATE-TOKEN:`
//! [`GITLAB_TOKEN`]; Bitbucket wants `Authorization: Bearer` [`BITBUCKET_TOKEN`].
#![allow(dead_code)]

mod bitbucket;
mod ci;
mod github;
mod gitlab;
mod oauth;

pub use oauth::OAuthWorld;

#[allow(unused_imports)] // not every test binary uses every helper
pub use ci::{CiJob, CiRun, JobSpec, JobState};

#[allow(unused_imports)] // not every test binary uses every helper
pub use bitbucket::{account_id as bitbucket_account_id, uuid_of as bitbucket_uuid};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// GitHub App id the fake expects as the JWT issuer.
pub const APP_ID: u64 = 4242;
/// GitLab token the fake accepts (`PRIVATE-TOKEN`).
pub const GITLAB_TOKEN: &str = "glpat-fake-forge-token";
/// Bitbucket workspace access token the fake accepts (Bearer).
pub const BITBUCKET_TOKEN: &str = "bb-fake-forge-token";
/// Atlassian account e-mail the fake expects with a Bitbucket API token (Basic auth).
pub const BITBUCKET_EMAIL: &str = "pipewright-bot@example.com";
/// Start of the fake's logical clock (2023-11-14T22:13:20Z), in seconds.
pub const T0_SECS: i64 = 1_700_000_000;

/// The App's private key (PEM), for `GithubAppConfig::private_key`.
pub fn app_private_key() -> String {
    read_key("test-app.pem")
}

fn read_key(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("tests/data/keys is part of the repository")
}

/// Which forge a fake server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// GitHub REST v3 + GraphQL.
    Github,
    /// GitLab REST v4.
    Gitlab,
    /// Bitbucket Cloud REST 2.0.
    Bitbucket,
}

// ---------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------

/// A repository to create with [`World::add_repo`].
#[derive(Debug, Clone)]
pub struct RepoSpec {
    /// Numeric id (GitHub id, GitLab project id; Bitbucket derives its `{uuid}` from it).
    pub id: u64,
    /// `owner/name` (GitLab: full path with subgroups; Bitbucket: `workspace/slug`).
    pub full_name: String,
    /// GitHub installation id, GitLab top-level group path, Bitbucket workspace slug.
    pub tenant: String,
    /// Default branch; `None` makes an empty repository (no commits).
    pub default_branch: Option<String>,
    /// Files of the initial commit.
    pub files: Vec<(String, String)>,
    /// Archived (read-only).
    pub archived: bool,
    /// A fork.
    pub fork: bool,
    /// Private.
    pub private: bool,
}

impl RepoSpec {
    /// A repository with branch `main` and one `README.md`.
    pub fn new(id: u64, full_name: &str, tenant: &str) -> RepoSpec {
        RepoSpec {
            id,
            full_name: full_name.to_owned(),
            tenant: tenant.to_owned(),
            default_branch: Some("main".into()),
            files: vec![("README.md".into(), format!("# {full_name}\n"))],
            archived: false,
            fork: false,
            private: true,
        }
    }

    /// Adds a file to the initial commit.
    pub fn file(mut self, path: &str, content: &str) -> RepoSpec {
        self.files.push((path.to_owned(), content.to_owned()));
        self
    }

    /// No commits at all.
    pub fn empty(mut self) -> RepoSpec {
        self.default_branch = None;
        self.files.clear();
        self
    }
}

/// A commit: a full snapshot of the files plus its parents.
#[derive(Debug, Clone)]
pub struct Commit {
    /// 40 hex characters.
    pub sha: String,
    /// Hash of the tree (GitHub exposes it).
    pub tree_sha: String,
    /// Path → content.
    pub tree: BTreeMap<String, String>,
    /// Parent shas, first parent first.
    pub parents: Vec<String>,
    /// Login of the author.
    pub author: String,
    /// Message.
    pub message: String,
    /// Seconds since the epoch (logical clock).
    pub time: i64,
}

/// State of a pull / merge request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    /// Open.
    Open,
    /// Closed without merging (Bitbucket: DECLINED).
    Closed,
    /// Merged.
    Merged,
}

/// A pull request (GitLab merge request).
#[derive(Debug, Clone)]
pub struct Pr {
    /// Number (GitLab iid).
    pub number: u64,
    /// Forge-wide id.
    pub global_id: u64,
    /// Source branch.
    pub head: String,
    /// Target branch.
    pub base: String,
    /// Title.
    pub title: String,
    /// Body / description.
    pub body: String,
    /// State.
    pub state: PrState,
    /// Tip of `head` (follows the branch while open, frozen once closed).
    pub head_sha: String,
    /// Who opened it.
    pub author: String,
    /// Created, seconds.
    pub created: i64,
    /// Updated, seconds.
    pub updated: i64,
    /// Closed or merged, seconds.
    pub closed: Option<i64>,
    /// Delete the branch on merge (GitLab `remove_source_branch`, Bitbucket
    /// `close_source_branch`).
    pub remove_source_branch: bool,
}

/// A comment (GitLab note) on a pull request or an issue.
#[derive(Debug, Clone)]
pub struct CommentRec {
    /// Forge-wide id.
    pub id: u64,
    /// PR or issue number.
    pub number: u64,
    /// On a pull request (else an issue).
    pub on_pr: bool,
    /// Markdown.
    pub body: String,
    /// Login.
    pub author: String,
    /// Seconds.
    pub created: i64,
}

/// An issue.
#[derive(Debug, Clone)]
pub struct Issue {
    /// Number.
    pub number: u64,
    /// Title.
    pub title: String,
    /// Author.
    pub author: String,
}

/// One repository's state.
#[derive(Debug, Clone)]
pub struct Repo {
    /// Numeric id.
    pub id: u64,
    /// `owner/name`.
    pub full_name: String,
    /// Installation / top-level group / workspace.
    pub tenant: String,
    /// Default branch (`None` until the first push of an empty repository).
    pub default_branch: Option<String>,
    /// Archived.
    pub archived: bool,
    /// Fork.
    pub fork: bool,
    /// Private.
    pub private: bool,
    /// Every commit by sha.
    pub commits: HashMap<String, Commit>,
    /// Trees by tree sha (GitHub's `POST /git/trees` makes them before any commit).
    pub trees: HashMap<String, BTreeMap<String, String>>,
    /// Blobs by sha.
    pub blobs: HashMap<String, String>,
    /// Branch → tip.
    pub branches: BTreeMap<String, String>,
    /// Tag → commit (lightweight tags).
    pub tags: BTreeMap<String, String>,
    /// Pull requests in creation order.
    pub prs: Vec<Pr>,
    /// Issues.
    pub issues: Vec<Issue>,
    /// Comments in creation order.
    pub comments: Vec<CommentRec>,
    /// Comment id → (user, reaction) in order.
    pub reactions: BTreeMap<u64, Vec<(String, String)>>,
    /// User → permission level (forge-specific string).
    pub permissions: BTreeMap<String, String>,
    /// Created, seconds.
    pub created: i64,
    /// Last push, seconds.
    pub pushed: Option<i64>,
    /// CI secrets and variables by (scope, name): scope `repository` on GitHub, `*` (the
    /// environment scope) on GitLab, the deployment environment's UUID on Bitbucket. The
    /// value is the plaintext the forge's runners would see (GitHub's after the fake
    /// opened the sealed box with its key).
    pub ci_vars: BTreeMap<(String, String), CiVar>,
    /// GitHub: the repository's Actions secrets key pair (key id, secret, public; base64).
    pub secrets_key: (String, String, String),
    next_pr: u64,
    next_issue: u64,
}

/// A CI secret or variable as the forge holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiVar {
    /// The value runners see.
    pub value: String,
    /// GitLab: protected; Bitbucket: (unused).
    pub protected: bool,
    /// GitLab: masked; Bitbucket: secured; GitHub: always.
    pub masked: bool,
    /// Bitbucket: the variable's UUID.
    pub uuid: String,
}

impl Repo {
    /// Owner (first path segment).
    pub fn owner(&self) -> &str {
        self.full_name.split('/').next().unwrap_or_default()
    }

    /// Last path segment.
    pub fn name(&self) -> &str {
        self.full_name.rsplit('/').next().unwrap_or_default()
    }

    /// Has no commits.
    pub fn is_empty(&self) -> bool {
        self.branches.is_empty()
    }

    /// A branch name, full sha or unique sha prefix (≥ 7) → commit sha.
    pub fn resolve(&self, rev: &str) -> Option<String> {
        if let Some(sha) = self.branches.get(rev) {
            return Some(sha.clone());
        }
        if self.commits.contains_key(rev) {
            return Some(rev.to_owned());
        }
        if rev.len() >= 7 && rev.bytes().all(|c| c.is_ascii_hexdigit()) {
            let mut found = self.commits.keys().filter(|k| k.starts_with(rev));
            if let (Some(one), None) = (found.next(), found.next()) {
                return Some(one.clone());
            }
        }
        None
    }

    /// `anc` is `desc` or one of its ancestors.
    pub fn is_ancestor(&self, anc: &str, desc: &str) -> bool {
        let mut seen = HashSet::new();
        let mut stack = vec![desc.to_owned()];
        while let Some(s) = stack.pop() {
            if s == anc {
                return true;
            }
            if !seen.insert(s.clone()) {
                continue;
            }
            if let Some(c) = self.commits.get(&s) {
                stack.extend(c.parents.iter().cloned());
            }
        }
        false
    }

    /// Every commit reachable from some branch.
    fn reachable(&self) -> HashSet<String> {
        let mut seen = HashSet::new();
        let mut stack: Vec<String> = self.branches.values().cloned().collect();
        while let Some(s) = stack.pop() {
            if seen.insert(s.clone()) {
                if let Some(c) = self.commits.get(&s) {
                    stack.extend(c.parents.iter().cloned());
                }
            }
        }
        seen
    }

    /// Paths changed by commits reachable from `sha` that no branch contains yet
    /// (what a push of `sha` would bring in).
    pub fn new_changes(&self, sha: &str) -> BTreeSet<String> {
        let known = self.reachable();
        let mut out = BTreeSet::new();
        let mut seen = HashSet::new();
        let mut stack = vec![sha.to_owned()];
        while let Some(s) = stack.pop() {
            if known.contains(&s) || !seen.insert(s.clone()) {
                continue;
            }
            let Some(c) = self.commits.get(&s) else {
                continue;
            };
            let empty = BTreeMap::new();
            let before = c
                .parents
                .first()
                .and_then(|p| self.commits.get(p))
                .map(|p| &p.tree)
                .unwrap_or(&empty);
            out.extend(diff_paths(before, &c.tree));
            stack.extend(c.parents.iter().cloned());
        }
        out
    }

    /// Moves a branch, and the head of the open pull requests from it.
    pub fn set_branch(&mut self, branch: &str, sha: &str) {
        self.branches.insert(branch.to_owned(), sha.to_owned());
        for pr in &mut self.prs {
            if pr.state == PrState::Open && pr.head == branch {
                pr.head_sha = sha.to_owned();
            }
        }
        if self.default_branch.is_none() {
            self.default_branch = Some(branch.to_owned());
        }
    }

    /// Stores a tree (and its blobs); returns its sha.
    pub fn store_tree(&mut self, tree: BTreeMap<String, String>) -> String {
        let sha = tree_sha(&tree);
        for content in tree.values() {
            self.blobs.insert(blob_sha(content), content.clone());
        }
        self.trees.entry(sha.clone()).or_insert(tree);
        sha
    }

    /// Creates a commit (not on any branch yet).
    pub fn make_commit(
        &mut self,
        tree: BTreeMap<String, String>,
        parents: Vec<String>,
        author: &str,
        message: &str,
        time: i64,
    ) -> String {
        let tree_sha = self.store_tree(tree.clone());
        let seed = format!(
            "commit\0{tree_sha}\0{}\0{author}\0{message}\0{time}\0{}",
            parents.join(","),
            self.commits.len()
        );
        let sha = hex40(seed.as_bytes());
        self.commits.insert(
            sha.clone(),
            Commit {
                sha: sha.clone(),
                tree_sha,
                tree,
                parents,
                author: author.to_owned(),
                message: message.to_owned(),
                time,
            },
        );
        sha
    }

    /// The files of a commit (or branch).
    pub fn tree_of(&self, rev: &str) -> Option<&BTreeMap<String, String>> {
        let sha = self.resolve(rev)?;
        self.commits.get(&sha).map(|c| &c.tree)
    }

    /// A pull request by number.
    pub fn pr(&self, number: u64) -> Option<&Pr> {
        self.prs.iter().find(|p| p.number == number)
    }

    /// A pull request by number, mutable.
    pub fn pr_mut(&mut self, number: u64) -> Option<&mut Pr> {
        self.prs.iter_mut().find(|p| p.number == number)
    }

    /// The next PR number (GitHub shares it with issues).
    fn take_pr_number(&mut self, kind: Kind) -> u64 {
        if kind == Kind::Github {
            let n = self.next_pr.max(self.next_issue);
            self.next_pr = n + 1;
            self.next_issue = n + 1;
            n
        } else {
            self.next_pr += 1;
            self.next_pr - 1
        }
    }

    fn take_issue_number(&mut self, kind: Kind) -> u64 {
        if kind == Kind::Github {
            self.take_pr_number(kind)
        } else {
            self.next_issue += 1;
            self.next_issue - 1
        }
    }
}

/// Paths whose content differs between two trees.
pub fn diff_paths(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = a
        .iter()
        .filter(|(p, c)| b.get(*p) != Some(*c))
        .map(|(p, _)| p.clone())
        .collect();
    out.extend(b.keys().filter(|p| !a.contains_key(*p)).cloned());
    out
}

/// A request as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRec {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path as sent (percent-encoded).
    pub path: String,
    /// Query string as sent (without `?`).
    pub query: String,
}

/// An injected answer (see [`World::fail_next`]).
#[derive(Debug, Clone)]
pub struct Fault {
    /// Method to match (`*` for any).
    pub method: String,
    /// Substring of `path?query` to match.
    pub path_contains: String,
    /// Status to answer.
    pub status: u16,
    /// Headers to answer.
    pub headers: Vec<(String, String)>,
    /// Body to answer.
    pub body: String,
}

/// What kind of Bitbucket credential [`World::token`] is: access tokens authenticate
/// with `Authorization: Bearer` and carry the classic scopes (`repository:write`, …);
/// Atlassian API tokens are a user's, sent as Basic auth with the account's e-mail, and
/// carry granular scopes (`write:repository:bitbucket`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BbCredential {
    /// A workspace access token (may manage workspace webhooks).
    Workspace,
    /// A project access token (no workspace webhooks: only workspace owners manage them).
    Project,
    /// A repository access token (likewise).
    Repository,
    /// An Atlassian API token of a workspace owner, with [`BITBUCKET_EMAIL`].
    ApiToken,
}

/// A webhook registered through the API.
#[derive(Debug, Clone)]
pub struct HookRec {
    /// Forge id.
    pub id: u64,
    /// Where deliveries go.
    pub url: String,
    /// Secret token / signing secret.
    pub secret: String,
    /// Subscribed events.
    pub events: Vec<String>,
}

/// A request held by [`World::hold_next`].
#[derive(Debug, Clone)]
pub struct Hold {
    method: String,
    path_contains: String,
    /// The request has arrived (and is waiting).
    pub arrived: Arc<std::sync::atomic::AtomicBool>,
    /// Set to let it proceed.
    pub release: Arc<std::sync::atomic::AtomicBool>,
}

/// Everything one fake server knows. Lock it through [`FakeForge::world`].
#[derive(Debug)]
pub struct World {
    /// Which API this world is served as.
    pub kind: Kind,
    /// `http://127.0.0.1:PORT` (no path).
    pub base_url: String,
    /// Repositories.
    pub repos: Vec<Repo>,
    /// GitHub: App id expected as JWT issuer.
    pub app_id: u64,
    /// GitHub: installation id → granted `workflows: write`.
    pub installations: BTreeMap<String, bool>,
    /// GitHub: issued installation token → installation id.
    pub tokens: BTreeMap<String, String>,
    /// Login the bot acts as (GitHub `<slug>[bot]`, GitLab/Bitbucket bot user).
    pub bot_login: String,
    /// GitLab `PRIVATE-TOKEN` / Bitbucket Bearer token accepted.
    pub token: String,
    /// Bitbucket: the kind of credential `token` is.
    pub bb_credential: BbCredential,
    /// Bitbucket: the scopes `token` was granted; `None` grants every scope (tests that
    /// are not about scopes). Enforced per endpoint and per webhook event, as Bitbucket
    /// does (403 "Your credentials lack one or more required privilege scopes.").
    pub token_scopes: Option<BTreeSet<String>>,
    /// Users the forge knows (besides those with a permission).
    pub users: BTreeSet<String>,
    /// Client behaviour the fake accepted although it is unusual (e.g. RFC 5987
    /// multipart names); tests may assert it stays empty.
    pub quirks: Vec<String>,
    /// Webhooks registered through the API: GitLab per project (key: project id),
    /// Bitbucket per workspace (key: slug) and per repository (key: `workspace/slug`).
    pub hooks: BTreeMap<String, Vec<HookRec>>,
    /// CI runs, jobs and logs (`ci.rs`).
    pub ci: ci::Ci,
    /// Sign-in with the forge (OAuth clients, users, roles) and the App manifest flow.
    pub oauth: OAuthWorld,
    log: Vec<RequestRec>,
    faults: Vec<Fault>,
    holds: Vec<Hold>,
    clock: i64,
    next_global: u64,
}

impl World {
    fn new(kind: Kind) -> World {
        World {
            kind,
            base_url: String::new(),
            repos: Vec::new(),
            app_id: APP_ID,
            installations: BTreeMap::new(),
            tokens: BTreeMap::new(),
            bot_login: match kind {
                Kind::Github => "pipewright[bot]".into(),
                Kind::Gitlab | Kind::Bitbucket => "pipewright-bot".into(),
            },
            token: match kind {
                Kind::Github => String::new(),
                Kind::Gitlab => GITLAB_TOKEN.into(),
                Kind::Bitbucket => BITBUCKET_TOKEN.into(),
            },
            bb_credential: BbCredential::Workspace,
            token_scopes: None,
            users: BTreeSet::new(),
            quirks: Vec::new(),
            hooks: BTreeMap::new(),
            ci: ci::Ci::default(),
            oauth: OAuthWorld::default(),
            log: Vec::new(),
            faults: Vec::new(),
            holds: Vec::new(),
            clock: T0_SECS,
            next_global: 1000,
        }
    }

    /// Advances the logical clock by one second and returns it.
    pub fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    /// The logical clock, seconds since the epoch.
    pub fn now(&self) -> i64 {
        self.clock
    }

    fn next_id(&mut self) -> u64 {
        self.next_global += 1;
        self.next_global
    }

    /// A repository by `owner/name` (case-insensitive).
    pub fn repo(&self, full_name: &str) -> Option<&Repo> {
        self.repos
            .iter()
            .find(|r| r.full_name.eq_ignore_ascii_case(full_name))
    }

    /// A repository by `owner/name`, mutable.
    pub fn repo_mut(&mut self, full_name: &str) -> Option<&mut Repo> {
        self.repos
            .iter_mut()
            .find(|r| r.full_name.eq_ignore_ascii_case(full_name))
    }

    fn must(&mut self, full_name: &str) -> &mut Repo {
        self.repo_mut(full_name)
            .unwrap_or_else(|| panic!("fake forge has no repository {full_name}"))
    }

    /// Creates a repository; returns the head of its default branch ("" when empty).
    /// On GitHub the tenant becomes a known installation (with `workflows: write`).
    pub fn add_repo(&mut self, spec: RepoSpec) -> String {
        assert!(
            self.repo(&spec.full_name).is_none(),
            "{} exists",
            spec.full_name
        );
        if self.kind == Kind::Github {
            self.installations
                .entry(spec.tenant.clone())
                .or_insert(true);
        }
        let now = self.tick();
        let mut repo = Repo {
            id: spec.id,
            full_name: spec.full_name,
            tenant: spec.tenant,
            default_branch: None,
            archived: spec.archived,
            fork: spec.fork,
            private: spec.private,
            commits: HashMap::new(),
            trees: HashMap::new(),
            blobs: HashMap::new(),
            branches: BTreeMap::new(),
            tags: BTreeMap::new(),
            prs: Vec::new(),
            issues: Vec::new(),
            comments: Vec::new(),
            reactions: BTreeMap::new(),
            permissions: BTreeMap::new(),
            created: now,
            pushed: None,
            ci_vars: BTreeMap::new(),
            secrets_key: {
                let (sk, pk) = pipewright::crypto::generate_box_keypair();
                (
                    format!("{}", 3380204578043523366u64.wrapping_add(spec.id)),
                    sk,
                    pk,
                )
            },
            next_pr: 1,
            next_issue: 1,
        };
        let mut head = String::new();
        if let Some(branch) = spec.default_branch {
            let tree: BTreeMap<String, String> = spec.files.into_iter().collect();
            head = repo.make_commit(tree, Vec::new(), "alice", "Initial commit", now);
            repo.set_branch(&branch, &head);
            repo.pushed = Some(now);
        }
        self.repos.push(repo);
        head
    }

    /// A commit by a person on top of `branch` (created from the default branch if
    /// missing; the first push of an empty repository makes it the default). `None`
    /// content deletes a file. Returns the new tip.
    pub fn push(
        &mut self,
        full_name: &str,
        branch: &str,
        files: &[(&str, Option<&str>)],
        author: &str,
    ) -> String {
        let now = self.tick();
        self.users.insert(author.to_owned());
        let repo = self.must(full_name);
        let parent = repo.branches.get(branch).cloned().or_else(|| {
            repo.default_branch
                .as_ref()
                .and_then(|d| repo.branches.get(d).cloned())
        });
        let mut tree = parent
            .as_ref()
            .and_then(|p| repo.commits.get(p))
            .map(|c| c.tree.clone())
            .unwrap_or_default();
        for (path, content) in files {
            match content {
                Some(c) => tree.insert((*path).to_owned(), (*c).to_owned()),
                None => tree.remove(*path),
            };
        }
        let msg = format!("Update {}", files.first().map(|f| f.0).unwrap_or("files"));
        let sha = repo.make_commit(tree, parent.into_iter().collect(), author, &msg, now);
        repo.set_branch(branch, &sha);
        repo.pushed = Some(now);
        sha
    }

    /// Deletes a branch (as a person would).
    pub fn delete_branch(&mut self, full_name: &str, branch: &str) {
        self.must(full_name).branches.remove(branch);
    }

    /// Opens a pull request as a person; returns its number.
    pub fn open_pr(&mut self, full_name: &str, head: &str, base: &str, title: &str) -> u64 {
        let now = self.tick();
        let gid = self.next_id();
        let kind = self.kind;
        let repo = self.must(full_name);
        let head_sha = repo.branches.get(head).cloned().unwrap_or_default();
        let number = repo.take_pr_number(kind);
        repo.prs.push(Pr {
            number,
            global_id: gid,
            head: head.to_owned(),
            base: base.to_owned(),
            title: title.to_owned(),
            body: String::new(),
            state: PrState::Open,
            head_sha,
            author: "alice".into(),
            created: now,
            updated: now,
            closed: None,
            remove_source_branch: false,
        });
        number
    }

    /// Closes (or merges) a pull request as a person. Merging fast-forwards the base
    /// branch to a merge commit with the head's files.
    pub fn close_pr(&mut self, full_name: &str, number: u64, merged: bool) {
        let now = self.tick();
        let repo = self.must(full_name);
        let pr = repo
            .pr(number)
            .unwrap_or_else(|| panic!("no PR {number}"))
            .clone();
        if merged {
            if let (Some(base_tip), Some(head_commit)) = (
                repo.branches.get(&pr.base).cloned(),
                repo.commits.get(&pr.head_sha).cloned(),
            ) {
                let sha = repo.make_commit(
                    head_commit.tree.clone(),
                    vec![base_tip, pr.head_sha.clone()],
                    "alice",
                    &format!("Merge pull request #{number}"),
                    now,
                );
                repo.set_branch(&pr.base, &sha);
            }
        }
        let p = repo.pr_mut(number).expect("checked above");
        p.state = if merged {
            PrState::Merged
        } else {
            PrState::Closed
        };
        p.closed = Some(now);
        p.updated = now;
        if merged && p.remove_source_branch {
            let head = p.head.clone();
            repo.branches.remove(&head);
        }
    }

    /// Pull requests of a repository, in creation order.
    pub fn prs(&self, full_name: &str) -> Vec<Pr> {
        self.repo(full_name)
            .map(|r| r.prs.clone())
            .unwrap_or_default()
    }

    /// A file's content at a branch tip (or commit).
    pub fn file(&self, full_name: &str, branch: &str, path: &str) -> Option<String> {
        self.repo(full_name)?.tree_of(branch)?.get(path).cloned()
    }

    /// Tip of a branch.
    pub fn branch_head(&self, full_name: &str, branch: &str) -> Option<String> {
        self.repo(full_name)?.branches.get(branch).cloned()
    }

    /// Commits of a branch, newest first, following first parents.
    pub fn commits(&self, full_name: &str, branch: &str) -> Vec<Commit> {
        let Some(repo) = self.repo(full_name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut cur = repo.branches.get(branch).cloned();
        while let Some(sha) = cur {
            let Some(c) = repo.commits.get(&sha) else {
                break;
            };
            cur = c.parents.first().cloned();
            out.push(c.clone());
        }
        out
    }

    /// Comments on a pull request (`on_pr`) or an issue, oldest first (GitLab and
    /// Bitbucket number them separately, so `!1` and `#1` can both exist).
    pub fn comments_on(&self, full_name: &str, number: u64, on_pr: bool) -> Vec<CommentRec> {
        self.comments(full_name, number)
            .into_iter()
            .filter(|c| c.on_pr == on_pr)
            .collect()
    }

    /// Comments on a PR or issue number (both, where the forge numbers them
    /// separately), oldest first.
    pub fn comments(&self, full_name: &str, number: u64) -> Vec<CommentRec> {
        self.repo(full_name)
            .map(|r| {
                r.comments
                    .iter()
                    .filter(|c| c.number == number)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Reactions (GitHub `content`, GitLab emoji name) on a comment, oldest first.
    pub fn reactions(&self, full_name: &str, comment_id: &str) -> Vec<String> {
        let Ok(id) = comment_id.parse::<u64>() else {
            return Vec::new();
        };
        self.repo(full_name)
            .and_then(|r| r.reactions.get(&id))
            .map(|v| v.iter().map(|(_, c)| c.clone()).collect())
            .unwrap_or_default()
    }

    /// Opens an issue as a person; returns its number.
    pub fn add_issue(&mut self, full_name: &str, title: &str) -> u64 {
        let kind = self.kind;
        let repo = self.must(full_name);
        let number = repo.take_issue_number(kind);
        repo.issues.push(Issue {
            number,
            title: title.to_owned(),
            author: "alice".into(),
        });
        number
    }

    /// A person's comment on a PR or issue (something for the bot to react to); returns its id.
    pub fn add_comment(
        &mut self,
        full_name: &str,
        number: u64,
        body: &str,
        author: &str,
    ) -> String {
        let now = self.tick();
        let id = self.next_id();
        self.users.insert(author.to_owned());
        let repo = self.must(full_name);
        let on_pr = repo.pr(number).is_some();
        repo.comments.push(CommentRec {
            id,
            number,
            on_pr,
            body: body.to_owned(),
            author: author.to_owned(),
            created: now,
        });
        id.to_string()
    }

    /// Sets what `user` may do. GitHub: `admin`/`maintain`/`write`/`triage`/`read`;
    /// GitLab: numeric access level (`"30"`); Bitbucket: `admin`/`write`/`read`.
    pub fn set_permission(&mut self, full_name: &str, user: &str, level: &str) {
        self.users.insert(user.to_owned());
        self.must(full_name)
            .permissions
            .insert(user.to_owned(), level.to_owned());
    }

    /// Bitbucket: the credential is a `kind` token granted exactly `scopes` (classic
    /// names for access tokens, `…:bitbucket` names for API tokens).
    pub fn set_bitbucket_credential(&mut self, kind: BbCredential, scopes: &[&str]) {
        self.bb_credential = kind;
        self.token_scopes = Some(scopes.iter().map(|s| (*s).to_owned()).collect());
    }

    /// The next request whose method matches (`*` = any) and whose `path?query` contains
    /// `path_contains` gets this answer instead, once. Checked before authentication.
    pub fn fail_next(
        &mut self,
        method: &str,
        path_contains: &str,
        status: u16,
        headers: Vec<(String, String)>,
        body: &str,
    ) {
        self.faults.push(Fault {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            status,
            headers,
            body: body.to_owned(),
        });
    }

    /// The forge's real rate-limit answer for the next matching request; the limit resets
    /// at `reset_secs` (epoch seconds), `now_secs` being the client's current time.
    pub fn rate_limit_next(
        &mut self,
        method: &str,
        path_contains: &str,
        reset_secs: i64,
        now_secs: i64,
    ) {
        let (status, headers, body) = rate_limit_answer(self.kind, reset_secs, now_secs);
        self.fail_next(method, path_contains, status, headers, &body);
    }

    /// Requests so far, as `"GET /path"` lines (no query), in order.
    pub fn requests(&self) -> Vec<String> {
        self.log
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Requests so far with their query strings.
    pub fn request_log(&self) -> Vec<RequestRec> {
        self.log.clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&mut self) {
        self.log.clear();
    }

    /// GitHub: whether installation tokens grant `workflows: write`. Without it, a ref
    /// create/update bringing in `.github/workflows/` changes is refused as GitHub does.
    /// Tokens already issued keep the permissions they were issued with.
    pub fn set_workflows_permission(&mut self, installation: &str, write: bool) {
        self.installations.insert(installation.to_owned(), write);
    }

    /// The next request matching `method` (`*` = any) and `path_contains` is held before
    /// it is processed: `arrived` turns true when it comes in, and it proceeds once the
    /// test sets `release`. For killing a client mid-request.
    pub fn hold_next(&mut self, method: &str, path_contains: &str) -> Hold {
        let h = Hold {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            arrived: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            release: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        self.holds.push(h.clone());
        h
    }

    fn take_hold(&mut self, method: &str, target: &str) -> Option<Hold> {
        let i = self.holds.iter().position(|h| {
            (h.method == "*" || h.method.eq_ignore_ascii_case(method))
                && target.contains(&h.path_contains)
        })?;
        Some(self.holds.remove(i))
    }

    fn take_fault(&mut self, method: &str, target: &str) -> Option<Fault> {
        let i = self.faults.iter().position(|f| {
            (f.method == "*" || f.method.eq_ignore_ascii_case(method))
                && target.contains(&f.path_contains)
        })?;
        Some(self.faults.remove(i))
    }
}

/// The answer each forge gives when a rate limit is exhausted: GitHub 403 with
/// `x-ratelimit-remaining: 0` and `x-ratelimit-reset`; GitLab 429 with `RateLimit-*` and
/// `Retry-After`; Bitbucket 429 with `Retry-After`.
pub fn rate_limit_answer(
    kind: Kind,
    reset_secs: i64,
    now_secs: i64,
) -> (u16, Vec<(String, String)>, String) {
    let h = |k: &str, v: String| (k.to_owned(), v);
    let wait = (reset_secs - now_secs).max(1);
    match kind {
        Kind::Github => (
            403,
            vec![
                h("x-ratelimit-limit", "5000".into()),
                h("x-ratelimit-remaining", "0".into()),
                h("x-ratelimit-used", "5000".into()),
                h("x-ratelimit-reset", reset_secs.to_string()),
                h("x-ratelimit-resource", "core".into()),
                h("content-type", "application/json; charset=utf-8".into()),
            ],
            r#"{"message":"API rate limit exceeded for installation ID 42.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting","status":"403"}"#.into(),
        ),
        Kind::Gitlab => (
            429,
            vec![
                h("ratelimit-name", "throttle_authenticated_api".into()),
                h("ratelimit-limit", "2000".into()),
                h("ratelimit-observed", "2001".into()),
                h("ratelimit-remaining", "0".into()),
                h("ratelimit-reset", reset_secs.to_string()),
                h("ratelimit-resettime", http_date(reset_secs)),
                h("retry-after", wait.to_string()),
                h("content-type", "text/plain".into()),
            ],
            "Retry later\n".into(),
        ),
        Kind::Bitbucket => (
            429,
            vec![
                h("retry-after", wait.to_string()),
                h("content-type", "application/json".into()),
            ],
            r#"{"type":"error","error":{"message":"Rate limit for this resource has been exceeded"}}"#.into(),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------

/// A running fake forge.
pub struct FakeForge {
    /// The shared state.
    pub world: Arc<Mutex<World>>,
    /// What to configure the client with: GitHub API root `http://127.0.0.1:PORT`
    /// (GraphQL at `{url}/graphql`); GitLab instance root (API under `{url}/api/v4/`);
    /// Bitbucket API root `http://127.0.0.1:PORT/2.0`.
    pub url: String,
    /// Which API.
    pub kind: Kind,
    handle: actix_web::dev::ServerHandle,
}

impl FakeForge {
    /// A fake GitHub.
    pub async fn github() -> FakeForge {
        Self::start(Kind::Github)
    }

    /// A fake GitLab.
    pub async fn gitlab() -> FakeForge {
        Self::start(Kind::Gitlab)
    }

    /// A fake Bitbucket Cloud.
    pub async fn bitbucket() -> FakeForge {
        Self::start(Kind::Bitbucket)
    }

    /// Starts a server on its own thread and actix system, so it works under
    /// `#[actix_web::test]` and any tokio runtime alike.
    pub fn start(kind: Kind) -> FakeForge {
        let world = Arc::new(Mutex::new(World::new(kind)));
        let shared = world.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let w = shared.clone();
                    App::new()
                        .app_data(web::PayloadConfig::new(64 << 20))
                        .default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                            let w = w.clone();
                            async move { serve(&w, &req, &body) }
                        }))
                })
                .workers(1)
                .bind("127.0.0.1:0")
                .expect("bind 127.0.0.1:0");
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).expect("test is waiting");
                let _ = server.await;
            });
        });
        let (addr, handle) = rx.recv().expect("fake forge server started");
        let base = format!("http://{addr}");
        lock(&world).base_url = base.clone();
        let url = match kind {
            Kind::Github | Kind::Gitlab => base,
            Kind::Bitbucket => format!("{base}/2.0"),
        };
        FakeForge {
            world,
            url,
            kind,
            handle,
        }
    }

    /// Locks the world.
    pub fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    /// The credential the client must send (GitLab/Bitbucket; GitHub issues its own).
    pub fn token(&self) -> String {
        self.world().token.clone()
    }

    /// Stops the server (waits until it has stopped).
    pub fn stop(&self) {
        let h = self.handle.clone();
        let _ = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(h.stop(false));
        })
        .join();
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock(w: &Mutex<World>) -> MutexGuard<'_, World> {
    w.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A request, parsed once for the forge modules.
#[derive(Debug)]
pub(crate) struct Req {
    pub method: String,
    /// Raw path.
    pub path: String,
    /// Path segments, percent-decoded (a trailing `/` gives a last empty segment).
    pub segs: Vec<String>,
    /// Raw query string.
    pub query_raw: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// Lowercased header names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    /// First query value.
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// Every query value of a key.
    pub fn qs(&self, k: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A header.
    pub fn header(&self, k: &str) -> Option<&str> {
        let k = k.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.as_str())
    }

    /// The content type without parameters, lowercased.
    pub fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }

    /// Segment `i` as a str ("" past the end).
    pub fn seg(&self, i: usize) -> &str {
        self.segs.get(i).map(String::as_str).unwrap_or_default()
    }

    /// Body as a JSON value.
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| e.to_string())
    }

    /// Form body pairs (`application/x-www-form-urlencoded`).
    pub fn form(&self) -> Vec<(String, String)> {
        if self.content_type() == "application/x-www-form-urlencoded" {
            url::form_urlencoded::parse(&self.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        } else {
            Vec::new()
        }
    }
}

/// An answer from a forge module.
#[derive(Debug)]
pub(crate) struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(status: u16, v: Value) -> Resp {
        Resp {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: serde_json::to_vec(&v).expect("JSON values serialize"),
        }
    }

    pub fn text(status: u16, s: &str) -> Resp {
        Resp {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: s.as_bytes().to_vec(),
        }
    }

    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, k: &str, v: impl Into<String>) -> Resp {
        self.headers.push((k.to_owned(), v.into()));
        self
    }
}

fn serve(world: &Mutex<World>, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    let path = req.uri().path().to_owned();
    let query_raw = req.uri().query().unwrap_or_default().to_owned();
    let r = Req {
        method: req.method().as_str().to_owned(),
        segs: path
            .trim_start_matches('/')
            .split('/')
            .map(pct_decode)
            .collect(),
        query: url::form_urlencoded::parse(query_raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        path,
        query_raw,
    };
    let target = format!("{}?{}", r.path, r.query_raw);
    let hold = {
        let mut w = lock(world);
        w.log.push(RequestRec {
            method: r.method.clone(),
            path: r.path.clone(),
            query: r.query_raw.clone(),
        });
        w.take_hold(&r.method, &target)
    };
    if let Some(h) = hold {
        // Held until the test releases it (it kills the client meanwhile); then the
        // request is processed as the real forge would, whether or not anyone listens.
        h.arrived.store(true, std::sync::atomic::Ordering::SeqCst);
        let start = std::time::Instant::now();
        while !h.release.load(std::sync::atomic::Ordering::SeqCst)
            && start.elapsed() < std::time::Duration::from_secs(120)
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    let mut w = lock(world);
    let resp = match w.take_fault(&r.method, &target) {
        Some(f) => Resp {
            status: f.status,
            headers: f.headers,
            body: f.body.into_bytes(),
        },
        // A GET body has no defined meaning (RFC 9110 §9.3.1) and proxies drop it, which
        // silently turns a filtered request into an unfiltered one (a GitLab tree listing
        // of the default branch's top level instead of the commit's whole tree). The
        // forges document every GET parameter as a query parameter, so a client that
        // sends one in a body is wrong: the fake refuses it outright.
        None if matches!(r.method.as_str(), "GET" | "HEAD") && !r.body.is_empty() => {
            get_body_refused(w.kind)
        }
        None => match oauth::handle(&mut w, &r) {
            Some(resp) => resp,
            None => match w.kind {
                Kind::Github => github::handle(&mut w, &r),
                Kind::Gitlab => gitlab::handle(&mut w, &r),
                Kind::Bitbucket => bitbucket::handle(&mut w, &r),
            },
        },
    };
    drop(w);
    let status = actix_web::http::StatusCode::from_u16(resp.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = HttpResponse::build(status);
    for (k, v) in resp.headers {
        b.append_header((k, v));
    }
    b.body(resp.body)
}

/// The answer to a GET with a body, in each forge's error shape.
fn get_body_refused(kind: Kind) -> Resp {
    let m = "GET requests must not carry a body: send parameters in the query string";
    match kind {
        Kind::Github => Resp::json(400, serde_json::json!({"message": m})),
        Kind::Gitlab => Resp::json(400, serde_json::json!({"error": m})),
        Kind::Bitbucket => Resp::json(
            400,
            serde_json::json!({"type": "error", "error": {"message": m}}),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers shared by the forge modules
// ---------------------------------------------------------------------------------------

/// First 40 hex characters of SHA-256 (git-sha shaped).
pub fn hex40(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))[..40].to_owned()
}

/// Blob id of a content.
pub fn blob_sha(content: &str) -> String {
    hex40(format!("blob\0{content}").as_bytes())
}

/// Tree id of a snapshot.
pub fn tree_sha(tree: &BTreeMap<String, String>) -> String {
    let mut s = String::from("tree\0");
    for (p, c) in tree {
        s.push_str(p);
        s.push('\0');
        s.push_str(&blob_sha(c));
        s.push('\n');
    }
    hex40(s.as_bytes())
}

/// Percent-decoding (no `+` → space: this is for paths).
pub fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but unreserved characters (for URLs the fake builds).
pub fn pct_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A repository path the forges accept: relative, no empty, `.` or `..` components.
pub fn valid_repo_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\0')
        && p.split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && c != ".git")
}

/// RFC 3339 UTC (`2023-11-14T22:13:20Z`).
pub fn iso(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// RFC 3339 with milliseconds and offset, GitLab/Bitbucket style.
pub fn iso_ms(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.000+00:00")
}

/// IMF-fixdate (`Tue, 14 Nov 2023 22:13:20 GMT`).
pub fn http_date(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    let days = secs.div_euclid(86_400);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!("{wd}, {d:02} {mon} {y} {hh:02}:{mm:02}:{ss:02} GMT")
}

fn civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Directories implied by a set of file paths.
pub fn dirs_of<'a>(paths: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in paths {
        let mut acc = String::new();
        let parts: Vec<&str> = p.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            out.insert(acc.clone());
        }
    }
    out
}

/// A slice of `items` for a 1-based page.
pub fn page_of<T: Clone>(items: &[T], page: usize, per_page: usize) -> Vec<T> {
    let start = page.saturating_sub(1).saturating_mul(per_page);
    items.iter().skip(start).take(per_page).cloned().collect()
}

/// Parses a positive integer query value with a default and a maximum.
pub fn int_param(v: Option<&str>, default: usize, max: usize) -> usize {
    match v.and_then(|s| s.parse::<usize>().ok()) {
        Some(0) | None => default,
        Some(n) => n.min(max),
    }
}

/// `url` with `key=value` set in its query (replacing the previous value).
pub fn with_param(
    base: &str,
    path: &str,
    pairs: &[(String, String)],
    key: &str,
    value: &str,
) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    let mut replaced = false;
    for (k, v) in pairs {
        if k == key {
            if !replaced {
                ser.append_pair(k, value);
                replaced = true;
            }
        } else {
            ser.append_pair(k, v);
        }
    }
    if !replaced {
        ser.append_pair(key, value);
    }
    format!("{base}{path}?{}", ser.finish())
}
