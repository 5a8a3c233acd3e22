//! The release workflow (`release` feature): on a `v*` tag, publish each project to its
//! registry, push images to the forge's registry, and create the forge's release. No
//! caches (a poisoned cache must not reach a release); each job gets only the
//! permissions it needs. Registry credentials: trusted publishing / OIDC where the
//! provider supports it (GitHub), protected CI variables elsewhere.

use super::{project_slug, Action, Job, JobKind, Role, Step, Trigger, Where, Workflow};
use crate::analyze::{Analysis, Language, PackageManager};

fn run(name: &str, cmd: impl Into<String>) -> Step {
    Step::new(name, Role::Publish, Action::Run(cmd.into()))
}

fn on(mut s: Step, w: Where) -> Step {
    s.on = w;
    s
}

fn uses(name: &str, action: &'static str, with: Vec<(&'static str, String)>) -> Step {
    on(
        Step::new(
            name,
            Role::Publish,
            Action::Uses {
                action,
                with,
                raw_with: Vec::new(),
            },
        ),
        Where::Github,
    )
}

fn job(id: String, name: String, dir: String, image: &str, steps: Vec<Step>) -> Job {
    Job {
        id,
        name,
        kind: JobKind::Publish,
        dir,
        toolchain: None,
        image: Some(image.to_owned()),
        services: Vec::new(),
        steps,
        permissions: Vec::new(),
        timeout_minutes: super::JOB_TIMEOUT_MINUTES,
        env: Vec::new(),
        coverage_report: None,
        dockerfiles: Vec::new(),
        changes: Vec::new(),
        reusable: None,
        needs: Vec::new(),
        deploy: None,
        service: None,
    }
}

/// The release workflow for `analysis`.
pub fn workflow(analysis: &Analysis, summary: String) -> Workflow {
    let mut jobs = Vec::new();
    for p in &analysis.projects {
        let base = project_slug(p);
        match (p.language, p.package_manager) {
            (Language::Rust, _) => {
                let mut publish = run("Publish to crates.io", "cargo publish --locked");
                publish.raw_env.push((
                    "CARGO_REGISTRY_TOKEN",
                    "${{ secrets.CARGO_REGISTRY_TOKEN }}",
                ));
                let steps = vec![
                    on(
                        run(
                            "Install Rust",
                            "rustup toolchain install stable --profile minimal && rustup default stable",
                        ),
                        Where::Github,
                    ),
                    publish,
                ];
                jobs.push(job(
                    format!("publish-{base}-crate"),
                    format!("Publish {} (crate)", p.path),
                    p.path.clone(),
                    "rust:latest",
                    steps,
                ));
            }
            (_, Some(pm @ (PackageManager::Npm | PackageManager::Pnpm | PackageManager::Yarn))) => {
                let mut steps = Vec::new();
                if pm != PackageManager::Npm {
                    steps.push(run("Enable corepack", "corepack enable"));
                }
                steps.push(uses(
                    "Set up Node.js",
                    "actions/setup-node",
                    vec![
                        ("node-version", "lts/*".to_owned()),
                        ("registry-url", "https://registry.npmjs.org".to_owned()),
                        // setup-node caches by default; a release must not read a cache.
                        ("package-manager-cache", "false".to_owned()),
                    ],
                ));
                if let Some(i) = &p.commands.install {
                    steps.push(run("Install dependencies", i.clone()));
                }
                if let Some(b) = &p.commands.build {
                    steps.push(run("Build", b.clone()));
                }
                // GitHub: provenance through the workflow's OIDC token.
                let mut publish = run("Publish to npm", "npm publish --provenance --access public");
                publish
                    .raw_env
                    .push(("NODE_AUTH_TOKEN", "${{ secrets.NPM_TOKEN }}"));
                steps.push(on(publish, Where::Github));
                steps.push(on(
                    run(
                        "Configure the npm token",
                        "npm config set //registry.npmjs.org/:_authToken \"$NPM_TOKEN\"",
                    ),
                    Where::Containers,
                ));
                steps.push(on(
                    run("Publish to npm", "npm publish --access public"),
                    Where::Containers,
                ));
                let mut j = job(
                    format!("publish-{base}-npm"),
                    format!("Publish {} (npm)", p.path),
                    p.path.clone(),
                    "node:lts",
                    steps,
                );
                j.permissions = vec![("id-token", "write")];
                jobs.push(j);
            }
            (Language::Python, _) => {
                let dist = if p.path == "." {
                    "dist/".to_owned()
                } else {
                    format!("{}/dist/", p.path)
                };
                let steps = vec![
                    uses(
                        "Set up Python",
                        "actions/setup-python",
                        vec![("python-version", "3.13".to_owned())],
                    ),
                    run(
                        "Build distributions",
                        "python -m pip install build && python -m build",
                    ),
                    // Trusted publishing: PyPI trusts this workflow's OIDC token; no secret.
                    uses(
                        "Publish to PyPI",
                        "pypa/gh-action-pypi-publish",
                        vec![("packages-dir", dist)],
                    ),
                    on(
                        run(
                            "Publish to PyPI",
                            "python -m pip install twine && python -m twine upload --non-interactive -u __token__ -p \"$PYPI_TOKEN\" dist/*",
                        ),
                        Where::Containers,
                    ),
                ];
                let mut j = job(
                    format!("publish-{base}-pypi"),
                    format!("Publish {} (pypi)", p.path),
                    p.path.clone(),
                    "python:3.13",
                    steps,
                );
                j.permissions = vec![("id-token", "write")];
                jobs.push(j);
            }
            _ => {}
        }
    }
    if analysis.dockerfile {
        let mut j = job(
            "publish-images".to_owned(),
            "Publish images".to_owned(),
            ".".to_owned(),
            "docker:27",
            Vec::new(),
        );
        j.kind = JobKind::ImagePublish;
        j.permissions = vec![("packages", "write")];
        j.dockerfiles = analysis.dockerfiles.clone();
        jobs.push(j);
    }
    let mut release = job(
        "forge-release".to_owned(),
        "Release".to_owned(),
        ".".to_owned(),
        "registry.gitlab.com/gitlab-org/release-cli:latest",
        Vec::new(),
    );
    release.kind = JobKind::ForgeRelease;
    release.permissions = vec![("contents", "write")];
    jobs.push(release);
    Workflow {
        file: "release".to_owned(),
        name: "Release".to_owned(),
        trigger: Trigger::Tags {
            patterns: vec!["v*".to_owned()],
        },
        summary,
        jobs,
    }
}

