//! Repositories that are not application code: documentation sites (MkDocs, Hugo,
//! Jekyll, Sphinx, LaTeX) and infrastructure (Terraform/OpenTofu, Helm, Ansible).

use super::{rule, Ctx, Draft, Ecosystem, Rule};
use crate::analyze::stack::{Framework, Language, PackageManager};

rule!(
    MKDOCS_CONFIG,
    "docs/mkdocs",
    "mkdocs.yml marks an MkDocs site"
);
rule!(
    HUGO_CONFIG,
    "docs/hugo",
    "hugo.toml/yaml (or config.* beside content/) marks a Hugo site"
);
rule!(
    JEKYLL_CONFIG,
    "docs/jekyll",
    "_config.yml with a jekyll Gemfile marks a Jekyll site"
);
rule!(
    SPHINX_CONFIG,
    "docs/sphinx",
    "conf.py beside index.rst marks a Sphinx project"
);
rule!(
    TF_FILES,
    "infra/terraform",
    ".tf files mark a Terraform (or OpenTofu) configuration"
);
rule!(HELM_CHART, "infra/helm", "Chart.yaml marks a Helm chart");
rule!(
    ANSIBLE_FILES,
    "infra/ansible",
    "ansible.cfg or a playbook marks an Ansible project"
);
rule!(
    LATEX_FILES,
    "docs/latex",
    "a .tex file with \\documentclass marks a LaTeX document"
);
pub(crate) static RULES: &[&Rule] = &[
    &MKDOCS_CONFIG,
    &HUGO_CONFIG,
    &JEKYLL_CONFIG,
    &SPHINX_CONFIG,
    &TF_FILES,
    &HELM_CHART,
    &ANSIBLE_FILES,
    &LATEX_FILES,
];

fn none(_: &Ctx) -> Vec<String> {
    Vec::new()
}

fn all(_: &Ctx) -> Vec<String> {
    vec!["**".to_owned()]
}

pub(crate) static MKDOCS: Ecosystem = Ecosystem {
    name: "mkdocs",
    markers: &["mkdocs.yml", "mkdocs.yaml"],
    marker_suffixes: &[],
    reads: &[
        "mkdocs.yml",
        "mkdocs.yaml",
        ".readthedocs.yaml",
        ".readthedocs.yml",
    ],
    is_root: |c| c.has("mkdocs.yml") || c.has("mkdocs.yaml"),
    detect: |c| {
        let f = c.path(if c.has("mkdocs.yml") {
            "mkdocs.yml"
        } else {
            "mkdocs.yaml"
        });
        let mut d = site(Framework::Mkdocs, &MKDOCS_CONFIG, &f);
        d.package_manager = Some(PackageManager::Pip);
        let req = ["requirements.txt", "docs/requirements.txt"]
            .into_iter()
            .find(|r| c.has(r));
        let config = c
            .text("mkdocs.yml")
            .or_else(|| c.text("mkdocs.yaml"))
            .unwrap_or("");
        d.install = Some(match (req, project_docs_install(c)) {
            _ if read_the_docs_install(c).is_some() => read_the_docs_install(c).unwrap_or_default(),
            (Some(r), _) => format!("python -m pip install -r {r}"),
            (None, Some(cmd)) => cmd,
            (None, None) => {
                let mut pkgs = vec!["mkdocs"];
                if config.contains("name: material") || config.contains("name: \"material\"") {
                    pkgs.push("mkdocs-material");
                }
                format!("python -m pip install {}", pkgs.join(" "))
            }
        });
        d.installs = vec!["mkdocs".to_owned(), "mkdocs-material".to_owned()];
        // Warnings fail the build only where the project asks for it.
        let strict = config.lines().any(|l| l.trim() == "strict: true") || read_the_docs_strict(c);
        d.build = Some(
            if strict {
                "mkdocs build --strict"
            } else {
                "mkdocs build"
            }
            .to_owned(),
        );
        d
    },
    members: none,
};

pub(crate) static HUGO: Ecosystem = Ecosystem {
    name: "hugo",
    markers: &["hugo.toml", "hugo.yaml", "hugo.json", "config.toml"],
    marker_suffixes: &[],
    reads: &[],
    is_root: |c| {
        c.has("hugo.toml")
            || c.has("hugo.yaml")
            || c.has("hugo.json")
            || (c.has("config.toml")
                && c.tree.under(&c.path("content")).next().is_some()
                && c.tree
                    .under(&c.path("layouts"))
                    .chain(c.tree.under(&c.path("themes")))
                    .next()
                    .is_some())
    },
    detect: |c| {
        let f = c.path(
            ["hugo.toml", "hugo.yaml", "hugo.json", "config.toml"]
                .into_iter()
                .find(|f| c.has(f))
                .unwrap_or("hugo.toml"),
        );
        let mut d = site(Framework::Hugo, &HUGO_CONFIG, &f);
        d.build = Some("hugo --minify".to_owned());
        d
    },
    members: none,
};

