//! Why a CI job failed, from its log: the failure classifier `pipewright try` and the
//! first-run healing loop share. Pure: bytes in, a [`Diagnosis`] out; no forge, no
//! database, no clock, no environment.
//!
//! Two steps. [`normalise`] turns a raw job log into plain lines whatever forge wrote it:
//! GitHub's timestamps and `##[group]`/`##[error]` markers, GitLab's ANSI colours and
//! `section_start:…`/`section_end:…` markers, Bitbucket's `+ command` echo lines; the
//! commands a job ran become `$ command` lines, so every format marks its steps the same
//! way. Only the tail of the log is kept (failures are at the end; logs can be hundreds of
//! megabytes). [`classify`] then runs an ordered list of rules ([`rules::RULES`]) over the
//! normalised lines and reports the first that fires: its class, what it is about (the
//! missing executable, the lint tool, the unsupported version, the service, the step that
//! ran out of time or memory), the failing step, and the lines worth quoting.
//!
//! It must never panic and never take long, whatever the bytes: logs are written by the
//! project's own code.

pub mod rules;

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Bytes of a raw log [`normalise`] keeps by default: the tail. 2 MiB is tens of
/// thousands of lines, far more than any failure's context, and bounded for a worker.
pub const MAX_LOG_BYTES: usize = 2 * 1024 * 1024;

/// Longest line kept, in characters (minified bundles, progress bars, base64 blobs);
/// longer lines are cut and marked.
pub const MAX_LINE_CHARS: usize = 2_000;

/// Lines [`classify`] looks at, from the end: the failure and its cause are at the tail.
pub const MAX_CLASSIFY_LINES: usize = 5_000;

/// Most lines in [`Diagnosis::excerpt`].
pub const MAX_EXCERPT_LINES: usize = 12;

/// Longest excerpt line, in characters (an excerpt is quoted in a comment).
pub const MAX_EXCERPT_CHARS: usize = 240;

/// Which forge wrote a log (its decorations differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogFormat {
    /// A GitHub Actions job log (`GET /repos/{owner}/{repo}/actions/jobs/{id}/logs`).
    Github,
    /// A GitLab job trace.
    Gitlab,
    /// A Bitbucket Pipelines step log.
    Bitbucket,
    /// Undecorated output (a local run, `pipewright try`).
    Plain,
}

impl LogFormat {
    /// Every format, in a stable order.
    pub const ALL: [LogFormat; 4] = [
        LogFormat::Github,
        LogFormat::Gitlab,
        LogFormat::Bitbucket,
        LogFormat::Plain,
    ];

    /// The lowercase name (test data folders, the CLI).
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Github => "github",
            LogFormat::Gitlab => "gitlab",
            LogFormat::Bitbucket => "bitbucket",
            LogFormat::Plain => "plain",
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("unknown log format `{s}` (github, gitlab, bitbucket, plain)"))
    }
}

/// What kind of failure a log shows. The ids are stable: they are stored in the database
/// and used as metric labels, so never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureClass {
    /// A step called a program nothing installed (`ruff: command not found`).
    MissingExecutable,
    /// A lint or format check found problems in the code (ruff, clippy, eslint, black…).
    LintFindings,
    /// The interpreter or toolchain version cannot build the project (requires-python,
    /// `requires rustc 1.80 or newer`, `EBADENGINE`).
    ToolchainUnsupported,
    /// A frozen install refused an out-of-date lockfile (`npm ci`, `--frozen-lockfile`,
    /// `--locked`).
    LockfileMismatch,
    /// A service the tests need was not reachable (PostgreSQL, Redis, MySQL…).
    ServiceUnreachable,
    /// The project's own tests failed.
    TestsFailing,
    /// A passing problem: network, registry, rate limit, a lost runner.
    Transient,
    /// The job or a step ran out of time or memory.
    TimeoutOom,
    /// None of the rules recognised the failure.
    Unknown,
}

impl FailureClass {
    /// Every class, in a stable order.
    pub const ALL: [FailureClass; 9] = [
        FailureClass::MissingExecutable,
        FailureClass::LintFindings,
        FailureClass::ToolchainUnsupported,
        FailureClass::LockfileMismatch,
        FailureClass::ServiceUnreachable,
        FailureClass::TestsFailing,
        FailureClass::Transient,
        FailureClass::TimeoutOom,
        FailureClass::Unknown,
    ];

