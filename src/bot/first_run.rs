//! What pipewright says on its pull request after watching the proposal's CI run: what
//! failed (the class and the log lines that show it), what it changed and why — or why
//! it changed nothing. Log lines are quoted inside a fence that they cannot close.

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
    let subject = d
        .subject
        .as_deref()
        .map(|s| format!(" (`{}`)", s.replace('`', "")))
        .unwrap_or_default();
    match job {
        Some(j) => format!(
            "The job `{}` failed: **{}**{subject}.",
            j.replace('`', ""),
            d.class.id()
        ),
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
