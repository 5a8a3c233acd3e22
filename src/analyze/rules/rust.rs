//! Rust: Cargo packages and workspaces (a workspace is one project), toolchain files,
//! MSRV, nextest, features, web frameworks.

use std::collections::BTreeSet;

use super::{frameworks_from, rule, Ctx, Draft, Ecosystem, Rule};
use crate::analyze::stack::{Framework, Language, PackageManager, TestTool};

rule!(
    MANIFEST,
    "rust/manifest",
    "Cargo.toml marks a Rust project built with cargo"
);
rule!(
    LOCKFILE,
    "rust/lockfile",
    "Cargo.lock present: build with --locked"
);
rule!(
    TOOLCHAIN,
    "rust/toolchain",
    "rust-toolchain(.toml) pins the toolchain"
);
rule!(
    MSRV,
    "rust/msrv",
    "`rust-version` declares the minimum supported Rust version"
);
rule!(
    NEXTEST,
    "rust/nextest",
    ".config/nextest.toml: tests run with cargo-nextest"
);
rule!(
    FEATURES,
    "rust/features",
    "[features] declared: test with --all-features"
);
rule!(
    FRAMEWORK,
    "rust/framework",
    "a dependency names a web or app framework"
);
rule!(
    LINT_CONFIG,
    "rust/lint-config",
    "clippy/rustfmt configuration present"
);
pub(crate) static RULES: &[&Rule] = &[
    &MANIFEST,
    &LOCKFILE,
    &TOOLCHAIN,
    &MSRV,
    &NEXTEST,
    &FEATURES,
    &FRAMEWORK,
    &LINT_CONFIG,
];

const FRAMEWORKS: &[(&str, Framework)] = &[
    ("axum", Framework::Axum),
    ("actix-web", Framework::ActixWeb),
    ("rocket", Framework::Rocket),
    ("warp", Framework::Warp),
    ("tauri", Framework::Tauri),
    ("leptos", Framework::Leptos),
    ("bevy", Framework::Bevy),
];

pub(crate) static ECOSYSTEM: Ecosystem = Ecosystem {
    name: "rust",
    markers: &["Cargo.toml"],
    marker_suffixes: &[],
    reads: &[
        "Cargo.toml",
        "rust-toolchain",
        "rust-toolchain.toml",
        ".cargo/config.toml",
        "Makefile",
        "makefile",
        "GNUmakefile",
        "justfile",
        "Justfile",
    ],
    is_root: |c| c.has("Cargo.toml") && !is_fuzz_crate(c),
    detect,
    members,
};

/// A cargo-fuzz crate (`fuzz/`: `[package.metadata] cargo-fuzz = true`, or a
/// `libfuzzer-sys` dependency) is no project of its own: its targets build only on a
/// nightly toolchain with `cargo fuzz`, which is the fuzzing setup's business, not CI's.
fn is_fuzz_crate(c: &Ctx) -> bool {
    let Some(t) = c.toml("Cargo.toml") else {
        return false;
    };
    let flagged = t
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("cargo-fuzz"))
        .and_then(|v| v.as_bool())
        == Some(true);
    let libfuzzer = t
        .get("dependencies")
        .and_then(|d| d.as_table())
        .is_some_and(|d| d.contains_key("libfuzzer-sys"));
    flagged || libfuzzer
}

fn members(c: &Ctx) -> Vec<String> {
    let Some(t) = c.toml("Cargo.toml") else {
        return Vec::new();
    };
    let Some(ws) = t.get("workspace").and_then(|w| w.as_table()) else {
        return Vec::new();
    };
    let mut m: Vec<String> = ws
        .get("members")
        .and_then(|m| m.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    // A workspace root's path dependencies inside it are members too (implicitly).
    if m.is_empty() {
        m.push("**".to_owned());
    }
    m
}

fn deps_of(t: &toml::Table, into: &mut BTreeSet<String>) {
    for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(d) = t.get(key).and_then(|d| d.as_table()) {
            into.extend(d.keys().cloned());
        }
    }
    if let Some(ws) = t.get("workspace").and_then(|w| w.as_table()) {
        deps_of(ws, into);
    }
}

