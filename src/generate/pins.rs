//! The one table of pinned actions: every `uses:` pipewright writes comes from here, as
//! a full commit SHA with its release tag in a comment (zizmor rejects tag-only pins).
//! The SHAs were read from each action's repository at the listed tag. `pipewright pins
//! refresh` asks the GitHub API for each action's latest release and prints a new table
//! to review and paste here (check that each action still runs on a current Node).

/// A pinned action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    /// `owner/repo` (or `owner/repo/path` for actions in a subdirectory).
    pub action: &'static str,
    /// Release tag the SHA belongs to.
    pub version: &'static str,
    /// Full commit SHA of that tag.
    pub sha: &'static str,
}

impl Pin {
    /// `owner/repo@sha`, for `uses:`; the version goes in a trailing comment.
    pub fn uses(&self) -> String {
        format!("{}@{}", self.action, self.sha)
    }
}

/// Every action pipewright may use. Keep sorted by action; all must run on node24 or be
/// composite (the validators flag actions on deprecated runtimes).
pub static PINS: &[Pin] = &[
    Pin {
        action: "Swatinem/rust-cache",
        version: "v2.9.2",
        sha: "6323deb102c322ba6fcbdcafc7e3dddab59af2b6",
    },
    Pin {
        action: "actions/checkout",
        version: "v7.0.1",
        sha: "3d3c42e5aac5ba805825da76410c181273ba90b1",
    },
    Pin {
        action: "actions/setup-dotnet",
        version: "v6.0.0",
        sha: "a98b56852c35b8e3190ac28c8c2271da59106c68",
    },
    Pin {
        action: "actions/setup-go",
        version: "v7.0.0",
        sha: "b7ad1dad31e06c5925ef5d2fc7ad053ef454303e",
    },
    Pin {
        action: "actions/setup-java",
        version: "v5.7.0",
        sha: "b6effb05e454b25005698d916606bdc6ffcbf961",
    },
    Pin {
        action: "actions/setup-node",
        version: "v7.0.0",
        sha: "820762786026740c76f36085b0efc47a31fe5020",
    },
    Pin {
        action: "actions/setup-python",
        version: "v7.0.0",
        sha: "5fda3b95a4ea91299a34e894583c3862153e4b97",
    },
    Pin {
        action: "astral-sh/setup-uv",
        version: "v10.0.1",
        sha: "20cfd1bf945f4377ade1205e4dbc17946fc9a30d",
    },
    Pin {
        action: "codecov/codecov-action",
        version: "v5.5.2",
        sha: "671740ac38dd9b0130fbe1cec585b89eea48d3de",
    },
    Pin {
        action: "dart-lang/setup-dart",
        version: "v1.7.2",
        sha: "65eb853c7ba17dde3be364c3d2858773e7144260",
    },
    Pin {
        action: "denoland/setup-deno",
        version: "v2.0.4",
        sha: "667a34cdef165d8d2b2e98dde39547c9daac7282",
    },
    Pin {
        action: "docker/build-push-action",
        version: "v7.3.0",
        sha: "53b7df96c91f9c12dcc8a07bcb9ccacbed38856a",
    },
    Pin {
        action: "docker/login-action",
        version: "v4.1.0",
        sha: "4907a6ddec9925e35a0a9e82d7399ccc52663121",
    },
    Pin {
        action: "docker/setup-buildx-action",
        version: "v4.3.0",
        sha: "37fe631027851001ddb9b187196cc803df7f5f0e",
    },
    Pin {
        action: "erlef/setup-beam",
        version: "v1.24.1",
        sha: "54075bcc5e249e4758d363f27d099f55d843f124",
    },
    Pin {
        action: "gradle/actions/setup-gradle",
        version: "v6.3.0",
        sha: "9c971963bec38e04b3d30dcc455b5382be2fdbfb",
    },
    Pin {
        action: "hashicorp/setup-terraform",
        version: "v4.0.1",
        sha: "dfe3c3f87815947d99a8997f908cb6525fc44e9e",
    },
    Pin {
        action: "haskell-actions/setup",
        version: "v2.10.3",
        sha: "f9150cb1d140e9a9271700670baa38991e6fa25c",
    },
    Pin {
        action: "oven-sh/setup-bun",
        version: "v2.2.0",
        sha: "0c5077e51419868618aeaa5fe8019c62421857d6",
    },
    Pin {
        action: "pypa/gh-action-pypi-publish",
        version: "v1.8.14",
        sha: "81e9d935c883d0b210363ab89cf05f3894778450",
    },
    Pin {
        action: "ruby/setup-ruby",
        version: "v1.315.0",
        sha: "0dafeac902942906541bc140009cdbf32665b601",
    },
    Pin {
        action: "sbt/setup-sbt",
        version: "v1.5.2",
        sha: "6444f4c8111de4b9059c3975def104b03cfaa5f0",
    },
    Pin {
        action: "shivammathur/setup-php",
        version: "2.37.2",
        sha: "f3e473d116dcccaddc5834248c87452386958240",
    },
    Pin {
        action: "subosito/flutter-action",
        version: "v2.23.0",
        sha: "1a449444c387b1966244ae4d4f8c696479add0b2",
    },
    Pin {
        action: "taiki-e/install-action",
        version: "v2.86.5",
        sha: "ba47c86ac325773530516bb756137ac718732518",
    },
];

