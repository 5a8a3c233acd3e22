//! Ruby (Bundler, rspec, minitest, Rails, Sinatra, RuboCop) and PHP (Composer, PHPUnit,
//! Pest, Laravel, Symfony, PHPStan).

use std::collections::BTreeSet;

use super::{majors_in, rule, Ctx, Draft, Ecosystem, Rule};
use crate::analyze::stack::{Framework, Language, PackageManager, TestTool};

rule!(
    GEMFILE,
    "ruby/gemfile",
    "Gemfile marks a Ruby project managed by Bundler"
);
rule!(
    RUBY_VERSION,
    "ruby/version",
    ".ruby-version, .tool-versions or the Gemfile's ruby line"
);
rule!(
    RUBY_TESTS,
    "ruby/tests",
    "rspec (spec/ or the gem) or minitest (test/)"
);
rule!(RUBY_FRAMEWORK, "ruby/framework", "rails or sinatra gems");
rule!(RUBOCOP, "ruby/rubocop", "RuboCop configured");
rule!(
    COMPOSER,
    "php/composer",
    "composer.json marks a PHP project"
);
rule!(
    PHP_VERSION,
    "php/version",
    "require.php declares the PHP version"
);
rule!(
    PHP_TESTS,
    "php/tests",
    "pest, phpunit or a composer test script"
);
rule!(
    PHP_FRAMEWORK,
    "php/framework",
    "laravel or symfony packages"
);
rule!(PHP_LINT, "php/lint", "phpstan or php-cs-fixer configured");
pub(crate) static RULES: &[&Rule] = &[
    &GEMFILE,
    &RUBY_VERSION,
    &RUBY_TESTS,
    &RUBY_FRAMEWORK,
    &RUBOCOP,
    &COMPOSER,
    &PHP_VERSION,
    &PHP_TESTS,
    &PHP_FRAMEWORK,
    &PHP_LINT,
];

/// PHP lines maintained today.
const PHP_LINES: &[&str] = &["8.1", "8.2", "8.3", "8.4"];

pub(crate) static RUBY: Ecosystem = Ecosystem {
    name: "ruby",
    markers: &["Gemfile"],
    marker_suffixes: &[],
    reads: &["Gemfile", ".ruby-version", ".tool-versions", "Rakefile"],
    is_root: |c| c.has("Gemfile"),
    detect: detect_ruby,
    members: |_| Vec::new(),
};

pub(crate) static PHP: Ecosystem = Ecosystem {
    name: "php",
    markers: &["composer.json"],
    marker_suffixes: &[],
    reads: &["composer.json"],
    is_root: |c| c.has("composer.json"),
    detect: detect_php,
    members: |_| Vec::new(),
};

fn gems(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("gem "))
        .filter_map(|rest| {
            rest.trim()
                .trim_start_matches(['\'', '"'])
                .split(['\'', '"'])
                .next()
        })
        .map(str::to_owned)
        .collect()
}

fn detect_ruby(c: &Ctx) -> Draft {
    let gemfile = c.path("Gemfile");
    let text = c.text("Gemfile").unwrap_or("");
    let gems = gems(text);
    let mut d = Draft::new(
        Language::Ruby,
        if c.has("Gemfile.lock") { 0.95 } else { 0.8 },
    );
    d.package_manager = Some(PackageManager::Bundler);
    d.because(&GEMFILE, &gemfile, "Ruby with Bundler");
    d.install = Some("bundle install".to_owned());
    let version = c
        .text(".ruby-version")
        .map(|v| {
            (
                c.path(".ruby-version"),
                v.trim().trim_start_matches("ruby-").to_owned(),
            )
        })
        .or_else(|| {
            c.text(".tool-versions").and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("ruby "))
                    .map(|v| (c.path(".tool-versions"), v.trim().to_owned()))
            })
        })
        .or_else(|| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("ruby "))
                .map(|v| (gemfile.clone(), v.trim_matches(['\'', '"', ' ']).to_owned()))
        });
    if let Some((f, v)) = version.filter(|(_, v)| !v.is_empty()) {
        d.because(&RUBY_VERSION, &f, format!("ruby {v}"));
        d.runtime_versions = vec![v];
    }
    for (gem, fw) in [("rails", Framework::Rails), ("sinatra", Framework::Sinatra)] {
        if gems.contains(gem) {
            d.frameworks.insert(fw);
            d.because(&RUBY_FRAMEWORK, &gemfile, format!("{fw}"));
        }
    }
    if gems.contains("rspec") || gems.contains("rspec-rails") || c.has(".rspec") {
        d.test_tool = Some(TestTool::Rspec);
        d.test = Some("bundle exec rspec".to_owned());
        d.because(&RUBY_TESTS, &gemfile, "rspec");
    } else if gems.contains("minitest")
        || gems.contains("rails")
        || c.tree.under(&c.path("test")).next().is_some()
    {
        d.test_tool = Some(TestTool::Minitest);
        d.test = Some(
            if gems.contains("rails") {
                "bin/rails test"
            } else {
                "bundle exec rake test"
            }
            .to_owned(),
        );
        d.because(&RUBY_TESTS, &gemfile, "minitest");
    }
    if gems.contains("rubocop") || c.has(".rubocop.yml") {
        d.add_lint("bundle exec rubocop");
        d.because(
            &RUBOCOP,
            &c.path(if c.has(".rubocop.yml") {
                ".rubocop.yml"
            } else {
                "Gemfile"
            }),
            "rubocop",
        );
    }
    d
}

