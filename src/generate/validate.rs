//! Checks every generated file before it leaves the process: it must parse as YAML, have
//! the provider's structure, and keep the safety defaults (least-privilege permissions,
//! no persisted credentials, pinned actions, concurrency, timeouts, no attacker-
//! controlled expression in `run:`, no `pull_request_target`). A failed check is an
//! error naming the problems; the file is never emitted.

use yaml_rust2::{Yaml, YamlLoader};

use super::Provider;

/// Contexts an attacker controls; they must never be expanded inside a `run:` script.
const UNTRUSTED: &[&str] = &[
    "github.event.",
    "github.head_ref",
    "inputs.",
    "steps.",
    "env.",
];

/// Problems of `content` for `provider` (empty = valid).
pub fn check(provider: Provider, content: &str) -> Vec<String> {
    let doc = match YamlLoader::load_from_str(content) {
        Ok(mut docs) if docs.len() == 1 => docs.remove(0),
        Ok(docs) => return vec![format!("expected one YAML document, found {}", docs.len())],
        Err(e) => return vec![format!("not valid YAML: {e}")],
    };
    match provider {
        Provider::Github => check_github(&doc),
        Provider::Gitlab => check_gitlab(&doc, false),
        Provider::Bitbucket => check_bitbucket(&doc),
    }
}

/// [`check`] for the file at `path`: a GitLab file the repository's pipeline includes
/// ([`super::gitlab::INCLUDE_PATH`]) has jobs only, no pipeline-wide settings of its own.
pub fn check_file(provider: Provider, path: &str, content: &str) -> Vec<String> {
    if provider == Provider::Gitlab && path == super::gitlab::INCLUDE_PATH {
        return match YamlLoader::load_from_str(content) {
            Ok(mut docs) if docs.len() == 1 => check_gitlab(&docs.remove(0), true),
            Ok(docs) => vec![format!("expected one YAML document, found {}", docs.len())],
            Err(e) => vec![format!("not valid YAML: {e}")],
        };
    }
    check(provider, content)
}

/// Top-level GitLab keys that are not jobs.
const GITLAB_RESERVED: &[&str] = &[
    "workflow",
    "default",
    "stages",
    "variables",
    "include",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
];

fn script_lines(v: &Yaml) -> Option<Vec<&str>> {
    let lines: Vec<&str> = v.as_vec()?.iter().filter_map(|l| l.as_str()).collect();
    (!lines.is_empty()).then_some(lines)
}

fn check_gitlab(doc: &Yaml, included: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(top) = doc.as_hash() else {
        return vec!["not a mapping".to_owned()];
    };
    if included {
        for key in ["workflow", "default", "stages"] {
            if !doc[key].is_badvalue() {
                problems.push(format!("an included file must not set `{key}`"));
            }
        }
    } else if doc["default"]["timeout"].as_str().is_none() {
        problems.push("no default timeout".to_owned());
    }
    if !included && doc["workflow"]["rules"].as_vec().is_none() {
        problems
            .push("no workflow rules (pipelines would run twice for merge requests)".to_owned());
    }
    let mut jobs = 0;
    for (k, job) in top {
        let Some(name) = k.as_str() else { continue };
        if GITLAB_RESERVED.contains(&name) || name.starts_with('.') {
            continue;
        }
        jobs += 1;
        if script_lines(&job["script"]).is_none() {
            problems.push(format!("job {name}: no script"));
        }
        if job["image"].is_badvalue() {
            problems.push(format!("job {name}: no image"));
        }
    }
    if jobs == 0 {
        problems.push("no jobs".to_owned());
    }
    problems
}

fn check_bitbucket(doc: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(pipelines) = doc["pipelines"].as_hash() else {
        return vec!["no pipelines".to_owned()];
    };
    let mut steps = Vec::new();
    for section in pipelines.values() {
        for pattern in section
            .as_hash()
            .map(|h| h.values().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            for item in pattern
                .as_vec()
                .map(|v| v.iter().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                if let Some(par) = item["parallel"].as_vec() {
                    steps.extend(par.iter().map(|p| &p["step"]));
                } else {
                    steps.push(&item["step"]);
                }
            }
        }
    }
    if steps.is_empty() {
        problems.push("no steps".to_owned());
    }
    for step in steps {
        let name = step["name"].as_str().unwrap_or("?");
        if script_lines(&step["script"]).is_none() {
            problems.push(format!("step {name}: no script"));
        }
        if step["max-time"].as_i64().is_none_or(|t| t <= 0 || t > 120) {
            problems.push(format!("step {name}: max-time missing or out of range"));
        }
    }
    problems
}

