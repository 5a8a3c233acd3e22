//! Smaller ecosystems: Elixir (mix, Phoenix), Swift (SwiftPM), Dart and Flutter (pub),
//! Zig, Haskell (cabal, stack), and shell-script repositories.

use super::{rule, Ctx, Draft, Ecosystem, Rule};
use crate::analyze::stack::{Framework, Language, PackageManager, TestTool};

rule!(MIX, "elixir/mix", "mix.exs marks an Elixir project");
rule!(PHOENIX, "elixir/phoenix", "the :phoenix dependency");
rule!(
    ELIXIR_VERSION,
    "elixir/version",
    ".tool-versions declares Elixir/Erlang"
);
rule!(
    SWIFTPM,
    "swift/package",
    "Package.swift marks a SwiftPM package"
);
rule!(PUBSPEC, "dart/pubspec", "pubspec.yaml marks a Dart package");
rule!(
    FLUTTER,
    "dart/flutter",
    "the flutter SDK dependency: a Flutter app"
);
rule!(ZIG_BUILD, "zig/build", "build.zig marks a Zig project");
rule!(
    CABAL,
    "haskell/cabal",
    "a .cabal file marks a cabal package"
);
rule!(STACK, "haskell/stack", "stack.yaml: build with stack");
rule!(
    SHELL,
    "shell/scripts",
    "shell scripts without another project: lint with shellcheck"
);
rule!(BATS, "shell/bats", ".bats files: tests run with bats");
pub(crate) static RULES: &[&Rule] = &[
    &MIX,
    &PHOENIX,
    &ELIXIR_VERSION,
    &SWIFTPM,
    &PUBSPEC,
    &FLUTTER,
    &ZIG_BUILD,
    &CABAL,
    &STACK,
    &SHELL,
    &BATS,
];

fn no_members(_: &Ctx) -> Vec<String> {
    Vec::new()
}

pub(crate) static ELIXIR: Ecosystem = Ecosystem {
    name: "elixir",
    markers: &["mix.exs"],
    marker_suffixes: &[],
    reads: &["mix.exs", ".tool-versions"],
    is_root: |c| c.has("mix.exs"),
    detect: detect_elixir,
    // An umbrella's apps are one project.
    members: |c| {
        if c.text("mix.exs").is_some_and(|t| t.contains("apps_path")) {
            vec!["apps/*".to_owned()]
        } else {
            Vec::new()
        }
    },
};

pub(crate) static SWIFT: Ecosystem = Ecosystem {
    name: "swift",
    markers: &["Package.swift"],
    marker_suffixes: &[],
    reads: &["Package.swift"],
    is_root: |c| c.has("Package.swift"),
    detect: detect_swift,
    members: no_members,
};

pub(crate) static DART: Ecosystem = Ecosystem {
    name: "dart",
    markers: &["pubspec.yaml"],
    marker_suffixes: &[],
    reads: &["pubspec.yaml"],
    is_root: |c| c.has("pubspec.yaml"),
    detect: detect_dart,
    members: no_members,
};

pub(crate) static ZIG: Ecosystem = Ecosystem {
    name: "zig",
    markers: &["build.zig"],
    marker_suffixes: &[],
    reads: &["build.zig.zon"],
    is_root: |c| c.has("build.zig"),
    detect: detect_zig,
    members: no_members,
};

pub(crate) static HASKELL: Ecosystem = Ecosystem {
    name: "haskell",
    markers: &["stack.yaml", "cabal.project"],
    marker_suffixes: &[".cabal"],
    reads: &["stack.yaml"],
    is_root: |c| {
        c.has("stack.yaml") || c.has("cabal.project") || c.any_child_with_suffix(".cabal").is_some()
    },
    detect: detect_haskell,
    members: |c| {
        if c.has("stack.yaml") || c.has("cabal.project") {
            vec!["**".to_owned()]
        } else {
            Vec::new()
        }
    },
};

fn detect_elixir(c: &Ctx) -> Draft {
    let file = c.path("mix.exs");
    let text = c.text("mix.exs").unwrap_or("");
    let mut d = Draft::new(
        Language::Elixir,
        if c.has("mix.lock") { 0.95 } else { 0.85 },
    );
    d.package_manager = Some(PackageManager::Mix);
    d.test_tool = Some(TestTool::Exunit);
    d.because(&MIX, &file, "Elixir with mix");
    if text.contains(":phoenix") {
        d.frameworks.insert(Framework::Phoenix);
        d.because(&PHOENIX, &file, "phoenix");
    }
    if let Some(tv) = c.text(".tool-versions") {
        for line in tv.lines() {
            let mut parts = line.split_whitespace();
            if let (Some(tool @ ("elixir" | "erlang")), Some(v)) = (parts.next(), parts.next()) {
                d.runtime_versions.push(format!("{tool} {v}"));
                d.because(
                    &ELIXIR_VERSION,
                    &c.path(".tool-versions"),
                    format!("{tool} {v}"),
                );
            }
        }
    }
    d.install = Some("mix deps.get".to_owned());
    d.build = Some("mix compile --warnings-as-errors".to_owned());
    d.test = Some("mix test".to_owned());
    d.add_lint("mix format --check-formatted");
    if text.contains(":credo") {
        d.add_lint("mix credo --strict");
    }
    d
}

