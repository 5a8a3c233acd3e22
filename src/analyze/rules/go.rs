//! Go modules: go.mod (version, toolchain, frameworks), go.work workspaces, golangci-lint.

use std::collections::BTreeSet;

use super::{frameworks_from, rule, Ctx, Draft, Ecosystem, Rule};
use crate::analyze::stack::{Framework, Language, PackageManager, TestTool};

rule!(MANIFEST, "go/manifest", "go.mod marks a Go module");
rule!(
    VERSION,
    "go/version",
    "the go directive declares the Go version"
);
rule!(
    GOLANGCI,
    "go/golangci",
    "a golangci-lint configuration: lint with golangci-lint"
);
rule!(
    FRAMEWORK,
    "go/framework",
    "a required module names a web framework"
);
rule!(
    WORKSPACE,
    "go/workspace",
    "go.work lists the modules of a workspace"
);
pub(crate) static RULES: &[&Rule] = &[&MANIFEST, &VERSION, &GOLANGCI, &FRAMEWORK, &WORKSPACE];

const FRAMEWORKS: &[(&str, Framework)] = &[
    ("github.com/gin-gonic/gin", Framework::Gin),
    ("github.com/labstack/echo/v4", Framework::Echo),
    ("github.com/labstack/echo", Framework::Echo),
    ("github.com/gofiber/fiber/v2", Framework::Fiber),
    ("github.com/gofiber/fiber/v3", Framework::Fiber),
    ("github.com/go-chi/chi/v5", Framework::Chi),
];

pub(crate) static ECOSYSTEM: Ecosystem = Ecosystem {
    name: "go",
    markers: &["go.mod", "go.work"],
    marker_suffixes: &[],
    reads: &["go.mod", "go.work"],
    is_root: |c| c.has("go.mod") || c.has("go.work"),
    detect,
    members: |c| {
        c.text("go.work")
            .map(|t| {
                t.lines()
                    .map(|l| {
                        l.trim()
                            .trim_start_matches("use")
                            .trim()
                            .trim_matches(['(', ')'])
                            .trim()
                    })
                    .filter(|l| {
                        l.starts_with("./")
                            || (!l.is_empty()
                                && !l.starts_with("go ")
                                && !l.starts_with("//")
                                && !l.contains(' '))
                    })
                    .map(|l| l.trim_start_matches("./").to_owned())
                    .filter(|l| !l.is_empty() && l != ".")
                    .collect()
            })
            .unwrap_or_default()
    },
};

fn detect(c: &Ctx) -> Draft {
    let mut d = Draft::new(Language::Go, 0.9);
    d.package_manager = Some(PackageManager::Go);
    d.test_tool = Some(TestTool::GoTest);
    let file = if c.has("go.mod") { "go.mod" } else { "go.work" };
    d.because(&MANIFEST, &c.path(file), "language go");
    if file == "go.work" {
        d.because(
            &WORKSPACE,
            &c.path("go.work"),
            "workspace modules are one project",
        );
    }
    let text = c.text(file).unwrap_or("");
    if c.has("go.sum") {
        d.boost(0.08);
    }
    let mut requires = BTreeSet::new();
    let mut version = None;
    let mut toolchain = None;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("go ") {
            version = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("toolchain go") {
            toolchain = Some(v.trim().to_owned());
        } else {
            let dep = line
                .trim_start_matches("require")
                .trim()
                .trim_start_matches('(')
                .trim();
            if let Some(name) = dep.split_whitespace().next() {
                if name.contains('/') {
                    requires.insert(name.to_owned());
                }
            }
        }
    }
    if let Some(v) = toolchain.or(version) {
        // `go 1.22.3` and `go 1.22` both mean the 1.22 line for setup-go.
        d.because(&VERSION, &c.path(file), format!("go {v}"));
        d.runtime_versions = vec![v];
    }
    for (fw, dep) in frameworks_from(&requires, FRAMEWORKS) {
        if d.frameworks.insert(fw) {
            d.because(&FRAMEWORK, &c.path(file), format!("`{dep}` → {fw}"));
        }
    }
    d.install = Some("go mod download".to_owned());
    d.build = Some("go build ./...".to_owned());
    d.test = Some("go test -race ./...".to_owned());
    d.add_lint("go vet ./...");
    if let Some(cfg) = c.first(&[
        ".golangci.yml",
        ".golangci.yaml",
        ".golangci.toml",
        ".golangci.json",
    ]) {
        d.add_lint("golangci-lint run");
        d.because(&GOLANGCI, &c.path(cfg), "golangci-lint");
    }
    d
}
