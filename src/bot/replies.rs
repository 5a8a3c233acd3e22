//! What pipewright says in answer to slash commands. Pure text functions, so every reply
//! is unit-tested and nothing here can reach a forge or the database.
//!
//! Replies are Markdown posted as the bot, so text that came from people or repositories
//! (command arguments, paths, branch names, forge error bodies) is neutralised before it
//! is shown: it cannot close a code span, inject HTML, break a table or notify someone
//! with an @-mention. Everything long is cut, so a reply stays under every forge's
//! comment limit however large the repository or the comment.

/// Hidden marker at the end of everything pipewright posts: a comment carrying it is
/// pipewright's own and never treated as a command, whatever account posted it (a
/// personal token, an unknown bot name), so the bot cannot answer itself.
pub const REPLY_MARKER: &str = "<!-- pipewright:reply -->";

/// `body` with the [`REPLY_MARKER`] appended.
pub fn signed(body: &str) -> String {
    format!("{body}\n\n{REPLY_MARKER}")
}

use std::fmt::Write as _;

use super::commands::{ParseError, COMMAND_NAMES};
use super::pr_body;
use super::proposal::{provider_name, RepoSettings};
use super::wording::Words;
use crate::analyze::Analysis;
use crate::forge::client::PrState;
use crate::forge::Forge;
use crate::generate::{Feature, Features, Provider, Target};
use crate::repo_config::RepoConfig;

/// Longest reply posted, in characters: GitHub refuses comments over 65,536 characters
/// and the other forges allow more, so this leaves room to spare everywhere.
pub const MAX_REPLY_CHARS: usize = 60_000;

/// Longest piece of user or repository text quoted inline.
const MAX_ECHO_CHARS: usize = 80;

/// Longest free text (an outcome, an error) shown outside a code span.
const MAX_PLAIN_CHARS: usize = 500;

/// Longest report shown in a fenced block (the `explain` detection report).
const MAX_FENCED_CHARS: usize = 20_000;

/// Most items of one list (projects, files, options) shown before "and N more".
const MAX_LIST: usize = 50;

/// Every feature `add` and `remove` accept, in the order replies list them.
pub const FEATURES: [Feature; 7] = [
    Feature::Lint,
    Feature::Matrix,
    Feature::Docker,
    Feature::Security,
    Feature::Coverage,
    Feature::Release,
    Feature::StrictLint,
];

/// The name of a feature in commands and `.pipewright.yml` (its serde spelling).
pub fn feature_name(f: Feature) -> &'static str {
    match f {
        Feature::Lint => "lint",
        Feature::Matrix => "matrix",
        Feature::Docker => "docker",
        Feature::Security => "security",
        Feature::Coverage => "coverage",
        Feature::Release => "release",
        Feature::StrictLint => "strict-lint",
    }
}

/// What a feature adds to the CI, for `help` and `config`.
fn feature_purpose(f: Feature) -> &'static str {
    match f {
        Feature::Lint => "lint and format checks",
        Feature::Matrix => "tests on every runtime version the project declares",
        Feature::Docker => "Docker image build checks",
        Feature::Security => "a dependency vulnerability scan",
        Feature::Coverage => "coverage upload",
        Feature::Release => "a release workflow on version tags",
        Feature::StrictLint => {
            "lints that fail on warnings, and gate even where a first run made them advisory"
        }
    }
}

/// Whether `f` is on in `features`.
pub fn feature_on(features: &Features, f: Feature) -> bool {
    match f {
        Feature::Lint => features.lint,
        Feature::Matrix => features.matrix,
        Feature::Docker => features.docker,
        Feature::Security => features.security,
        Feature::Coverage => features.coverage,
        Feature::Release => features.release,
        Feature::StrictLint => features.strict_lint,
    }
}

/// The feature a command names. Exact names only (no aliases, so what people type is
/// what `.pipewright.yml` calls it), but case-insensitive like command names.
pub fn parse_feature(name: &str) -> Option<Feature> {
    FEATURES
        .into_iter()
        .find(|f| feature_name(*f).eq_ignore_ascii_case(name))
}

/// User or repository text as an inline code span: a backtick would close the span
/// early and control characters could break the line, so both are replaced; long text
/// is cut.
pub fn code(text: &str) -> String {
    let inner = echo(text, MAX_ECHO_CHARS);
    if inner.trim().is_empty() {
        // An empty span renders as two stray backticks.
        return "*(empty)*".to_owned();
    }
    format!("`{inner}`")
}

/// [`code`] for a table cell: a `|` would end the cell even inside a code span.
fn cell(text: &str) -> String {
    code(text).replace('|', "\\|")
}

