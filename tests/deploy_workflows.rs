//! Deploy jobs as the three renderers lay them out, for every fixture × provider × target
//! that has something to deploy: staging deploys the default branch and production
//! version tags behind an approval; deploys never run for pull requests or forks; one
//! deploy per environment runs at a time and is never cancelled; the OIDC token and the
//! package write permission exist only in the jobs that need them; the plan's tool
//! invariant holds. (`.ci/run` runs the real validators over the same output.)

use std::path::Path;

use pipewright::analyze::{analyze, load_local, Limits};
use pipewright::deploy::{self, DeploySettings, DeployTarget, TARGETS};
use pipewright::generate::{render_plan, GeneratedFile, Provider, Target};
use pipewright::plan;
use yaml_rust2::{Yaml, YamlLoader};

const PROVIDERS: [Provider; 3] = [Provider::Github, Provider::Gitlab, Provider::Bitbucket];

fn fixtures() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos");
    let mut v: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// The files for one fixture, provider and targets; `None` when nothing is deployable.
fn generate(
    dir: &Path,
    provider: Provider,
    targets: &[DeployTarget],
) -> Option<(Vec<GeneratedFile>, plan::Plan)> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let tree = load_local(dir, &Limits::default()).unwrap();
    let analysis = analyze(&tree);
    let settings: Vec<DeploySettings> = targets.iter().map(|t| DeploySettings::new(*t)).collect();
    let delivery = deploy::prepare(&analysis, tree.files(), &name, &settings).ok()?;
    let target = Target {
        provider,
        deploy: delivery.contexts,
        ..Target::github()
    };
    let plan = plan::build(&analysis, &target);
    let files = render_plan(&plan, &target).unwrap_or_else(|e| panic!("{name} {provider:?}: {e}"));
    Some((files, plan))
}

fn yaml(f: &GeneratedFile) -> Yaml {
    YamlLoader::load_from_str(&f.content).unwrap().remove(0)
}

fn s(y: &Yaml) -> &str {
    y.as_str().unwrap_or("")
}

fn github_jobs(files: &[GeneratedFile]) -> Vec<(String, Yaml, Yaml)> {
    let mut out = Vec::new();
    for f in files
        .iter()
        .filter(|f| f.path.starts_with(".github/workflows/"))
    {
        let doc = yaml(f);
        for (id, job) in doc["jobs"].as_hash().unwrap() {
            out.push((s(id).to_owned(), job.clone(), doc["on"].clone()));
        }
    }
    out
}

fn check_github(name: &str, files: &[GeneratedFile], oidc: bool) {
    let jobs = github_jobs(files);
    let deploys: Vec<_> = jobs
        .iter()
        .filter(|(id, _, _)| id.starts_with("deploy-"))
        .collect();
    assert!(!deploys.is_empty(), "{name}: no deploy job");
    for (id, job, on) in &jobs {
        let perms = job["permissions"].as_hash();
        let has = |k: &str, v: &str| {
            perms.is_some_and(|p| p.get(&Yaml::String(k.into())).map(s) == Some(v))
        };
        if perms.is_some() {
            // A job's permissions replace the top level's: reading the repository stays.
            assert!(
                has("contents", "read") || has("contents", "write"),
                "{name} {id}"
            );
        }
        let deploy = id.starts_with("deploy-");
        assert_eq!(
            has("id-token", "write"),
            deploy && oidc,
            "{name} {id}: id-token"
        );
        assert_eq!(
            has("packages", "write"),
            id == "publish-image",
            "{name} {id}: packages"
        );
        if !deploy && id != "publish-image" {
            continue;
        }
        let cond = s(&job["if"]);
        assert!(
            cond.contains("github.event_name == 'push'"),
            "{name} {id}: {cond}"
        );
        assert!(
            cond.contains("!github.event.repository.fork"),
            "{name} {id}: {cond}"
        );
        if !deploy {
            continue;
        }
        assert_eq!(
            job["concurrency"]["cancel-in-progress"].as_bool(),
            Some(false),
            "{name} {id}"
        );
        assert!(
            s(&job["concurrency"]["group"]).starts_with("deploy-"),
            "{name} {id}"
        );
        let env = s(&job["environment"]["name"]);
        if id.ends_with("-production") {
            assert_eq!(env, "production", "{name} {id}");
            assert!(cond.contains("github.ref_type == 'tag'"), "{name} {id}");
            // Production runs in the delivery workflow: started by pushes (version tags),
            // never by pull requests, with no dependency cache to publish from.
            assert!(on["pull_request"].is_badvalue(), "{name} {id}");
            assert!(!on["push"]["tags"].is_badvalue(), "{name} {id}");
        } else {
            assert_eq!(env, "staging", "{name} {id}");
            assert!(
                cond.contains("github.event.repository.default_branch"),
                "{name} {id}"
            );
        }
        // Credentials only through secrets, never written into the script.
        let steps = job["steps"].as_vec().unwrap();
        let run = s(&steps.last().unwrap()["run"]);
        assert!(!run.contains("${{"), "{name} {id}: expression in run");
    }
}

