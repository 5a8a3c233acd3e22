//! JavaScript and TypeScript: npm, yarn (classic and berry), pnpm and bun, chosen from
//! the `packageManager` field and lockfiles; workspaces (one project at the workspace
//! root); `scripts` as the commands; test runners and frameworks from dependencies; the
//! Node version from .nvmrc, .node-version, engines or volta. Deno separately.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{frameworks_from, majors_in, rule, Ctx, Draft, Ecosystem, Rule};
use crate::analyze::stack::{Framework, Language, PackageManager, TestTool};

rule!(
    MANIFEST,
    "node/manifest",
    "package.json marks a JavaScript/TypeScript project"
);
rule!(
    TYPESCRIPT,
    "node/typescript",
    "tsconfig.json or a typescript dependency: language typescript"
);
rule!(
    PM_FIELD,
    "node/package-manager-field",
    "the packageManager field names the package manager"
);
rule!(
    LOCKFILE,
    "node/lockfile",
    "a lockfile names the package manager"
);
rule!(
    YARN_BERRY,
    "node/yarn-berry",
    ".yarnrc.yml or yarn@2+: yarn berry (install --immutable)"
);
rule!(
    SCRIPT,
    "node/script",
    "a package.json script is the command for its task"
);
rule!(
    TEST_TOOL,
    "node/test-tool",
    "the test script or a dependency names the test runner"
);
rule!(
    FRAMEWORK,
    "node/framework",
    "a dependency names a framework"
);
rule!(
    NODE_VERSION,
    "node/version",
    ".nvmrc, .node-version, engines.node or volta.node declares Node"
);
rule!(
    WORKSPACES,
    "node/workspaces",
    "workspaces (package.json or pnpm-workspace.yaml): one project at the root"
);
rule!(
    MONOREPO_TOOL,
    "node/monorepo-tool",
    "turbo.json or nx.json: a monorepo task runner"
);
rule!(
    DENO_MANIFEST,
    "deno/manifest",
    "deno.json(c) marks a Deno project"
);
pub(crate) static RULES: &[&Rule] = &[
    &MANIFEST,
    &TYPESCRIPT,
    &PM_FIELD,
    &LOCKFILE,
    &YARN_BERRY,
    &SCRIPT,
    &TEST_TOOL,
    &FRAMEWORK,
    &NODE_VERSION,
    &WORKSPACES,
    &MONOREPO_TOOL,
    &DENO_MANIFEST,
];

/// Node LTS lines maintained today; a `>=N` requirement tests the ones at or above N.
pub(crate) const NODE_LTS: &[u32] = &[22, 24];

const FRAMEWORKS: &[(&str, Framework)] = &[
    ("next", Framework::Next),
    ("nuxt", Framework::Nuxt),
    ("@remix-run/react", Framework::Remix),
    ("astro", Framework::Astro),
    ("@sveltejs/kit", Framework::SvelteKit),
    ("svelte", Framework::Svelte),
    ("@angular/core", Framework::Angular),
    ("vue", Framework::Vue),
    ("react", Framework::React),
    ("vite", Framework::Vite),
    ("@nestjs/core", Framework::Nestjs),
    ("express", Framework::Express),
    ("fastify", Framework::Fastify),
    ("@docusaurus/core", Framework::Docusaurus),
    ("turbo", Framework::Turborepo),
    ("nx", Framework::Nx),
];

/// Test runners by dependency, in the order a test script is matched against them.
const TEST_TOOLS: &[(&str, TestTool)] = &[
    ("vitest", TestTool::Vitest),
    ("jest", TestTool::Jest),
    ("mocha", TestTool::Mocha),
    ("@playwright/test", TestTool::Playwright),
];

/// Test runners by the command a test script runs.
const TEST_BINS: &[(&str, TestTool)] = &[
    ("vitest", TestTool::Vitest),
    ("jest", TestTool::Jest),
    ("mocha", TestTool::Mocha),
    ("playwright", TestTool::Playwright),
];