/// The pin of `action`. Panics on an action missing from the table: that is a bug in
/// the generator, caught by the tests that generate for every fixture.
pub fn pin(action: &str) -> &'static Pin {
    PINS.iter()
        .find(|p| p.action == action)
        .unwrap_or_else(|| panic!("action {action} is not in the pin table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_full_shas_sorted_and_unique() {
        for p in PINS {
            assert_eq!(p.sha.len(), 40, "{}", p.action);
            assert!(
                p.sha
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{}",
                p.action
            );
        }
        let names: Vec<&str> = PINS.iter().map(|p| p.action).collect();
        let mut sorted = names.clone();
        sorted.sort_by_key(|a| a.to_ascii_lowercase());
        sorted.dedup();
        assert_eq!(names.len(), sorted.len());
    }
}

/// The newest release of a pinned action, as the GitHub API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// The action.
    pub action: &'static str,
    /// Pinned version today.
    pub old_version: &'static str,
    /// Latest release tag.
    pub version: String,
    /// Commit SHA of that tag.
    pub sha: String,
}

/// Asks the GitHub API (`api_url`, e.g. `https://api.github.com`) for each action's
/// latest release and the commit its tag points to. Two requests per action; an
/// optional token raises the rate limit. Errors name the action and the response.
pub async fn refresh(api_url: &str, token: Option<&str>) -> anyhow::Result<Vec<Refreshed>> {
    use anyhow::Context as _;
    let client = reqwest::Client::builder()
        .user_agent(concat!("pipewright/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let get = |url: String| {
        let mut req = client
            .get(url)
            .header("Accept", "application/vnd.github+json");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let mut out = Vec::new();
    for p in PINS {
        // `owner/repo/path` actions live in `owner/repo`.
        let repo: String = p
            .action
            .splitn(3, '/')
            .take(2)
            .collect::<Vec<_>>()
            .join("/");
        let base = api_url.trim_end_matches('/');
        let release: serde_json::Value = get(format!("{base}/repos/{repo}/releases/latest"))
            .await
            .with_context(|| format!("{repo}: cannot reach the API"))?
            .error_for_status()
            .with_context(|| format!("{repo}: latest release"))?
            .json()
            .await?;
        let tag = release["tag_name"]
            .as_str()
            .with_context(|| format!("{repo}: release without tag_name"))?
            .to_owned();
        // /commits/{ref} peels annotated tags to the commit.
        let commit: serde_json::Value = get(format!("{base}/repos/{repo}/commits/{tag}"))
            .await?
            .error_for_status()
            .with_context(|| format!("{repo}: commit of {tag}"))?
            .json()
            .await?;
        let sha = commit["sha"]
            .as_str()
            .filter(|s| s.len() == 40)
            .with_context(|| format!("{repo}: no commit sha for {tag}"))?;
        out.push(Refreshed {
            action: p.action,
            old_version: p.version,
            version: tag,
            sha: sha.to_owned(),
        });
    }
    Ok(out)
}

/// The `PINS` table source for refreshed pins (to paste into this file after review).
pub fn render_table(pins: &[Refreshed]) -> String {
    let mut s = String::from("pub static PINS: &[Pin] = &[\n");
    for p in pins {
        s.push_str(&format!(
            "    Pin {{ action: \"{}\", version: \"{}\", sha: \"{}\" }},\n",
            p.action, p.version, p.sha
        ));
    }
    s.push_str("];\n");
    s
}