    /// The stable id (database, metrics, test data folders).
    pub fn id(self) -> &'static str {
        match self {
            FailureClass::MissingExecutable => "missing-executable",
            FailureClass::LintFindings => "lint-findings",
            FailureClass::ToolchainUnsupported => "toolchain-unsupported",
            FailureClass::LockfileMismatch => "lockfile-mismatch",
            FailureClass::ServiceUnreachable => "service-unreachable",
            FailureClass::TestsFailing => "tests-failing",
            FailureClass::Transient => "transient",
            FailureClass::TimeoutOom => "timeout-oom",
            FailureClass::Unknown => "unknown",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for FailureClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureClass::ALL
            .into_iter()
            .find(|c| c.id() == s)
            .ok_or_else(|| format!("unknown failure class `{s}`"))
    }
}

impl Serialize for FailureClass {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

/// What a failed job's log says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// The kind of failure.
    pub class: FailureClass,
    /// Id of the rule that fired (`unknown` when none did).
    pub rule: &'static str,
    /// What the failure is about: the missing executable; the lint tool (ruff, clippy,
    /// eslint, mypy, black, rustfmt, prettier, flake8, …); the unsupported version; the
    /// service `host:port` or name; the step that timed out or ran out of memory.
    pub subject: Option<String>,
    /// The failing step's command, when the log shows it.
    pub step: Option<String>,
    /// At most [`MAX_EXCERPT_LINES`] relevant lines, cleaned, to quote in a comment.
    pub excerpt: Vec<String>,
}

/// [`normalise_bounded`] with the [`MAX_LOG_BYTES`] default.
pub fn normalise(raw: &[u8], format: LogFormat) -> String {
    normalise_bounded(raw, format, MAX_LOG_BYTES)
}

/// Plain lines from a raw log written by `format`, from its last `limit` bytes (cut at
/// a line start): forge decorations and terminal escapes removed, carriage-return
/// overwrites resolved, invalid UTF-8 replaced, each command the job ran as a
/// `$ command` line.
pub fn normalise_bounded(raw: &[u8], format: LogFormat, limit: usize) -> String {
    let tail = if raw.len() > limit {
        let start = raw.len() - limit;
        // Start at a line boundary: the cut line would be half a line (and perhaps half
        // a UTF-8 sequence). A tail without any newline is kept as it is.
        match raw[start..].iter().position(|&b| b == b'\n') {
            Some(nl) => &raw[start + nl + 1..],
            None => &raw[start..],
        }
    } else {
        raw
    };
    let text = String::from_utf8_lossy(tail);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = String::with_capacity(text.len().min(limit));
    let mut in_run_group = false;
    let mut blank_pending = false;
    for raw_line in text.split('\n') {
        let mut line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let owned;
        match format {
            LogFormat::Github => {
                line = strip_github_timestamp(line);
                // The script echo between `##[group]Run …` and `##[endgroup]` repeats
                // the command (and its env); the `$` line already names the step, and the
                // script text must not be mistaken for its output.
                if let Some(rest) = line.strip_prefix("##[endgroup]") {
                    in_run_group = false;
                    if rest.trim().is_empty() {
                        continue;
                    }
                    line = rest;
                }
                if in_run_group {
                    continue;
                }
                if let Some(title) = line.strip_prefix("##[group]") {
                    let title = clean(title);
                    match title.strip_prefix("Run ") {
                        Some(cmd) => {
                            in_run_group = true;
                            owned = format!("$ {}", cmd.trim());
                        }
                        None => owned = title,
                    }
                    push_line(&mut out, &owned, &mut blank_pending);
                    continue;
                }
                owned = github_marker(line);
                line = &owned;
            }
            LogFormat::Gitlab => {
                owned = strip_gitlab_sections(line);
                line = &owned;
            }
            LogFormat::Bitbucket | LogFormat::Plain => {}
        }
        let mut cleaned = clean(line);
        if format == LogFormat::Bitbucket {
            // Bitbucket echoes each script line as `+ command` (`++` for nested shells).
            if let Some(cmd) = cleaned.strip_prefix("+ ") {
                cleaned = format!("$ {cmd}");
            }
        }
        push_line(&mut out, &cleaned, &mut blank_pending);
    }
    while out.ends_with('\n') {
        out.pop();
    }
    out
}

