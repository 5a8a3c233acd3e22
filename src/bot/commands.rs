//! Slash-command parsing for PR and issue comments.
//!
//! A comment is Markdown written by people, so the parser follows just enough
//! of CommonMark to avoid acting on text the author did not mean as a command:
//! fenced and indented code, block quotes and HTML comments are skipped. Each
//! command line yields its own [`ParsedLine`], so one bad line never hides the
//! others and the bot can answer every line on its own.
//!
//! The parser never panics: the input is untrusted, so every step works on
//! whole `char`s and falls back to "not a command" or a [`ParseError`].

use std::fmt;

/// Most bytes of a comment that are looked at; the rest is ignored so a huge
/// comment cannot make the bot do unbounded work.
pub const MAX_COMMENT_BYTES: usize = 64 * 1024;

/// Most commands taken from one comment; later command lines are ignored so a
/// single comment cannot queue unbounded work.
pub const MAX_COMMANDS: usize = 20;

/// Every command name the parser knows, in the order `help` lists them.
pub const COMMAND_NAMES: &[&str] = &[
    "help",
    "explain",
    "regenerate",
    "add",
    "remove",
    "ignore",
    "unignore",
    "config",
    "analyze",
];

/// Longest user text quoted back in an error message; longer text is cut so a
/// reply cannot be blown up by a pathological argument.
const MAX_ECHO_CHARS: usize = 64;

/// Most surplus arguments quoted back in an error message, for the same reason.
const MAX_ECHO_ARGS: usize = 5;

/// What counts as a command trigger in a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParserConfig {
    /// The word after `/`, e.g. `pipewright` for `/pipewright help`.
    /// Compared case-insensitively.
    pub command_word: String,
    /// Names accepted after `@`, e.g. `pipewright` or `pipewright[bot]`.
    /// Compared case-insensitively.
    pub mentions: Vec<String>,
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig {
            command_word: "pipewright".to_string(),
            mentions: vec!["pipewright".to_string(), "pipewright[bot]".to_string()],
        }
    }
}

/// A command recognised in a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// List the commands and what they do.
    Help,
    /// Explain what the bot changed and why.
    Explain,
    /// Regenerate the bot's changes from scratch.
    Regenerate,
    /// Add a feature, with free-form options passed on as given.
    Add {
        /// The feature to add.
        feature: String,
        /// Further arguments, in order.
        options: Vec<String>,
    },
    /// Remove a feature (`remove deploy <target>` names the target).
    Remove {
        /// The feature to remove.
        feature: String,
        /// Further arguments (only `deploy` takes one: the target).
        options: Vec<String>,
    },
    /// Stop the bot from touching this PR or repository.
    Ignore,
    /// Undo a previous [`Command::Ignore`].
    Unignore,
    /// Show the configuration in effect.
    Config,
    /// Analyze the repository and report findings.
    Analyze,
}

impl Command {
    /// The canonical (lowercase) name of the command, as in [`COMMAND_NAMES`].
    pub fn name(&self) -> &'static str {
        match self {
            Command::Help => "help",
            Command::Explain => "explain",
            Command::Regenerate => "regenerate",
            Command::Add { .. } => "add",
            Command::Remove { .. } => "remove",
            Command::Ignore => "ignore",
            Command::Unignore => "unignore",
            Command::Config => "config",
            Command::Analyze => "analyze",
        }
    }

    /// Whether the command only makes sense on a PR opened by the bot.
    ///
    /// `help` and `analyze` work on any issue or PR; every other command acts
    /// on the bot's own changes.
    pub fn requires_bot_pr(&self) -> bool {
        !matches!(self, Command::Help | Command::Analyze)
    }
}

