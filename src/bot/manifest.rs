//! The GitHub App manifest (`pipewright manifest github --url …`, and the console's
//! `/setup/github`): the permissions and events pipewright needs, with the deployment's
//! own URLs filled in (webhook, manifest-flow callback, console sign-in callback), ready
//! for GitHub's manifest flow. The template is `app-manifests/github-app.json`.

/// The manifest, as shipped.
const TEMPLATE: &str = include_str!("../../app-manifests/github-app.json");

/// Why a manifest cannot be produced.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The base URL is not an absolute http(s) URL.
    #[error("--url must be an absolute https:// (or http://) URL, got `{0}`")]
    BadUrl(String),
    /// The app name is empty or too long for GitHub (34 characters).
    #[error("--name must be 1 to 34 characters")]
    BadName,
}

/// The manifest for a deployment reachable at `base_url`, named `name`.
pub fn github(base_url: &str, name: &str) -> Result<String, ManifestError> {
    let base = base_url.trim_end_matches('/');
    let valid = (base.starts_with("https://") || base.starts_with("http://"))
        && base.len() > "https://".len()
        && !base.contains(char::is_whitespace);
    if !valid {
        return Err(ManifestError::BadUrl(base_url.to_owned()));
    }
    if name.is_empty() || name.chars().count() > 34 {
        return Err(ManifestError::BadName);
    }
    let mut m: serde_json::Value =
        serde_json::from_str(TEMPLATE).expect("the shipped manifest is valid JSON (tested)");
    m["name"] = name.into();
    m["url"] = base.into();
    m["hook_attributes"]["url"] = format!("{base}/webhooks/github").into();
    // The manifest flow returns here with the code (`/setup/github` exchanges it).
    m["redirect_url"] = format!("{base}/setup/github/callback").into();
    // Sign-in to the console with GitHub (the App's user-to-server flow).
    m["callback_urls"] = serde_json::json!([format!("{base}/console/auth/github/callback")]);
    // The console shows an organisation's installation only to its owners, which a
    // user-to-server token can read only with the organisation `members: read`
    // permission (`GET /user/memberships/orgs/{org}`).
    m["default_permissions"]["members"] = "read".into();
    Ok(serde_json::to_string_pretty(&m).expect("JSON values serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_filled_in_and_permissions_kept() {
        let m: serde_json::Value =
            serde_json::from_str(&github("https://ci.example.org/", "acme-pipewright").unwrap())
                .unwrap();
        assert_eq!(
            m["hook_attributes"]["url"],
            "https://ci.example.org/webhooks/github"
        );
        assert_eq!(
            m["redirect_url"],
            "https://ci.example.org/setup/github/callback"
        );
        assert_eq!(
            m["callback_urls"][0],
            "https://ci.example.org/console/auth/github/callback"
        );
        assert_eq!(m["default_permissions"]["members"], "read");
        assert_eq!(m["name"], "acme-pipewright");
        assert_eq!(m["default_permissions"]["workflows"], "write");
        assert_eq!(m["default_permissions"]["contents"], "write");
        // Reading a failed job's log needs `actions: read`; re-running it, `write`.
        assert_eq!(m["default_permissions"]["actions"], "write");
        assert_eq!(m["default_permissions"]["checks"], "read");
        // Deploy credentials become Actions secrets (issue 13).
        assert_eq!(m["default_permissions"]["secrets"], "write");
        let events: Vec<&str> = m["default_events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        for e in [
            "push",
            "repository",
            "issue_comment",
            "pull_request",
            "pull_request_review_comment",
            "workflow_run",
        ] {
            assert!(events.contains(&e), "{e}");
        }
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(matches!(
            github("ci.example.org", "x"),
            Err(ManifestError::BadUrl(_))
        ));
        assert!(matches!(
            github("https://", "x"),
            Err(ManifestError::BadUrl(_))
        ));
        assert!(matches!(
            github("https://a b", "x"),
            Err(ManifestError::BadUrl(_))
        ));
        assert!(matches!(
            github("https://ok.example", ""),
            Err(ManifestError::BadName)
        ));
        assert!(matches!(
            github("https://ok.example", &"x".repeat(35)),
            Err(ManifestError::BadName)
        ));
    }
}