fn check_gitlab(name: &str, files: &[GeneratedFile], oidc: bool) {
    let f = files
        .iter()
        .find(|f| f.path == ".gitlab-ci.yml")
        .unwrap_or_else(|| panic!("{name}: no .gitlab-ci.yml"));
    let doc = yaml(f);
    let stages: Vec<&str> = doc["stages"].as_vec().unwrap().iter().map(s).collect();
    assert!(stages.contains(&"deploy"), "{name}");
    let rules: Vec<&str> = doc["workflow"]["rules"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|r| s(&r["if"]))
        .collect();
    let mut deploys = 0;
    for (id, job) in doc.as_hash().unwrap() {
        let id = s(id);
        if !(id.starts_with("deploy-") || id == "publish-image") {
            continue;
        }
        assert_eq!(job["stage"].as_str(), Some("deploy"), "{name} {id}");
        assert_eq!(job["interruptible"].as_bool(), Some(false), "{name} {id}");
        let job_rules = job["rules"].as_vec().unwrap();
        for r in job_rules {
            // Only protected refs: the default branch or a version tag.
            assert!(
                s(&r["if"]).contains("$CI_COMMIT_REF_PROTECTED == \"true\""),
                "{name} {id}"
            );
            assert!(!s(&r["if"]).contains("merge_request"), "{name} {id}");
        }
        if !id.starts_with("deploy-") {
            continue;
        }
        deploys += 1;
        assert!(
            s(&job["resource_group"]).starts_with("deploy-"),
            "{name} {id}"
        );
        assert_eq!(
            !job["id_tokens"]["OIDC_TOKEN"].is_badvalue(),
            oidc,
            "{name} {id}"
        );
        let production = id.ends_with("-production");
        assert_eq!(
            s(&job["environment"]["name"]),
            if production { "production" } else { "staging" },
            "{name} {id}"
        );
        assert_eq!(job_rules.len(), 1, "{name} {id}");
        assert_eq!(
            job_rules[0]["when"].as_str() == Some("manual"),
            production,
            "{name} {id}"
        );
        if production {
            assert!(
                rules.iter().any(|r| r.contains("CI_COMMIT_TAG")),
                "{name}: no tag pipelines"
            );
        }
    }
    assert_eq!(deploys, 2, "{name}");
}