pub(crate) static JEKYLL: Ecosystem = Ecosystem {
    name: "jekyll",
    markers: &["_config.yml"],
    marker_suffixes: &[],
    reads: &["_config.yml"],
    is_root: |c| {
        c.has("_config.yml")
            && (c
                .text("Gemfile")
                .is_some_and(|g| g.contains("jekyll") || g.contains("github-pages"))
                || !c.has("Gemfile"))
    },
    detect: |c| {
        let mut d = site(Framework::Jekyll, &JEKYLL_CONFIG, &c.path("_config.yml"));
        if c.has("Gemfile") {
            d.package_manager = Some(PackageManager::Bundler);
            d.install = Some("bundle install".to_owned());
            d.build = Some("bundle exec jekyll build".to_owned());
        } else {
            d.build = Some("jekyll build".to_owned());
        }
        d
    },
    members: none,
};

pub(crate) static SPHINX: Ecosystem = Ecosystem {
    name: "sphinx",
    markers: &["conf.py"],
    marker_suffixes: &[],
    reads: &["conf.py", ".readthedocs.yaml", ".readthedocs.yml"],
    is_root: |c| c.has("conf.py") && (c.has("index.rst") || c.has("index.md")),
    detect: |c| {
        let mut d = site(Framework::Sphinx, &SPHINX_CONFIG, &c.path("conf.py"));
        d.package_manager = Some(PackageManager::Pip);
        let conf = c.text("conf.py").unwrap_or("");
        d.install = Some(match (c.has("requirements.txt"), project_docs_install(c)) {
            _ if read_the_docs_install(c).is_some() => read_the_docs_install(c).unwrap_or_default(),
            (true, _) => "python -m pip install -r requirements.txt".to_owned(),
            (false, Some(cmd)) => cmd,
            (false, None) => {
                // The docs' declared needs: Sphinx, its theme and extensions (and the
                // project itself when autodoc imports it).
                let mut pkgs: Vec<String> = vec!["sphinx".to_owned()];
                pkgs.extend(sphinx_packages(conf));
                if conf.contains("sphinx.ext.autodoc") && parent_python_project(c).is_some() {
                    pkgs.push(parent_python_project(c).unwrap_or_default());
                }
                format!("python -m pip install {}", pkgs.join(" "))
            }
        });
        d.installs = vec!["sphinx".to_owned()];
        let strict = c.text("Makefile").is_some_and(|m| {
            m.lines()
                .any(|l| l.contains("SPHINXOPTS") && l.contains("-W"))
        }) || read_the_docs_strict(c);
        d.build = Some(
            if strict {
                "sphinx-build -W -b html . _build/html"
            } else {
                "sphinx-build -b html . _build/html"
            }
            .to_owned(),
        );
        d
    },
    members: none,
};

pub(crate) static TERRAFORM: Ecosystem = Ecosystem {
    name: "terraform",
    markers: &[],
    marker_suffixes: &[".tf"],
    reads: &[],
    is_root: |c| c.any_child_with_suffix(".tf").is_some(),
    detect: |c| {
        let f = c
            .any_child_with_suffix(".tf")
            .unwrap_or("main.tf")
            .to_owned();
        let tofu = c.has(".opentofu-version") || c.any_child_with_suffix(".tofu").is_some();
        let mut d = Draft::new(Language::Hcl, 0.85);
        let (fw, bin) = if tofu {
            (Framework::Opentofu, "tofu")
        } else {
            (Framework::Terraform, "terraform")
        };
        d.frameworks.insert(fw);
        d.because(&TF_FILES, &f, format!("{fw}"));
        d.install = Some(format!("{bin} init -backend=false -input=false"));
        d.add_lint(format!("{bin} fmt -check -recursive"));
        d.add_lint(format!("{bin} validate"));
        if let Some(v) = c
            .text(".terraform-version")
            .map(|t| t.trim().to_owned())
            .filter(|v| !v.is_empty())
        {
            d.runtime_versions = vec![v];
        }
        d
    },
    // Modules below a root configuration are validated through it.
    members: all,
};

