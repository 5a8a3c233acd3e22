//! C and C++: CMake (ctest when tests are registered), Meson, and Makefile-only projects.

use super::{rule, Ctx, Draft, Ecosystem, Rule};
use crate::analyze::stack::{Language, PackageManager, TestTool};

rule!(
    CMAKE_LISTS,
    "native/cmake",
    "CMakeLists.txt marks a CMake project"
);
rule!(
    CTEST,
    "native/ctest",
    "enable_testing()/add_test(): tests run with ctest"
);
rule!(
    MESON_BUILD,
    "native/meson",
    "meson.build marks a Meson project"
);
rule!(
    MAKE_ONLY,
    "native/make",
    "a Makefile beside C/C++ sources marks a make project"
);
rule!(
    CPP_SOURCES,
    "native/cpp",
    "C++ sources (.cpp, .cc, .cxx, .hpp): language cpp"
);
pub(crate) static RULES: &[&Rule] = &[&CMAKE_LISTS, &CTEST, &MESON_BUILD, &MAKE_ONLY, &CPP_SOURCES];

const CPP: &[&str] = &[".cpp", ".cc", ".cxx", ".hpp", ".hh", ".hxx"];
const C_OR_CPP: &[&str] = &[".c", ".h", ".cpp", ".cc", ".cxx", ".hpp"];

pub(crate) static CMAKE: Ecosystem = Ecosystem {
    name: "native",
    markers: &["CMakeLists.txt", "Makefile"],
    marker_suffixes: &[],
    reads: &["CMakeLists.txt"],
    is_root: |c| {
        c.has("CMakeLists.txt") || (c.has("Makefile") && !c.has("meson.build") && is_c_dir(c))
    },
    detect: detect_cmake,
    // Nested CMakeLists are add_subdirectory() parts of the same build.
    members: |_| vec!["**".to_owned()],
};

pub(crate) static MESON: Ecosystem = Ecosystem {
    name: "meson",
    markers: &["meson.build"],
    marker_suffixes: &[],
    reads: &["meson.build"],
    // A directory with both build systems is one project, built with CMake: every CI
    // image has cmake, while meson needs installing (and both are kept working).
    is_root: |c| c.has("meson.build") && !c.has("CMakeLists.txt"),
    detect: detect_meson,
    members: |_| vec!["**".to_owned()],
};

/// A Makefile marks a C project only where C sources sit beside it (or in src/), and no
/// other ecosystem's manifest claims the directory.
fn is_c_dir(c: &Ctx) -> bool {
    let others = [
        "Cargo.toml",
        "package.json",
        "go.mod",
        "pyproject.toml",
        "setup.py",
        "pom.xml",
        "Gemfile",
        "composer.json",
    ];
    if others.iter().any(|m| c.has(m)) {
        return false;
    }
    let src = super::join(c.dir, "src");
    let is_c = |p: &str| C_OR_CPP.iter().any(|s| p.ends_with(s));
    c.tree.children(c.dir).any(is_c) || c.tree.children(&src).any(is_c)
}

fn language(c: &Ctx, d: &mut Draft, marker: &str) {
    if c.any_under_with_suffix(CPP) {
        d.language = Language::Cpp;
        d.because(&CPP_SOURCES, marker, "language cpp");
    }
}