/// Why a command line could not be turned into a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A quoted argument was opened with `quote` but never closed.
    UnterminatedQuote {
        /// The quote character, `"` or `'`.
        quote: char,
    },
    /// The command name is not one of [`COMMAND_NAMES`].
    Unknown {
        /// The name as written.
        name: String,
        /// Close known names, best first, at most three.
        suggestions: Vec<&'static str>,
    },
    /// A required argument is absent.
    MissingArgument {
        /// The command's canonical name.
        command: &'static str,
        /// What the argument stands for, e.g. `feature`.
        argument: &'static str,
    },
    /// Arguments were given that the command does not take.
    UnexpectedArguments {
        /// The command's canonical name.
        command: &'static str,
        /// The surplus arguments, in order.
        args: Vec<String>,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnterminatedQuote { quote } => {
                write!(
                    f,
                    "unterminated quote: a `{quote}` is opened but never closed"
                )
            }
            ParseError::Unknown { name, suggestions } => {
                write!(f, "unknown command `{}`", echo(name))?;
                match suggestions.as_slice() {
                    [] => write!(f, "; known commands are {}", join_code(COMMAND_NAMES)),
                    list => write!(f, "; did you mean {}?", join_code(list)),
                }
            }
            ParseError::MissingArgument { command, argument } => {
                write!(
                    f,
                    "`{command}` needs a {argument}, e.g. `{command} <{argument}>`"
                )
            }
            ParseError::UnexpectedArguments { command, args } => {
                let mut shown: Vec<String> = args
                    .iter()
                    .take(MAX_ECHO_ARGS)
                    .map(|a| format!("`{}`", echo(a)))
                    .collect();
                if args.len() > MAX_ECHO_ARGS {
                    shown.push(format!("and {} more", args.len() - MAX_ECHO_ARGS));
                }
                let noun = if args.len() == 1 {
                    "argument"
                } else {
                    "arguments"
                };
                write!(
                    f,
                    "`{command}` takes no further {noun}, got {}",
                    shown.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Makes user text safe to show inside a Markdown code span: a backtick would
/// end the span early, and very long text would flood the reply.
fn echo(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_ECHO_CHARS)
        .map(|c| if c == '`' || c.is_control() { '\'' } else { c })
        .collect();
    if text.chars().nth(MAX_ECHO_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Formats names as "`a`", "`a` or `b`", "`a`, `b` or `c`".
fn join_code(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// One command line found in a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    /// 1-based line number within the comment.
    pub line: usize,
    /// The line as written, without its line ending.
    pub raw: String,
    /// The command, or why the line could not be parsed.
    pub result: Result<Command, ParseError>,
}

/// Finds every command line in a Markdown comment, in order.
///
/// Only lines that start with a trigger (`/<command_word>` or `@<mention>`)
/// are returned; other text is ignored. At most [`MAX_COMMENT_BYTES`] of the
/// comment and [`MAX_COMMANDS`] command lines are considered.
pub fn parse_comment(text: &str, cfg: &ParserConfig) -> Vec<ParsedLine> {
    let text = cap_text(text);
    let mut out = Vec::new();
    let mut fence: Option<Fence> = None;
    let mut in_html_comment = false;

    for (idx, raw_line) in text.split('\n').enumerate() {
        if out.len() >= MAX_COMMANDS {
            break;
        }
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);

        // Inside a fence nothing is Markdown, not even an HTML comment opener.
        if let Some(open) = fence {
            if open.is_closed_by(line) {
                fence = None;
            }
            continue;
        }
        // An HTML comment hides everything up to `-->`, fences included, so it
        // is handled before fence openers.
        if !in_html_comment {
            if let Some(open) = Fence::open(line) {
                fence = Some(open);
                continue;
            }
        }
        let visible = strip_html_comments(line, &mut in_html_comment);
        let Some(rest) = block_content(&visible) else {
            continue;
        };
        let Some(args) = strip_trigger(rest, cfg) else {
            continue;
        };
        out.push(ParsedLine {
            line: idx + 1,
            raw: line.to_string(),
            result: parse_command(args),
        });
    }
    out
}

/// Cuts the text to [`MAX_COMMENT_BYTES`] on a line boundary, so a command is
/// never parsed from half a line; a single over-long line is cut at a char
/// boundary instead, since it has no line boundary to use.
fn cap_text(text: &str) -> &str {
    if text.len() <= MAX_COMMENT_BYTES {
        return text;
    }
    let mut end = MAX_COMMENT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    match head.rfind('\n') {
        Some(nl) => &head[..nl],
        None => head,
    }
}

/// An open fenced code block: its fence character and length.
#[derive(Debug, Clone, Copy)]
struct Fence {
    ch: char,
    len: usize,
}

impl Fence {
    /// Recognises a fence opener: up to 3 spaces, then 3+ backticks or
    /// tildes. A backtick info string may not hold a backtick, because then
    /// CommonMark reads the line as inline code rather than a fence.
    fn open(line: &str) -> Option<Fence> {
        let rest = strip_indent(line, 3)?;
        let ch = rest.chars().next().filter(|&c| c == '`' || c == '~')?;
        let len = rest.chars().take_while(|&c| c == ch).count();
        if len < 3 {
            return None;
        }
        // Fence chars are ASCII, so `len` chars are `len` bytes.
        let info = &rest[len..];
        if ch == '`' && info.contains('`') {
            return None;
        }
        Some(Fence { ch, len })
    }

    /// A closing fence uses the same char, at least as many of them, and
    /// nothing but whitespace after.
    fn is_closed_by(self, line: &str) -> bool {
        let Some(rest) = strip_indent(line, 3) else {
            return false;
        };
        let len = rest.chars().take_while(|&c| c == self.ch).count();
        len >= self.len && rest[len..].trim().is_empty()
    }
}

/// Strips leading spaces and tabs if they reach less than `max + 1` columns
/// (tabs advance to the next multiple of 4, as in CommonMark); `None` when
/// the line is indented further, i.e. it is indented code.
fn strip_indent(line: &str, max: usize) -> Option<&str> {
    let mut col = 0;
    for (i, c) in line.char_indices() {
        match c {
            ' ' => col += 1,
            '\t' => col += 4 - col % 4,
            _ => return (col <= max).then_some(&line[i..]),
        }
        if col > max {
            return None;
        }
    }
    // Blank line: nothing to parse either way.
    Some("")
}

/// Removes `<!-- ... -->` spans from a line, carrying an open comment over to
/// the next line through `in_comment`.
fn strip_html_comments(line: &str, in_comment: &mut bool) -> String {
    let mut out = String::new();
    let mut rest = line;
    loop {
        if *in_comment {
            match rest.find("-->") {
                Some(end) => {
                    rest = &rest[end + 3..];
                    *in_comment = false;
                }
                None => return out,
            }
        } else {
            match rest.find("<!--") {
                Some(start) => {
                    out.push_str(&rest[..start]);
                    rest = &rest[start + 4..];
                    *in_comment = true;
                }
                None => {
                    out.push_str(rest);
                    return out;
                }
            }
        }
    }
}

/// The text of a line that may hold a command: `None` for indented code and
/// block quotes, which quote someone else's words rather than give orders.
fn block_content(line: &str) -> Option<&str> {
    let rest = strip_indent(line, 3)?;
    if rest.starts_with('>') {
        return None;
    }
    Some(rest)
}

/// If `line` starts with a trigger followed by whitespace or its end, returns
/// the text after the trigger.
fn strip_trigger<'a>(line: &'a str, cfg: &ParserConfig) -> Option<&'a str> {
    let word_end = line.find(char::is_whitespace).unwrap_or(line.len());
    let (head, rest) = line.split_at(word_end);
    let mut chars = head.chars();
    let sigil = chars.next()?;
    let name = chars.as_str();
    let matched = match sigil {
        '/' => eq_ignore_case(name, &cfg.command_word),
        '@' => cfg.mentions.iter().any(|m| eq_ignore_case(name, m)),
        _ => false,
    };
    // An empty configured word must not turn a lone `/` into a trigger.
    (matched && !name.is_empty()).then_some(rest)
}

/// Unicode-aware case-insensitive comparison, so non-ASCII names work too.
fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// Splits arguments on whitespace, shell-style: quotes group text that holds
/// spaces and may touch unquoted text (`a"b c"` is one argument `ab c`);
/// inside double quotes `\"` and `\\` are escapes, other backslashes are kept.
fn tokenize(text: &str) -> Result<Vec<String>, ParseError> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    // Tracks `""` so an empty quoted argument is kept rather than dropped.
    let mut in_token = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_token = true;
                loop {
                    match chars.next() {
                        None => return Err(ParseError::UnterminatedQuote { quote: '"' }),
                        Some('"') => break,
                        Some('\\') => match chars.peek() {
                            Some(&e @ ('"' | '\\')) => {
                                cur.push(e);
                                chars.next();
                            }
                            _ => cur.push('\\'),
                        },
                        Some(other) => cur.push(other),
                    }
                }
            }
            '\'' => {
                in_token = true;
                loop {
                    match chars.next() {
                        None => return Err(ParseError::UnterminatedQuote { quote: '\'' }),
                        Some('\'') => break,
                        Some(other) => cur.push(other),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_token {
                    tokens.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            other => {
                in_token = true;
                cur.push(other);
            }
        }
    }
    if in_token {
        tokens.push(cur);
    }
    Ok(tokens)
}

/// Turns the text after a trigger into a command.
fn parse_command(args: &str) -> Result<Command, ParseError> {
    let mut tokens = tokenize(args)?.into_iter();
    let Some(name) = tokens.next() else {
        // A bare trigger is most likely someone asking what the bot can do.
        return Ok(Command::Help);
    };
    let rest: Vec<String> = tokens.collect();
    let lower = name.to_lowercase();
    let no_args = |cmd: Command| -> Result<Command, ParseError> {
        if rest.is_empty() {
            Ok(cmd)
        } else {
            Err(ParseError::UnexpectedArguments {
                command: cmd.name(),
                args: rest.clone(),
            })
        }
    };
    match lower.as_str() {
        "help" => no_args(Command::Help),
        "explain" => no_args(Command::Explain),
        "regenerate" => no_args(Command::Regenerate),
        "ignore" => no_args(Command::Ignore),
        "unignore" => no_args(Command::Unignore),
        "config" => no_args(Command::Config),
        "analyze" => no_args(Command::Analyze),
        "add" => {
            let mut it = rest.into_iter();
            let feature = it.next().ok_or(ParseError::MissingArgument {
                command: "add",
                argument: "feature",
            })?;
            Ok(Command::Add {
                feature,
                options: it.collect(),
            })
        }
        "remove" => {
            let mut it = rest.into_iter();
            let feature = it.next().ok_or(ParseError::MissingArgument {
                command: "remove",
                argument: "feature",
            })?;
            let extra: Vec<String> = it.collect();
            if extra.is_empty() || (feature.eq_ignore_ascii_case("deploy") && extra.len() == 1) {
                Ok(Command::Remove {
                    feature,
                    options: extra,
                })
            } else {
                Err(ParseError::UnexpectedArguments {
                    command: "remove",
                    args: extra,
                })
            }
        }
        _ => Err(ParseError::Unknown {
            suggestions: suggest(&lower),
            name,
        }),
    }
}

/// Known names close to `input` (already lowercased), best first, at most 3.
///
/// A name qualifies if `input` is a prefix of it (people abbreviate) or it is
/// within edit distance 2 (people mistype). The distance must also stay below
/// the input's length, so that two-letter noise does not match everything.
fn suggest(input: &str) -> Vec<&'static str> {
    let input_len = input.chars().count();
    if input_len == 0 {
        return Vec::new();
    }
    // Beyond this no known name can be within distance 2 or have it as a
    // prefix; skipping saves work on huge tokens.
    let longest = COMMAND_NAMES.iter().map(|n| n.len()).max().unwrap_or(0);
    if input_len > longest + 2 {
        return Vec::new();
    }
    let mut scored: Vec<(u8, usize, usize, &'static str)> = COMMAND_NAMES
        .iter()
        .enumerate()
        .filter_map(|(order, &name)| {
            let dist = osa_distance(input, name);
            let prefix = name.starts_with(input);
            if prefix {
                Some((0, dist, order, name))
            } else if dist <= 2 && dist < input_len {
                Some((1, dist, order, name))
            } else {
                None
            }
        })
        .collect();
    // Prefix matches first, then by distance, ties in the documented order.
    scored.sort_unstable();
    scored.into_iter().take(3).map(|(_, _, _, n)| n).collect()
}

/// Optimal string alignment distance (restricted Damerau-Levenshtein): like
/// Levenshtein but a swap of two neighbours counts as one edit, the most
/// common typo.
fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, row) in d.chunks_mut(width).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Vec<ParsedLine> {
        parse_comment(text, &ParserConfig::default())
    }

    fn results(text: &str) -> Vec<Result<Command, ParseError>> {
        parse(text).into_iter().map(|p| p.result).collect()
    }

    fn add(feature: &str, options: &[&str]) -> Command {
        Command::Add {
            feature: feature.to_string(),
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn single_command() {
        let out = parse("/pipewright explain");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line, 1);
        assert_eq!(out[0].raw, "/pipewright explain");
        assert_eq!(out[0].result, Ok(Command::Explain));
    }

    #[test]
    fn every_command_name_parses() {
        for name in COMMAND_NAMES {
            let text = match *name {
                "add" | "remove" => format!("/pipewright {name} x"),
                _ => format!("/pipewright {name}"),
            };
            let out = results(&text);
            assert_eq!(out.len(), 1, "{text}");
            let cmd = out[0].clone().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(cmd.name(), *name);
        }
    }

    #[test]
    fn multiple_commands_with_line_numbers() {
        let text = "Thanks!\n/pipewright add ci --fast\nsome text\n@pipewright remove lint\n";
        let out = parse(text);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].line, 2);
        assert_eq!(out[0].result, Ok(add("ci", &["--fast"])));
        assert_eq!(out[1].line, 4);
        assert_eq!(
            out[1].result,
            Ok(Command::Remove {
                feature: "lint".into(),
                options: vec![],
            })
        );
    }

    #[test]
    fn remove_deploy_takes_its_target_and_nothing_else_takes_arguments() {
        assert_eq!(
            parse("/pipewright remove deploy fly")[0].result,
            Ok(Command::Remove {
                feature: "deploy".into(),
                options: vec!["fly".into()],
            })
        );
        assert!(parse("/pipewright remove deploy fly aws")[0]
            .result
            .is_err());
        assert!(parse("/pipewright remove lint now")[0].result.is_err());
    }

    #[test]
    fn text_mentioning_the_command_mid_line_is_ignored() {
        assert!(parse("please run /pipewright help later").is_empty());
        assert!(parse("ask @pipewright to help").is_empty());
    }

    #[test]
    fn bare_trigger_is_help() {
        assert_eq!(results("/pipewright"), vec![Ok(Command::Help)]);
        assert_eq!(results("@pipewright   "), vec![Ok(Command::Help)]);
    }

    #[test]
    fn trigger_needs_word_boundary() {
        assert!(parse("/pipewrightx help").is_empty());
        assert!(parse("/pipewright-help").is_empty());
        assert!(parse("@pipewrightbot help").is_empty());
        assert!(parse("/ help").is_empty());
        assert_eq!(results("/pipewright\thelp"), vec![Ok(Command::Help)]);
    }

    #[test]
    fn mention_forms() {
        assert_eq!(results("@pipewright explain"), vec![Ok(Command::Explain)]);
        assert_eq!(
            results("@pipewright[bot] explain"),
            vec![Ok(Command::Explain)]
        );
        assert_eq!(
            results("@PipeWright[BOT] explain"),
            vec![Ok(Command::Explain)]
        );
        assert!(parse("@someoneelse explain").is_empty());
    }

    #[test]
    fn case_insensitive_trigger_and_name() {
        assert_eq!(results("/PIPEWRIGHT HELP"), vec![Ok(Command::Help)]);
        assert_eq!(
            results("/PipeWright ReGenerate"),
            vec![Ok(Command::Regenerate)]
        );
        // Arguments keep their case: they may be feature names or paths.
        assert_eq!(
            results("/pipewright ADD Docker"),
            vec![Ok(add("Docker", &[]))]
        );
    }

    #[test]
    fn custom_config() {
        let cfg = ParserConfig {
            command_word: "bot".into(),
            mentions: vec!["helper".into()],
        };
        let out = parse_comment("/bot help\n@helper config\n/pipewright help", &cfg);
        let got: Vec<_> = out.into_iter().map(|p| p.result).collect();
        assert_eq!(got, vec![Ok(Command::Help), Ok(Command::Config)]);
    }

    #[test]
    fn empty_command_word_is_never_a_trigger() {
        let cfg = ParserConfig {
            command_word: String::new(),
            mentions: vec![String::new()],
        };
        assert!(parse_comment("/ help\n@ help\n/\n@", &cfg).is_empty());
    }

    #[test]
    fn leading_spaces_up_to_three() {
        assert_eq!(results("   /pipewright help"), vec![Ok(Command::Help)]);
        assert!(parse("    /pipewright help").is_empty());
        assert!(parse("\t/pipewright help").is_empty());
        assert!(parse("  \t/pipewright help").is_empty());
    }

    #[test]
    fn quoted_arguments() {
        assert_eq!(
            results(r#"/pipewright add "my feature" 'single quoted' plain"#),
            vec![Ok(add("my feature", &["single quoted", "plain"]))]
        );
        assert_eq!(
            results(r#"/pipewright add "say \"hi\"" "back\\slash" "keep\n""#),
            vec![Ok(add(r#"say "hi""#, &[r"back\slash", r"keep\n"]))]
        );
        // Backslashes mean nothing in single quotes or bare words.
        assert_eq!(
            results(r#"/pipewright add 'a\"b' c\d"#),
            vec![Ok(add(r#"a\"b"#, &[r"c\d"]))]
        );
        assert_eq!(
            results(r#"/pipewright add key="a b" """#),
            vec![Ok(add("key=a b", &[""]))]
        );
    }

    #[test]
    fn unterminated_quote_is_error() {
        assert_eq!(
            results(r#"/pipewright add "oops"#),
            vec![Err(ParseError::UnterminatedQuote { quote: '"' })]
        );
        assert_eq!(
            results("/pipewright add 'oops"),
            vec![Err(ParseError::UnterminatedQuote { quote: '\'' })]
        );
        // An escaped closing quote does not close.
        assert_eq!(
            results(r#"/pipewright add "oops\""#),
            vec![Err(ParseError::UnterminatedQuote { quote: '"' })]
        );
        // A bad line does not hide the good ones.
        assert_eq!(
            results("/pipewright add 'x\n/pipewright help").len(),
            2,
            "each line parses on its own"
        );
    }

    #[test]
    fn backtick_fences() {
        let text = "```\n/pipewright help\n```\n/pipewright explain";
        let out = parse(text);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line, 4);
        assert_eq!(out[0].result, Ok(Command::Explain));
    }

    #[test]
    fn tilde_fences_with_info_string() {
        let text = "~~~ sh\n/pipewright help\n~~~\n/pipewright config";
        assert_eq!(results(text), vec![Ok(Command::Config)]);
        let text = "```rust title=x\n/pipewright help\n```\n";
        assert!(parse(text).is_empty());
    }

    #[test]
    fn longer_fences_need_matching_close() {
        // A shorter or different fence inside does not close a longer one.
        let text = "````\n```\n/pipewright help\n~~~~\n/pipewright help\n````\n/pipewright analyze";
        assert_eq!(results(text), vec![Ok(Command::Analyze)]);
        // A longer closing fence is fine.
        let text = "```\n/pipewright help\n`````\n/pipewright analyze";
        assert_eq!(results(text), vec![Ok(Command::Analyze)]);
        // A closing fence may not carry an info string.
        let text = "```\n``` rust\n/pipewright help\n```\n/pipewright analyze";
        assert_eq!(results(text), vec![Ok(Command::Analyze)]);
    }

    #[test]
    fn indented_fences() {
        let text = "   ```\n/pipewright help\n  ```\n/pipewright analyze";
        assert_eq!(results(text), vec![Ok(Command::Analyze)]);
        // Four spaces make it indented code, not a fence.
        let text = "    ```\n/pipewright help";
        assert_eq!(results(text), vec![Ok(Command::Help)]);
    }

    #[test]
    fn unclosed_fence_hides_the_rest() {
        assert!(parse("```\n/pipewright help\n/pipewright explain").is_empty());
    }

    #[test]
    fn inline_code_is_not_a_fence() {
        let text = "```inline``` code\n/pipewright help";
        assert_eq!(results(text), vec![Ok(Command::Help)]);
        assert!(parse("`/pipewright help`").is_empty());
    }

    #[test]
    fn indented_code_is_ignored() {
        let text = "Example:\n\n    /pipewright help\n\t/pipewright explain\n/pipewright config";
        assert_eq!(results(text), vec![Ok(Command::Config)]);
    }

    #[test]
    fn block_quotes_are_ignored() {
        let text =
            "> /pipewright help\n  > /pipewright explain\n>/pipewright add x\n/pipewright config";
        assert_eq!(results(text), vec![Ok(Command::Config)]);
    }

    #[test]
    fn html_comments_single_line() {
        assert!(parse("<!-- /pipewright help -->").is_empty());
        assert_eq!(
            results("<!-- note --> /pipewright explain"),
            vec![Ok(Command::Explain)]
        );
        assert_eq!(
            results("/pipewright add x <!-- not an arg --> y"),
            vec![Ok(add("x", &["y"]))]
        );
    }

    #[test]
    fn html_comments_multi_line() {
        let text = "<!--\n/pipewright help\n```\n-->\n/pipewright explain\n<!-- a\n/pipewright config\nb -->";
        let out = parse(text);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line, 5);
        assert_eq!(out[0].result, Ok(Command::Explain));
    }

    #[test]
    fn html_comment_inside_fence_is_just_code() {
        let text = "```\n<!--\n```\n/pipewright help";
        assert_eq!(results(text), vec![Ok(Command::Help)]);
    }

    #[test]
    fn crlf_line_endings() {
        let text =
            "hi\r\n/pipewright add ci\r\n```\r\n/pipewright help\r\n```\r\n/pipewright explain\r\n";
        let out = parse(text);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].raw, "/pipewright add ci");
        assert_eq!(out[0].result, Ok(add("ci", &[])));
        assert_eq!(out[1].line, 6);
        assert_eq!(out[1].result, Ok(Command::Explain));
    }

    #[test]
    fn unknown_with_suggestions() {
        let out = results("/pipewright regen");
        assert_eq!(
            out,
            vec![Err(ParseError::Unknown {
                name: "regen".into(),
                suggestions: vec!["regenerate"],
            })]
        );
        let msg = out[0].clone().unwrap_err().to_string();
        assert_eq!(msg, "unknown command `regen`; did you mean `regenerate`?");

        // Transposition counts as one edit.
        assert_eq!(suggest("hlep"), vec!["help"]);
        assert_eq!(suggest("expalin"), vec!["explain"]);
        assert_eq!(suggest("confg"), vec!["config"]);
        assert_eq!(suggest("ignor"), vec!["ignore"]);
        // Prefixes come first, then close typos.
        assert_eq!(suggest("a"), vec!["add", "analyze"]);
        assert_eq!(suggest("ad"), vec!["add"]);
        assert_eq!(suggest("an"), vec!["analyze"]);
        assert!(suggest("zzzzzz").is_empty());
        assert!(suggest("xy").is_empty());
        assert!(suggest(&"q".repeat(10_000)).is_empty());
        assert!(suggest("").is_empty());
    }

    #[test]
    fn unknown_keeps_original_case_and_lists_commands_without_match() {
        let out = results("/pipewright Frobnicate");
        let Some(Err(ParseError::Unknown { name, suggestions })) = out.first() else {
            panic!("expected unknown, got {out:?}");
        };
        assert_eq!(name, "Frobnicate");
        assert!(suggestions.is_empty());
        let msg = out[0].clone().unwrap_err().to_string();
        assert!(msg.contains("known commands are `help`"), "{msg}");
        assert_eq!(
            suggest("remov"),
            vec!["remove"],
            "prefix and distance agree"
        );
    }

    #[test]
    fn suggestions_are_capped_at_three() {
        for input in ["e", "re", "i", "n", "xx", "ore"] {
            assert!(suggest(input).len() <= 3, "{input}");
        }
    }

    #[test]
    fn missing_argument() {
        assert_eq!(
            results("/pipewright add"),
            vec![Err(ParseError::MissingArgument {
                command: "add",
                argument: "feature"
            })]
        );
        let out = results("/pipewright remove");
        assert_eq!(
            out,
            vec![Err(ParseError::MissingArgument {
                command: "remove",
                argument: "feature"
            })]
        );
        let msg = out[0].clone().unwrap_err().to_string();
        assert_eq!(msg, "`remove` needs a feature, e.g. `remove <feature>`");
    }

    #[test]
    fn unexpected_arguments() {
        assert_eq!(
            results("/pipewright help me please"),
            vec![Err(ParseError::UnexpectedArguments {
                command: "help",
                args: vec!["me".into(), "please".into()],
            })]
        );
        assert_eq!(
            results("/pipewright remove a b"),
            vec![Err(ParseError::UnexpectedArguments {
                command: "remove",
                args: vec!["b".into()],
            })]
        );
        let msg = ParseError::UnexpectedArguments {
            command: "config",
            args: vec!["x`y".into()],
        }
        .to_string();
        assert_eq!(msg, "`config` takes no further argument, got `x'y`");
    }

    #[test]
    fn display_messages_are_bounded() {
        let long = "x".repeat(10_000);
        let msg = ParseError::Unknown {
            name: long,
            suggestions: vec![],
        }
        .to_string();
        assert!(msg.len() < 400, "{}", msg.len());
        let msg = ParseError::Unknown {
            name: "hepl".into(),
            suggestions: vec!["help", "explain", "add"],
        }
        .to_string();
        assert!(
            msg.ends_with("did you mean `help`, `explain` or `add`?"),
            "{msg}"
        );
        let msg = ParseError::UnterminatedQuote { quote: '\'' }.to_string();
        assert!(msg.contains("unterminated quote"));
        let many: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let msg = ParseError::UnexpectedArguments {
            command: "help",
            args: many,
        }
        .to_string();
        assert!(msg.ends_with("`3`, `4`, and 95 more"), "{msg}");
    }

    #[test]
    fn requires_bot_pr() {
        assert!(!Command::Help.requires_bot_pr());
        assert!(!Command::Analyze.requires_bot_pr());
        for cmd in [
            Command::Explain,
            Command::Regenerate,
            add("x", &[]),
            Command::Remove {
                feature: "x".into(),
                options: vec![],
            },
            Command::Ignore,
            Command::Unignore,
            Command::Config,
        ] {
            assert!(cmd.requires_bot_pr(), "{cmd:?}");
        }
    }

    #[test]
    fn at_most_twenty_commands() {
        let text = "/pipewright help\n".repeat(50);
        let out = parse(&text);
        assert_eq!(out.len(), MAX_COMMANDS);
        assert_eq!(out[MAX_COMMANDS - 1].line, MAX_COMMANDS);
    }

    #[test]
    fn only_first_64k_is_read() {
        let filler = "x".repeat(100);
        let mut text = String::new();
        while text.len() < MAX_COMMENT_BYTES + 1000 {
            text.push_str(&filler);
            text.push('\n');
        }
        text.push_str("/pipewright help\n");
        assert!(parse(&text).is_empty());

        // A command straddling the cap is dropped rather than cut in half.
        let mut text = "a".repeat(MAX_COMMENT_BYTES - 10);
        text.push_str("\n/pipewright add abcdefghijklmnop");
        assert!(parse(&text).is_empty());

        // One giant line with multibyte chars cut mid-char must not panic.
        let text = format!("/pipewright add {}", "é".repeat(MAX_COMMENT_BYTES));
        assert_eq!(parse(&text).len(), 1);
    }

    #[test]
    fn odd_input_does_not_panic() {
        for text in [
            "",
            "\n",
            "\r",
            "\r\n\r\n",
            "/",
            "@",
            "/pipewright \u{0}\u{7}\u{1b}[31m",
            "/pipewright add \"\\",
            "/pipewright add \\",
            "<!--",
            "-->",
            "<!---->",
            "```",
            "~~~~~~~~~~",
            "/pipewright\u{a0}help",
            "/PİPEWRİGHT help",
            "/pipewright ß\u{301}",
            "   \u{3000}/pipewright help",
        ] {
            let _ = parse(text);
        }
        // Unicode whitespace separates like ASCII whitespace.
        assert_eq!(results("/pipewright\u{a0}help"), vec![Ok(Command::Help)]);
    }

    /// Markdown-ish fragments so generated comments hit the interesting paths
    /// far more often than uniformly random strings would.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("/pipewright ".to_string()),
            Just("@pipewright[bot] ".to_string()),
            Just("add ".to_string()),
            Just("remove".to_string()),
            Just("help".to_string()),
            Just("```".to_string()),
            Just("~~~~".to_string()),
            Just("<!--".to_string()),
            Just("-->".to_string()),
            Just("> ".to_string()),
            Just("    ".to_string()),
            Just("\t".to_string()),
            Just("\"".to_string()),
            Just("'".to_string()),
            Just("\\".to_string()),
            Just("\n".to_string()),
            Just("\r\n".to_string()),
            any::<String>(),
        ]
    }

    fn markdownish() -> impl Strategy<Value = String> {
        prop::collection::vec(fragment(), 0..40).prop_map(|v| v.concat())
    }

    fn feature_name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,30}"
    }

    fn trigger() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("/pipewright".to_string()),
            Just("/PipeWright".to_string()),
            Just("@pipewright".to_string()),
            Just("@PIPEWRIGHT[bot]".to_string()),
        ]
    }

    /// Randomly changes the case of each ASCII letter.
    fn random_case(s: &str, mask: u64) -> String {
        s.chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    /// Quotes a string so the tokenizer gives it back unchanged.
    fn quote(s: &str) -> String {
        let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    }

    fn check_invariants(text: &str, out: &[ParsedLine]) {
        assert!(out.len() <= MAX_COMMANDS);
        let line_count = text.split('\n').count();
        for pair in out.windows(2) {
            assert!(pair[0].line < pair[1].line);
        }
        for p in out {
            assert!(p.line >= 1 && p.line <= line_count);
            if let Err(e) = &p.result {
                // Display must not panic either, and stays bounded.
                let msg = e.to_string();
                assert!(!msg.is_empty() && msg.len() < 2048, "{}", msg.len());
            }
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_strings(text in any::<String>()) {
            let out = parse(&text);
            check_invariants(&text, &out);
        }

        #[test]
        fn never_panics_on_markdownish_text(text in markdownish()) {
            let out = parse(&text);
            check_invariants(&text, &out);
        }

        #[test]
        fn fenced_text_yields_no_commands(
            fence_char in prop_oneof![Just('`'), Just('~')],
            fence_len in 3usize..8,
            indent in 0usize..4,
            info in "[a-z]{0,8}",
            body in prop::collection::vec(
                prop_oneof![
                    Just("/pipewright help".to_string()),
                    Just("@pipewright add x".to_string()),
                    Just("<!--".to_string()),
                    markdownish(),
                ],
                0..10,
            ),
        ) {
            let fence = fence_char.to_string().repeat(fence_len);
            // The body can hold anything except the fence char, which could
            // close the fence early.
            let body: String = body
                .join("\n")
                .chars()
                .filter(|&c| c != fence_char)
                .collect();
            let pad = " ".repeat(indent);
            let text = format!("{pad}{fence}{info}\n{body}\n{pad}{fence}\n");
            prop_assert_eq!(parse(&text), vec![]);
        }

        #[test]
        fn add_round_trips(
            trig in trigger(),
            indent in 0usize..4,
            mask in any::<u64>(),
            feature in feature_name(),
            options in prop::collection::vec("[a-zA-Z0-9=_-]{1,10}", 0..4),
        ) {
            let name = random_case("add", mask);
            let line = format!("{}{trig} {name} {feature} {}", " ".repeat(indent), options.join(" "));
            let out = parse(&format!("intro\n{line}\n"));
            prop_assert_eq!(out.len(), 1);
            prop_assert_eq!(out[0].line, 2);
            prop_assert_eq!(&out[0].raw, &line);
            prop_assert_eq!(&out[0].result, &Ok(Command::Add { feature, options }));
        }

        #[test]
        fn quoted_arguments_round_trip(
            feature in "[^\n\r<>]{0,30}",
            option in "[^\n\r<>]{0,30}",
        ) {
            let line = format!("/pipewright add {} {}", quote(&feature), quote(&option));
            let out = results(&line);
            prop_assert_eq!(out, vec![Ok(Command::Add { feature, options: vec![option] })]);
        }

        #[test]
        fn simple_commands_round_trip(
            trig in trigger(),
            idx in 0..COMMAND_NAMES.len(),
            mask in any::<u64>(),
            feature in feature_name(),
        ) {
            let name = COMMAND_NAMES[idx];
            let cased = random_case(name, mask);
            let text = match name {
                "add" | "remove" => format!("{trig} {cased} {feature}"),
                _ => format!("{trig} {cased}"),
            };
            let out = results(&text);
            prop_assert_eq!(out.len(), 1);
            let cmd = out[0].clone();
            prop_assert_eq!(cmd.map(|c| c.name()), Ok(name));
        }
    }
}
