//! Existing CI/CD configuration: which systems a repository already uses, whether each
//! file builds/tests (CI), deploys/publishes (CD), or both, and where it runs: a forge's
//! own CI runs only on that forge (GitLab never runs `.github/workflows/`), an external
//! service (Jenkins, CircleCI, Buildkite, …) runs wherever it is connected. Detection
//! lists every file found; whether one counts for a repository depends on its forge,
//! which the caller knows ([`ExistingCi::runs_on_forge`]).

use serde::Serialize;

use super::stack::CiProvider;
use super::tree::RepoTree;
use crate::forge::Forge;

/// One CI/CD configuration file and what it does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ExistingCi {
    /// The CI system.
    pub provider: CiProvider,
    /// Repository path of the file.
    pub path: String,
    /// `ci` (build/test/lint) or `cd` (deploy/publish/release).
    pub kind: &'static str,
    /// Where it runs: the forge whose own CI it is (`github`, `gitlab`, `bitbucket`), or
    /// `external` for a CI service any forge can trigger.
    pub runs_on: &'static str,
}

impl ExistingCi {
    /// Whether this file's CI runs for a repository hosted on `forge`.
    pub fn runs_on_forge(&self, forge: Forge) -> bool {
        match native_forge(self.provider) {
            Some(f) => f == forge,
            None => true,
        }
    }
}

/// The forge a CI system belongs to; `None` for external services, which are connected
/// to whichever forge hosts the repository. (GitLab can also run pipelines for
/// repositories mirrored from elsewhere, but then the pipeline runs on the GitLab
/// mirror, not for the repository pipewright is looking at.)
pub fn native_forge(provider: CiProvider) -> Option<Forge> {
    match provider {
        CiProvider::Github => Some(Forge::Github),
        CiProvider::Gitlab => Some(Forge::Gitlab),
        CiProvider::Bitbucket => Some(Forge::Bitbucket),
        CiProvider::Circleci
        | CiProvider::Travis
        | CiProvider::Azure
        | CiProvider::Jenkins
        | CiProvider::Drone
        | CiProvider::Woodpecker
        | CiProvider::Buildkite
        | CiProvider::Appveyor
        | CiProvider::Cirrus
        | CiProvider::Semaphore
        | CiProvider::Teamcity => None,
    }
}

/// Where each system keeps its configuration.
fn provider_of(path: &str) -> Option<CiProvider> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let yaml = name.ends_with(".yml") || name.ends_with(".yaml");
    Some(match path {
        p if p.starts_with(".github/workflows/")
            && yaml
            && !p["/.github/workflows/".len() - 1..].contains('/') =>
        {
            CiProvider::Github
        }
        ".gitlab-ci.yml" | ".gitlab-ci.yaml" => CiProvider::Gitlab,
        "bitbucket-pipelines.yml" => CiProvider::Bitbucket,
        ".circleci/config.yml" | ".circleci/config.yaml" => CiProvider::Circleci,
        ".travis.yml" => CiProvider::Travis,
        "azure-pipelines.yml" | "azure-pipelines.yaml" => CiProvider::Azure,
        "Jenkinsfile" => CiProvider::Jenkins,
        ".drone.yml" | ".drone.yaml" => CiProvider::Drone,
        ".woodpecker.yml" | ".woodpecker.yaml" => CiProvider::Woodpecker,
        p if p.starts_with(".woodpecker/") && yaml => CiProvider::Woodpecker,
        ".buildkite/pipeline.yml"
        | ".buildkite/pipeline.yaml"
        | "buildkite.yml"
        | "buildkite.yaml" => CiProvider::Buildkite,
        "appveyor.yml" | ".appveyor.yml" => CiProvider::Appveyor,
        ".cirrus.yml" | ".cirrus.star" => CiProvider::Cirrus,
        ".semaphore/semaphore.yml" => CiProvider::Semaphore,
        ".teamcity/settings.kts" | ".teamcity/pom.xml" => CiProvider::Teamcity,
        _ => return None,
    })
}

/// Is this path a CI configuration file (so detection reads it)?
pub fn is_ci_file(path: &str) -> bool {
    provider_of(path).is_some()
}

/// Actions and commands that deploy, publish or release (bare words like "release"
/// appear in branch names and comments, so they are not enough).
const CD_SIGNALS: &[&str] = &[
    "docker/build-push-action",
    "docker push",
    "peaceiris/actions-gh-pages",
    "actions/deploy-pages",
    "flyctl",
    "superfly/flyctl-actions",
    "vercel deploy",
    "netlify deploy",
    "akhileshns/heroku-deploy",
    "kubectl apply",
    "helm upgrade",
    "aws-actions/configure-aws-credentials",
    "azure/webapps-deploy",
    "google-github-actions/deploy",
    "twine upload",
    "pypa/gh-action-pypi-publish",
    "npm publish",
    "pnpm publish",
    "yarn npm publish",
    "cargo publish",
    "goreleaser",
    "terraform apply",
    "softprops/action-gh-release",
    "changesets/action",
    "release-plz",
    "semantic-release",
    "gem push",
    "mvn deploy",
    "gradle publish",
    "nuget push",
    "stage: deploy",
    "deploy:",
];