fn detect_cmake(c: &Ctx) -> Draft {
    let mut d = Draft::new(Language::C, 0.85);
    if !c.has("CMakeLists.txt") {
        let mk = c.path("Makefile");
        d.package_manager = Some(PackageManager::Make);
        d.because(&MAKE_ONLY, &mk, "make project");
        language(c, &mut d, &mk);
        d.build = Some("make".to_owned());
        return d;
    }
    let file = c.path("CMakeLists.txt");
    d.package_manager = Some(PackageManager::Cmake);
    d.because(&CMAKE_LISTS, &file, "CMake project");
    language(c, &mut d, &file);
    let text: String = c
        .tree
        .under(c.dir)
        .filter(|p| p.ends_with("CMakeLists.txt"))
        .filter_map(|p| c.tree.text(p))
        .collect();
    let text = if text.is_empty() {
        c.text("CMakeLists.txt").unwrap_or("").to_owned()
    } else {
        text
    };
    match declared_languages(c.text("CMakeLists.txt").unwrap_or("")) {
        // `project(zlib C)`: the languages the build compiles; a stray .cpp under
        // contrib/ or a fuzzer does not make it a C++ project.
        Some(langs) if !langs.is_empty() => {
            d.language = if langs.iter().any(|l| l == "CXX") {
                Language::Cpp
            } else {
                Language::C
            };
            d.because(
                &CMAKE_LISTS,
                &file,
                format!("project() languages: {}", langs.join(" ")),
            );
        }
        _ => {
            if text.contains("project(") && (text.contains(" CXX") || text.contains("CXX)")) {
                d.language = Language::Cpp;
            }
        }
    }
    d.build = Some(
        "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build --parallel"
            .to_owned(),
    );
    if text.contains("enable_testing(")
        || text.contains("add_test(")
        || text.contains("gtest_discover_tests(")
        || text.contains("include(CTest)")
    {
        d.test_tool = Some(TestTool::Ctest);
        d.test = Some("ctest --test-dir build --output-on-failure".to_owned());
        d.because(&CTEST, &file, "ctest");
    }
    d
}

/// The languages a root CMakeLists.txt's `project()` names (`project(zlib C)`,
/// `project(x VERSION 1 LANGUAGES C CXX)`); `None` without a `project()` call, empty
/// when it names none (CMake's default then is C and C++).
fn declared_languages(text: &str) -> Option<Vec<String>> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("project(")? + "project(".len();
    let args = &text[start..];
    let args = &args[..args.find(')')?];
    let words: Vec<&str> = args.split_whitespace().collect();
    const LANGS: &[&str] = &[
        "C", "CXX", "CUDA", "OBJC", "OBJCXX", "Fortran", "ASM", "HIP",
    ];
    // Keywords whose value follows them; the languages are the bare words after the
    // project name, or the ones after LANGUAGES.
    const VALUED: &[&str] = &["VERSION", "DESCRIPTION", "HOMEPAGE_URL"];
    let mut langs = Vec::new();
    let mut i = 1;
    let mut in_langs = false;
    while i < words.len() {
        let w = words[i];
        if w == "LANGUAGES" {
            in_langs = true;
        } else if VALUED.contains(&w) {
            in_langs = false;
            i += 1;
        } else if LANGS.contains(&w) && (in_langs || i == 1 || !langs.is_empty()) {
            langs.push(w.to_owned());
        }
        i += 1;
    }
    Some(langs)
}

fn detect_meson(c: &Ctx) -> Draft {
    let file = c.path("meson.build");
    let mut d = Draft::new(Language::C, 0.85);
    d.package_manager = Some(PackageManager::Meson);
    d.because(&MESON_BUILD, &file, "Meson project");
    language(c, &mut d, &file);
    let text = c.text("meson.build").unwrap_or("");
    if text.contains("'cpp'") {
        d.language = Language::Cpp;
    }
    d.build = Some("meson setup build && meson compile -C build".to_owned());
    if text.contains("test(") {
        d.test_tool = Some(TestTool::MesonTest);
        d.test = Some("meson test -C build --print-errorlogs".to_owned());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::declared_languages;

    #[test]
    fn project_languages() {
        let l = |t: &str| declared_languages(t).map(|v| v.join(" "));
        assert_eq!(
            l("cmake_minimum_required(VERSION 3.5)\nproject(zlib C)").as_deref(),
            Some("C")
        );
        assert_eq!(
            l("project(json-c LANGUAGES C VERSION 0.19.99)").as_deref(),
            Some("C")
        );
        assert_eq!(
            l("project(fmt VERSION 1.0 DESCRIPTION \"x\" LANGUAGES CXX C)").as_deref(),
            Some("CXX C")
        );
        assert_eq!(l("project(app)").as_deref(), Some(""));
        assert_eq!(l("add_library(x x.c)"), None);
    }
}
