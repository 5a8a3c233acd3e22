//! The detection vocabulary. Every value serializes to exactly the string DESIGN.md's
//! `analyze --format json` contract fixes; `tests` pin the list.

use serde::{Serialize, Serializer};

macro_rules! vocab {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* #[doc = $text] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The contract string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocab!(
    /// Main language of a project.
    Language {
        Rust => "rust", JavaScript => "javascript", TypeScript => "typescript", Python => "python",
        Go => "go", Java => "java", Kotlin => "kotlin", Ruby => "ruby", Php => "php",
        CSharp => "csharp", FSharp => "fsharp", Elixir => "elixir", C => "c", Cpp => "cpp",
        Swift => "swift", Dart => "dart", Zig => "zig", Haskell => "haskell", Scala => "scala",
        Shell => "shell", Hcl => "hcl", Tex => "tex", Markdown => "markdown", Jupyter => "jupyter",
        Yaml => "yaml", Sql => "sql", Html => "html",
    }
);

vocab!(
    /// Package manager / build tool that installs dependencies.
    PackageManager {
        Cargo => "cargo", Npm => "npm", Yarn => "yarn", Pnpm => "pnpm", Bun => "bun", Deno => "deno",
        Pip => "pip", Poetry => "poetry", Uv => "uv", Pdm => "pdm", Hatch => "hatch", Pipenv => "pipenv",
        Go => "go", Maven => "maven", Gradle => "gradle", Bundler => "bundler", Composer => "composer",
        Dotnet => "dotnet", Mix => "mix", Cmake => "cmake", Meson => "meson", Make => "make",
        Swiftpm => "swiftpm", Pub => "pub", Zig => "zig", Cabal => "cabal", Stack => "stack", Sbt => "sbt",
    }
);

vocab!(
    /// How tests run.
    TestTool {
        CargoTest => "cargo-test", Nextest => "nextest", Jest => "jest", Vitest => "vitest",
        Mocha => "mocha", NodeTest => "node-test", BunTest => "bun-test", DenoTest => "deno-test",
        Playwright => "playwright", Pytest => "pytest", Unittest => "unittest", Tox => "tox", Nox => "nox",
        GoTest => "go-test", JunitMaven => "junit-maven", JunitGradle => "junit-gradle", Rspec => "rspec",
        Minitest => "minitest", Phpunit => "phpunit", Pest => "pest", DotnetTest => "dotnet-test",
        Exunit => "exunit", Ctest => "ctest", MesonTest => "meson-test", SwiftTest => "swift-test",
        FlutterTest => "flutter-test", DartTest => "dart-test", ZigTest => "zig-test",
        CabalTest => "cabal-test", StackTest => "stack-test", SbtTest => "sbt-test", Bats => "bats",
        MakeTest => "make-test",
    }
);

vocab!(
    /// Frameworks and, for repositories that are not application code, tools.
    Framework {
        Next => "next", React => "react", Vue => "vue", Nuxt => "nuxt", Svelte => "svelte",
        SvelteKit => "sveltekit", Angular => "angular", Vite => "vite", Express => "express",
        Nestjs => "nestjs", Fastify => "fastify", Astro => "astro", Remix => "remix", Turborepo => "turborepo",
        Nx => "nx", Django => "django", Flask => "flask", Fastapi => "fastapi", Rails => "rails",
        Sinatra => "sinatra", Laravel => "laravel", Symfony => "symfony", SpringBoot => "spring-boot",
        Axum => "axum", ActixWeb => "actix-web", Rocket => "rocket", Warp => "warp", Tauri => "tauri",
        Leptos => "leptos", Bevy => "bevy", Phoenix => "phoenix", Gin => "gin", Echo => "echo",
        Fiber => "fiber", Chi => "chi", Flutter => "flutter", Mkdocs => "mkdocs", Hugo => "hugo",
        Jekyll => "jekyll", Docusaurus => "docusaurus", Sphinx => "sphinx", Terraform => "terraform",
        Opentofu => "opentofu", Helm => "helm", Kubernetes => "kubernetes", Ansible => "ansible",
        Latex => "latex", Platformio => "platformio",
    }
);

vocab!(
    /// CI/CD systems whose configuration we recognise.
    CiProvider {
        Github => "github", Gitlab => "gitlab", Bitbucket => "bitbucket", Circleci => "circleci",
        Travis => "travis", Azure => "azure", Jenkins => "jenkins", Drone => "drone",
        Woodpecker => "woodpecker", Buildkite => "buildkite", Appveyor => "appveyor",
        Cirrus => "cirrus", Semaphore => "semaphore", Teamcity => "teamcity",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_strings_are_pinned() {
        // DESIGN.md's vocabulary: these exact strings are relied on by other tools.
        for (v, s) in [
            (Language::Rust.as_str(), "rust"),
            (Language::CSharp.as_str(), "csharp"),
            (Language::Cpp.as_str(), "cpp"),
            (PackageManager::Swiftpm.as_str(), "swiftpm"),
            (TestTool::CargoTest.as_str(), "cargo-test"),
            (TestTool::JunitGradle.as_str(), "junit-gradle"),
            (TestTool::NodeTest.as_str(), "node-test"),
            (Framework::SpringBoot.as_str(), "spring-boot"),
            (Framework::ActixWeb.as_str(), "actix-web"),
        ] {
            assert_eq!(v, s);
        }
        assert_eq!(
            serde_json::to_string(&Framework::Nestjs).unwrap(),
            "\"nestjs\""
        );
        let all: Vec<&str> = Framework::ALL.iter().map(|f| f.as_str()).collect();
        let mut dedup = all.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(all.len(), dedup.len());
        for s in all {
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{s}");
        }
    }
}