/// Words that mean a pipeline builds, tests or lints.
const CI_SIGNALS: &[&str] = &[
    "test", "lint", "build", "check", "clippy", "pytest", "tox", "mvn", "gradle", "go vet",
    "compile", "rspec", "phpunit", "ctest",
];

/// `needle` in `hay` not inside a longer word (`test` is not in `latest`, but is in
/// `cargo test` and `test:`).
fn contains_word(hay: &str, needle: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(|c| is_word(c) && c != 's')
    })
}

/// Classifies every CI/CD file in the tree.
pub fn detect(tree: &RepoTree) -> Vec<ExistingCi> {
    let mut out = Vec::new();
    for path in tree.files() {
        let Some(provider) = provider_of(path) else {
            continue;
        };
        // Without content (over the read cap) assume CI: the file exists for a reason.
        let text = tree.text(path).map(str::to_ascii_lowercase);
        let (ci, cd) = match &text {
            Some(t) => {
                // Drop comment lines so a commented-out deploy job does not count.
                let body: String = t
                    .lines()
                    .filter(|l| {
                        !l.trim_start().starts_with('#') && !l.trim_start().starts_with("//")
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                (
                    CI_SIGNALS.iter().any(|s| contains_word(&body, s)),
                    CD_SIGNALS.iter().any(|s| contains_word(&body, s)),
                )
            }
            None => (true, false),
        };
        let runs_on = native_forge(provider).map_or("external", Forge::as_str);
        if ci {
            out.push(ExistingCi {
                provider,
                path: path.clone(),
                kind: "ci",
                runs_on,
            });
        }
        if cd {
            out.push(ExistingCi {
                provider,
                path: path.clone(),
                kind: "cd",
                runs_on,
            });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_by_path() {
        assert_eq!(
            provider_of(".github/workflows/ci.yml"),
            Some(CiProvider::Github)
        );
        assert_eq!(provider_of(".github/workflows/sub/x.yml"), None);
        assert_eq!(provider_of(".github/dependabot.yml"), None);
        assert_eq!(provider_of(".gitlab-ci.yml"), Some(CiProvider::Gitlab));
        assert_eq!(
            provider_of(".woodpecker/test.yaml"),
            Some(CiProvider::Woodpecker)
        );
        assert_eq!(provider_of("Jenkinsfile"), Some(CiProvider::Jenkins));
        assert_eq!(provider_of("docs/Jenkinsfile"), None);
        assert_eq!(
            provider_of(".buildkite/pipeline.yml"),
            Some(CiProvider::Buildkite)
        );
        assert_eq!(provider_of("appveyor.yml"), Some(CiProvider::Appveyor));
    }

    #[test]
    fn a_forge_runs_only_its_own_ci_and_every_external_service() {
        let mut t = RepoTree::from_paths([
            ".github/workflows/ci.yml",
            ".gitlab-ci.yml",
            "bitbucket-pipelines.yml",
            "Jenkinsfile",
            ".buildkite/pipeline.yml",
            ".circleci/config.yml",
            ".travis.yml",
        ]);
        for p in t.files().to_vec() {
            t.insert_content(&p, b"steps:\n  - script: make test\n");
        }
        let found = detect(&t);
        assert_eq!(found.len(), 7, "detection lists everything: {found:?}");
        let runs = |forge: Forge| -> Vec<&str> {
            found
                .iter()
                .filter(|c| c.runs_on_forge(forge))
                .map(|c| c.path.as_str())
                .collect()
        };
        let external = [
            ".buildkite/pipeline.yml",
            ".circleci/config.yml",
            ".travis.yml",
            "Jenkinsfile",
        ];
        for (forge, own) in [
            (Forge::Github, ".github/workflows/ci.yml"),
            (Forge::Gitlab, ".gitlab-ci.yml"),
            (Forge::Bitbucket, "bitbucket-pipelines.yml"),
        ] {
            let mut want: Vec<&str> = external.to_vec();
            want.push(own);
            want.sort_unstable();
            let mut got = runs(forge);
            got.sort_unstable();
            assert_eq!(got, want, "{forge}");
        }
        let gh = found
            .iter()
            .find(|c| c.path.starts_with(".github"))
            .unwrap();
        assert_eq!(gh.runs_on, "github");
        let j = found.iter().find(|c| c.path == "Jenkinsfile").unwrap();
        assert_eq!(j.runs_on, "external");
    }

    #[test]
    fn ci_versus_cd() {
        let mut t = RepoTree::from_paths([
            ".github/workflows/ci.yml",
            ".github/workflows/release.yml",
            ".github/workflows/stale.yml",
        ]);
        t.insert_content(".github/workflows/ci.yml", b"on: [push]\njobs:\n  t:\n    steps:\n      - run: cargo test\n      # - run: cargo publish\n");
        t.insert_content(
            ".github/workflows/release.yml",
            b"on: {push: {tags: ['v*']}}\njobs:\n  p:\n    steps:\n      - run: cargo publish\n",
        );
        t.insert_content(
            ".github/workflows/stale.yml",
            b"on: schedule\njobs:\n  s:\n    steps:\n      - uses: actions/stale@v9\n",
        );
        let found = detect(&t);
        let kinds: Vec<(&str, &str)> = found.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            kinds,
            [
                (".github/workflows/ci.yml", "ci"),
                (".github/workflows/release.yml", "cd")
            ]
        );
    }
}
