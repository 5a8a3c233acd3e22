//! Template rendering with minijinja, using `[[ ]]`, `[% %]` and `[# #]` delimiters so
//! GitHub's `${{ }}` and shell `$VAR` pass through. Templates are embedded in the binary;
//! a user template directory, when given, is checked first. Undefined variables are
//! errors. Every repository-derived value goes through the `q` filter: a double-quoted
//! YAML scalar (JSON string syntax) with GitHub's `${{` neutralised, so no script name,
//! path or version can inject YAML structure or an expression.

use std::path::Path;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior, Value};

use super::GenerateError;

/// Built-in templates: (name, source).
const BUILTIN: &[(&str, &str)] = &[
    (
        "github/workflow.yml.j2",
        include_str!("../../templates/github/workflow.yml.j2"),
    ),
    (
        "gitlab/gitlab-ci.yml.j2",
        include_str!("../../templates/gitlab/gitlab-ci.yml.j2"),
    ),
    (
        "bitbucket/bitbucket-pipelines.yml.j2",
        include_str!("../../templates/bitbucket/bitbucket-pipelines.yml.j2"),
    ),
];

/// Makes `${{` inert for GitHub: an expression whose value is the literal text `${{`.
pub fn neutralise_expressions(s: &str) -> String {
    s.replace("${{", "${{ '${{' }}")
}

/// A YAML double-quoted scalar for any string (JSON string syntax is valid YAML).
pub fn quote(s: &str) -> String {
    serde_json::to_string(&neutralise_expressions(s)).expect("strings serialize to JSON")
}

/// `${{ matrix.<key> }}` exactly: the one expression the generator itself writes into
/// inputs. It is passed through: even if a repository supplied this very text, it could
/// only name a matrix value, which is itself quoted repository data.
fn is_matrix_ref(s: &str) -> bool {
    s.strip_prefix("${{ matrix.")
        .and_then(|r| r.strip_suffix(" }}"))
        .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase()))
}

/// A POSIX-shell single-quoted word (for paths in generated `cd` commands).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_'))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn q(v: Value) -> String {
    match v.as_str() {
        Some(s) if is_matrix_ref(s) => s.to_owned(),
        Some(s) => quote(s),
        None => quote(&v.to_string()),
    }
}

fn qlist(v: Value) -> Result<String, minijinja::Error> {
    let items: Vec<String> = v.try_iter()?.map(q).collect();
    Ok(format!("[{}]", items.join(", ")))
}

/// Renders template `name` with `ctx`.
pub fn render(
    name: &str,
    template_dir: Option<&Path>,
    ctx: &impl serde::Serialize,
) -> Result<String, GenerateError> {
    let err = |message: String| GenerateError::Template {
        name: name.to_owned(),
        message,
    };
    let source = match template_dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
        Some(path) => std::fs::read_to_string(&path)
            .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?,
        None => BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| (*s).to_owned())
            .ok_or_else(|| err("no such template".into()))?,
    };
    let mut env = Environment::new();
    let syntax = SyntaxConfig::builder()
        .block_delimiters("[%", "%]")
        .variable_delimiters("[[", "]]")
        .comment_delimiters("[#", "#]")
        .build()
        .map_err(|e| err(e.to_string()))?;
    env.set_syntax(syntax);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("q", q);
    env.add_filter("qlist", qlist);
    env.add_template_owned(name.to_owned(), source)
        .map_err(|e| err(e.to_string()))?;
    let tmpl = env.get_template(name).map_err(|e| err(e.to_string()))?;
    let out = tmpl.render(ctx).map_err(|e| err(format!("{e:#}")))?;
    // Exactly one trailing newline, whatever the template's loops left (yamllint).
    Ok(format!("{}\n", out.trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_neutralises_yaml_and_expressions() {
        assert_eq!(quote("npm test"), "\"npm test\"");
        assert_eq!(quote("a\"b\nc: d"), "\"a\\\"b\\nc: d\"");
        assert_eq!(
            quote("${{ github.event.issue.title }}"),
            "\"${{ '${{' }} github.event.issue.title }}\""
        );
    }

    #[test]
    fn only_exact_matrix_references_pass_unquoted() {
        assert!(is_matrix_ref("${{ matrix.node }}"));
        assert!(!is_matrix_ref("${{ matrix.node }} && curl evil"));
        assert!(!is_matrix_ref("${{ github.event.issue.title }}"));
        assert!(!is_matrix_ref("${{ matrix.Node }}"));
    }

    #[test]
    fn strict_undefined_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("github")).unwrap();
        std::fs::write(
            dir.path().join("github/workflow.yml.j2"),
            "name: [[ nope ]]\n",
        )
        .unwrap();
        let e = render(
            "github/workflow.yml.j2",
            Some(dir.path()),
            &serde_json::json!({}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("undefined"), "{e}");
    }
}