fn detect_swift(c: &Ctx) -> Draft {
    let file = c.path("Package.swift");
    let mut d = Draft::new(Language::Swift, 0.9);
    d.package_manager = Some(PackageManager::Swiftpm);
    d.test_tool = Some(TestTool::SwiftTest);
    d.because(&SWIFTPM, &file, "SwiftPM package");
    if let Some(v) = c
        .text("Package.swift")
        .and_then(|t| t.lines().next())
        .and_then(|l| l.split("swift-tools-version:").nth(1))
    {
        d.runtime_versions = vec![v.trim().to_owned()];
    }
    d.install = Some("swift package resolve".to_owned());
    d.build = Some("swift build".to_owned());
    d.test = Some("swift test".to_owned());
    d
}

fn detect_dart(c: &Ctx) -> Draft {
    let file = c.path("pubspec.yaml");
    let y = c.yaml("pubspec.yaml");
    let flutter = y
        .as_ref()
        .is_some_and(|y| !y["dependencies"]["flutter"].is_badvalue());
    let mut d = Draft::new(Language::Dart, if y.is_some() { 0.9 } else { 0.5 });
    d.package_manager = Some(PackageManager::Pub);
    d.because(&PUBSPEC, &file, "Dart package");
    if let Some(sdk) = y
        .as_ref()
        .and_then(|y| y["environment"]["sdk"].as_str().map(str::to_owned))
    {
        d.runtime_versions = vec![sdk];
    }
    if flutter {
        d.frameworks.insert(Framework::Flutter);
        d.because(&FLUTTER, &file, "flutter");
        d.test_tool = Some(TestTool::FlutterTest);
        d.install = Some("flutter pub get".to_owned());
        d.add_lint("flutter analyze");
        d.test = Some("flutter test".to_owned());
    } else {
        d.test_tool = Some(TestTool::DartTest);
        d.install = Some("dart pub get".to_owned());
        d.add_lint("dart format --output=none --set-exit-if-changed .");
        d.add_lint("dart analyze");
        d.test = Some("dart test".to_owned());
    }
    d
}

fn detect_zig(c: &Ctx) -> Draft {
    let mut d = Draft::new(Language::Zig, 0.9);
    d.package_manager = Some(PackageManager::Zig);
    d.test_tool = Some(TestTool::ZigTest);
    d.because(&ZIG_BUILD, &c.path("build.zig"), "Zig project");
    if let Some(v) = c
        .text("build.zig.zon")
        .and_then(|t| t.split(".minimum_zig_version").nth(1))
        .and_then(|r| r.split('"').nth(1))
    {
        d.runtime_versions = vec![v.to_owned()];
    }
    d.build = Some("zig build".to_owned());
    d.test = Some("zig build test".to_owned());
    d.add_lint("zig fmt --check .");
    d
}

fn detect_haskell(c: &Ctx) -> Draft {
    let mut d = Draft::new(Language::Haskell, 0.9);
    if c.has("stack.yaml") {
        d.package_manager = Some(PackageManager::Stack);
        d.test_tool = Some(TestTool::StackTest);
        d.because(&STACK, &c.path("stack.yaml"), "stack");
        d.install = Some("stack setup && stack build --only-dependencies --test".to_owned());
        d.build = Some("stack build".to_owned());
        d.test = Some("stack test".to_owned());
    } else {
        let f = c
            .any_child_with_suffix(".cabal")
            .map(str::to_owned)
            .unwrap_or_else(|| c.path("cabal.project"));
        d.package_manager = Some(PackageManager::Cabal);
        d.test_tool = Some(TestTool::CabalTest);
        d.because(&CABAL, &f, "cabal");
        d.install =
            Some("cabal update && cabal build --only-dependencies --enable-tests".to_owned());
        d.build = Some("cabal build all".to_owned());
        d.test = Some("cabal test all".to_owned());
    }
    d
}

/// Shell scripts are a project only when nothing else claims the repository: then the
/// scripts are what CI should check.
pub(crate) fn detect_shell(ctx: &Ctx) -> Option<Draft> {
    let scripts: Vec<&str> = ctx
        .tree
        .files()
        .iter()
        .map(String::as_str)
        .filter(|p| p.ends_with(".sh") || p.ends_with(".bash"))
        .collect();
    if scripts.is_empty() {
        return None;
    }
    let mut d = Draft::new(Language::Shell, 0.7);
    d.because(
        &SHELL,
        scripts[0],
        format!("{} shell script(s)", scripts.len()),
    );
    d.add_lint("git ls-files -z '*.sh' '*.bash' | xargs -0 shellcheck");
    if let Some(b) = ctx.tree.files().iter().find(|p| p.ends_with(".bats")) {
        d.test_tool = Some(TestTool::Bats);
        let dir = b.rsplit_once('/').map_or(".", |(d, _)| d).to_owned();
        d.test = Some(format!("bats {dir}"));
        d.because(&BATS, b, "bats");
    }
    Some(d)
}
