//! .NET: solutions and projects (C#, F#), TargetFramework, global.json, test projects.

use super::{rule, Ctx, Draft, Ecosystem, Rule};
use crate::analyze::stack::{Language, PackageManager, TestTool};

rule!(
    PROJECT,
    "dotnet/project",
    "a .sln, .csproj or .fsproj marks a .NET project"
);
rule!(
    TARGET,
    "dotnet/target-framework",
    "TargetFramework(s) or global.json declares the SDK"
);
rule!(
    TESTS,
    "dotnet/tests",
    "a test project (Microsoft.NET.Test.Sdk or *Tests): dotnet test"
);
pub(crate) static RULES: &[&Rule] = &[&PROJECT, &TARGET, &TESTS];

pub(crate) static ECOSYSTEM: Ecosystem = Ecosystem {
    name: "dotnet",
    markers: &[],
    marker_suffixes: &[".sln", ".slnx", ".csproj", ".fsproj"],
    reads: &["global.json"],
    // A solution is .NET only when it holds a C# or F# project the dotnet CLI builds:
    // Visual Studio solutions of C/C++ (`.vcxproj`) and pre-SDK project files (Visual
    // Studio 2002–2015 formats, .NET Framework) build with MSBuild on Windows.
    is_root: |c| {
        let buildable = |p: &str| c.tree.text(p).is_none_or(is_sdk_project);
        let own = c
            .tree
            .children(c.dir)
            .filter(|p| p.ends_with(".csproj") || p.ends_with(".fsproj"))
            .any(buildable);
        let solution = [".sln", ".slnx"]
            .iter()
            .any(|s| c.any_child_with_suffix(s).is_some())
            && c.tree
                .under(c.dir)
                .filter(|p| p.ends_with(".csproj") || p.ends_with(".fsproj"))
                .any(buildable);
        own || solution
    },
    detect,
    // A solution builds every project beneath it.
    members: |c| {
        if c.any_child_with_suffix(".sln").is_some() || c.any_child_with_suffix(".slnx").is_some() {
            vec!["**".to_owned()]
        } else {
            Vec::new()
        }
    },
};

/// Is this project file SDK-style (`<Project Sdk="Microsoft.NET.Sdk">`, or an `<Sdk>`
/// element), which `dotnet build` builds on any OS?
fn is_sdk_project(text: &str) -> bool {
    let head: String = text.chars().take(4096).collect();
    head.contains("Sdk=\"") || head.contains("<Sdk ") || head.contains("Sdk='")
}

fn detect(c: &Ctx) -> Draft {
    let projects: Vec<&str> = c
        .tree
        .under(c.dir)
        .filter(|p| p.ends_with(".csproj") || p.ends_with(".fsproj"))
        .collect();
    let fsharp = !projects.is_empty() && projects.iter().all(|p| p.ends_with(".fsproj"));
    let mut d = Draft::new(
        if fsharp {
            Language::FSharp
        } else {
            Language::CSharp
        },
        0.9,
    );
    d.package_manager = Some(PackageManager::Dotnet);
    let marker = [".sln", ".slnx", ".csproj", ".fsproj"]
        .iter()
        .find_map(|s| c.any_child_with_suffix(s))
        .unwrap_or("");
    d.because(&PROJECT, marker, format!("{} project", d.language));
    let mut targets = Vec::new();
    for p in &projects {
        let text = c.tree.text(p).unwrap_or("");
        for tag in ["<TargetFramework>", "<TargetFrameworks>"] {
            if let Some(i) = text.find(tag) {
                let rest = &text[i + tag.len()..];
                let value = rest.split('<').next().unwrap_or("");
                for tf in value.split(';').map(str::trim) {
                    if let Some(v) = tf.strip_prefix("net").filter(|v| {
                        v.chars().next().is_some_and(|ch| ch.is_ascii_digit()) && v.contains('.')
                    }) {
                        let v = v.split('-').next().unwrap_or(v).to_owned();
                        if !targets.contains(&v) {
                            targets.push(v);
                            d.because(
                                &TARGET,
                                p,
                                format!("net{}", targets.last().map(String::as_str).unwrap_or("")),
                            );
                        }
                    }
                }
            }
        }
        if text.contains("Microsoft.NET.Test.Sdk")
            || p.rsplit('/').next().is_some_and(|n| n.contains("Test"))
        {
            d.test_tool = Some(TestTool::DotnetTest);
            d.because(&TESTS, p, "test project");
        }
    }
    if let Some(sdk) = c
        .json("global.json")
        .and_then(|g| g.get("sdk")?.get("version")?.as_str().map(str::to_owned))
    {
        d.because(&TARGET, &c.path("global.json"), format!("SDK {sdk}"));
        targets = vec![sdk];
    }
    targets.sort();
    d.runtime_versions = targets
        .into_iter()
        .map(|t| {
            if t.matches('.').count() == 1 {
                format!("{t}.x")
            } else {
                t
            }
        })
        .collect();
    d.install = Some("dotnet restore".to_owned());
    d.build = Some("dotnet build --no-restore --configuration Release".to_owned());
    d.test = Some("dotnet test --no-restore --configuration Release".to_owned());
    if c.has(".editorconfig") {
        d.add_lint("dotnet format --verify-no-changes");
    }
    d
}
