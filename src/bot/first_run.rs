//! What pipewright says on its pull request after watching the proposal's CI run: what
//! failed (the class and the log lines that show it), what it changed and why — or why
//! it changed nothing. Log lines are quoted inside a fence that they cannot close.

use crate::bot::replies::code;
use crate::diagnose::Diagnosis;
use crate::forge::Forge;

/// "pull request" or "merge request", as each forge's users say it.
fn pr_word(forge: Forge) -> &'static str {
    match forge {
        Forge::Gitlab => "merge request",
        _ => "pull request",
    }
}

/// The quoted log lines, fenced with more backticks than any line holds.
fn quote(d: &Diagnosis, n: usize) -> String {
    let lines: Vec<String> = d
        .excerpt
        .iter()
        .take(n)
        .map(|l| l.chars().take(300).collect::<String>())
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let longest = lines
        .iter()
        .map(|l| {
            let mut best = 0;
            let mut run = 0;
            for c in l.chars() {
                run = if c == '`' { run + 1 } else { 0 };
                best = best.max(run);
            }
            best
        })
        .max()
        .unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    format!("\n{fence}text\n{}\n{fence}\n", lines.join("\n"))
}

fn what_failed(d: &Diagnosis, job: Option<&str>) -> String {
    // The subject comes from the log and the job name from the workflow: both are shown
    // as code spans that cannot be closed early or break the line.
    let subject = d
        .subject
        .as_deref()
        .map(|s| format!(" ({})", code(s)))
        .unwrap_or_default();
    match job {
        Some(j) => format!("The job {} failed: **{}**{subject}.", code(j), d.class.id()),
        None => format!("The run failed: **{}**{subject}.", d.class.id()),
    }
}

/// A fix was pushed.
pub fn healed(
    forge: Forge,
    d: &Diagnosis,
    job: Option<&str>,
    why: &str,
    change: &str,
    n: usize,
) -> String {
    format!(
        "**The first CI run of this {} failed, and pipewright pushed a fix.**\n\n{}\n{}\nWhat changed: {change}.\nWhy: {why}.\n\npipewright changes a proposal at most twice and never repeats a fix; commits people add to this branch are never overwritten.",
        pr_word(forge),
        what_failed(d, job),
        quote(d, n),
    )
}

/// A fix was decided but could not be pushed (people's commits, a closed PR…).
pub fn could_not_push(
    forge: Forge,
    d: &Diagnosis,
    job: Option<&str>,
    change: &str,
    outcome: &str,
    n: usize,
) -> String {
    format!(
        "**The first CI run of this {} failed.**\n\n{}\n{}\npipewright would {change}, but did not push: {outcome}.",
        pr_word(forge),
        what_failed(d, job),
        quote(d, n),
    )
}

/// The failed jobs were re-run.
pub fn reran(forge: Forge, d: &Diagnosis, job: Option<&str>, why: &str, n: usize) -> String {
    format!(
        "**The first CI run of this {} failed; pipewright re-ran the failed jobs once.**\n\n{}\n{}\nWhy: {why}.",
        pr_word(forge),
        what_failed(d, job),
        quote(d, n),
    )
}

/// Nothing changed; people decide.
pub fn explained(forge: Forge, d: &Diagnosis, job: Option<&str>, why: &str, n: usize) -> String {
    format!(
        "**The first CI run of this {} failed. pipewright changed nothing.**\n\n{}\n{}\n{}.",
        pr_word(forge),
        what_failed(d, job),
        quote(d, n),
        capitalise(why),
    )
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// A recorded first run, as `explain` shows it (`db::first_runs::FirstRun`'s fields).
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    /// The forge's run id and attempt.
    pub run: &'a str,
    /// The commit that ran.
    pub sha: &'a str,
    /// `passed` or the failure class.
    pub class: &'a str,
    /// What the class pointed at.
    pub subject: Option<&'a str>,
    /// none, commit, rerun, explain, blocked.
    pub action: &'a str,
    /// The adjustment (JSON) or the reason.
    pub detail: Option<&'a str>,
}

/// Most runs `explain` lists (the latest).
const MAX_RUNS_SHOWN: usize = 20;