/// Cuts `text` to `max` characters, replacing backticks and control characters.
fn echo(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| match c {
            '`' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Free text shown outside a code span (an outcome, a forge's error message): one line,
/// no HTML, no @-mentions, cut to a readable length. Backticks are kept when they pair
/// up (messages quote names that way) and replaced otherwise, so one stray backtick
/// cannot swallow the rest of the reply.
pub fn plain(text: &str) -> String {
    let balanced = text.matches('`').count() % 2 == 0;
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_PLAIN_CHARS {
            out.push('…');
            break;
        }
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            // A zero-width space after `@` keeps the text but notifies nobody.
            '@' => out.push_str("@\u{200b}"),
            '`' if !balanced => out.push('\''),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// An @-mention of a forge login, keeping only characters logins can have, so the
/// text cannot carry Markdown or mention anyone else.
pub fn mention(login: &str) -> String {
    let clean: String = login
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '[' | ']'))
        .take(64)
        .collect();
    if clean.is_empty() {
        "Hi".to_owned()
    } else {
        format!("@{clean}")
    }
}

/// `text` in a fenced code block. The fence is longer than any backtick run in the text
/// (CommonMark's rule), so repository content cannot close it; long text is cut at a
/// line boundary.
pub fn fenced(text: &str, info: &str) -> String {
    let mut body = text.trim_end_matches('\n').to_owned();
    if body.chars().count() > MAX_FENCED_CHARS {
        let mut end = body
            .char_indices()
            .nth(MAX_FENCED_CHARS)
            .map_or(body.len(), |(i, _)| i);
        if let Some(nl) = body[..end].rfind('\n') {
            end = nl;
        }
        body.truncate(end);
        body.push_str("\n… (cut: the report is too long to show in full)");
    }
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{info}\n{body}\n{fence}")
}

/// A link to `url` if it is a plain http(s) address, so a stored or forge-given URL
/// cannot carry Markdown or script; `None` otherwise.
fn safe_url(url: &str) -> Option<&str> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[]`\"'\\".contains(c));
    ok.then_some(url)
}

/// How a forge writes a pull request reference: GitLab calls them merge requests and
/// `#12` would name an issue there.
pub fn pr_ref(forge: Forge, number: u64) -> String {
    Words(forge).pr_ref(number)
}

/// `items` joined as "a, b and c", at most [`MAX_LIST`] of them.
fn join_list(items: &[String]) -> String {
    let mut shown: Vec<String> = items.iter().take(MAX_LIST).cloned().collect();
    if items.len() > MAX_LIST {
        shown.push(format!("{} more", items.len() - MAX_LIST));
    }
    match shown.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The trigger people type, e.g. `/pipewright`.
fn trigger(command_word: &str) -> String {
    format!("/{}", echo(command_word, MAX_ECHO_CHARS))
}

/// Refusal for someone without write access (posted once per comment).
pub fn not_authorized(login: &str) -> String {
    format!(
        "{}, only people with write access to this repository can run pipewright commands.",
        mention(login)
    )
}

/// Acknowledgement on forges without reactions (Bitbucket): the command lines as written.
pub fn working_on(lines: &[&str]) -> String {
    let quoted: Vec<String> = lines.iter().map(|l| code(l.trim())).collect();
    format!("Working on {}…", join_list(&quoted))
}

/// A command's usage and purpose for `help`, and whether it works only on pipewright's
/// pull request.
fn help_line(name: &str, w: Words) -> Option<(&'static str, String, bool)> {
    let pr = w.pr();
    Some(match name {
        "help" => ("help", "this list".to_owned(), false),
        "analyze" => (
            "analyze",
            "what pipewright detects in this repository and what it would propose".to_owned(),
            false,
        ),
        "explain" => (
            "explain",
            format!("the detection evidence, what each proposed file does, and how the {pr}'s first CI runs went"),
            true,
        ),
        "regenerate" => (
            "regenerate",
            format!("analyse the default branch again and update the {pr}"),
            true,
        ),
        "add" => (
            "add <feature>",
            format!(
                "switch a feature on and update the {pr}; `add deploy <target> [--env E] \
                 [--strategy S] [--region R]` adds deploys (fly, aws, gcp, azure, digitalocean, ssh)"
            ),
            true,
        ),
        "remove" => (
            "remove <feature>",
            format!(
                "switch a feature off and update the {pr}; `remove deploy <target>` drops deploys"
            ),
            true,
        ),
        "ignore" => (
            "ignore",
            format!("close the {pr} and stop proposing in this repository"),
            true,
        ),
        "unignore" => (
            "unignore",
            "undo `ignore` and analyse the repository again".to_owned(),
            true,
        ),
        "config" => (
            "config",
            "the configuration in effect and where each setting comes from".to_owned(),
            true,
        ),
        _ => return None,
    })
}

/// `help`: every command, one line each, with the configured command word, in `forge`'s
/// words.
pub fn help(command_word: &str, forge: Forge) -> String {
    let w = Words(forge);
    let t = trigger(command_word);
    let mut s = format!(
        "pipewright detects how this repository builds and proposes the CI it is missing in \
         one {}. Comment a command on a line of its own (write access needed):\n\n",
        w.pr()
    );
    for name in COMMAND_NAMES {
        if let Some((usage, what, bot_pr_only)) = help_line(name, w) {
            let mark = if bot_pr_only { " ¹" } else { "" };
            let _ = writeln!(s, "- `{t} {usage}`: {what}{mark}");
        }
    }
    let features: Vec<String> = FEATURES
        .iter()
        .map(|f| format!("`{}` ({})", feature_name(*f), feature_purpose(*f)))
        .collect();
    let _ = write!(
        s,
        "\n¹ Only on pipewright's own {}.\n\nFeatures: {}.",
        w.pr(),
        join_list(&features)
    );
    s
}

/// A reference to pipewright's pull request, for replies that point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotPrRef<'a> {
    /// Forge (how to write the reference).
    pub forge: Forge,
    /// Its number.
    pub number: u64,
    /// Its web address, when known.
    pub url: Option<&'a str>,
    /// Open, closed or merged.
    pub state: PrState,
}

impl BotPrRef<'_> {
    /// `#12` (GitLab `!12`), linked when the address is known and safe.
    fn link(&self) -> String {
        let r = pr_ref(self.forge, self.number);
        match self.url.and_then(safe_url) {
            Some(u) => format!("[{r}]({u})"),
            None => r,
        }
    }
}

/// A command that works only on pipewright's pull request was used elsewhere.
pub fn needs_bot_pr(
    command_word: &str,
    forge: Forge,
    command: &str,
    bot_pr: Option<&BotPrRef<'_>>,
) -> String {
    let what = code(&format!("{} {command}", trigger(command_word)));
    let pr = Words(forge).pr();
    match bot_pr {
        Some(bot) => format!(
            "{what} works on pipewright's {pr}: comment it on {} ({}).",
            bot.link(),
            bot.state.as_str()
        ),
        None => format!(
            "{what} works on pipewright's {pr}, and this repository has none yet. \
             `{} analyze` shows what pipewright would propose.",
            trigger(command_word)
        ),
    }
}

/// A command line that could not be parsed. [`ParseError`]'s message already quotes
/// user text safely and suggests close command names.
pub fn parse_error(command_word: &str, error: &ParseError) -> String {
    format!(
        "I could not read this command: {error}. `{} help` lists the commands.",
        trigger(command_word)
    )
}

fn feature_list() -> String {
    let names: Vec<String> = FEATURES
        .iter()
        .map(|f| format!("`{}`", feature_name(*f)))
        .collect();
    join_list(&names)
}

/// `add` / `remove` named something that is not a feature.
pub fn unknown_feature(name: &str) -> String {
    format!(
        "{} is not a pipewright feature, so nothing changed. The features are {}.",
        code(name),
        feature_list()
    )
}

/// `add` got options after a feature that takes none.
pub fn unexpected_options(feature: Feature, options: &[String]) -> String {
    let quoted: Vec<String> = options.iter().map(|o| code(o)).collect();
    format!(
        "`{}` takes no options (got {}), so nothing changed.",
        feature_name(feature),
        join_list(&quoted)
    )
}

/// Options of `add deploy <target> [--env E]… [--strategy S] [--region R]` (and of
/// `remove deploy <target>`, which takes none). The error is the reply.
pub fn parse_deploy_options(
    options: &[String],
    on: bool,
) -> Result<crate::bot::proposal::DeployChoice, String> {
    let usage = "Usage: `add deploy <target> [--env staging|production] [--strategy rolling|bluegreen|canary|immediate] [--region REGION]` or `remove deploy <target>`.";
    let mut it = options.iter();
    let Some(target) = it.next() else {
        return Err(format!("Which target? {usage} Targets: {}.", targets()));
    };
    let mut choice = crate::bot::proposal::DeployChoice {
        target: target.clone(),
        on,
        environments: Vec::new(),
        strategy: None,
        region: None,
    };
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag.as_str(), None),
        };
        let Some(value) = inline.or_else(|| it.next().cloned()) else {
            return Err(format!("{} needs a value. {usage}", code(name)));
        };
        match name {
            "--env" | "--environment" => {
                for v in value.split(',') {
                    let env = v
                        .parse::<crate::deploy::Environment>()
                        .map_err(|e| format!("{}: {e}. {usage}", code(v)))?;
                    if !choice.environments.contains(&env) {
                        choice.environments.push(env);
                    }
                }
            }
            "--strategy" => {
                choice.strategy = Some(
                    value
                        .parse()
                        .map_err(|e: String| format!("{}: {e}. {usage}", code(&value)))?,
                )
            }
            "--region" => {
                crate::deploy::check_region(&value)
                    .map_err(|e| format!("{}: {e}. {usage}", code(&value)))?;
                choice.region = Some(value);
            }
            other => {
                return Err(format!(
                    "{} is not an option of `add deploy`. {usage}",
                    code(other)
                ))
            }
        }
    }
    if !on
        && (choice.strategy.is_some() || choice.region.is_some() || !choice.environments.is_empty())
    {
        return Err(format!("`remove deploy` takes only the target. {usage}"));
    }
    Ok(choice)
}

