//! Progress of long command-line work (`reconcile --wait`, `gitlab connect`,
//! `bitbucket connect`, and any other loop over many items): an indicatif bar when
//! stderr is a terminal, plain throttled lines otherwise (CI logs, pipes), so a log
//! file is not flooded with carriage returns. Output goes to stderr; stdout stays for
//! results. Nothing here decides anything: callers say how far they are.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shortest interval between two plain progress lines, in milliseconds: often enough to
/// show life in a CI log, rare enough that 10,000 items do not print 10,000 lines.
pub const PLAIN_LINE_INTERVAL_MS: u64 = 2_000;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An indicatif bar (stderr is a terminal).
    Bar,
    /// One line at most every [`PLAIN_LINE_INTERVAL_MS`], plus the final line.
    Lines,
    /// Nothing (tests, `--quiet`).
    Hidden,
}

impl Mode {
    /// A bar on a terminal, plain lines otherwise.
    pub fn detect() -> Mode {
        if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// Progress of one piece of work with an optional known total.
#[derive(Debug)]
pub struct Progress {
    label: String,
    mode: Mode,
    bar: Option<ProgressBar>,
    state: Mutex<LineState>,
}

#[derive(Debug)]
struct LineState {
    done: u64,
    total: Option<u64>,
    last_line: Option<Instant>,
    lines: Vec<String>,
    keep_lines: bool,
}

impl Progress {
    /// Starts showing progress of `label` over `total` items (`None`: unknown yet).
    pub fn new(label: &str, total: Option<u64>) -> Progress {
        Progress::with_mode(label, total, Mode::detect())
    }

    /// Like [`Progress::new`] with an explicit mode.
    pub fn with_mode(label: &str, total: Option<u64>, mode: Mode) -> Progress {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = match total {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            };
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_style(style(total.is_some()));
            bar.set_prefix(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            label: label.to_owned(),
            mode,
            bar,
            state: Mutex::new(LineState {
                done: 0,
                total,
                last_line: None,
                lines: Vec::new(),
                keep_lines: false,
            }),
        }
    }

    /// A hidden progress that records the plain lines it would print (tests).
    pub fn recording(label: &str, total: Option<u64>) -> Progress {
        let p = Progress::with_mode(label, total, Mode::Lines);
        p.lock().keep_lines = true;
        p
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LineState> {
        // A panic while holding this lock only loses a progress line.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The total became known (or changed).
    pub fn set_total(&self, total: u64) {
        self.lock().total = Some(total);
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_style(style(true));
        }
    }

    /// `n` more items are done; `message` says what the last one was.
    pub fn inc(&self, n: u64, message: &str) {
        let mut st = self.lock();
        st.done += n;
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                bar.set_position(st.done);
                bar.set_message(message.to_owned());
            }
            (None, Mode::Lines) => {
                let due = st
                    .last_line
                    .is_none_or(|t| t.elapsed() >= Duration::from_millis(PLAIN_LINE_INTERVAL_MS));
                if due {
                    st.last_line = Some(Instant::now());
                    let line = format!("{}: {}{}", self.label, counts(&st), suffix(message));
                    emit(&mut st, line);
                }
            }
            _ => {}
        }
    }

    /// Sets the absolute position (for work observed from outside, like a queue).
    pub fn set_position(&self, done: u64, message: &str) {
        let delta = {
            let st = self.lock();
            done.saturating_sub(st.done)
        };
        if delta > 0 {
            self.inc(delta, message);
        } else if let Some(bar) = &self.bar {
            bar.set_message(message.to_owned());
        }
    }

    /// The work is over: one final line (always printed, bar or not).
    pub fn finish(&self, message: &str) {
        let mut st = self.lock();
        let line = format!("{}: {}{}", self.label, counts(&st), suffix(message));
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                bar.finish_and_clear();
                eprintln!("{line}");
            }
            (None, Mode::Lines) => emit(&mut st, line),
            _ => {}
        }
    }

    /// The plain lines printed so far (only kept by [`Progress::recording`]).
    pub fn recorded(&self) -> Vec<String> {
        self.lock().lines.clone()
    }
}

fn emit(st: &mut LineState, line: String) {
    if st.keep_lines {
        st.lines.push(line);
    } else {
        eprintln!("{line}");
    }
}

fn counts(st: &LineState) -> String {
    match st.total {
        Some(t) if t > 0 => format!("{}/{} ({}%)", st.done, t, st.done * 100 / t),
        Some(t) => format!("{}/{}", st.done, t),
        None => format!("{}", st.done),
    }
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" {message}")
    }
}

fn style(bounded: bool) -> ProgressStyle {
    let template = if bounded {
        "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {wide_msg}"
    } else {
        "{prefix} {spinner} {pos} {elapsed_precise} {wide_msg}"
    };
    // The templates are constants: a parse failure is a programming error caught by tests.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_throttled_and_the_last_is_always_printed() {
        let p = Progress::recording("connect", Some(1_000));
        for i in 0..1_000 {
            p.inc(1, &format!("project {i}"));
        }
        p.finish("done");
        let lines = p.recorded();
        // The first item prints at once; the next 999 fall in the same interval.
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0], "connect: 1/1000 (0%) project 0");
        assert_eq!(lines[1], "connect: 1000/1000 (100%) done");
    }

    #[test]
    fn unknown_totals_and_positions() {
        let p = Progress::recording("waiting", None);
        p.set_position(5, "five");
        p.set_position(3, "never backwards");
        p.set_total(10);
        p.finish("");
        assert_eq!(p.recorded(), ["waiting: 5 five", "waiting: 5/10 (50%)"]);
    }

    #[test]
    fn templates_parse() {
        for bounded in [true, false] {
            let template = if bounded {
                "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {wide_msg}"
            } else {
                "{prefix} {spinner} {pos} {elapsed_precise} {wide_msg}"
            };
            assert!(ProgressStyle::with_template(template).is_ok());
            let _ = style(bounded);
        }
    }
}