pub(crate) static HELM: Ecosystem = Ecosystem {
    name: "helm",
    markers: &["Chart.yaml"],
    marker_suffixes: &[],
    reads: &[],
    is_root: |c| c.has("Chart.yaml"),
    detect: |c| {
        let mut d = Draft::new(Language::Yaml, 0.9);
        d.frameworks.insert(Framework::Helm);
        d.because(&HELM_CHART, &c.path("Chart.yaml"), "helm chart");
        d.add_lint("helm lint .");
        d.build = Some("helm template .".to_owned());
        d
    },
    members: all,
};

pub(crate) static ANSIBLE: Ecosystem = Ecosystem {
    name: "ansible",
    markers: &["ansible.cfg", "playbook.yml", "site.yml"],
    marker_suffixes: &[],
    reads: &[],
    is_root: |c| {
        c.has("ansible.cfg")
            || ((c.has("playbook.yml") || c.has("site.yml"))
                && c.tree.under(&c.path("roles")).next().is_some())
    },
    detect: |c| {
        let mut d = Draft::new(Language::Yaml, 0.8);
        d.frameworks.insert(Framework::Ansible);
        let f = c.path(
            ["ansible.cfg", "playbook.yml", "site.yml"]
                .into_iter()
                .find(|f| c.has(f))
                .unwrap_or("ansible.cfg"),
        );
        d.because(&ANSIBLE_FILES, &f, "ansible");
        d.package_manager = Some(PackageManager::Pip);
        d.install = Some("python -m pip install ansible-core ansible-lint".to_owned());
        d.add_lint("ansible-lint");
        d
    },
    members: all,
};

pub(crate) static LATEX: Ecosystem = Ecosystem {
    name: "latex",
    markers: &[],
    marker_suffixes: &[".tex"],
    reads: &[],
    is_root: |c| c.any_child_with_suffix(".tex").is_some() && !c.has("conf.py"),
    detect: |c| {
        let main = c
            .tree
            .children(c.dir)
            .find(|p| p.ends_with("main.tex"))
            .or_else(|| c.any_child_with_suffix(".tex"))
            .unwrap_or("main.tex")
            .to_owned();
        let mut d = Draft::new(Language::Tex, 0.75);
        d.frameworks.insert(Framework::Latex);
        d.because(&LATEX_FILES, &main, "LaTeX document");
        let name = main.rsplit('/').next().unwrap_or("main.tex");
        d.build = Some(format!("latexmk -pdf -interaction=nonstopmode {name}"));
        d
    },
    members: all,
};

fn site(fw: Framework, rule: &'static Rule, file: &str) -> Draft {
    let mut d = Draft::new(Language::Markdown, 0.9);
    d.frameworks.insert(fw);
    d.because(rule, file, format!("{fw} site"));
    d
}

/// Read the Docs' `fail_on_warning: true` (at the repository root).
fn read_the_docs_strict(c: &Ctx) -> bool {
    let root = Ctx::new(c.tree, "", c.warnings);
    [".readthedocs.yaml", ".readthedocs.yml"]
        .iter()
        .filter_map(|f| root.text(f))
        .any(|t| t.lines().any(|l| l.trim() == "fail_on_warning: true"))
}

/// What Read the Docs installs to build these docs (`python.install` of the root
/// `.readthedocs.yaml`: requirements files, and the project itself with `method: pip`),
/// as one pip command run from the docs directory. The docs host's own recipe is the
/// one the authors keep working; only files present in the repository count.
fn read_the_docs_install(c: &Ctx) -> Option<String> {
    let root = Ctx::new(c.tree, "", c.warnings);
    let doc = root
        .yaml(".readthedocs.yaml")
        .or_else(|| root.yaml(".readthedocs.yml"))?;
    // A repository path as seen from the docs directory.
    let from_docs = |path: &str| -> Option<String> {
        let path = path.trim().trim_start_matches("./").trim_end_matches('/');
        if path.split('/').any(|seg| seg == "..") {
            return None;
        }
        if c.dir.is_empty() {
            return Some(if path.is_empty() {
                ".".to_owned()
            } else {
                path.to_owned()
            });
        }
        if let Some(rest) = path.strip_prefix(&format!("{}/", c.dir)) {
            return Some(rest.to_owned());
        }
        if path == c.dir {
            return Some(".".to_owned());
        }
        let up = "../".repeat(c.dir.split('/').count());
        Some(if path.is_empty() || path == "." {
            up.trim_end_matches('/').to_owned()
        } else {
            format!("{up}{path}")
        })
    };
    let mut parts: Vec<String> = Vec::new();
    for entry in doc["python"]["install"].as_vec().into_iter().flatten() {
        if let Some(req) = entry["requirements"].as_str() {
            if root.has(req.trim().trim_start_matches("./")) {
                if let Some(p) = from_docs(req) {
                    parts.push(format!("-r {}", crate::generate::render::shell_quote(&p)));
                }
            }
        } else if entry["method"].as_str() == Some("pip") {
            let path = entry["path"].as_str().unwrap_or(".");
            let Some(p) = from_docs(path) else { continue };
            let extras: Vec<&str> = entry["extra_requirements"]
                .as_vec()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str())
                .filter(|e| {
                    !e.is_empty()
                        && e.chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
                })
                .collect();
            parts.push(if extras.is_empty() {
                format!("-e {}", crate::generate::render::shell_quote(&p))
            } else {
                format!(
                    "-e {}",
                    crate::generate::render::shell_quote(&format!("{p}[{}]", extras.join(",")))
                )
            });
        }
    }
    (!parts.is_empty()).then(|| format!("python -m pip install {}", parts.join(" ")))
}