fn targets() -> String {
    let ids: Vec<String> = crate::deploy::TARGETS
        .iter()
        .map(|t| format!("`{}`", t.as_str()))
        .collect();
    join_list(&ids)
}

/// An unknown target.
pub fn deploy_error(message: &str) -> String {
    format!(
        "{}. Targets: {}. Nothing changed.",
        plain(message),
        targets()
    )
}

/// `remove deploy <target>` done.
pub fn deploy_removed(target: crate::deploy::DeployTarget) -> String {
    format!(
        "Removed deploys to {} from this repository's proposal. The secrets already written \
         to the forge stay; delete them there if they are no longer needed.",
        target.spec().name
    )
}

/// What happened to a target's stored credentials when it was added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsOutcome {
    /// Written (names only), some maybe unmaskable, some required ones missing.
    Written {
        /// Written.
        names: Vec<String>,
        /// Secrets the forge could not mask in logs.
        unmasked: Vec<String>,
        /// Required names with no stored value.
        missing: Vec<&'static str>,
    },
    /// This pipewright has no credentials key, so it stores no credentials.
    NoKey {
        /// Every required name.
        missing: Vec<&'static str>,
    },
    /// Stored values cannot be opened (wrong key or altered rows): operators must look.
    Unreadable,
    /// The forge refused the write (HTTP status): a missing permission or scope.
    Refused {
        /// The forge's status.
        status: u16,
    },
}

/// `add deploy <target>` done: what was stored, what is written, what is missing.
pub fn deploy_added(
    forge: Forge,
    target: crate::deploy::DeployTarget,
    choice: &crate::bot::proposal::DeployChoice,
    secrets: &SecretsOutcome,
) -> String {
    let spec = target.spec();
    let envs = if choice.environments.is_empty() {
        "staging (default branch) and production (version tags, after approval)".to_owned()
    } else {
        choice
            .environments
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let mut s = format!(
        "Added deploys to {} ({envs}). The {} gains its deploy files; its \
         description lists the secrets and the one-time setup.",
        spec.name,
        Words(forge).pr()
    );
    let ask = |missing: &[&str]| {
        format!(
            " Missing: {}. An operator stores them with `pipewright credentials set --target {} \
             --name NAME --from-file FILE` (never post a secret in a comment), then runs \
             `add deploy {}` again.",
            join_list(&missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>()),
            spec.id,
            spec.id
        )
    };
    match secrets {
        SecretsOutcome::Written {
            names,
            unmasked,
            missing,
        } => {
            if !names.is_empty() {
                let _ = write!(
                    s,
                    " Wrote {} to the repository's CI settings.",
                    join_list(&names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>())
                );
            }
            if !unmasked.is_empty() {
                let _ =
                    write!(
                    s,
                    " The forge cannot mask {} in job logs (its value has characters the forge \
                     does not mask); it is protected, and the deploy job never prints it.",
                    join_list(&unmasked.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>())
                );
            }
            if !missing.is_empty() {
                s.push_str(&ask(missing));
            }
        }
        SecretsOutcome::NoKey { missing } => {
            s.push_str(" This pipewright stores no deploy credentials (PIPEWRIGHT_CREDENTIALS_KEY is not set), so none were written.");
            if !missing.is_empty() {
                s.push_str(&ask(missing));
            }
        }
        SecretsOutcome::Unreadable => s.push_str(
            " The stored credentials could not be decrypted (a key is wrong or missing); \
             nothing was written, and the operators have been told in the log.",
        ),
        SecretsOutcome::Refused { status } => {
            let _ = write!(
                s,
                " The forge refused to store the secrets (HTTP {status}): pipewright needs \
                 permission to write CI secrets here (GitHub App: `secrets: write`, accepted \
                 by an owner; GitLab: a Maintainer token with `api`; Bitbucket: a token with \
                 pipeline variable write). Nothing was written."
            );
        }
    }
    s
}

/// What `add` / `remove` did to the stored choice. `previous` is the choice made with an
/// earlier command, if any.
pub fn feature_switched(feature: Feature, on: bool, previous: Option<bool>) -> String {
    let name = feature_name(feature);
    let state = if on { "on" } else { "off" };
    if previous == Some(on) {
        return format!("`{name}` was already switched {state} with a command; nothing changed.");
    }
    let before = match previous {
        Some(true) => "on, set with a command",
        Some(false) => "off, set with a command",
        None => "not set: `.pipewright.yml` or the default applied",
    };
    format!(
        "Switched `{name}` {state} (before: {before}). Choices made with commands take \
         precedence over `.pipewright.yml`."
    )
}

/// The result of re-analysing the default branch (`Outcome`'s text).
pub fn synced(outcome: &str) -> String {
    format!("Re-analysed the default branch: {}.", plain(outcome))
}

/// `ignore` done; `closed` is the pull request it closed, if it was open.
pub fn ignored(command_word: &str, closed: Option<&BotPrRef<'_>>) -> String {
    let mut s = format!(
        "pipewright will not propose changes in this repository again until someone comments \
         `{} unignore`.",
        trigger(command_word)
    );
    if let Some(pr) = closed {
        let _ = write!(s, " Closed {}.", pr.link());
    }
    s
}

/// `unignore` done. `queued` is false when an analysis was already waiting;
/// `closed_pr` is pipewright's pull request when it is closed (not merged).
pub fn unignored(queued: bool, closed_pr: Option<&BotPrRef<'_>>) -> String {
    let mut s = String::from("pipewright may propose changes in this repository again; ");
    s.push_str(if queued {
        "a new analysis of the default branch is queued."
    } else {
        "an analysis of the default branch was already queued."
    });
    if let Some(pr) = closed_pr {
        let _ = write!(
            s,
            " {} stays closed; the analysis opens a fresh {} if one is still needed.",
            pr.link(),
            Words(pr.forge).pr()
        );
    }
    s
}

/// A command stopped by an error that will not go away by retrying (`detail`: the
/// error), or by temporary errors that persisted (`None`).
pub fn failed(detail: Option<&str>) -> String {
    match detail {
        Some(d) => format!("pipewright could not finish this command: {}", plain(d)),
        None => "pipewright could not finish this command: the forge kept failing. Please try \
                 again later."
            .to_owned(),
    }
}

/// What a proposal would be, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// These files, for this CI system.
    Propose {
        /// CI system.
        provider: Provider,
        /// Repository paths.
        files: Vec<String>,
    },
    /// The repository already has CI (these files).
    HasCi {
        /// The CI files found.
        files: Vec<String>,
    },
    /// No buildable project or Dockerfile.
    NothingToBuild,
    /// `.pipewright.yml` is invalid (the error, with file and line).
    ConfigError(String),
    /// The repository is not analysed at all (archived, a fork, empty).
    NotAnalysed(String),
}