fn check_bitbucket(name: &str, files: &[GeneratedFile], oidc: bool) {
    let f = files
        .iter()
        .find(|f| f.path == "bitbucket-pipelines.yml")
        .unwrap_or_else(|| panic!("{name}: no bitbucket-pipelines.yml"));
    let doc = yaml(f);
    let pipelines = &doc["pipelines"];
    let deployments = |steps: &Yaml| -> Vec<Yaml> {
        steps
            .as_vec()
            .map(|v| {
                v.iter()
                    .filter(|i| !i["step"]["deployment"].is_badvalue())
                    .map(|i| i["step"].clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    // Pull requests never deploy.
    for (_, steps) in pipelines["pull-requests"].as_hash().unwrap() {
        assert!(
            deployments(steps).is_empty(),
            "{name}: a pull request deploys"
        );
    }
    let staging = deployments(&pipelines["branches"]["main"]);
    assert_eq!(staging.len(), 1, "{name}: staging");
    assert_eq!(s(&staging[0]["deployment"]), "staging");
    assert!(staging[0]["trigger"].is_badvalue(), "{name}");
    let production = deployments(&pipelines["tags"]["v*"]);
    assert_eq!(production.len(), 1, "{name}: production");
    assert_eq!(s(&production[0]["deployment"]), "production");
    assert_eq!(s(&production[0]["trigger"]), "manual", "{name}");
    // A manual step is never a pipeline's first: the checks run before it.
    assert!(
        pipelines["tags"]["v*"].as_vec().unwrap()[0]["step"]["deployment"].is_badvalue(),
        "{name}"
    );
    for step in staging.iter().chain(&production) {
        assert_eq!(step["oidc"].as_bool() == Some(true), oidc, "{name}");
    }
}

#[test]
fn every_fixture_provider_and_target() {
    let mut checked = 0;
    // Per target: total time (µs) and runs of analysis-to-files (deploy files, plan,
    // render, self-check), printed with `--nocapture`.
    let mut timing = [(0u128, 0u32); TARGETS.len()];
    for dir in fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        for (ti, target) in TARGETS.into_iter().enumerate() {
            for provider in PROVIDERS {
                let started = std::time::Instant::now();
                let Some((files, plan)) = generate(&dir, provider, &[target]) else {
                    continue;
                };
                timing[ti].0 += started.elapsed().as_micros();
                timing[ti].1 += 1;
                // The plan's invariant: every executable a step calls is provided.
                assert!(
                    plan::tools::check(&plan).is_empty(),
                    "{name} {target} {provider:?}"
                );
                let label = format!("{name} {target} {provider:?}");
                let oidc = target.spec().oidc;
                match provider {
                    Provider::Github => check_github(&label, &files, oidc),
                    // Fixtures without a project of their own get no pipeline there: the
                    // repository's own CI is elsewhere (`with-gitlab-ci-and-cd`).
                    Provider::Gitlab if files.iter().any(|f| f.path == ".gitlab-ci.yml") => {
                        check_gitlab(&label, &files, oidc)
                    }
                    Provider::Bitbucket
                        if files.iter().any(|f| f.path == "bitbucket-pipelines.yml") =>
                    {
                        check_bitbucket(&label, &files, oidc)
                    }
                    _ => {}
                }
                checked += 1;
            }
        }
    }
    // 6 targets × 3 providers over the deployable fixtures.
    assert!(
        checked >= 6 * 3 * 8,
        "only {checked} combinations were deployable"
    );
    eprintln!("deploy workflows checked: {checked} fixture × provider × target combinations");
    for (t, (us, n)) in TARGETS.iter().zip(timing) {
        eprintln!(
            "  {t}: {:.1} ms per repository (load, analyse, deploy files, plan, render, check; debug build, {n} runs)",
            us as f64 / 1000.0 / f64::from(n.max(1))
        );
    }
}

#[test]
fn staging_follows_green_checks_and_the_image_precedes_its_deploys() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos/python-uv-fastapi");
    let (files, _) = generate(
        &dir,
        Provider::Github,
        &[DeployTarget::Ssh, DeployTarget::Fly],
    )
    .unwrap();
    let ci = files
        .iter()
        .find(|f| f.path == ".github/workflows/ci.yml")
        .unwrap();
    let doc = yaml(ci);
    let jobs = doc["jobs"].as_hash().unwrap();
    let checks: Vec<&str> = jobs
        .keys()
        .map(s)
        .filter(|id| !id.starts_with("deploy-") && *id != "publish-image")
        .collect();
    assert!(!checks.is_empty());
    for id in ["publish-image", "deploy-ssh-staging", "deploy-fly-staging"] {
        let needs: Vec<&str> = doc["jobs"][id]["needs"]
            .as_vec()
            .unwrap()
            .iter()
            .map(s)
            .collect();
        for c in &checks {
            assert!(needs.contains(c), "{id} does not wait for {c}");
        }
    }
    let ssh_needs: Vec<&str> = doc["jobs"]["deploy-ssh-staging"]["needs"]
        .as_vec()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert!(ssh_needs.contains(&"publish-image"));
    // The deploy runs exactly the image the publish job pushed.
    let run = s(&doc["jobs"]["deploy-ssh-staging"]["steps"].as_vec().unwrap()[1]["run"]);
    assert!(
        run.contains("export IMAGE=\"ghcr.io/${GITHUB_REPOSITORY,,}:$IMAGE_TAG\""),
        "{run}"
    );
    let push = s(&doc["jobs"]["publish-image"]["steps"].as_vec().unwrap()[2]["run"]);
    assert!(
        push.contains("--provenance=mode=max --sbom=true --push"),
        "{push}"
    );
    assert!(
        push.contains("ghcr.io/${GITHUB_REPOSITORY,,}:${GITHUB_SHA}"),
        "{push}"
    );
    // Production is its own workflow, on tags only.
    let d = files
        .iter()
        .find(|f| f.path == ".github/workflows/deploy.yml")
        .unwrap();
    let dd = yaml(d);
    assert!(dd["on"]["pull_request"].is_badvalue());
    let ids: Vec<&str> = dd["jobs"].as_hash().unwrap().keys().map(s).collect();
    assert_eq!(
        ids,
        [
            "publish-image",
            "deploy-ssh-production",
            "deploy-fly-production"
        ]
    );
}

#[test]
fn a_monorepo_deploys_staging_after_the_checks_of_the_service_it_deploys() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/repos/monorepo-backend-frontend");
    let Some((files, _)) = generate(&dir, Provider::Github, &[DeployTarget::Fly]) else {
        panic!("the monorepo has a service to deploy");
    };
    let wf = |p: &str| {
        yaml(
            files
                .iter()
                .find(|f| f.path == p)
                .unwrap_or_else(|| panic!("no {p}")),
        )
    };
    // Staging joins the backend's CI (its path filters decide, as for its checks) and
    // needs its jobs; the frontend's CI has no deploy.
    let backend = wf(".github/workflows/ci-backend.yml");
    let needs: Vec<&str> = backend["jobs"]["deploy-fly-staging"]["needs"]
        .as_vec()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert!(needs.contains(&"backend"), "{needs:?}");
    assert!(!files
        .iter()
        .find(|f| f.path == ".github/workflows/ci-frontend.yml")
        .unwrap()
        .content
        .contains("deploy-fly"));
    // Production: the delivery workflow, tags only.
    let d = wf(".github/workflows/deploy.yml");
    let ids: Vec<&str> = d["jobs"].as_hash().unwrap().keys().map(s).collect();
    assert_eq!(ids, ["deploy-fly-production"]);
    assert!(d["on"]["push"]["branches"].is_badvalue() && !d["on"]["push"]["tags"].is_badvalue());
}

#[test]
fn bitbucket_deploys_one_target_per_environment_and_says_so() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos/python-uv-fastapi");
    let (files, plan) = generate(
        &dir,
        Provider::Bitbucket,
        &[DeployTarget::Fly, DeployTarget::Ssh],
    )
    .unwrap();
    check_bitbucket("two targets", &files, false);
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("one deployment step per environment")),
        "{:?}",
        plan.notes
    );
    // The SSH target was left out, so no image is published for it.
    let content = &files
        .iter()
        .find(|f| f.path == "bitbucket-pipelines.yml")
        .unwrap()
        .content;
    assert!(!content.contains("publish-image"));
}