fn detect_php(c: &Ctx) -> Draft {
    let manifest = c.path("composer.json");
    let json = c.json("composer.json");
    let mut d = Draft::new(Language::Php, if json.is_some() { 0.85 } else { 0.5 });
    d.package_manager = Some(PackageManager::Composer);
    d.because(&COMPOSER, &manifest, "PHP with Composer");
    if c.has("composer.lock") {
        d.boost(0.1);
    }
    d.install = Some("composer install --no-interaction --prefer-dist --no-progress".to_owned());
    let mut pkgs = BTreeSet::new();
    let json = json.unwrap_or_default();
    for key in ["require", "require-dev"] {
        if let Some(o) = json.get(key).and_then(|r| r.as_object()) {
            pkgs.extend(o.keys().cloned());
        }
    }
    if let Some(req) = json
        .get("require")
        .and_then(|r| r.get("php"))
        .and_then(|p| p.as_str())
    {
        let lo = majors_in(req.split("||").next().unwrap_or(req));
        let lower = req
            .trim_start_matches(['^', '~', '>', '=', ' '])
            .split(['|', ' ', ','])
            .next()
            .unwrap_or("");
        let v: Vec<String> = if lower.contains('.') {
            PHP_LINES
                .iter()
                .filter(|l| super::versions_in_range(&format!(">={lower}"), &[l]).len() == 1)
                .map(|l| (*l).to_owned())
                .collect()
        } else {
            lo.iter().map(|m| format!("{m}.4")).collect()
        };
        if !v.is_empty() {
            d.because(
                &PHP_VERSION,
                &manifest,
                format!("php {req} → {}", v.join(", ")),
            );
            d.runtime_versions = v;
        }
    }
    if pkgs.contains("laravel/framework") {
        d.frameworks.insert(Framework::Laravel);
        d.because(&PHP_FRAMEWORK, &manifest, "laravel");
    }
    if pkgs
        .iter()
        .any(|p| p == "symfony/framework-bundle" || p == "symfony/symfony")
    {
        d.frameworks.insert(Framework::Symfony);
        d.because(&PHP_FRAMEWORK, &manifest, "symfony");
    }
    let has_test_script = json.get("scripts").and_then(|s| s.get("test")).is_some();
    if pkgs.contains("pestphp/pest") {
        d.test_tool = Some(TestTool::Pest);
        d.test = Some("vendor/bin/pest".to_owned());
        d.because(&PHP_TESTS, &manifest, "pest");
    } else if pkgs.contains("phpunit/phpunit") || c.has("phpunit.xml") || c.has("phpunit.xml.dist")
    {
        d.test_tool = Some(TestTool::Phpunit);
        d.test = Some("vendor/bin/phpunit".to_owned());
        d.because(&PHP_TESTS, &manifest, "phpunit");
    }
    if has_test_script {
        d.test = Some("composer test".to_owned());
        d.because(&PHP_TESTS, &manifest, "scripts.test");
    }
    if pkgs.contains("phpstan/phpstan") || c.has("phpstan.neon") || c.has("phpstan.neon.dist") {
        d.add_lint("vendor/bin/phpstan analyse --no-progress");
        d.because(&PHP_LINT, &manifest, "phpstan");
    }
    if pkgs.contains("friendsofphp/php-cs-fixer") {
        d.add_lint("vendor/bin/php-cs-fixer fix --dry-run --diff");
        d.because(&PHP_LINT, &manifest, "php-cs-fixer");
    }
    d
}