fn code_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| code(i)).collect();
    join_list(&quoted)
}

/// The verdict as Markdown: the files with their purpose, or the reason for none.
fn verdict_text(v: &Verdict, w: Words) -> String {
    match v {
        Verdict::Propose { provider, files } => {
            let mut s = format!(
                "pipewright proposes {} for {}:\n\n",
                if files.len() == 1 {
                    "this file"
                } else {
                    "these files"
                },
                provider_name(*provider)
            );
            for f in files.iter().take(MAX_LIST) {
                let _ = writeln!(s, "- {}: {}", code(f), pr_body::describe(f));
            }
            if files.len() > MAX_LIST {
                let _ = writeln!(s, "- and {} more", files.len() - MAX_LIST);
            }
            s
        }
        Verdict::HasCi { files } => format!(
            "No {}: the repository already has CI ({}).\n",
            w.pr(),
            code_list(files)
        ),
        Verdict::NothingToBuild => format!(
            "No {}: no buildable project or Dockerfile was found.\n",
            w.pr()
        ),
        Verdict::ConfigError(e) => format!(
            "No {}: the repository's configuration is invalid: {}\n",
            w.pr(),
            plain(e)
        ),
        Verdict::NotAnalysed(why) => {
            format!(
                "pipewright does not analyse this repository: {}.\n",
                plain(why)
            )
        }
    }
}

/// `analyze`: the detected stack as a table, and what pipewright would propose, in
/// `forge`'s words.
pub fn analysis(
    command_word: &str,
    forge: Forge,
    a: &Analysis,
    verdict: &Verdict,
    ignored: bool,
) -> String {
    let w = Words(forge);
    let mut s = String::new();
    if a.projects.is_empty() {
        s.push_str("No buildable project was detected.\n\n");
    } else {
        s.push_str(
            "| path | language | package manager | test tool | frameworks |\n|---|---|---|---|---|\n",
        );
        for p in a.projects.iter().take(MAX_LIST) {
            let frameworks: Vec<&str> = p.frameworks.iter().map(|f| f.as_str()).collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                cell(&p.path),
                p.language,
                p.package_manager.map_or("–".to_owned(), |m| m.to_string()),
                p.test_tool.map_or("–".to_owned(), |t| t.to_string()),
                if frameworks.is_empty() {
                    "–".to_owned()
                } else {
                    frameworks.join(", ")
                },
            );
        }
        if a.projects.len() > MAX_LIST {
            let _ = writeln!(s, "\nand {} more projects.", a.projects.len() - MAX_LIST);
        }
        s.push('\n');
    }
    if !a.dockerfiles.is_empty() {
        let _ = writeln!(s, "Dockerfiles: {}.\n", code_list(&a.dockerfiles));
    }
    if !a.services.is_empty() {
        let _ = writeln!(
            s,
            "Services the tests may need (from compose files): {}.\n",
            code_list(&a.services)
        );
    }
    let foreign: Vec<String> = a
        .foreign_ci()
        .filter(|c| c.kind == "ci")
        .map(|c| c.path.clone())
        .collect();
    if !foreign.is_empty() {
        let _ = writeln!(
            s,
            "Found, but not run by {}: {}.\n",
            pr_body::forge_name(forge),
            code_list(&foreign)
        );
    }
    s.push_str(&verdict_text(verdict, w));
    if !a.warnings.is_empty() {
        let _ = write!(
            s,
            "\n{} warning{} while reading the repository; `{} explain` on pipewright's {} \
             shows them.\n",
            a.warnings.len(),
            if a.warnings.len() == 1 { "" } else { "s" },
            trigger(command_word),
            w.pr()
        );
    }
    if ignored {
        let _ = write!(
            s,
            "\npipewright is ignoring this repository (`{} unignore` undoes it), so it \
             proposes nothing.\n",
            trigger(command_word)
        );
    }
    s.trim_end().to_owned()
}

/// `explain`: the detection report (with the rule and file behind every conclusion,
/// from `render_text(.., true)`), what each file does, and the settings that shaped it.
pub fn explain(report: &str, forge: Forge, verdict: &Verdict, target: Option<&Target>) -> String {
    let w = Words(forge);
    if let Verdict::NotAnalysed(_) = verdict {
        // There is no report to show.
        return verdict_text(verdict, w).trim_end().to_owned();
    }
    let mut s = String::from("### What pipewright detected, and why\n\n");
    s.push_str(&fenced(report, "text"));
    s.push_str("\n\n### What it proposes\n\n");
    s.push_str(&verdict_text(verdict, w));
    if let (Verdict::Propose { .. }, Some(t)) = (verdict, target) {
        let on: Vec<String> = FEATURES
            .iter()
            .filter(|f| feature_on(&t.features, **f))
            .map(|f| format!("`{}`", feature_name(*f)))
            .collect();
        let _ = write!(
            s,
            "\nThe files run on pushes to {} and on {}, with {}. Each job runs only \
             the commands detected for its project, and every action is pinned to a commit.",
            code_list(&t.push_branches()),
            w.prs(),
            if on.is_empty() {
                "no optional features".to_owned()
            } else {
                format!("these features: {}", join_list(&on))
            }
        );
    }
    s.trim_end().to_owned()
}