/// The image a Dockerfile is published as: `registry` (the provider's image-name
/// expression) with the Dockerfile's directory as a sub-name when it is not at the root,
/// and `tag`. Deploy jobs run exactly this reference.
pub fn image_ref(dockerfile: &str, registry: &str, tag: &str) -> String {
    match dockerfile.rsplit_once('/') {
        Some((d, _)) => format!("{registry}/{}:{tag}", super::slug(d)),
        None => format!("{registry}:{tag}"),
    }
}

fn build_context(dockerfile: &str) -> &str {
    dockerfile.rsplit_once('/').map_or(".", |(d, _)| d)
}

/// `docker build` + `docker push` of every Dockerfile for a release. `registry` is the
/// provider's image-name expression and `tag` its tag variable; a Dockerfile outside
/// the root gets its directory as a sub-name.
pub fn docker_push_commands(dockerfiles: &[String], registry: &str, tag: &str) -> Vec<String> {
    let mut out = Vec::new();
    for f in dockerfiles {
        let image = format!("\"{}\"", image_ref(f, registry, tag));
        out.push(format!(
            "docker build --file {} --tag {image} {}",
            crate::generate::render::shell_quote(f),
            crate::generate::render::shell_quote(build_context(f))
        ));
        out.push(format!("docker push {image}"));
    }
    out
}

/// Build and push of the image deploys run, tagged with the commit: with BuildKit's
/// provenance (SLSA, `mode=max`) and SBOM attestations attached to the image when
/// `attest` (needs a BuildKit builder in a container, which docker-in-docker and GitHub's
/// runners give, Bitbucket's restricted daemon does not).
pub fn deploy_image_commands(
    dockerfile: &str,
    registry: &str,
    tag: &str,
    attest: bool,
) -> Vec<String> {
    let image = format!("\"{}\"", image_ref(dockerfile, registry, tag));
    let file = crate::generate::render::shell_quote(dockerfile);
    let ctx = crate::generate::render::shell_quote(build_context(dockerfile));
    if attest {
        vec![
            "docker buildx create --use --driver docker-container".to_owned(),
            format!(
                "docker buildx build --provenance=mode=max --sbom=true --push --file {file} --tag {image} {ctx}"
            ),
        ]
    } else {
        vec![
            format!("docker build --file {file} --tag {image} {ctx}"),
            format!("docker push {image}"),
        ]
    }
}