pub(crate) static ECOSYSTEM: Ecosystem = Ecosystem {
    name: "node",
    markers: &["package.json"],
    marker_suffixes: &[],
    reads: &[
        "package.json",
        "pnpm-workspace.yaml",
        ".nvmrc",
        ".node-version",
        "package-lock.json",
        "pnpm-lock.yaml",
    ],
    is_root: is_node_root,
    detect,
    members,
};

pub(crate) static DENO: Ecosystem = Ecosystem {
    name: "deno",
    markers: &["deno.json", "deno.jsonc"],
    marker_suffixes: &[],
    reads: &["deno.json", "deno.jsonc"],
    is_root: |c| (c.has("deno.json") || c.has("deno.jsonc")) && !c.has("package.json"),
    detect: detect_deno,
    members: |_| Vec::new(),
};

/// A package.json that only configures tooling of another ecosystem's project (no
/// dependencies, no scripts) is not a project of its own.
fn is_node_root(c: &Ctx) -> bool {
    if !c.has("package.json") {
        return false;
    }
    // A pnpm workspace root is the project, even when its package.json holds no more
    // than the package manager pin: its members build and test from it.
    if c.has("pnpm-workspace.yaml") {
        return true;
    }
    match c.json("package.json") {
        Some(v) if !c.dir.is_empty() && !is_own_project(c, &v) => false,
        Some(v) => [
            "dependencies",
            "devDependencies",
            "scripts",
            "workspaces",
            "main",
            "bin",
        ]
        .iter()
        .any(|k| v.get(k).is_some()),
        // Unparseable: still a JS project, detected best-effort.
        None => true,
    }
}