/// Appends `line` to `out`, keeping at most one blank line in a row and none at the top.
fn push_line(out: &mut String, line: &str, blank_pending: &mut bool) {
    if line.trim().is_empty() {
        *blank_pending = !out.is_empty();
        return;
    }
    if *blank_pending {
        out.push('\n');
        *blank_pending = false;
    }
    out.push_str(line);
    out.push('\n');
}

/// `2024-05-01T10:00:00.1234567Z ` (GitHub's per-line timestamp) removed.
fn strip_github_timestamp(line: &str) -> &str {
    let b = line.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let shaped = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    if !shaped {
        return line;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    if b.get(i) != Some(&b'Z') {
        return line;
    }
    i += 1;
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    // Every byte up to `i` is ASCII, so `i` is a char boundary.
    &line[i..]
}

/// GitHub's workflow-command markers as words: `##[error]x` → `Error: x`.
fn github_marker(line: &str) -> String {
    let Some(rest) = line.strip_prefix("##[") else {
        return line.to_owned();
    };
    let Some((name, msg)) = rest.split_once(']') else {
        return line.to_owned();
    };
    match name {
        "error" => format!("Error: {msg}"),
        "warning" => format!("Warning: {msg}"),
        "notice" => format!("Notice: {msg}"),
        // `##[command]` lines are the runner's own (git in checkout); `##[debug]` and
        // `##[section]` are bookkeeping.
        "command" | "debug" | "section" => msg.to_owned(),
        _ => line.to_owned(),
    }
}

/// GitLab's `section_start:TIME:NAME[opts]\r\x1b[0K` / `section_end:…` markers removed;
/// several may share a line, with the section's header after them.
fn strip_gitlab_sections(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    loop {
        let next = ["section_start:", "section_end:"]
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, m.len())))
            .min();
        let Some((i, mlen)) = next else {
            out.push_str(rest);
            return out;
        };
        let after = &rest[i + mlen..];
        // `TIME:NAME` then `\r`; anything else is not a marker (a log line that merely
        // mentions one).
        let Some(cr) = after.find('\r') else {
            out.push_str(rest);
            return out;
        };
        let marker = &after[..cr];
        let well_formed = marker.split_once(':').is_some_and(|(t, n)| {
            !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()) && !n.is_empty()
        });
        if !well_formed {
            out.push_str(&rest[..i + mlen]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..i]);
        rest = &after[cr + 1..];
        rest = rest.strip_prefix("\u{1b}[0K").unwrap_or(rest);
    }
}

/// One line as a person would see it on a terminal: escape sequences removed, a carriage
/// return overwriting what came before it, other control characters dropped, trailing
/// space trimmed, cut at [`MAX_LINE_CHARS`].
fn clean(line: &str) -> String {
    // A `\r` returns to the line start: the last non-empty segment is what shows.
    let shown = line
        .rsplit('\r')
        .find(|seg| !strip_escapes(seg).trim().is_empty())
        .unwrap_or("");
    let mut out = strip_escapes(shown);
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    if out.chars().count() > MAX_LINE_CHARS {
        let cut = out
            .char_indices()
            .nth(MAX_LINE_CHARS)
            .map_or(out.len(), |(i, _)| i);
        out.truncate(cut);
        out.push_str(" …");
    }
    out
}

/// ANSI/VT escape sequences (CSI, OSC, two-byte) and other control characters removed;
/// tabs become spaces.
fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                // CSI: ESC [ parameters… final byte in @–~.
                Some('[') => {
                    chars.next();
                    for n in chars.by_ref() {
                        if ('@'..='~').contains(&n) {
                            break;
                        }
                    }
                }
                // OSC: ESC ] … BEL or ESC \.
                Some(']') => {
                    chars.next();
                    while let Some(n) = chars.next() {
                        if n == '\u{7}' {
                            break;
                        }
                        if n == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                // ESC followed by one character (charset selection and the like).
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\t' => out.push(' '),
            c if c.is_control() => {}
            // The C1 CSI (U+009B) is a control character too: dropped above.
            c => out.push(c),
        }
    }
    out
}