fn detect(c: &Ctx) -> Draft {
    let mut d = Draft::new(Language::Rust, 0.8);
    d.package_manager = Some(PackageManager::Cargo);
    let manifest = c.path("Cargo.toml");
    d.because(&MANIFEST, &manifest, "language rust, package manager cargo");
    let parsed = c.toml("Cargo.toml");
    if parsed.is_none() {
        d.confidence = 0.5;
    }
    let lock = c.has("Cargo.lock");
    if lock {
        d.because(&LOCKFILE, &c.path("Cargo.lock"), "builds use --locked");
        d.boost(0.17);
    }

    let mut deps = BTreeSet::new();
    let mut has_features = false;
    let mut msrv = None;
    if let Some(t) = &parsed {
        deps_of(t, &mut deps);
        has_features = t
            .get("features")
            .and_then(|f| f.as_table())
            .is_some_and(|f| !f.is_empty());
        msrv = t
            .get("package")
            .and_then(|p| p.get("rust-version"))
            .or_else(|| {
                t.get("workspace")
                    .and_then(|w| w.get("package"))
                    .and_then(|p| p.get("rust-version"))
            })
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        // Members' manifests (read too) contribute frameworks and features.
        for member in c.tree.under(c.dir).filter(|p| p.ends_with("/Cargo.toml")) {
            if let Some(mt) = c
                .tree
                .text(member)
                .and_then(|s| s.parse::<toml::Table>().ok())
            {
                deps_of(&mt, &mut deps);
                has_features |= mt
                    .get("features")
                    .and_then(|f| f.as_table())
                    .is_some_and(|f| !f.is_empty());
            }
        }
    }
    for (fw, dep) in frameworks_from(&deps, FRAMEWORKS) {
        d.frameworks.insert(fw);
        d.because(&FRAMEWORK, &manifest, format!("dependency `{dep}` → {fw}"));
    }

    // Toolchain: a pinned channel wins; an MSRV adds a second version to test.
    if let Some(f) = c.first(&["rust-toolchain.toml", "rust-toolchain"]) {
        let text = c.text(f).unwrap_or("");
        let channel = if f.ends_with(".toml") {
            text.parse::<toml::Table>().ok().and_then(|t| {
                t.get("toolchain")?
                    .get("channel")?
                    .as_str()
                    .map(str::to_owned)
            })
        } else {
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
        };
        if let Some(ch) = channel {
            d.because(&TOOLCHAIN, &c.path(f), format!("toolchain {ch}"));
            d.runtime_versions.push(ch);
        } else {
            // `[toolchain] components = […]` without a channel pins nothing: rustup's
            // default (stable) builds it.
            d.because(
                &TOOLCHAIN,
                &c.path(f),
                "no channel pinned: stable, with the components it lists",
            );
        }
    }
    let msrv_declared = msrv.clone();
    if let Some(v) = &msrv {
        d.because(
            &MSRV,
            &manifest,
            format!("MSRV {v}: checked with `cargo check`"),
        );
    }
    // Tests and lints run on the pinned toolchain, else on stable: a declared MSRV is
    // checked separately (`cargo check`), because locked dev-dependencies and today's
    // lints often need a newer toolchain than the library itself.
    if d.runtime_versions.is_empty() {
        d.runtime_versions.push("stable".to_owned());
    }
    let workspace = parsed
        .as_ref()
        .is_some_and(|t| t.get("workspace").is_some());
    let ws = if workspace {
        d.because(
            &MANIFEST,
            &manifest,
            "a workspace: every member is built and tested",
        );
        " --workspace"
    } else {
        ""
    };
    let locked = if lock { " --locked" } else { "" };
    if let Some(v) = msrv_declared.filter(|_| d.runtime_versions.iter().all(|r| r == "stable")) {
        // Cargo.lock format 4 needs cargo 1.78; an older MSRV cannot read it.
        let lock_version = c
            .text("Cargo.lock")
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.trim().strip_prefix("version = "))
                    .and_then(|v| v.trim().parse::<u32>().ok())
            })
            .unwrap_or(3);
        let minor = v
            .split('.')
            .nth(1)
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap_or(0);
        if lock && lock_version >= 4 && minor < 78 {
            d.because(
                &MSRV,
                &manifest,
                format!("MSRV {v} cannot read Cargo.lock version {lock_version} (needs 1.78): not checked"),
            );
        } else {
            d.minimum = Some(crate::analyze::MinimumCheck {
                version: v.clone(),
                command: format!("cargo check{ws}{locked}"),
            });
        }
    }

    d.install = Some(format!("cargo fetch{locked}"));
    d.build = Some(format!("cargo build{ws}{locked}"));
    let features = if has_features {
        d.because(&FEATURES, &manifest, "tests enable --all-features");
        " --all-features"
    } else {
        ""
    };
    if c.has(".config/nextest.toml") {
        d.test_tool = Some(TestTool::Nextest);
        d.because(
            &NEXTEST,
            &c.path(".config/nextest.toml"),
            "test tool nextest",
        );
        d.test = Some(format!("cargo nextest run{ws}{features}{locked}"));
        d.tools.push(crate::analyze::PinnedTool {
            name: "cargo-nextest".to_owned(),
            spec: None,
        });
    } else {
        d.test_tool = Some(TestTool::CargoTest);
        d.test = Some(format!("cargo test{ws}{features}{locked}"));
    }
    for cfg in [
        "rustfmt.toml",
        ".rustfmt.toml",
        "clippy.toml",
        ".clippy.toml",
    ] {
        if c.has(cfg) {
            d.because(&LINT_CONFIG, &c.path(cfg), "project configures its linters");
        }
    }
    // rustfmt and clippy ship with every toolchain and are the ecosystem's norm. Clippy
    // warnings fail the job only where the project denies warnings itself: new lints
    // in today's toolchain would otherwise fail code that passed yesterday.
    d.add_lint("cargo fmt --all -- --check");
    let denies = denies_warnings(c, parsed.as_ref());
    if let Some(file) = &denies {
        d.because(
            &LINT_CONFIG,
            file,
            "the project denies warnings: clippy -D warnings",
        );
        d.add_lint(format!(
            "cargo clippy{ws} --all-targets{locked} -- -D warnings"
        ));
    } else {
        d.add_lint(format!("cargo clippy{ws} --all-targets{locked}"));
    }
    d
}

