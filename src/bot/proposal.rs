//! What pipewright proposes for one repository snapshot: the decision (propose, or why
//! not), the files, and the PR body region with its state. Pure: the `analyze_repo` job
//! fetches the snapshot and writes the result to the forge; tests run it on fixtures.

use crate::analyze::{analyze, analyze_with, Analysis, Language, RepoTree};
use crate::forge::Forge;
use crate::generate::{generate, Feature, GenerateError, GeneratedFile, Provider, Target};
use crate::learn::{Adoption, Learned, Learner};
use crate::repo_config::{self, RepoConfigError};

use super::pr_body;

/// Per-repository choices made with slash commands (`add security`, `remove lint`),
/// stored as JSON on the repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepoSettings {
    /// Features switched on or off, in the order they were chosen.
    #[serde(default)]
    pub features: Vec<(Feature, bool)>,
    /// Changes learned from the proposal's CI runs (healing), applied to every plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adjustments: Vec<crate::plan::Adjustment>,
    /// Deploy targets added (`add deploy fly …`) or removed (`remove deploy fly`): they
    /// win over `.pipewright.yml` for their target.
    #[serde(default)]
    pub deploy: Vec<DeployChoice>,
}

/// A deploy target chosen with a slash command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeployChoice {
    /// Target id.
    pub target: String,
    /// On (`add deploy`) or off (`remove deploy`).
    pub on: bool,
    /// Environments (empty: both).
    #[serde(default)]
    pub environments: Vec<crate::deploy::Environment>,
    /// Strategy.
    #[serde(default)]
    pub strategy: Option<crate::deploy::Strategy>,
    /// Region.
    #[serde(default)]
    pub region: Option<String>,
}

impl RepoSettings {
    /// Reads stored settings; unreadable or missing settings are the defaults.
    pub fn from_json(json: Option<&str>) -> RepoSettings {
        json.and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default()
    }

    /// Records a choice, replacing an earlier one for the same feature.
    pub fn set(&mut self, f: Feature, on: bool) {
        self.features.retain(|(x, _)| *x != f);
        self.features.push((f, on));
    }

    /// Records a deploy choice, replacing an earlier one for the same target.
    pub fn set_deploy(&mut self, choice: DeployChoice) {
        self.deploy.retain(|d| d.target != choice.target);
        self.deploy.push(choice);
    }

    /// The deploy settings in force: the file's entries, then the commands' choices on
    /// top (an `add` replaces the file's entry for its target, a `remove` drops it).
    pub fn deploy_settings(
        &self,
        config: Option<&repo_config::RepoConfig>,
    ) -> Vec<crate::deploy::DeploySettings> {
        let mut out: Vec<crate::deploy::DeploySettings> = config
            .map(|c| c.deploy.iter().map(|d| d.settings()).collect())
            .unwrap_or_default();
        for c in &self.deploy {
            let Ok(target) = c.target.parse::<crate::deploy::DeployTarget>() else {
                continue;
            };
            out.retain(|s| s.target != target);
            if c.on {
                let mut s = crate::deploy::DeploySettings::new(target);
                if !c.environments.is_empty() {
                    s.environments = c.environments.clone();
                }
                s.strategy = c.strategy;
                s.region = c.region.clone();
                out.push(s);
            }
        }
        out
    }

    /// As stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("settings serialize")
    }
}

/// Why no pull request is proposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The repository already has CI that runs on its forge (the forge's own, or an
    /// external service); CD gaps are another feature's business.
    HasCi {
        /// The CI files found.
        files: Vec<String>,
    },
    /// Nothing buildable was found (empty or unsupported repository).
    NothingToBuild,
}