/// Where the repository's configuration file stands.
#[derive(Debug, Clone, Copy)]
pub enum ConfigFile<'a> {
    /// No `.pipewright.yml` (nor `.github/` / `.gitlab/` variant).
    Absent,
    /// Found and valid.
    Found {
        /// Its path.
        path: &'a str,
        /// Its content.
        config: &'a RepoConfig,
    },
    /// Found but invalid (the error, with file and line).
    Invalid(&'a str),
    /// The repository could not be read (archived, empty…: the reason).
    Unread(&'a str),
}

/// Everything `config` shows.
#[derive(Debug, Clone, Copy)]
pub struct ConfigView<'a> {
    /// The command word.
    pub command_word: &'a str,
    /// The repository's file.
    pub file: ConfigFile<'a>,
    /// Choices stored by `add` / `remove`.
    pub settings: &'a RepoSettings,
    /// `ignore` is in effect.
    pub ignored: bool,
    /// The forge the repository is on (its words).
    pub forge: Forge,
    /// The forge's own CI system.
    pub forge_provider: Provider,
    /// What generation uses; `None` when the file is invalid (nothing is generated).
    pub target: Option<&'a Target>,
    /// Branch of pipewright's pull request.
    pub pr_branch: &'a str,
}

/// `config`: the configuration in effect, as a Markdown list, naming where each setting
/// comes from.
pub fn config(v: &ConfigView<'_>) -> String {
    let w = Words(v.forge);
    let t = trigger(v.command_word);
    let mut s = String::from("Configuration in effect:\n\n");
    let file_config = match v.file {
        ConfigFile::Absent => {
            s.push_str("- Repository file: none (`.pipewright.yml` would override the defaults)\n");
            None
        }
        ConfigFile::Found { path, config } => {
            let _ = writeln!(s, "- Repository file: {}", code(path));
            Some(config)
        }
        ConfigFile::Invalid(e) => {
            let _ = writeln!(
                s,
                "- Repository file: **invalid**, so pipewright proposes nothing until it is \
                 fixed: {}",
                plain(e)
            );
            None
        }
        ConfigFile::Unread(why) => {
            let _ = writeln!(s, "- Repository file: not read ({})", plain(why));
            None
        }
    };
    let stored: Vec<String> = v
        .settings
        .features
        .iter()
        .map(|(f, on)| format!("`{}` {}", feature_name(*f), if *on { "on" } else { "off" }))
        .collect();
    let _ = writeln!(
        s,
        "- Chosen with commands: {}",
        if stored.is_empty() {
            "nothing".to_owned()
        } else {
            join_list(&stored)
        }
    );
    let _ = writeln!(
        s,
        "- Ignored: {}",
        if v.ignored {
            format!("yes, pipewright proposes nothing (`{t} unignore` undoes it)")
        } else {
            "no".to_owned()
        }
    );
    let Some(target) = v.target else {
        let _ = write!(s, "- {} branch: {}", w.pr_capitalised(), code(v.pr_branch));
        return s;
    };
    let provider_source = if file_config.is_some_and(|c| c.provider.is_some()) {
        "from the repository file"
    } else if target.provider == v.forge_provider {
        "the forge's own"
    } else {
        "default"
    };
    let _ = writeln!(
        s,
        "- CI system: {} ({provider_source})",
        provider_name(target.provider)
    );
    let branches = if file_config.is_some_and(|c| c.branches.is_some()) {
        "from the repository file"
    } else {
        "the default branch"
    };
    let _ = writeln!(
        s,
        "- Pushes that run CI: {} ({branches}); {} always do",
        code_list(&target.push_branches()),
        w.prs()
    );
    s.push_str("- Features:\n");
    for f in FEATURES {
        let chosen = v.settings.features.iter().any(|(x, _)| *x == f);
        let in_file = file_config.is_some_and(|c| {
            let sw = c.features;
            match f {
                Feature::Lint => sw.lint,
                Feature::Matrix => sw.matrix,
                Feature::Docker => sw.docker,
                Feature::Security => sw.security,
                Feature::Coverage => sw.coverage,
                Feature::Release => sw.release,
                Feature::StrictLint => sw.strict_lint,
            }
            .is_some()
        });
        let source = if chosen {
            "chosen with a command"
        } else if in_file {
            "repository file"
        } else {
            "default"
        };
        let _ = writeln!(
            s,
            "  - `{}`: {} ({source}): {}",
            feature_name(f),
            if feature_on(&target.features, f) {
                "on"
            } else {
                "off"
            },
            feature_purpose(f)
        );
    }
    if !target.extra_steps.is_empty() {
        let names: Vec<String> = target.extra_steps.iter().map(|e| e.name.clone()).collect();
        let _ = writeln!(s, "- Extra steps after the tests: {}", code_list(&names));
    }
    if !target.paths_ignore.is_empty() {
        let _ = writeln!(
            s,
            "- Paths whose changes alone do not run CI: {}",
            code_list(&target.paths_ignore)
        );
    }
    let _ = writeln!(
        s,
        "- Runners: {}",
        if target.runs_on.is_empty() {
            "the CI system's hosted Linux runner".to_owned()
        } else {
            code_list(&target.runs_on)
        }
    );
    let _ = write!(s, "- {} branch: {}", w.pr_capitalised(), code(v.pr_branch));
    s
}

/// The answer to one command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The command line as written (quoted safely in the reply).
    pub command: String,
    /// Whether it worked (a failure makes the reaction "confused").
    pub ok: bool,
    /// The answer, Markdown built by the functions above.
    pub body: String,
}

/// The one reply to a comment: each command's answer under its command line (a single
/// command needs no heading). Whole sections are left out, and said so, past
/// [`MAX_REPLY_CHARS`], so no Markdown block is cut in half; a single oversized section
/// is cut hard.
pub fn results(sections: &[Section]) -> String {
    if let [only] = sections {
        return cut(&only.body, MAX_REPLY_CHARS);
    }
    let mut s = String::new();
    // Room for the "left out" note.
    let budget = MAX_REPLY_CHARS - 200;
    for (i, sec) in sections.iter().enumerate() {
        let part = format!("**{}**\n\n{}\n\n", code(&sec.command), sec.body);
        if s.chars().count() + part.chars().count() > budget {
            if i == 0 {
                s.push_str(&cut(&part, budget));
                s.push_str("\n\n");
            }
            let left = sections.len() - i - usize::from(i == 0);
            if left > 0 {
                let _ = write!(
                    s,
                    "The answers to {left} more command{} were left out: the reply would be \
                     too long. Run them in separate comments.",
                    if left == 1 { "" } else { "s" }
                );
            }
            return s.trim_end().to_owned();
        }
        s.push_str(&part);
    }
    s.trim_end().to_owned()
}