fn check_github(doc: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    if doc["name"].as_str().is_none() {
        problems.push("workflow has no name".to_owned());
    }
    let on = &doc["on"];
    if on.is_badvalue() {
        problems.push("workflow has no `on` triggers".to_owned());
    }
    if !on["pull_request_target"].is_badvalue() || !on["workflow_run"].is_badvalue() {
        problems.push("privileged trigger (pull_request_target / workflow_run)".to_owned());
    }
    let perms = &doc["permissions"];
    let read_only =
        perms.as_hash().is_some_and(|h| h.len() == 1) && perms["contents"].as_str() == Some("read");
    if !read_only {
        problems.push("top-level permissions must be exactly `contents: read`".to_owned());
    }
    if doc["concurrency"]["group"].as_str().is_none() {
        problems.push("no concurrency group".to_owned());
    }
    let Some(jobs) = doc["jobs"].as_hash() else {
        problems.push("no jobs".to_owned());
        return problems;
    };
    for (id, job) in jobs {
        let id = id.as_str().unwrap_or("?");
        // A call of the org's reusable workflow: no runner, steps or timeout of its own
        // (GitHub refuses them there); the reference must be well-formed and no secret
        // is handed over wholesale.
        if let Some(uses) = job["uses"].as_str() {
            if !crate::analyze::conventions::is_reusable_ref(uses) {
                problems.push(format!("job {id}: `{uses}` is not a reusable workflow"));
            }
            if !job["secrets"].is_badvalue() {
                problems.push(format!("job {id}: passes secrets to a reusable workflow"));
            }
            if !job["steps"].is_badvalue() || !job["runs-on"].is_badvalue() {
                problems.push(format!("job {id}: a workflow call has no runs-on or steps"));
            }
            continue;
        }
        if job["timeout-minutes"]
            .as_i64()
            .is_none_or(|t| t <= 0 || t > 360)
        {
            problems.push(format!("job {id}: timeout-minutes missing or out of range"));
        }
        if job["runs-on"].is_badvalue() {
            problems.push(format!("job {id}: no runs-on"));
        }
        let Some(steps) = job["steps"].as_vec() else {
            problems.push(format!("job {id}: no steps"));
            continue;
        };
        for (i, step) in steps.iter().enumerate() {
            let at = format!("job {id} step {}", i + 1);
            let has_uses = step["uses"].as_str().is_some();
            let has_run = step["run"].as_str().is_some();
            if has_uses == has_run {
                problems.push(format!("{at}: exactly one of uses/run required"));
            }
            if let Some(u) = step["uses"].as_str() {
                let pinned = u.rsplit_once('@').is_some_and(|(_, r)| {
                    r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit())
                });
                if !pinned {
                    problems.push(format!("{at}: `{u}` is not pinned to a commit SHA"));
                }
                if u.starts_with("actions/checkout@")
                    && step["with"]["persist-credentials"].as_str() != Some("false")
                {
                    problems.push(format!(
                        "{at}: checkout must set persist-credentials: false"
                    ));
                }
            }
            if let Some(r) = step["run"].as_str() {
                for inner in expressions(r) {
                    // The one expression the generator writes on purpose: a literal `${{`.
                    if inner == "'${{'" {
                        continue;
                    }
                    if UNTRUSTED.iter().any(|u| inner.contains(u)) || !inner.starts_with("matrix.")
                    {
                        problems.push(format!("{at}: expression `{inner}` inside run:"));
                    }
                }
            }
        }
    }
    problems
}

/// The `${{ … }}` expressions of a string, as GitHub reads them: an expression ends at
/// the first `}}` outside a single-quoted string literal.
fn expressions(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${{") {
        let body = &rest[start + 3..];
        let mut in_str = false;
        let mut end = None;
        let bytes = body.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\'' => in_str = !in_str,
                b'}' if !in_str && bytes.get(i + 1) == Some(&b'}') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        match end {
            Some(e) => {
                out.push(body[..e].trim().to_owned());
                rest = &body[e + 2..];
            }
            None => {
                // Unterminated: GitHub rejects it; report it as an expression.
                out.push(body.trim().to_owned());
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"name: CI
on: {push: {branches: [main]}, pull_request: {}}
permissions: {contents: read}
concurrency: {group: x, cancel-in-progress: true}
jobs:
  t:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    steps:
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1
        with: {persist-credentials: 'false'}
      - run: cargo test
"#;

    #[test]
    fn expressions_are_scanned_like_github_does() {
        assert_eq!(
            expressions("a ${{ '${{' }} b ${{ matrix.x }}"),
            ["'${{'", "matrix.x"]
        );
        assert_eq!(expressions("${{ 'a }} b' }}"), ["'a }} b'"]);
        assert_eq!(expressions("no expressions"), Vec::<String>::new());
    }

    #[test]
    fn a_safe_workflow_passes() {
        assert_eq!(check(Provider::Github, GOOD), Vec::<String>::new());
    }

    #[test]
    fn each_safety_rule_is_enforced() {
        let cases = [
            (GOOD.replace("{contents: read}", "write-all"), "permissions"),
            (
                GOOD.replace("@3d3c42e5aac5ba805825da76410c181273ba90b1", "@v7"),
                "not pinned",
            ),
            (
                GOOD.replace(
                    "persist-credentials: 'false'",
                    "persist-credentials: 'true'",
                ),
                "persist-credentials",
            ),
            (
                GOOD.replace("cargo test", "echo ${{ github.event.issue.title }}"),
                "inside run",
            ),
            (
                GOOD.replace("pull_request: {}", "pull_request_target: {}"),
                "privileged",
            ),
            (GOOD.replace("    timeout-minutes: 30\n", ""), "timeout"),
            (
                GOOD.replace("concurrency: {group: x, cancel-in-progress: true}\n", ""),
                "concurrency",
            ),
            ("name: [unclosed".to_owned(), "not valid YAML"),
        ];
        for (content, expected) in cases {
            let problems = check(Provider::Github, &content);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{expected}: {problems:?}"
            );
        }
        let literal = GOOD.replace("cargo test", "echo \"${{ '${{' }} not an expression\"");
        assert_eq!(check(Provider::Github, &literal), Vec::<String>::new());
    }
}
