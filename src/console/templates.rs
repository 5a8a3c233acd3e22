//! The console's HTML templates (`templates/console/`), embedded in the binary like the
//! CI templates; files of the same name in `PIPEWRIGHT_CONSOLE_TEMPLATES/console/` win.
//! minijinja with HTML auto-escaping on every `.html` template, so repository names,
//! error texts and file contents from forges can never inject markup.

use std::path::Path;

use minijinja::{Environment, UndefinedBehavior, Value};

/// Built-in templates and static assets: (name, source).
const BUILTIN: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../templates/console/base.html"),
    ),
    (
        "login.html",
        include_str!("../../templates/console/login.html"),
    ),
    (
        "error.html",
        include_str!("../../templates/console/error.html"),
    ),
    (
        "overview.html",
        include_str!("../../templates/console/overview.html"),
    ),
    (
        "installation.html",
        include_str!("../../templates/console/installation.html"),
    ),
    (
        "repository.html",
        include_str!("../../templates/console/repository.html"),
    ),
    (
        "job_table.html",
        include_str!("../../templates/console/job_table.html"),
    ),
    (
        "jobs.html",
        include_str!("../../templates/console/jobs.html"),
    ),
    ("job.html", include_str!("../../templates/console/job.html")),
    (
        "setup_github.html",
        include_str!("../../templates/console/setup_github.html"),
    ),
];

/// The stylesheet served at `/console/static/console.css`.
pub const CSS: &str = include_str!("../../templates/console/console.css");
/// The script served at `/console/static/console.js` (progressive enhancement only).
pub const JS: &str = include_str!("../../templates/console/console.js");

/// Parsed templates, built once at start-up.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

/// Why the templates could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
#[error("console template {name}: {message}")]
pub struct TemplateError {
    /// Template name.
    pub name: String,
    /// What went wrong.
    pub message: String,
}

impl Templates {
    /// Loads the built-in templates, overridden by `dir/console/<name>` when present.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("ts", format_ts);
        for (name, source) in BUILTIN {
            let source = match dir
                .map(|d| d.join("console").join(name))
                .filter(|p| p.is_file())
            {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| TemplateError {
                    name: (*name).to_owned(),
                    message: format!("cannot read {}: {e}", path.display()),
                })?,
                None => (*source).to_owned(),
            };
            env.add_template_owned((*name).to_owned(), source)
                .map_err(|e| TemplateError {
                    name: (*name).to_owned(),
                    message: e.to_string(),
                })?;
        }
        Ok(Templates { env })
    }

    /// Renders `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: &impl serde::Serialize) -> Result<String, TemplateError> {
        let err = |e: minijinja::Error| TemplateError {
            name: name.to_owned(),
            message: format!("{e:#}"),
        };
        self.env
            .get_template(name)
            .map_err(err)?
            .render(ctx)
            .map_err(err)
    }
}

/// `ms | ts`: milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
fn format_ts(v: Value) -> String {
    match i64::try_from(v.clone()) {
        Ok(ms) => utc(ms),
        Err(_) => v.to_string(),
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian).
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_escape_html() {
        let t = Templates::load(None).unwrap();
        let html = t
            .render(
                "error.html",
                &serde_json::json!({"status": 404, "message": "<script>alert(1)</script>"}),
            )
            .unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>alert"));
    }

    #[test]
    fn an_override_directory_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("console")).unwrap();
        std::fs::write(dir.path().join("console/error.html"), "custom {{ status }}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert_eq!(
            t.render("error.html", &serde_json::json!({"status": 500}))
                .unwrap(),
            "custom 500"
        );
    }

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_468_275_250_000), "2016-07-11 22:14:10 UTC");
        assert_eq!(utc(1_709_208_000_000), "2024-02-29 12:00:00 UTC");
    }
}