/// Where the project denies warnings (so CI may too): `[lints]` tables that deny
/// `warnings`, `-D warnings` in `.cargo/config.toml` or in its task runner files.
fn denies_warnings(c: &Ctx, manifest: Option<&toml::Table>) -> Option<String> {
    let lints_deny = |t: &toml::Table| -> bool {
        let check = |l: Option<&toml::Value>| {
            l.and_then(|l| l.as_table()).is_some_and(|l| {
                ["rust", "clippy"].iter().any(|k| {
                    l.get(*k).and_then(|x| x.as_table()).is_some_and(|x| {
                        x.iter().any(|(name, v)| {
                            (name == "warnings" || name == "all")
                                && (v.as_str() == Some("deny")
                                    || v.get("level").and_then(|l| l.as_str()) == Some("deny"))
                        })
                    })
                })
            })
        };
        check(t.get("lints")) || check(t.get("workspace").and_then(|w| w.get("lints")))
    };
    if manifest.is_some_and(lints_deny) {
        return Some(c.path("Cargo.toml"));
    }
    for f in [
        ".cargo/config.toml",
        ".cargo/config",
        "Makefile",
        "justfile",
        "Justfile",
    ] {
        if c.text(f).is_some_and(|t| {
            t.contains("-D warnings") || t.contains("-Dwarnings") || t.contains("--deny warnings")
        }) {
            return Some(c.path(f));
        }
    }
    None
}