/// A table cell as a code span: it cannot close early, break the row or the line.
fn code_cell(text: &str) -> String {
    code(text).replace('|', "\\|")
}

/// The first CI runs of a pull request and what pipewright did about each (`explain`);
/// empty when none was recorded.
pub fn history(forge: Forge, runs: &[Recorded<'_>]) -> String {
    if runs.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "### The first CI runs of this {}\n\n| run | commit | result | what pipewright did |\n| --- | --- | --- | --- |\n",
        pr_word(forge)
    );
    let skip = runs.len().saturating_sub(MAX_RUNS_SHOWN);
    if skip > 0 {
        s.push_str(&format!("| … | | | {skip} earlier runs not shown |\n"));
    }
    for r in &runs[skip..] {
        let result = match (r.class, r.subject) {
            ("passed", _) => "passed".to_owned(),
            (class, Some(subject)) => format!("**{}** ({})", code_cell(class), code_cell(subject)),
            (class, None) => format!("**{}**", code_cell(class)),
        };
        let change = || {
            r.detail
                .and_then(|d| serde_json::from_str::<crate::plan::Adjustment>(d).ok())
                .map(|a| a.describe())
        };
        let did = match r.action {
            "none" => "nothing to do".to_owned(),
            "commit" => match change() {
                Some(c) => format!("pushed a fix: {c}"),
                None => "pushed a fix".to_owned(),
            },
            "blocked" => match change() {
                Some(c) => format!("would {c}, but could not push"),
                None => "decided a fix, but could not push".to_owned(),
            },
            "rerun" => "re-ran the failed jobs".to_owned(),
            "explain" => match r.detail {
                Some(why) => format!("changed nothing: {}", crate::bot::replies::plain(why)),
                None => "changed nothing".to_owned(),
            },
            other => crate::bot::replies::plain(other),
        };
        s.push_str(&format!(
            "| {} | {} | {result} | {} |\n",
            code_cell(r.run),
            code_cell(&r.sha.chars().take(10).collect::<String>()),
            did.replace('|', "\\|").replace('\n', " ")
        ));
    }
    s.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(
        class: &'a str,
        subject: Option<&'a str>,
        action: &'a str,
        detail: Option<&'a str>,
    ) -> Recorded<'a> {
        Recorded {
            run: "8901234567#1",
            sha: "9f3c1e7a2b5d4c6e8f0a",
            class,
            subject,
            action,
            detail,
        }
    }

    #[test]
    fn history_says_what_happened_to_each_run() {
        assert_eq!(history(Forge::Github, &[]), "");
        let h = history(
            Forge::Gitlab,
            &[
                rec(
                    "missing-executable",
                    Some("ruff"),
                    "commit",
                    Some(r#"{"action":"install-tool","tool":"ruff"}"#),
                ),
                rec(
                    "tests-failing",
                    None,
                    "explain",
                    Some("the tests | fail <b>@team</b>"),
                ),
                rec("passed", None, "none", None),
            ],
        );
        assert!(
            h.starts_with("### The first CI runs of this merge request"),
            "{h}"
        );
        assert!(
            h.contains("pushed a fix: install `ruff` before it is used"),
            "{h}"
        );
        assert!(h.contains("| passed | nothing to do |"), "{h}");
        // Text from logs and forges cannot break the table, inject HTML or notify anyone.
        assert!(
            h.contains("the tests \\| fail &lt;b&gt;@\u{200b}team"),
            "{h}"
        );
        // Heading, blank line, table head and rule, one row per run.
        assert_eq!(h.lines().count(), 7, "{h}");
    }

    #[test]
    fn what_failed_neutralises_log_text() {
        let d = Diagnosis {
            class: crate::diagnose::FailureClass::MissingExecutable,
            rule: "x",
            subject: Some("ru`ff\nnext".into()),
            step: None,
            excerpt: vec!["```".into(), "ruff: command not found".into()],
        };
        let body = explained(Forge::Github, &d, Some("te`st"), "why", 12);
        assert!(body.contains("The job `te'st` failed"), "{body}");
        assert!(body.contains("(`ru'ff next`)"), "{body}");
        // The fence is longer than any backtick run of the quoted lines.
        assert!(
            body.contains("````text\n```\nruff: command not found\n````"),
            "{body}"
        );
    }
}