/// Classifies a normalised log (see [`normalise`]).
pub fn classify(log: &str) -> Diagnosis {
    let all: Vec<&str> = log.lines().collect();
    let lines = &all[all.len().saturating_sub(MAX_CLASSIFY_LINES)..];
    let ctx = rules::Lines::new(lines);
    // The failing step first, then the whole log; in each, strong rules before weak
    // ones, each list in its documented order.
    for window in [ctx.failing_window(), ctx.everything()] {
        for weak in [false, true] {
            for (r, rule) in rules::RULES.iter().enumerate() {
                if rule.weak != weak {
                    continue;
                }
                if let Some(hit) = ctx.find_in(r, window.clone()) {
                    let step = ctx.step_at(hit.line).map(str::to_owned);
                    return Diagnosis {
                        class: rule.class,
                        rule: rule.id,
                        subject: ctx.subject(&hit, step.as_deref()),
                        step,
                        excerpt: ctx.excerpt(&hit),
                    };
                }
            }
        }
    }
    Diagnosis {
        class: FailureClass::Unknown,
        rule: "unknown",
        subject: None,
        step: ctx.failing_step().map(str::to_owned),
        excerpt: ctx.tail_excerpt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_decorations_are_removed_and_steps_marked() {
        let raw = "\u{feff}2024-05-01T10:00:00.1234567Z ##[group]Run cargo test --locked\n\
                   2024-05-01T10:00:00.1234568Z \u{1b}[36;1mcargo test --locked\u{1b}[0m\n\
                   2024-05-01T10:00:00.1234569Z shell: /usr/bin/bash -e {0}\n\
                   2024-05-01T10:00:00.1234570Z ##[endgroup]\n\
                   2024-05-01T10:00:01.0000000Z test result: FAILED. 1 passed; 1 failed\n\
                   2024-05-01T10:00:01.0000001Z ##[error]Process completed with exit code 101.\n";
        assert_eq!(
            normalise(raw.as_bytes(), LogFormat::Github),
            "$ cargo test --locked\ntest result: FAILED. 1 passed; 1 failed\n\
             Error: Process completed with exit code 101."
        );
    }

    #[test]
    fn gitlab_sections_and_ansi_are_removed() {
        let raw = "\u{1b}[0KRunning with gitlab-runner 17.0.0\u{1b}[0;m\n\
                   section_start:1714557620:step_script\r\u{1b}[0K\u{1b}[0K\u{1b}[36;1mExecuting \"step_script\" stage of the job script\u{1b}[0;m\u{1b}[0;m\n\
                   \u{1b}[32;1m$ pytest -q\u{1b}[0;m\n\
                   1 failed, 2 passed in 0.10s\n\
                   section_end:1714557700:step_script\r\u{1b}[0Ksection_start:1714557700:cleanup_file_variables[collapsed=true]\r\u{1b}[0K\u{1b}[0K\u{1b}[36;1mCleaning up project directory and file based variables\u{1b}[0;m\u{1b}[0;m\n\
                   section_end:1714557701:cleanup_file_variables\r\u{1b}[0K\u{1b}[31;1mERROR: Job failed: exit code 1\n\u{1b}[0;m\n";
        assert_eq!(
            normalise(raw.as_bytes(), LogFormat::Gitlab),
            "Running with gitlab-runner 17.0.0\n\
             Executing \"step_script\" stage of the job script\n\
             $ pytest -q\n1 failed, 2 passed in 0.10s\n\
             Cleaning up project directory and file based variables\n\
             ERROR: Job failed: exit code 1"
        );
    }

    #[test]
    fn bitbucket_echo_lines_become_steps() {
        let raw = "+ umask 000\n\n\n+ npm ci\nnpm ERR! code EUSAGE\n";
        assert_eq!(
            normalise(raw.as_bytes(), LogFormat::Bitbucket),
            "$ umask 000\n\n$ npm ci\nnpm ERR! code EUSAGE"
        );
    }

    #[test]
    fn carriage_returns_keep_what_the_terminal_shows() {
        let raw = "Downloading 10%\rDownloading 50%\rDownloading 100%\r\nnext\r\n";
        assert_eq!(
            normalise(raw.as_bytes(), LogFormat::Plain),
            "Downloading 100%\nnext"
        );
        // A trailing `\r` with nothing after it does not erase the line.
        assert_eq!(normalise(b"done\r\r", LogFormat::Plain), "done");
    }

    #[test]
    fn escapes_and_control_characters_are_removed() {
        let raw = "\u{1b}[1m\u{1b}[31merror\u{1b}[0m: \u{1b}]8;;https://x\u{7}link\u{1b}]8;;\u{1b}\\ \u{7}bell\u{0}\ttab\n";
        assert_eq!(
            normalise(raw.as_bytes(), LogFormat::Plain),
            "error: link bell tab"
        );
        // An escape at the very end, an unterminated CSI.
        assert_eq!(normalise(b"a\x1b", LogFormat::Plain), "a");
        assert_eq!(normalise(b"a\x1b[31", LogFormat::Plain), "a");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let raw = b"ok \xff\xfe line\n\xc3\x28 next\n";
        let n = normalise(raw, LogFormat::Gitlab);
        assert_eq!(n, "ok \u{fffd}\u{fffd} line\n\u{fffd}( next");
    }

    #[test]
    fn empty_input_gives_an_empty_log_and_an_unknown_diagnosis() {
        for f in LogFormat::ALL {
            assert_eq!(normalise(b"", f), "");
            assert_eq!(normalise(b"\n\n\r\n", f), "");
        }
        let d = classify("");
        assert_eq!(d.class, FailureClass::Unknown);
        assert!(d.excerpt.is_empty() && d.step.is_none());
    }

    #[test]
    fn huge_input_is_bounded_to_its_tail() {
        let mut raw = Vec::new();
        for i in 0..200_000 {
            raw.extend_from_slice(format!("line {i} of noise\n").as_bytes());
        }
        raw.extend_from_slice(b"bash: line 1: ruff: command not found\n");
        let n = normalise_bounded(&raw, LogFormat::Plain, 64 * 1024);
        assert!(n.len() <= 64 * 1024, "{}", n.len());
        assert!(n.starts_with("line "), "cut at a line start: {}", &n[..20]);
        assert!(n.ends_with("ruff: command not found"));
        let d = classify(&n);
        assert_eq!(d.class, FailureClass::MissingExecutable);
        // One enormous line is cut to MAX_LINE_CHARS.
        let long = "x".repeat(MAX_LINE_CHARS * 3);
        let n = normalise(long.as_bytes(), LogFormat::Plain);
        assert!(n.chars().count() <= MAX_LINE_CHARS + 2, "{}", n.len());
        // A cut in the middle of a multi-byte character never splits it.
        let raw = "é".repeat(1000);
        let n = normalise_bounded(raw.as_bytes(), LogFormat::Plain, 101);
        assert!(n.chars().all(|c| c == 'é' || c == '\u{fffd}'), "{n}");
    }

    #[test]
    fn github_timestamps_only_when_well_formed() {
        assert_eq!(strip_github_timestamp("2024-05-01T10:00:00Z x"), "x");
        assert_eq!(strip_github_timestamp("2024-05-01T10:00:00.5Z x"), "x");
        assert_eq!(
            strip_github_timestamp("2024-05-01 10:00:00 x"),
            "2024-05-01 10:00:00 x"
        );
        assert_eq!(
            strip_github_timestamp("2024-05-01T10:00"),
            "2024-05-01T10:00"
        );
        assert_eq!(strip_github_timestamp("é"), "é");
    }

    /// Messages whose subject is on a later line.
    #[test]
    fn subjects_spanning_lines() {
        let d = classify(
            "$ psql -c 'select 1'\npsql: error: could not connect to server: Connection refused\n\
             Is the server running on host \"localhost\" (127.0.0.1) and accepting\n\
             TCP/IP connections on port 5432?",
        );
        assert_eq!(d.class, FailureClass::ServiceUnreachable);
        assert_eq!(d.subject.as_deref(), Some("localhost:5432"));
        let d = classify(
            "$ npm install\nnpm warn EBADENGINE Unsupported engine {\n\
             npm warn EBADENGINE   package: 'vite@7.0.0',\n\
             npm warn EBADENGINE   required: { node: '^20.19.0 || >=22.12.0' },\n\
             npm warn EBADENGINE   current: { node: 'v18.20.4', npm: '10.8.2' }\n\
             npm warn EBADENGINE }\nsh: 1: vite: not found",
        );
        // A warning loses to what actually failed.
        assert_eq!(d.class, FailureClass::MissingExecutable);
        assert_eq!(d.subject.as_deref(), Some("vite"));
        let d = classify(
            "$ npm install\nnpm warn EBADENGINE Unsupported engine {\n\
             npm warn EBADENGINE   current: { node: 'v18.20.4', npm: '10.8.2' }\n\
             npm warn EBADENGINE }\nError: Process completed with exit code 1.",
        );
        assert_eq!(d.class, FailureClass::ToolchainUnsupported);
        assert_eq!(d.rule, "node-engine-warning");
        assert_eq!(d.subject.as_deref(), Some("node v18.20.4"));
    }

    /// What earlier steps printed does not decide; the failing step's output does.
    #[test]
    fn the_failing_step_decides() {
        let log = "$ pip install -e .\n\
                   WARNING: Retrying (Retry(total=4)) after connection broken by 'ReadTimeoutError(\"HTTPSConnectionPool(host='pypi.org', port=443): Read timed out.\")'\n\
                   Successfully installed svc-0.1.0\n\
                   $ pytest\n\
                   FAILED tests/test_a.py::test_one - assert 1 == 2\n\
                   ========================= 1 failed, 3 passed in 0.10s ==========================\n\
                   Error: Process completed with exit code 1.\n\
                   Post job cleanup.";
        let d = classify(log);
        assert_eq!(d.class, FailureClass::TestsFailing, "{d:?}");
        assert_eq!(d.step.as_deref(), Some("pytest"));
        // A later step that ran anyway (`if: always()`) is not the failing step.
        let log = "$ cargo test\ntest result: FAILED. 1 passed; 1 failed\n\
                   Error: Process completed with exit code 101.\n\
                   $ actions/upload-artifact@v4\nWith the provided path, there will be 1 file uploaded";
        let d = classify(log);
        assert_eq!(d.class, FailureClass::TestsFailing);
        assert_eq!(d.step.as_deref(), Some("cargo test"));
        // GitLab's after_script runs after the failure; its commands are not the step.
        let log = "$ ruff check .\nbash: line 3: ruff: command not found\n\
                   Running after_script\n$ echo done\ndone\nERROR: Job failed: exit code 127";
        let d = classify(log);
        assert_eq!(d.subject.as_deref(), Some("ruff"));
        assert_eq!(d.step.as_deref(), Some("ruff check ."));
    }

    #[test]
    fn class_ids_round_trip() {
        for c in FailureClass::ALL {
            assert_eq!(c.id().parse::<FailureClass>(), Ok(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.id())
            );
        }
        assert!("nope".parse::<FailureClass>().is_err());
        for f in LogFormat::ALL {
            assert_eq!(f.as_str().parse::<LogFormat>(), Ok(f));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Arbitrary bytes, in every format, never panic, and the classifier copes with
        /// whatever comes out.
        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            for f in LogFormat::ALL {
                let n = normalise_bounded(&raw, f, 1024);
                let d = classify(&n);
                proptest::prop_assert!(d.excerpt.len() <= MAX_EXCERPT_LINES);
            }
        }

        /// Text made of the pieces rules and decorations look for, in any order.
        #[test]
        fn marker_soup_never_panics(parts in proptest::collection::vec(proptest::sample::select(vec![
            "##[group]Run ", "##[endgroup]", "##[error]", "section_start:1:x\r", "section_end:",
            "\u{1b}[", "\u{1b}]", "\r", "\n", "$ ", "+ ", "command not found", "FAILED",
            "exit code 137", ":5432", "Connection refused", "`", "é", "\u{feff}", "Found 3 errors.",
            "2024-05-01T10:00:00.1Z ", "requires rustc 1.80 or newer", "ERR_PNPM_OUTDATED_LOCKFILE",
        ]), 0..64)) {
            let raw = parts.concat();
            for f in LogFormat::ALL {
                let _ = classify(&normalise(raw.as_bytes(), f));
            }
        }
    }
}