/// What continuous delivery needs beyond the snapshot: the repository's name (apps are
/// named after it) and the installation's opt-in for repositories that have CI already.
#[derive(Debug, Clone, Default)]
pub struct CdOptions {
    /// `owner/name`.
    pub repo_name: String,
    /// Targets proposed to repositories with CI but no CD (`PIPEWRIGHT_PROPOSE_CD`).
    pub propose_cd: Vec<crate::deploy::DeployTarget>,
    /// Credential names already stored for this repository, per target.
    pub stored: Vec<(crate::deploy::DeployTarget, String)>,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::HasCi { files } => {
                write!(f, "the repository already has CI ({})", files.join(", "))
            }
            Skip::NothingToBuild => f.write_str("no buildable project or Dockerfile was found"),
        }
    }
}

/// A proposal for a pull request.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// What detection concluded.
    pub analysis: Analysis,
    /// The files to commit.
    pub files: Vec<GeneratedFile>,
    /// CI provider of the files.
    pub provider: Provider,
    /// The forge the repository is on (the words of the body).
    pub forge: Forge,
    /// Slash-command word shown in the body.
    pub command_word: String,
    /// [`pr_body::files_hash`] of `files`: unchanged hash, untouched PR.
    pub hash: String,
    /// The delivery section of the body (secrets, setup), empty without CD.
    pub delivery: String,
    /// Deploy targets in the proposal.
    pub deploy_targets: Vec<crate::deploy::DeployTarget>,
    /// What was adopted from the organisation's own repositories (empty without a model
    /// or siblings).
    pub adoption: Adoption,
}

impl Proposal {
    /// The bot's region of the PR body, with its state (`head` = the commit carrying it).
    pub fn body_region(&self, head: Option<&str>) -> String {
        let region = pr_body::render(
            &self.analysis,
            &self.files,
            self.provider,
            self.forge,
            &self.command_word,
            head,
        );
        // The delivery section goes before "Customise", inside the bot's region.
        let region = match region.find("\n### Customise") {
            Some(i) if !self.delivery.is_empty() => {
                format!("{}{}{}", &region[..i], self.delivery, &region[i..])
            }
            _ => region,
        };
        let siblings: Vec<(String, f32)> = self
            .adoption
            .siblings
            .iter()
            .map(|s| (s.full_name.clone(), s.similarity))
            .collect();
        pr_body::with_learned(region, &siblings, &self.adoption.applied())
    }

    /// A plain title naming the CI system (and the deploy targets).
    pub fn title(&self) -> String {
        let has_ci = self
            .files
            .iter()
            .any(|f| crate::deploy::is_ci_path(&f.path));
        match (has_ci, self.deploy_targets.as_slice()) {
            (_, []) => format!("Add CI with {}", provider_name(self.provider)),
            (true, t) => format!(
                "Add CI with {} and deploys to {}",
                provider_name(self.provider),
                names(t)
            ),
            (false, t) => format!("Add deploys to {}", names(t)),
        }
    }

    /// The commit message: what and why, briefly.
    pub fn commit_message(&self) -> String {
        let stacks: Vec<String> = self
            .analysis
            .projects
            .iter()
            .map(|p| match p.package_manager {
                Some(pm) => format!("{} ({pm}) in {}", p.language, p.path),
                None => format!("{} in {}", p.language, p.path),
            })
            .collect();
        format!(
            "{}\n\nGenerated by pipewright for: {}.\n",
            self.title(),
            if stacks.is_empty() {
                "the repository's Dockerfiles".to_owned()
            } else {
                stacks.join(", ")
            }
        )
    }
}

/// The CI system native to a forge.
pub fn forge_provider(forge: Forge) -> Provider {
    match forge {
        Forge::Github => Provider::Github,
        Forge::Gitlab => Provider::Gitlab,
        Forge::Bitbucket => Provider::Bitbucket,
    }
}

fn names(t: &[crate::deploy::DeployTarget]) -> String {
    t.iter()
        .map(|t| t.spec().name)
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Display name of a CI provider.
pub fn provider_name(p: Provider) -> &'static str {
    match p {
        Provider::Github => "GitHub Actions",
        Provider::Gitlab => "GitLab CI/CD",
        Provider::Bitbucket => "Bitbucket Pipelines",
    }
}