/// Is a nested package.json a project of its own? Not when it is a helper of the
/// project around it: its scripts run in the parent (`cd .. && yarn build`: a
/// benchmark of the parent's build output), or it only lists packages for scripts run
/// by hand (a `bench/` folder: no scripts, no TypeScript to check).
fn is_own_project(c: &Ctx, pkg: &Value) -> bool {
    let scripts: Vec<&str> = pkg
        .get("scripts")
        .and_then(|s| s.as_object())
        .map(|o| o.values().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let reaches_parent = scripts.iter().any(|s| {
        s.split("&&")
            .chain(s.split(';'))
            .any(|part| matches!(part.trim(), "cd .." | "cd ../"))
    });
    if reaches_parent {
        return false;
    }
    let checks_types = c.has("tsconfig.json");
    !scripts.is_empty() || pkg.get("workspaces").is_some() || checks_types
}

fn members(c: &Ctx) -> Vec<String> {
    let mut globs = Vec::new();
    if let Some(v) = c.json("package.json") {
        let ws = v.get("workspaces");
        let list = ws.and_then(|w| w.as_array()).or_else(|| {
            ws.and_then(|w| w.get("packages"))
                .and_then(|p| p.as_array())
        });
        if let Some(list) = list {
            globs.extend(list.iter().filter_map(|g| g.as_str().map(str::to_owned)));
        }
    }
    if let Some(y) = c.yaml("pnpm-workspace.yaml") {
        if let Some(list) = y["packages"].as_vec() {
            globs.extend(list.iter().filter_map(|g| g.as_str().map(str::to_owned)));
        }
    }
    globs.retain(|g| !g.starts_with('!'));
    globs
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_str()
}

/// The package manager and the file that decided it. Precedence, highest first:
/// 1. `packageManager` (what corepack enforces, so it is what the authors run);
/// 2. lockfiles: bun, pnpm, yarn, npm — a repository holding two lockfiles usually
///    migrated away from npm/yarn and left the old one behind, so the rarer wins;
/// 3. npm, the default.
fn package_manager(
    c: &Ctx,
    root: &Ctx,
    pkg: Option<&Value>,
) -> (
    PackageManager,
    Option<(&'static Rule, String)>,
    Option<String>,
) {
    if let Some(field) = pkg.and_then(|p| str_at(p, &["packageManager"])) {
        let (name, version) = field.split_once('@').unwrap_or((field, ""));
        let pm = match name {
            "pnpm" => Some(PackageManager::Pnpm),
            "yarn" => Some(PackageManager::Yarn),
            "bun" => Some(PackageManager::Bun),
            "npm" => Some(PackageManager::Npm),
            _ => None,
        };
        if let Some(pm) = pm {
            return (
                pm,
                Some((&PM_FIELD, c.path("package.json"))),
                Some(version.to_owned()),
            );
        }
    }
    for ctx in [c, root] {
        for (file, pm) in [
            ("bun.lock", PackageManager::Bun),
            ("bun.lockb", PackageManager::Bun),
            ("pnpm-lock.yaml", PackageManager::Pnpm),
            ("yarn.lock", PackageManager::Yarn),
            ("package-lock.json", PackageManager::Npm),
            ("npm-shrinkwrap.json", PackageManager::Npm),
        ] {
            if ctx.has(file) {
                return (pm, Some((&LOCKFILE, ctx.path(file))), None);
            }
        }
    }
    (PackageManager::Npm, None, None)
}

fn deps(pkg: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for key in [
        "dependencies",
        "devDependencies",
        "peerDependencies",
        "optionalDependencies",
    ] {
        if let Some(obj) = pkg.get(key).and_then(|d| d.as_object()) {
            out.extend(obj.keys().cloned());
        }
    }
    out
}

fn detect(c: &Ctx) -> Draft {
    let manifest = c.path("package.json");
    let pkg = c.json("package.json");
    let deps = pkg.as_ref().map(deps).unwrap_or_default();
    let ts = c.has("tsconfig.json") || deps.contains("typescript");
    let mut d = Draft::new(
        if ts {
            Language::TypeScript
        } else {
            Language::JavaScript
        },
        if pkg.is_some() { 0.8 } else { 0.5 },
    );
    d.because(&MANIFEST, &manifest, "JavaScript/TypeScript project");
    if ts {
        let f = if c.has("tsconfig.json") {
            c.path("tsconfig.json")
        } else {
            manifest.clone()
        };
        d.because(&TYPESCRIPT, &f, "language typescript");
    }
    let root_ctx = Ctx::new(c.tree, "", c.warnings);
    let (pm, why, pm_version) = package_manager(c, &root_ctx, pkg.as_ref());
    d.package_manager = Some(pm);
    // The lockfile matters even when packageManager decided: it keys the CI cache.
    let lockfile = match pm {
        PackageManager::Pnpm => Some("pnpm-lock.yaml"),
        PackageManager::Yarn => Some("yarn.lock"),
        PackageManager::Npm => Some("package-lock.json"),
        _ => None,
    };
    if let Some(lf) = lockfile {
        if let Some(ctx) = [c, &root_ctx].into_iter().find(|x| x.has(lf)) {
            if why.as_ref().is_some_and(|(rule, _)| rule.id == PM_FIELD.id) {
                d.because(
                    &LOCKFILE,
                    &ctx.path(lf),
                    format!("{lf} pins the dependencies"),
                );
            }
        }
    }
    let has_lock = match &why {
        Some((rule, file)) => {
            d.because(rule, file, format!("package manager {pm}"));
            d.boost(0.15);
            rule.id == LOCKFILE.id
                || [
                    "package-lock.json",
                    "pnpm-lock.yaml",
                    "yarn.lock",
                    "bun.lock",
                    "bun.lockb",
                ]
                .iter()
                .any(|l| c.has(l) || root_ctx.has(l))
        }
        None => false,
    };
    let berry = pm == PackageManager::Yarn
        && (c.has(".yarnrc.yml")
            || root_ctx.has(".yarnrc.yml")
            || pm_version
                .as_deref()
                .and_then(|v| majors_in(v).first().copied())
                .is_some_and(|m| m >= 2));
    if berry {
        let f = if c.has(".yarnrc.yml") {
            c.path(".yarnrc.yml")
        } else {
            manifest.clone()
        };
        d.because(&YARN_BERRY, &f, "yarn berry");
    }
    d.install = Some(
        match (pm, has_lock) {
            (PackageManager::Npm, true) => "npm ci",
            (PackageManager::Npm, false) => "npm install",
            (PackageManager::Pnpm, true) => "pnpm install --frozen-lockfile",
            (PackageManager::Pnpm, false) => "pnpm install",
            (PackageManager::Yarn, _) if berry => "yarn install --immutable",
            (PackageManager::Yarn, true) => "yarn install --frozen-lockfile",
            (PackageManager::Yarn, false) => "yarn install",
            (PackageManager::Bun, true) => "bun install --frozen-lockfile",
            _ => "bun install",
        }
        .to_owned(),
    );
    // The install step puts every declared package's binaries in node_modules/.bin.
    d.installs = deps.iter().map(|dep| format!("node:{dep}")).collect();
    let run = |script: &str| -> String {
        match pm {
            PackageManager::Npm if script == "test" => "npm test".to_owned(),
            PackageManager::Npm => format!("npm run {script}"),
            PackageManager::Pnpm => format!("pnpm run {script}"),
            PackageManager::Yarn => format!("yarn run {script}"),
            _ => format!("bun run {script}"),
        }
    };
    let exec = |bin: &str| -> String {
        match pm {
            PackageManager::Npm => format!("npx {bin}"),
            PackageManager::Pnpm => format!("pnpm exec {bin}"),
            PackageManager::Yarn => format!("yarn {bin}"),
            _ => format!("bunx {bin}"),
        }
    };

    for (fw, dep) in frameworks_from(&deps, FRAMEWORKS) {
        d.frameworks.insert(fw);
        d.because(&FRAMEWORK, &manifest, format!("dependency `{dep}` → {fw}"));
    }
    for (file, fw) in [
        ("turbo.json", Framework::Turborepo),
        ("nx.json", Framework::Nx),
    ] {
        if c.has(file) {
            d.frameworks.insert(fw);
            d.because(&MONOREPO_TOOL, &c.path(file), format!("{fw}"));
        }
    }
    if !members(c).is_empty() {
        let f = if c.has("pnpm-workspace.yaml") {
            c.path("pnpm-workspace.yaml")
        } else {
            manifest.clone()
        };
        d.because(
            &WORKSPACES,
            &f,
            "workspace members are part of this project",
        );
    }

    // Scripts: the project's own commands win.
    let scripts = pkg
        .as_ref()
        .and_then(|p| p.get("scripts"))
        .and_then(|s| s.as_object());
    let script = |name: &str| -> Option<&str> {
        let s = scripts?.get(name)?.as_str()?;
        // npm's placeholder ("echo \"Error: no test specified\" && exit 1") is no test.
        (!s.contains("no test specified")).then_some(s)
    };
    let test_script = script("test");
    let workspace = !members(c).is_empty();
    if let Some(s) = test_script {
        d.test = Some(run("test"));
        d.because(&SCRIPT, &manifest, format!("scripts.test: {s}"));
    } else if workspace {
        // A workspace root without its own test script: every member's tests.
        if member_has_script(c, "test") {
            d.test = Some(
                match pm {
                    PackageManager::Pnpm => "pnpm -r --if-present run test",
                    PackageManager::Yarn if berry => "yarn workspaces foreach --all run test",
                    PackageManager::Yarn => "yarn workspaces run test",
                    PackageManager::Bun => "bun run --filter '*' test",
                    _ => "npm test --workspaces --if-present",
                }
                .to_owned(),
            );
            d.because(
                &WORKSPACES,
                &manifest,
                "the members' tests run from the root",
            );
        }
    }
    for name in [
        "lint",
        "typecheck",
        "type-check",
        "format:check",
        "fmt:check",
        "check-types",
    ] {
        if script(name).is_some() {
            d.add_lint(run(name));
            d.because(&SCRIPT, &manifest, format!("scripts.{name}"));
        }
    }
    if script("build").is_some() {
        d.build = Some(run("build"));
        d.because(&SCRIPT, &manifest, "scripts.build");
    } else if workspace && member_has_script(c, "build") {
        // Members build their own output (`dist/`), which other members import: build
        // them all before the tests.
        d.build = Some(
            match pm {
                PackageManager::Pnpm => "pnpm -r --if-present run build",
                PackageManager::Yarn if berry => {
                    "yarn workspaces foreach --all --topological run build"
                }
                PackageManager::Yarn => "yarn workspaces run build",
                PackageManager::Bun => "bun run --filter '*' build",
                _ => "npm run build --workspaces --if-present",
            }
            .to_owned(),
        );
        d.because(
            &WORKSPACES,
            &manifest,
            "the members' build scripts run from the root",
        );
    } else if ts && c.has("tsconfig.json") {
        d.build = Some(exec("tsc --noEmit"));
    }

    // Test runner: what the test script calls, else the dependency that is a runner.
    let tool = test_script
        .and_then(|s| {
            if s.contains("node --test") || s.contains("node:test") {
                Some(TestTool::NodeTest)
            } else if s.contains("bun test") {
                Some(TestTool::BunTest)
            } else {
                TEST_BINS
                    .iter()
                    .find(|(bin, _)| s.contains(bin))
                    .map(|(_, t)| *t)
            }
        })
        .or_else(|| {
            TEST_TOOLS
                .iter()
                .find(|(dep, _)| deps.contains(*dep))
                .map(|(_, t)| *t)
        });
    if let Some(t) = tool {
        d.test_tool = Some(t);
        d.because(&TEST_TOOL, &manifest, format!("test tool {t}"));
        if d.test.is_none() {
            d.test = Some(match t {
                TestTool::Vitest => exec("vitest run"),
                TestTool::Jest => exec("jest"),
                TestTool::Mocha => exec("mocha"),
                TestTool::Playwright => exec("playwright test"),
                TestTool::BunTest => "bun test".to_owned(),
                _ => "node --test".to_owned(),
            });
        }
    }
    // A workspace root usually delegates tests to its members (`turbo run test`): name
    // the runner the members use.
    if d.test_tool.is_none() && !members(c).is_empty() {
        let member_tool = c
            .tree
            .under(c.dir)
            .filter(|p| p.ends_with("/package.json"))
            .filter_map(|p| Some((p, serde_json::from_str::<Value>(c.tree.text(p)?).ok()?)))
            .find_map(|(p, v)| {
                let member_deps = self::deps(&v);
                TEST_TOOLS
                    .iter()
                    .find(|(dep, _)| member_deps.contains(*dep))
                    .map(|(_, t)| (p, *t))
            });
        if let Some((file, t)) = member_tool {
            d.test_tool = Some(t);
            d.because(&TEST_TOOL, file, format!("workspace members test with {t}"));
        }
    }
    if pm == PackageManager::Bun && d.test_tool.is_none() && d.test.is_some() {
        d.test_tool = Some(TestTool::BunTest);
    }

    // Node version.
    let declared = c
        .first(&[".nvmrc", ".node-version"])
        .and_then(|f| c.text(f).map(|t| (c.path(f), t.trim().to_owned())))
        .or_else(|| {
            pkg.as_ref()
                .and_then(|p| str_at(p, &["volta", "node"]))
                .map(|v| (manifest.clone(), v.to_owned()))
        })
        .or_else(|| {
            pkg.as_ref()
                .and_then(|p| str_at(p, &["engines", "node"]))
                .map(|v| (manifest.clone(), v.to_owned()))
        });
    // The oldest Node every locked package supports: versions below it cannot run the
    // project's own toolchain (a test runner or the pinned package manager).
    let locked_min = [c, &root_ctx]
        .iter()
        .flat_map(|x| ["package-lock.json", "pnpm-lock.yaml"].map(|f| (x.path(f), x.text(f))))
        .find_map(|(f, t)| t.map(|t| (f, locked_node_floor(t))))
        .and_then(|(f, m)| m.map(|m| (f, m)));
    let pm_floor = pm_version
        .as_deref()
        .and_then(|v| majors_in(v).first().copied())
        .and_then(|major| match (pm, major) {
            // What each package manager release line declares in its own `engines`.
            (PackageManager::Pnpm, 9..=10) | (PackageManager::Yarn, 4) => Some(18),
            (PackageManager::Pnpm, 11..) => Some(22),
            (PackageManager::Npm, 11..) => Some(20),
            _ => None,
        });
    if let Some((file, v)) = declared {
        let v = v.lines().next().unwrap_or("").trim().to_owned();
        let versions: Vec<String> = if v.starts_with(">=") || v.starts_with('>') {
            let lo = majors_in(&v).first().copied().unwrap_or(0);
            NODE_LTS
                .iter()
                .filter(|m| **m >= lo)
                .map(|m| m.to_string())
                .collect()
        } else if v.starts_with("lts") || v == "node" || v == "latest" {
            vec![v.clone()]
        } else {
            majors_in(&v).iter().map(|m| m.to_string()).collect()
        };
        if !versions.is_empty() {
            d.because(
                &NODE_VERSION,
                &file,
                format!("node {}", versions.join(", ")),
            );
            d.runtime_versions = versions;
        }
    }
    let floor = [locked_min.as_ref().map(|(_, m)| *m), pm_floor]
        .into_iter()
        .flatten()
        .max();
    if let Some(floor) = floor {
        let before = d.runtime_versions.len();
        let keep: Vec<String> = d
            .runtime_versions
            .iter()
            .filter(|v| v.parse::<u32>().map_or(true, |m| m >= floor))
            .cloned()
            .collect();
        if keep.len() < before {
            let why = locked_min
                .as_ref()
                .filter(|(_, m)| *m == floor)
                .map(|(f, _)| f.clone())
                .unwrap_or_else(|| manifest.clone());
            d.because(
                &NODE_VERSION,
                &why,
                format!("locked packages need node >= {floor}: older versions left out"),
            );
            d.runtime_versions = if keep.is_empty() {
                NODE_LTS
                    .iter()
                    .filter(|m| **m >= floor)
                    .map(|m| m.to_string())
                    .collect()
            } else {
                keep
            };
        }
    }
    d
}

/// Does some workspace member's package.json define `script`?
fn member_has_script(c: &Ctx, script: &str) -> bool {
    c.tree
        .under(c.dir)
        .filter(|p| p.ends_with("/package.json"))
        .filter_map(|p| serde_json::from_str::<Value>(c.tree.text(p)?).ok())
        .any(|v| v.get("scripts").and_then(|s| s.get(script)).is_some())
}

/// The highest `engines.node` lower bound among a lockfile's packages
/// (`package-lock.json` v2/v3 or `pnpm-lock.yaml`), as a major version.
fn locked_node_floor(text: &str) -> Option<u32> {
    let mut floor: Option<u32> = None;
    let mut consider = |req: &str| {
        let req = req.trim();
        // Only plain lower bounds: `>=20`, `>=20.11`, `^20 || >=22` (its smallest).
        if req.starts_with(">=") || req.starts_with('^') || req.contains("||") {
            if let Some(m) = majors_in(req).into_iter().min() {
                if (10..100).contains(&m) {
                    floor = Some(floor.map_or(m, |f| f.max(m)));
                }
            }
        }
    };
    if text.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(text).ok()?;
        for (_, pkg) in v.get("packages")?.as_object()? {
            if let Some(req) = pkg
                .get("engines")
                .and_then(|e| e.get("node"))
                .and_then(|n| n.as_str())
            {
                consider(req);
            }
        }
    } else {
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("engines: {node: ") {
                consider(
                    rest.trim_end_matches('}')
                        .trim_matches(|c| c == '\'' || c == '"'),
                );
            }
        }
    }
    floor
}

fn detect_deno(c: &Ctx) -> Draft {
    let file = if c.has("deno.json") {
        "deno.json"
    } else {
        "deno.jsonc"
    };
    let mut d = Draft::new(Language::TypeScript, 0.85);
    d.package_manager = Some(PackageManager::Deno);
    d.test_tool = Some(TestTool::DenoTest);
    d.because(&DENO_MANIFEST, &c.path(file), "Deno project");
    // deno.jsonc may carry comments; only the `tasks` keys matter here.
    let tasks: Vec<String> = c
        .text(file)
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| {
            v.get("tasks")
                .and_then(|t| t.as_object())
                .map(|o| o.keys().cloned().collect())
        })
        .unwrap_or_default();
    d.install = Some("deno install".to_owned());
    d.add_lint("deno lint");
    d.add_lint("deno fmt --check");
    d.test = Some(if tasks.iter().any(|t| t == "test") {
        "deno task test".to_owned()
    } else {
        "deno test --allow-all".to_owned()
    });
    if tasks.iter().any(|t| t == "build") {
        d.build = Some("deno task build".to_owned());
    }
    d.runtime_versions = vec!["v2.x".to_owned()];
    d
}