/// `..` (or `.`) when a Python project (pyproject.toml or setup.py) sits at or above
/// the docs directory: the path to install it from, relative to the docs.
fn parent_python_project(c: &Ctx) -> Option<String> {
    let root = Ctx::new(c.tree, "", c.warnings);
    if c.has("pyproject.toml") || c.has("setup.py") {
        return Some(".".to_owned());
    }
    if !c.dir.is_empty()
        && !c.dir.contains('/')
        && (root.has("pyproject.toml") || root.has("setup.py"))
    {
        return Some("..".to_owned());
    }
    None
}

/// Installs the docs' dependencies the Python project declares: a `docs` extra (with
/// the project) or a `docs` dependency group.
fn project_docs_install(c: &Ctx) -> Option<String> {
    let dir = parent_python_project(c)?;
    let ctx = if dir == "." {
        Ctx::new(c.tree, c.dir, c.warnings)
    } else {
        Ctx::new(c.tree, "", c.warnings)
    };
    let py = ctx.toml("pyproject.toml")?;
    const DOCS: &[&str] = &["docs", "doc", "documentation"];
    if let Some(extra) = py
        .get("project")
        .and_then(|p| p.get("optional-dependencies"))
        .and_then(|e| e.as_table())
        .and_then(|e| DOCS.iter().find(|d| e.contains_key(**d)))
    {
        return Some(format!("python -m pip install -e \"{dir}[{extra}]\""));
    }
    let group = py
        .get("dependency-groups")
        .and_then(|g| g.as_table())
        .and_then(|g| DOCS.iter().find_map(|d| g.get(*d)))
        .and_then(|g| g.as_array())?;
    let specs: Vec<String> = group
        .iter()
        .filter_map(|v| v.as_str())
        .map(crate::generate::render::shell_quote)
        .collect();
    (!specs.is_empty()).then(|| format!("python -m pip install -e {dir} {}", specs.join(" ")))
}

/// PyPI packages of a Sphinx configuration's theme and extensions (Sphinx's own
/// `sphinx.ext.*` and the built-in themes need none).
fn sphinx_packages(conf: &str) -> Vec<String> {
    const KNOWN: &[(&str, &str)] = &[
        ("furo", "furo"),
        ("sphinx_rtd_theme", "sphinx-rtd-theme"),
        ("pydata_sphinx_theme", "pydata-sphinx-theme"),
        ("sphinx_book_theme", "sphinx-book-theme"),
        ("myst_parser", "myst-parser"),
        ("myst_nb", "myst-nb"),
        ("sphinx_copybutton", "sphinx-copybutton"),
        ("sphinx_design", "sphinx-design"),
        ("sphinx_autodoc_typehints", "sphinx-autodoc-typehints"),
        ("sphinx_click", "sphinx-click"),
        ("nbsphinx", "nbsphinx"),
        ("sphinx_tabs", "sphinx-tabs"),
        ("sphinxcontrib.mermaid", "sphinxcontrib-mermaid"),
        ("sphinx_autobuild", "sphinx-autobuild"),
        ("autoapi.extension", "sphinx-autoapi"),
    ];
    let mut out: Vec<String> = Vec::new();
    for (module, pkg) in KNOWN {
        let quoted = [format!("\"{module}\""), format!("'{module}'")];
        if quoted.iter().any(|q| conf.contains(q.as_str())) && !out.iter().any(|o| o == pkg) {
            out.push((*pkg).to_owned());
        }
    }
    out
}