/// What to do for a repository.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Open or update the pull request.
    Propose(Box<Proposal>),
    /// Do nothing, for this reason.
    Skip(Skip),
}

/// Why a proposal could not be made (reported to people, not retried).
#[derive(Debug, thiserror::Error)]
pub enum ProposalError {
    /// The repository's `.pipewright.yml` is invalid: say where, build nothing.
    #[error("{0}")]
    Config(#[from] RepoConfigError),
    /// Generation refused (an unsafe branch name, a broken template override).
    #[error("{0}")]
    Generate(#[from] GenerateError),
}

/// What generation targets for a repository: the forge's CI system on its default
/// branch, then the repository's `.pipewright.yml`, then the choices made with slash
/// commands. Shared by [`propose`] and the `config` command, so what `config` shows is
/// what a proposal uses.
pub fn effective_target(
    forge_provider: Provider,
    default_branch: &str,
    config: Option<&repo_config::RepoConfig>,
    settings: &RepoSettings,
) -> Target {
    let mut target = Target {
        provider: forge_provider,
        default_branch: default_branch.to_owned(),
        ..Target::github()
    };
    if let Some(c) = config {
        target = target.with_repo_config(c);
    }
    // Choices made with `add` / `remove` are the most recent word: they win over the file.
    for (f, on) in &settings.features {
        target.features.set(*f, *on);
    }
    target.adjustments = settings.adjustments.clone();
    target
}

/// Decides and builds the proposal for `tree`, a repository on `forge`. CI counts only
/// where it runs on that forge (its own CI or an external service: a `.github/workflows/`
/// on GitLab is no CI). The forge's own CI system is generated unless the repository's
/// configuration names another.
pub fn propose(
    tree: &RepoTree,
    forge: Forge,
    default_branch: &str,
    command_word: &str,
    settings: &RepoSettings,
) -> Result<Decision, ProposalError> {
    propose_full(
        tree,
        forge,
        default_branch,
        command_word,
        settings,
        &CdOptions::default(),
        None,
    )
}

/// [`propose`], with continuous delivery: the deploy targets of `.pipewright.yml` and of
/// slash commands add their files (config files, a Dockerfile when there is none) and a
/// delivery section to the body. A repository with CI gets a CD-only proposal when it
/// asked for a target, or when the installation opted in (`cd.propose_cd`) and it has
/// no CD yet; never by default.
pub fn propose_with_cd(
    tree: &RepoTree,
    forge: Forge,
    default_branch: &str,
    command_word: &str,
    settings: &RepoSettings,
    cd: &CdOptions,
) -> Result<Decision, ProposalError> {
    propose_full(
        tree,
        forge,
        default_branch,
        command_word,
        settings,
        cd,
        None,
    )
}

/// [`propose_with_cd`], with what learned detection contributed: the archetype refiner
/// fills what rules left empty or unsure, and the siblings' conventions are adopted where
/// the repository and its `.pipewright.yml` leave the choice open. What the bot's
/// analysis job runs.
pub fn propose_full(
    tree: &RepoTree,
    forge: Forge,
    default_branch: &str,
    command_word: &str,
    settings: &RepoSettings,
    cd: &CdOptions,
    learned: Option<(&Learner, &Learned)>,
) -> Result<Decision, ProposalError> {
    let config = repo_config::load(tree)?.map(|(_, c)| c);
    let mut analysis = match learned {
        Some((learner, l)) => analyze_with(tree, &[&learner.refiner(&l.vectors)]),
        None => analyze(tree),
    };
    analysis.judge_for(forge);
    let ci: Vec<String> = analysis.effective_ci().map(|c| c.path.clone()).collect();
    let has_cd = analysis
        .existing_ci
        .iter()
        .any(|c| c.kind == "cd" && c.runs_on_forge(forge));
    let mut deploy = settings.deploy_settings(config.as_ref());
    if deploy.is_empty() && !ci.is_empty() && !has_cd {
        deploy = cd
            .propose_cd
            .iter()
            .map(|t| crate::deploy::DeploySettings::new(*t))
            .collect();
    }
    let mut target = effective_target(
        forge_provider(forge),
        default_branch,
        config.as_ref(),
        settings,
    );
    let adoption = learned.map(|(_, l)| l.adoption.clone()).unwrap_or_default();
    adopt_conventions(&adoption, &mut analysis, &mut target);
    let repo_name = if cd.repo_name.is_empty() {
        "app"
    } else {
        cd.repo_name.as_str()
    };
    // Deploy targets are decided first: the plan renders their delivery workflow.
    let mut contexts = Vec::new();
    let mut delivery = String::new();
    let mut deploy_files = Vec::new();
    if !deploy.is_empty() {
        // A repository with nothing to deploy gets its CI alone; the command's reply
        // says why (see `run_command`).
        if let Ok(d) = crate::deploy::prepare(&analysis, tree.files(), repo_name, &deploy) {
            deploy_files = d.files;
            contexts = d.contexts;
            target.deploy.clone_from(&contexts);
            let stored = |t: crate::deploy::DeployTarget, n: &str| {
                cd.stored.iter().any(|(st, sn)| *st == t && sn == n)
            };
            delivery = crate::deploy::pr_section(&contexts, forge, repo_name, &stored);
        }
    }
    let mut files = if ci.is_empty() {
        generate(&analysis, &target)?
    } else if deploy.is_empty() {
        return Ok(Decision::Skip(Skip::HasCi { files: ci }));
    } else if contexts.is_empty() {
        Vec::new()
    } else {
        // CI exists: only the delivery workflow, beside it (never an edit of its files).
        crate::generate::check_branches(&target)?;
        let mut plan = crate::plan::build(&analysis, &target);
        plan.retain_deploy_only();
        let rendered = crate::generate::render_plan(&plan, &target)?;
        delivery.push_str(&match target.provider {
            Provider::Gitlab => format!(
                "\nThe repository has its own `.gitlab-ci.yml`, which pipewright does not edit: \
                 the deploy jobs are in `{}`. Add it to the pipeline with \
                 `include: [{{ local: {} }}]`.\n",
                crate::generate::gitlab::INCLUDE_PATH,
                crate::generate::gitlab::INCLUDE_PATH
            ),
            Provider::Bitbucket => "\nThe repository has its own `bitbucket-pipelines.yml`, which \
                 pipewright does not edit and Bitbucket cannot include from another file: add \
                 the deploy steps by hand (`pipewright generate . --provider bitbucket --deploy …` \
                 prints them).\n"
                .to_owned(),
            Provider::Github => String::new(),
        });
        rendered
    };
    files.extend(deploy_files);
    if files.is_empty() {
        return Ok(Decision::Skip(Skip::NothingToBuild));
    }
    let hash = pr_body::files_hash(&files);
    Ok(Decision::Propose(Box::new(Proposal {
        analysis,
        files,
        provider: target.provider,
        forge,
        command_word: command_word.to_owned(),
        hash,
        delivery,
        deploy_targets: contexts.iter().map(|(t, _)| *t).collect(),
        adoption,
    })))
}

/// Applies the siblings' conventions to what generation reads, never over a choice the
/// repository made: runner labels only when neither `.pipewright.yml` nor the commands set
/// them, Python versions only for Python projects that declare none.
///
/// Keep in sync with [`Adoption::applied`], which tells people what this changed. The
/// org's reusable workflow goes to the plan, whose primary project job calls it on
/// GitHub (`plan::build`); the siblings' toolchain setup and tools are shown, not applied.
pub fn adopt_conventions(adoption: &Adoption, analysis: &mut Analysis, target: &mut Target) {
    if adoption.is_empty() {
        return;
    }
    if target.runs_on.is_empty() && !adoption.runs_on.is_empty() {
        target.runs_on.clone_from(&adoption.runs_on);
    }
    if target.reusable_workflow.is_none() {
        target
            .reusable_workflow
            .clone_from(&adoption.reusable_workflow);
    }
    if !adoption.python_versions.is_empty() {
        for p in analysis
            .projects
            .iter_mut()
            .filter(|p| p.language == Language::Python && p.runtime_versions.is_empty())
        {
            p.runtime_versions.clone_from(&adoption.python_versions);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_conventions_fill_only_open_choices() {
        use crate::learn::{Adoption, Sibling};
        let t = tree(&[
            ("svc/pyproject.toml", "[project]\nname = \"svc\"\n"),
            (
                "old/pyproject.toml",
                "[project]\nname = \"old\"\nrequires-python = \">=3.13\"\n",
            ),
            ("go.mod", "module x\n"),
        ]);
        let adoption = Adoption {
            siblings: vec![Sibling {
                full_name: "acme/lib".into(),
                similarity: 0.9,
                conventions: Default::default(),
            }],
            runs_on: vec!["acme-large".into(), "self-hosted".into()],
            python_versions: vec!["3.11".into(), "3.12".into()],
            ..Default::default()
        };
        let mut analysis = analyze(&t);
        let mut target = Target::github();
        adopt_conventions(&adoption, &mut analysis, &mut target);
        assert_eq!(target.runs_on, ["acme-large", "self-hosted"]);
        let versions = |path: &str| {
            analysis
                .projects
                .iter()
                .find(|p| p.path == path)
                .unwrap()
                .runtime_versions
                .clone()
        };
        assert_eq!(
            versions("svc"),
            ["3.11", "3.12"],
            "declared nothing: adopted"
        );
        assert_eq!(
            versions("old"),
            ["3.13", "3.14"],
            "its own declaration wins"
        );
        assert!(
            versions(".").is_empty() || versions(".") != ["3.11", "3.12"],
            "Go is not Python"
        );
        // A runner set by the repository's own config wins.
        let mut target = Target::github();
        target.runs_on = vec!["mine".into()];
        adopt_conventions(&adoption, &mut analyze(&t), &mut target);
        assert_eq!(target.runs_on, ["mine"]);
        // Without siblings nothing changes.
        let before = analyze(&t);
        let mut after = before.clone();
        let mut target = Target::github();
        adopt_conventions(&Adoption::default(), &mut after, &mut target);
        assert_eq!(before, after);
        assert!(target.runs_on.is_empty());
    }

    fn tree(files: &[(&str, &str)]) -> RepoTree {
        let mut t = RepoTree::from_paths(files.iter().map(|(p, _)| *p));
        for (p, c) in files {
            t.insert_content(p, c.as_bytes());
        }
        t
    }

    #[test]
    fn a_repository_without_ci_gets_a_proposal_whose_state_matches() {
        let t = tree(&[("go.mod", "module x\n\ngo 1.22\n")]);
        let Decision::Propose(p) = propose(
            &t,
            Forge::Gitlab,
            "main",
            "pipewright",
            &RepoSettings::default(),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(p.files[0].path, ".gitlab-ci.yml");
        let state = pr_body::parse_state(&p.body_region(Some("abc"))).unwrap();
        assert_eq!(state.head.as_deref(), Some("abc"));
        assert_eq!(p.title(), "Add CI with GitLab CI/CD");
        assert_eq!(
            (state.provider, state.hash),
            (Provider::Gitlab, p.hash.clone())
        );
    }

    fn fastapi(extra: &[(&'static str, &'static str)]) -> RepoTree {
        let mut files = vec![
            (
                "pyproject.toml",
                "[project]\nname = \"svc\"\nversion = \"0.1.0\"\ndependencies = [\"fastapi>=0.110\"]\n",
            ),
            ("uv.lock", "version = 1\n"),
            ("main.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
        ];
        files.extend_from_slice(extra);
        tree(&files)
    }

    fn cd(targets: &[crate::deploy::DeployTarget]) -> CdOptions {
        CdOptions {
            repo_name: "acme/svc".into(),
            propose_cd: targets.to_vec(),
            stored: vec![(crate::deploy::DeployTarget::Aws, "AWS_ROLE_ARN".into())],
        }
    }

    #[test]
    fn cd_only_when_asked_or_opted_in() {
        use crate::deploy::DeployTarget;
        let ci = (
            ".github/workflows/ci.yml",
            "on: push\njobs:\n  t:\n    steps:\n      - run: pytest\n",
        );
        let settings = RepoSettings::default();
        let go = |t: &RepoTree, cd: &CdOptions, s: &RepoSettings| {
            propose_with_cd(t, Forge::Github, "main", "pipewright", s, cd).unwrap()
        };
        // CI, no CD, no opt-in: nothing, as before.
        assert!(matches!(
            go(&fastapi(&[ci]), &cd(&[]), &settings),
            Decision::Skip(Skip::HasCi { .. })
        ));
        // Opted in: a CD-only proposal (the delivery workflow beside the repository's own
        // CI, never an edit of it), named after the target.
        let Decision::Propose(p) = go(&fastapi(&[ci]), &cd(&[DeployTarget::Fly]), &settings) else {
            panic!("no CD proposal")
        };
        let paths: Vec<&str> = p.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".github/workflows/deploy.yml",
                "fly.toml",
                "Dockerfile",
                ".dockerignore"
            ]
        );
        let deploy = &p.files[0].content;
        assert!(
            deploy.contains("deploy-fly-staging:") && deploy.contains("deploy-fly-production:"),
            "{deploy}"
        );
        assert!(!deploy.contains("pull_request"), "{deploy}");
        assert_eq!(p.title(), "Add deploys to Fly.io");
        assert!(p.body_region(None).contains("### Continuous delivery"));
        // A repository that deploys already is left alone even when opted in.
        let deploys = (
            ".github/workflows/release.yml",
            "on: {push: {tags: ['v*']}}\njobs:\n  p:\n    steps:\n      - run: flyctl deploy\n",
        );
        assert!(matches!(
            go(
                &fastapi(&[ci, deploys]),
                &cd(&[DeployTarget::Fly]),
                &settings
            ),
            Decision::Skip(_)
        ));
        // `add deploy aws` on a repository without CI: CI and deploy files together, the
        // body lists the stored and missing names and the role's trust policy.
        let mut s = RepoSettings::default();
        s.set_deploy(DeployChoice {
            target: "aws".into(),
            on: true,
            environments: vec![],
            strategy: None,
            region: Some("eu-west-1".into()),
        });
        let Decision::Propose(p) = go(&fastapi(&[]), &cd(&[]), &s) else {
            panic!()
        };
        assert!(p.files.iter().any(|f| f.path == ".github/workflows/ci.yml"));
        assert!(p
            .files
            .iter()
            .any(|f| f.path == ".aws/task-definition.json"));
        assert_eq!(
            p.title(),
            "Add CI with GitHub Actions and deploys to AWS ECS (Fargate)"
        );
        let body = p.body_region(Some("abc"));
        assert!(
            body.contains("| `AWS_ROLE_ARN` | variable | stored; written to the forge |"),
            "{body}"
        );
        assert!(
            body.contains("| `ECS_CLUSTER` | variable | **missing** |"),
            "{body}"
        );
        assert!(body.contains("repo:acme/svc:environment:*"), "{body}");
        assert!(body.contains("Region: eu-west-1."), "{body}");
        // The state block still parses after the inserted section.
        assert_eq!(pr_body::parse_state(&body).unwrap().hash, p.hash);
        // `remove deploy aws` wins over an earlier add.
        s.set_deploy(DeployChoice {
            target: "aws".into(),
            on: false,
            environments: vec![],
            strategy: None,
            region: None,
        });
        assert!(s.deploy_settings(None).is_empty());
    }

    #[test]
    fn existing_ci_or_nothing_to_build_means_no_pr() {
        let t = tree(&[
            ("go.mod", "module x\n"),
            (
                ".github/workflows/test.yml",
                "on: push\njobs:\n  t:\n    steps:\n      - run: go test ./...\n",
            ),
        ]);
        assert!(matches!(
            propose(
                &t,
                Forge::Github,
                "main",
                "pipewright",
                &RepoSettings::default()
            )
            .unwrap(),
            Decision::Skip(Skip::HasCi { .. })
        ));
        let empty = tree(&[("README.md", "# hi\n")]);
        assert!(matches!(
            propose(
                &empty,
                Forge::Github,
                "main",
                "pipewright",
                &RepoSettings::default()
            )
            .unwrap(),
            Decision::Skip(Skip::NothingToBuild)
        ));
    }

    #[test]
    fn ci_counts_only_where_it_runs() {
        let actions = (
            ".github/workflows/test.yml",
            "on: push\njobs:\n  t:\n    steps:\n      - run: go test ./...\n",
        );
        let gitlab_ci = (".gitlab-ci.yml", "test:\n  script: go test ./...\n");
        let jenkins = (
            "Jenkinsfile",
            "pipeline { stages { stage('test') { steps { sh 'go test ./...' } } } }\n",
        );
        let go = ("go.mod", "module x\n\ngo 1.22\n");
        let decide = |files: &[(&str, &str)], forge: Forge| {
            propose(
                &tree(files),
                forge,
                "main",
                "pipewright",
                &RepoSettings::default(),
            )
            .unwrap()
        };
        // GitHub Actions is no CI on GitLab or Bitbucket: they get a proposal, whose body
        // says the workflow does not run there.
        for forge in [Forge::Gitlab, Forge::Bitbucket] {
            let Decision::Propose(p) = decide(&[go, actions], forge) else {
                panic!("{forge}: .github/workflows does not run here");
            };
            assert_eq!(p.analysis.missing, ["ci", "cd"]);
            assert_eq!(p.analysis.existing_ci.len(), 1, "still listed");
            assert!(
                p.body_region(None)
                    .contains("`.github/workflows/test.yml` found too, but"),
                "{}",
                p.body_region(None)
            );
        }
        assert!(matches!(
            decide(&[go, actions], Forge::Github),
            Decision::Skip(Skip::HasCi { .. })
        ));
        // A .gitlab-ci.yml is no CI on GitHub, and is on GitLab.
        assert!(matches!(
            decide(&[go, gitlab_ci], Forge::Github),
            Decision::Propose(_)
        ));
        assert!(matches!(
            decide(&[go, gitlab_ci], Forge::Gitlab),
            Decision::Skip(Skip::HasCi { .. })
        ));
        // An external service runs on every forge.
        for forge in Forge::ALL {
            let Decision::Skip(Skip::HasCi { files }) = decide(&[go, jenkins, actions], forge)
            else {
                panic!("{forge}: Jenkins is CI everywhere");
            };
            assert!(files.contains(&"Jenkinsfile".to_owned()), "{files:?}");
        }
    }

    #[test]
    fn the_repository_config_wins_and_a_bad_one_builds_nothing() {
        let t = tree(&[
            ("go.mod", "module x\n"),
            (
                ".pipewright.yml",
                "provider: bitbucket\nfeatures:\n  security: true\n",
            ),
        ]);
        let Decision::Propose(p) = propose(
            &t,
            Forge::Github,
            "main",
            "pipewright",
            &RepoSettings::default(),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(p.files[0].path, "bitbucket-pipelines.yml");
        assert!(p.files[0].content.contains("govulncheck"));
        let bad = tree(&[
            ("go.mod", "module x\n"),
            (".github/pipewright.yml", "featurs: {}\n"),
        ]);
        let err = propose(
            &bad,
            Forge::Github,
            "main",
            "pipewright",
            &RepoSettings::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(".github/pipewright.yml:1:1: unknown field `featurs`"),
            "{err}"
        );
    }
}