/// Cuts `text` to `max` characters, marking the cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(40)).collect();
    out.push_str("\n\n… (cut: the reply is too long)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::{Commands, Project};
    use crate::analyze::{Language, PackageManager, TestTool};
    use crate::bot::commands::{parse_comment, ParserConfig};

    fn no_commands_in(reply: &str) {
        let cfg = ParserConfig::default();
        assert!(
            parse_comment(reply, &cfg).is_empty(),
            "a reply must never trigger the bot itself:\n{reply}"
        );
    }

    fn project(path: &str) -> Project {
        Project {
            path: path.to_owned(),
            language: Language::Rust,
            package_manager: Some(PackageManager::Cargo),
            frameworks: vec![],
            test_tool: Some(TestTool::ALL[0]),
            commands: Commands::default(),
            runtime_versions: vec![],
            confidence: 0.9,
            evidence: vec!["Cargo.toml".into()],
            reasons: vec![],
            members: vec![],
            toolbox: Default::default(),
        }
    }

    fn analysis_of(projects: Vec<Project>) -> Analysis {
        Analysis {
            projects,
            dockerfile: false,
            dockerfiles: vec![],
            services: vec![],
            existing_ci: vec![],
            forge: None,
            missing: vec!["ci"],
            warnings: vec![],
            files_read: 1,
        }
    }

    #[test]
    fn features_round_trip_and_match_the_stored_spelling() {
        use clap::ValueEnum as _;
        assert_eq!(FEATURES.len(), Feature::value_variants().len());
        for f in FEATURES {
            assert_eq!(parse_feature(feature_name(f)), Some(f));
            assert_eq!(
                parse_feature(&feature_name(f).to_uppercase()),
                Some(f),
                "case-insensitive"
            );
            // The names people type are the names stored and used in `.pipewright.yml`.
            assert_eq!(
                serde_json::to_string(&f).unwrap(),
                format!("\"{}\"", feature_name(f))
            );
        }
        assert_eq!(parse_feature("tests"), None, "no aliases");
        assert_eq!(parse_feature("deploy"), None);
        assert_eq!(parse_feature(""), None);
    }

    #[test]
    fn code_spans_cannot_be_broken() {
        assert_eq!(code("lint"), "`lint`");
        assert_eq!(code("a`b"), "`a'b`");
        assert_eq!(code("a\nb\u{1b}"), "`a b `");
        assert_eq!(code(""), "*(empty)*");
        assert_eq!(code("   "), "*(empty)*");
        let long = code(&"x".repeat(10_000));
        assert!(long.chars().count() < 100 && long.ends_with("…`"), "{long}");
        assert_eq!(cell("a|b"), "`a\\|b`");
    }

    #[test]
    fn plain_text_has_no_html_and_notifies_nobody() {
        let p = plain("<img src=x onerror=alert(1)> & @everyone");
        assert!(!p.contains('<') && !p.contains('>'), "{p}");
        assert!(p.contains("&lt;img") && p.contains("&amp;"));
        assert!(!p.contains("@everyone"), "{p}");
        assert!(p.contains("@\u{200b}everyone"));
        assert_eq!(plain("unknown field `x`"), "unknown field `x`");
        assert_eq!(plain("a ` b"), "a ' b", "a stray backtick is replaced");
        assert_eq!(plain("line\nbreak"), "line break");
        assert!(plain(&"é".repeat(10_000)).chars().count() <= MAX_PLAIN_CHARS + 1);
    }

    #[test]
    fn mentions_keep_only_login_characters() {
        assert_eq!(mention("octo-cat"), "@octo-cat");
        assert_eq!(mention("dependabot[bot]"), "@dependabot[bot]");
        assert_eq!(mention("a b<script>"), "@abscript");
        assert_eq!(mention("`"), "Hi");
        assert_eq!(
            not_authorized("octo-cat"),
            "@octo-cat, only people with write access to this repository can run pipewright \
             commands."
        );
    }

    #[test]
    fn fences_outgrow_the_content() {
        let f = fenced("a\n```\nb", "text");
        assert!(f.starts_with("````text\n") && f.ends_with("\n````"), "{f}");
        let f = fenced("plain", "");
        assert_eq!(f, "```\nplain\n```");
        let big = "line\n".repeat(10_000);
        let f = fenced(&big, "text");
        assert!(f.chars().count() < MAX_FENCED_CHARS + 100);
        assert!(f.contains("(cut:"));
        assert!(f.ends_with("\n```"));
    }

    #[test]
    fn urls_are_linked_only_when_plain() {
        assert_eq!(
            safe_url("https://github.com/o/r/pull/3"),
            Some("https://github.com/o/r/pull/3")
        );
        assert_eq!(safe_url("javascript:alert(1)"), None);
        assert_eq!(safe_url("https://x/a) [y](z"), None);
        let pr = BotPrRef {
            forge: Forge::Gitlab,
            number: 4,
            url: Some("https://gitlab.com/g/p/-/merge_requests/4"),
            state: PrState::Open,
        };
        assert_eq!(pr.link(), "[!4](https://gitlab.com/g/p/-/merge_requests/4)");
        let pr = BotPrRef {
            forge: Forge::Github,
            number: 4,
            url: Some("bad url"),
            state: PrState::Closed,
        };
        assert_eq!(pr.link(), "#4");
    }

    #[test]
    fn help_lists_every_command_once_with_the_configured_word() {
        let h = help("ci-bot", Forge::Github);
        for name in COMMAND_NAMES {
            assert!(
                help_line(name, Words(Forge::Github)).is_some(),
                "{name} has no help line"
            );
            assert_eq!(
                h.lines()
                    .filter(|l| l.starts_with(&format!("- `/ci-bot {name}")))
                    .count(),
                1,
                "{name}:\n{h}"
            );
        }
        assert!(!h.contains("/pipewright"));
        for f in FEATURES {
            assert!(h.contains(&format!("`{}`", feature_name(f))));
        }
        no_commands_in(&help("pipewright", Forge::Gitlab));
    }

    #[test]
    fn working_on_quotes_lines_safely() {
        assert_eq!(
            working_on(&["/pipewright regenerate"]),
            "Working on `/pipewright regenerate`…"
        );
        let w = working_on(&["/pipewright add `x`", " @pipewright explain "]);
        assert_eq!(
            w,
            "Working on `/pipewright add 'x'` and `@pipewright explain`…"
        );
        no_commands_in(&w);
    }

    #[test]
    fn bot_pr_refusals_point_at_the_pull_request() {
        let pr = BotPrRef {
            forge: Forge::Github,
            number: 12,
            url: Some("https://github.com/o/r/pull/12"),
            state: PrState::Open,
        };
        let r = needs_bot_pr("pipewright", Forge::Github, "ignore", Some(&pr));
        assert_eq!(
            r,
            "`/pipewright ignore` works on pipewright's pull request: comment it on \
             [#12](https://github.com/o/r/pull/12) (open)."
        );
        let r = needs_bot_pr("pipewright", Forge::Github, "regenerate", None);
        assert!(
            r.contains("has none yet") && r.contains("`/pipewright analyze`"),
            "{r}"
        );
        no_commands_in(&r);
    }

    /// Every reply that names pipewright's change request says "merge request" (and
    /// `!N`) on GitLab, and "pull request" (`#N`) elsewhere.
    #[test]
    fn replies_use_each_forges_words() {
        let sample = |forge: Forge| -> Vec<String> {
            let pr = BotPrRef {
                forge,
                number: 7,
                url: None,
                state: PrState::Closed,
            };
            let t = Target::github();
            let (provider, file) = match forge {
                Forge::Github => (Provider::Github, ".github/workflows/ci.yml"),
                Forge::Gitlab => (Provider::Gitlab, ".gitlab-ci.yml"),
                Forge::Bitbucket => (Provider::Bitbucket, "bitbucket-pipelines.yml"),
            };
            let go = Verdict::Propose {
                provider,
                files: vec![file.into()],
            };
            let mut a = analysis_of(vec![project(".")]);
            a.warnings = vec!["w".into()];
            vec![
                help("pipewright", forge),
                needs_bot_pr("pipewright", forge, "ignore", Some(&pr)),
                needs_bot_pr("pipewright", forge, "ignore", None),
                unignored(true, Some(&pr)),
                ignored("pipewright", Some(&pr)),
                analysis("pipewright", forge, &a, &Verdict::NothingToBuild, false),
                analysis(
                    "pipewright",
                    forge,
                    &a,
                    &Verdict::HasCi {
                        files: vec!["Jenkinsfile".into()],
                    },
                    false,
                ),
                explain("r", forge, &go, Some(&t)),
                explain("r", forge, &Verdict::ConfigError("x".into()), None),
            ]
        };
        for text in sample(Forge::Gitlab) {
            assert!(
                !text.contains("pull request") && !text.contains("#7"),
                "GitLab text says pull request:\n{text}"
            );
        }
        let gitlab = sample(Forge::Gitlab).join("\n");
        assert!(gitlab.contains("merge request") && gitlab.contains("!7"));
        for forge in [Forge::Github, Forge::Bitbucket] {
            let all = sample(forge).join("\n");
            assert!(
                !all.contains("merge request") && !all.contains("!7"),
                "{all}"
            );
            assert!(all.contains("pull request") && all.contains("#7"));
        }
    }

    #[test]
    fn parse_errors_keep_the_parser_message() {
        let e = ParseError::Unknown {
            name: "regen".into(),
            suggestions: vec!["regenerate"],
        };
        let r = parse_error("pipewright", &e);
        assert!(r.contains("did you mean `regenerate`?"), "{r}");
        assert!(r.ends_with("`/pipewright help` lists the commands."));
    }

    #[test]
    fn feature_replies() {
        let u = unknown_feature("te`sts");
        assert!(u.starts_with("`te'sts` is not a pipewright feature"), "{u}");
        assert!(u.ends_with(
            "`lint`, `matrix`, `docker`, `security`, `coverage`, `release` and `strict-lint`."
        ));
        let opts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = parse_deploy_options(
            &opts(&[
                "fly",
                "--env",
                "production",
                "--strategy=bluegreen",
                "--region",
                "fra",
            ]),
            true,
        )
        .unwrap();
        assert_eq!(c.environments, [crate::deploy::Environment::Production]);
        assert_eq!(c.strategy, Some(crate::deploy::Strategy::Bluegreen));
        assert_eq!(c.region.as_deref(), Some("fra"));
        assert!(parse_deploy_options(&opts(&[]), true)
            .unwrap_err()
            .contains("`fly`, `aws`"));
        assert!(parse_deploy_options(&opts(&["fly", "--region", "EU west"]), true).is_err());
        assert!(parse_deploy_options(&opts(&["fly", "--force"]), true)
            .unwrap_err()
            .contains("`--force`"));
        assert!(parse_deploy_options(&opts(&["fly", "--env"]), true)
            .unwrap_err()
            .contains("needs a value"));
        assert!(deploy_error("unknown deploy target `fly<io>`").contains("`fly`"));
        let a = deploy_added(
            Forge::Gitlab,
            crate::deploy::DeployTarget::Fly,
            &c,
            &SecretsOutcome::Written {
                names: vec![],
                unmasked: vec![],
                missing: vec!["FLY_API_TOKEN"],
            },
        );
        assert!(
            a.contains("Missing: `FLY_API_TOKEN`")
                && a.contains("credentials set --target fly")
                && a.contains("The merge request gains its deploy files"),
            "{a}"
        );
        assert_eq!(
            feature_switched(Feature::Security, true, Some(true)),
            "`security` was already switched on with a command; nothing changed."
        );
        let s = feature_switched(Feature::Lint, false, None);
        assert!(s.starts_with("Switched `lint` off (before: not set"), "{s}");
        let s = feature_switched(Feature::Lint, true, Some(false));
        assert!(s.contains("before: off, set with a command"), "{s}");
        let o = unexpected_options(Feature::Docker, &["a".into(), "b`".into()]);
        assert_eq!(
            o,
            "`docker` takes no options (got `a` and `b'`), so nothing changed."
        );
    }

    #[test]
    fn ignore_and_unignore() {
        let pr = BotPrRef {
            forge: Forge::Bitbucket,
            number: 3,
            url: None,
            state: PrState::Closed,
        };
        let i = ignored("pipewright", Some(&pr));
        assert!(
            i.contains("`/pipewright unignore`") && i.ends_with("Closed #3."),
            "{i}"
        );
        assert!(!ignored("pipewright", None).contains("Closed"));
        let u = unignored(true, Some(&pr));
        assert!(
            u.contains("is queued") && u.contains("#3 stays closed"),
            "{u}"
        );
        assert!(unignored(false, None).ends_with("was already queued."));
    }

    #[test]
    fn outcomes_and_failures_are_plain() {
        assert_eq!(
            synced("opened #3"),
            "Re-analysed the default branch: opened #3."
        );
        let f = failed(Some("github comment: HTTP 403: <html>@admin"));
        assert!(!f.contains("<html>") && !f.contains("@admin"), "{f}");
        assert!(failed(None).contains("try again later"));
    }

    #[test]
    fn analysis_table_and_verdicts() {
        let mut a = analysis_of(vec![project("."), project("tools/a|b")]);
        a.dockerfiles = vec!["Dockerfile".into()];
        a.warnings = vec!["x".into()];
        let v = Verdict::Propose {
            provider: Provider::Github,
            files: vec![".github/workflows/ci.yml".into()],
        };
        let r = analysis("pipewright", Forge::Github, &a, &v, false);
        assert!(
            r.contains("| path | language | package manager | test tool | frameworks |"),
            "{r}"
        );
        assert!(r.contains("| `.` | rust | cargo |"), "{r}");
        assert!(r.contains("`tools/a\\|b`"), "{r}");
        assert!(r.contains("Dockerfiles: `Dockerfile`."));
        assert!(r.contains("for GitHub Actions:\n\n- `.github/workflows/ci.yml`: runs lint"));
        assert!(r.contains("1 warning while reading"));
        no_commands_in(&r);

        let none = analysis_of(vec![]);
        let r = analysis(
            "pipewright",
            Forge::Github,
            &none,
            &Verdict::NothingToBuild,
            true,
        );
        assert!(r.starts_with("No buildable project was detected."));
        assert!(r.contains("no buildable project or Dockerfile"));
        assert!(r.contains("is ignoring this repository"));
        let r = analysis(
            "pipewright",
            Forge::Github,
            &none,
            &Verdict::HasCi {
                files: vec![".travis.yml".into()],
            },
            false,
        );
        assert!(r.contains("already has CI (`.travis.yml`)"), "{r}");
        let r = analysis(
            "pipewright",
            Forge::Github,
            &none,
            &Verdict::ConfigError(".pipewright.yml:1:1: unknown field `x`".into()),
            false,
        );
        assert!(
            r.contains("configuration is invalid: .pipewright.yml:1:1"),
            "{r}"
        );
        let r = analysis(
            "pipewright",
            Forge::Github,
            &none,
            &Verdict::NotAnalysed("archived".into()),
            false,
        );
        assert!(
            r.contains("does not analyse this repository: archived."),
            "{r}"
        );
    }

    #[test]
    fn huge_analyses_are_bounded() {
        let projects = (0..500).map(|i| project(&format!("p{i}"))).collect();
        let mut a = analysis_of(projects);
        a.dockerfiles = (0..500).map(|i| format!("d{i}/Dockerfile")).collect();
        let files = (0..500).map(|i| format!("f{i}.yml")).collect();
        let r = analysis(
            "pipewright",
            Forge::Github,
            &a,
            &Verdict::Propose {
                provider: Provider::Gitlab,
                files,
            },
            false,
        );
        assert!(r.contains("and 450 more projects."), "{r}");
        assert!(r.chars().count() < 20_000, "{}", r.chars().count());
    }

    #[test]
    fn explain_shows_the_report_files_and_features() {
        let t = Target::github();
        let v = Verdict::Propose {
            provider: Provider::Github,
            files: vec![".github/workflows/ci.yml".into()],
        };
        let e = explain(
            "rust — . \n```\n/pipewright ignore",
            Forge::Github,
            &v,
            Some(&t),
        );
        assert!(
            e.starts_with("### What pipewright detected, and why\n\n````text\n"),
            "{e}"
        );
        assert!(e.contains("- `.github/workflows/ci.yml`: runs lint"));
        assert!(e.contains("pushes to `main`"));
        assert!(e.contains("`lint`, `matrix` and `docker`"), "{e}");
        no_commands_in(&e);
        let e = explain("x", Forge::Github, &Verdict::NothingToBuild, None);
        assert!(e.contains("No pull request"));
        let e = explain(
            "x",
            Forge::Github,
            &Verdict::NotAnalysed("a fork".into()),
            None,
        );
        assert_eq!(e, "pipewright does not analyse this repository: a fork.");
    }

    #[test]
    fn config_names_the_source_of_every_setting() {
        let file = crate::repo_config::parse(
            ".pipewright.yml",
            "branches: [main, dev]\nfeatures:\n  security: true\nruns-on: [self-hosted]\n",
        )
        .unwrap();
        let mut settings = RepoSettings::default();
        settings.set(Feature::Lint, false);
        let target = crate::bot::proposal::effective_target(
            Provider::Gitlab,
            "main",
            Some(&file),
            &settings,
        );
        let v = ConfigView {
            command_word: "pipewright",
            file: ConfigFile::Found {
                path: ".pipewright.yml",
                config: &file,
            },
            settings: &settings,
            ignored: false,
            forge: Forge::Gitlab,
            forge_provider: Provider::Gitlab,
            target: Some(&target),
            pr_branch: "pipewright/ci",
        };
        let c = config(&v);
        assert!(c.contains("- Repository file: `.pipewright.yml`"), "{c}");
        assert!(c.contains("- Chosen with commands: `lint` off"));
        assert!(
            c.contains("- CI system: GitLab CI/CD (the forge's own)"),
            "{c}"
        );
        assert!(
            c.contains("`main` and `dev` (from the repository file)"),
            "{c}"
        );
        assert!(c.contains("  - `lint`: off (chosen with a command)"), "{c}");
        assert!(c.contains("  - `security`: on (repository file)"), "{c}");
        assert!(c.contains("  - `docker`: on (default)"), "{c}");
        assert!(c.contains("- Runners: `self-hosted`"));
        assert!(
            c.ends_with("- Merge request branch: `pipewright/ci`"),
            "{c}"
        );
        assert!(c.contains("merge requests always do"), "{c}");
        no_commands_in(&c);

        let bad = config(&ConfigView {
            file: ConfigFile::Invalid(".pipewright.yml:2:3: unknown field `<b>`"),
            target: None,
            ignored: true,
            ..v
        });
        assert!(
            bad.contains("**invalid**") && bad.contains("`&lt;b&gt;`"),
            "{bad}"
        );
        assert!(bad.contains("- Ignored: yes"));
        assert!(!bad.contains("- Features"));
        let none = config(&ConfigView {
            file: ConfigFile::Absent,
            settings: &RepoSettings::default(),
            ..v
        });
        assert!(none.contains("- Repository file: none"));
        assert!(none.contains("- Chosen with commands: nothing"));
    }

    #[test]
    fn results_join_sections_and_stay_bounded() {
        let one = results(&[Section {
            command: "/pipewright help".into(),
            ok: true,
            body: "body".into(),
        }]);
        assert_eq!(one, "body");
        let two = results(&[
            Section {
                command: "/pipewright help".into(),
                ok: true,
                body: "a".into(),
            },
            Section {
                command: "/pipewright add `x`".into(),
                ok: false,
                body: "b".into(),
            },
        ]);
        assert_eq!(
            two,
            "**`/pipewright help`**\n\na\n\n**`/pipewright add 'x'`**\n\nb"
        );
        no_commands_in(&two);
        let big: Vec<Section> = (0..20)
            .map(|i| Section {
                command: format!("/pipewright explain {i}"),
                ok: true,
                body: "y".repeat(20_000),
            })
            .collect();
        let r = results(&big);
        assert!(
            r.chars().count() <= MAX_REPLY_CHARS,
            "{}",
            r.chars().count()
        );
        assert!(
            r.ends_with("Run them in separate comments."),
            "{}",
            &r[r.len() - 200..]
        );
        let r = results(&[Section {
            command: "x".into(),
            ok: true,
            body: "z".repeat(100_000),
        }]);
        assert!(r.chars().count() <= MAX_REPLY_CHARS);
        let r = results(&[
            Section {
                command: "x".into(),
                ok: true,
                body: "z".repeat(100_000),
            },
            Section {
                command: "y".into(),
                ok: true,
                body: "w".into(),
            },
        ]);
        assert!(r.chars().count() <= MAX_REPLY_CHARS);
        assert!(r.contains("1 more command were") || r.contains("The answers to 1 more command"));
    }
}
