//! The classifier's rules, as data: each has an id (stored with every diagnosis), a
//! class, a description, the line patterns that fire it, how to name its subject, and
//! sample lines it must recognise (checked by a unit test). [`RULES`] is ordered, and the
//! first rule that fires wins; the order is explained where the table starts.
//!
//! A pattern is a lowercase literal that must occur in the line (cheap: it is checked
//! first, on the lowercased line) and optionally a regular expression the line must
//! match (`regex-lite`: linear time on hostile input); a named group `subject` (or
//! `host` and `port`) names the subject.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use regex_lite::Regex;

use super::{FailureClass, MAX_EXCERPT_CHARS, MAX_EXCERPT_LINES};

/// One line pattern.
#[derive(Debug)]
pub struct Pattern {
    /// Lowercase text the lowercased line must contain.
    pub needle: &'static str,
    /// A regular expression the (original) line must also match, if any.
    pub regex: Option<&'static str>,
}

/// How a rule names what the failure is about.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    /// Nothing to name.
    None,
    /// The `subject` group (or `host`:`port`) of the pattern that matched.
    Capture,
    /// [`Subject::Capture`] after a fixed prefix (`rustc ` + `1.74.0`).
    CapturePrefixed(&'static str),
    /// A regex over the matching line and the five after and before it (messages that
    /// span lines), its `subject` after `prefix`; else the pattern's own capture.
    Near(&'static str, &'static str),
    /// Always this name (the tool a summary belongs to, the lockfile).
    Fixed(&'static str),
    /// The lint tool the failing step runs, else this one.
    LintTool(&'static str),
    /// The failing step's command (what ran out of time or memory).
    Step,
    /// The program the failing step runs (its first word).
    StepProgram,
}

/// One rule.
#[derive(Debug)]
pub struct Rule {
    /// Stable id, stored with each diagnosis: never rename one.
    pub id: &'static str,
    /// The class it concludes.
    pub class: FailureClass,
    /// What it recognises, for people.
    pub description: &'static str,
    /// Any of these firing on a line fires the rule.
    pub patterns: &'static [Pattern],
    /// How the subject is named.
    pub subject: Subject,
    /// Tried only when no strong rule fires: the signal is real but often incidental
    /// (a warning, an exit status).
    pub weak: bool,
    /// Fires only on the last step's `$ command` line (rules about what the failing step
    /// runs).
    pub last_step_only: bool,
    /// Lines it must recognise (unit-tested), with the subject they name (`""`: none).
    pub examples: &'static [(&'static str, &'static str)],
}

macro_rules! p {
    ($needle:literal) => {
        Pattern {
            needle: $needle,
            regex: None,
        }
    };
    ($needle:literal, $regex:literal) => {
        Pattern {
            needle: $needle,
            regex: Some($regex),
        }
    };
}

macro_rules! rule {
    (
        $id:literal, $class:ident, $desc:literal, $subject:expr,
        [$($pat:expr),+ $(,)?],
        [$(($ex:literal, $exs:literal)),* $(,)?]
        $(, $flag:ident)*
    ) => {
        Rule {
            id: $id,
            class: FailureClass::$class,
            description: $desc,
            patterns: &[$($pat),+],
            subject: $subject,
            weak: rule!(@flag weak $($flag)*),
            last_step_only: rule!(@flag last_step $($flag)*),
            examples: &[$(($ex, $exs)),*],
        }
    };
    (@flag $want:ident) => { false };
    (@flag weak weak $($rest:ident)*) => { true };
    (@flag last_step last_step $($rest:ident)*) => { true };
    (@flag $want:ident $other:ident $($rest:ident)*) => { rule!(@flag $want $($rest)*) };
}

/// Lint and format tools, as a failing step names them (`cargo fmt` is rustfmt).
const LINT_TOOLS: &[(&str, &str)] = &[
    ("pre-commit", "pre-commit"),
    ("ruff", "ruff"),
    ("flake8", "flake8"),
    ("mypy", "mypy"),
    ("black", "black"),
    ("isort", "isort"),
    ("pylint", "pylint"),
    ("clippy", "clippy"),
    ("cargo fmt", "rustfmt"),
    ("rustfmt", "rustfmt"),
    ("eslint", "eslint"),
    ("prettier", "prettier"),
    ("golangci-lint", "golangci-lint"),
    ("gofmt", "gofmt"),
    ("go vet", "go vet"),
    ("shellcheck", "shellcheck"),
    ("hadolint", "hadolint"),
    ("rubocop", "rubocop"),
    ("tsc", "tsc"),
    ("stylelint", "stylelint"),
    ("biome", "biome"),
    ("markdownlint", "markdownlint"),
    ("yamllint", "yamllint"),
    ("actionlint", "actionlint"),
];

/// The rules, in order; the first that fires wins. Why this order:
///
/// 1. **timeout-oom**: a job killed for time or memory leaves every other symptom
///    behind it (tests cut short, a half-written line, a "connection reset"), so the
///    kill is the story.
/// 2. **service-unreachable** (preceded by one transient rule, `registry-fetch-failed`:
///    a package manager's own fetch that failed, even from a loopback mirror): a
///    database or cache that is not there makes tests fail
///    and clients print network errors; those must not read as test failures or as a
///    flaky network. Only local or service-container endpoints count here (a registry
///    that refuses connections is transient, below).
/// 3. **toolchain-unsupported**: a resolver that cannot satisfy `requires-python`, or a
///    crate that needs a newer rustc, stops the install, and everything after it (a
///    missing `pytest`, an unbuilt package) is a consequence.
/// 4. **transient**: a registry 5xx, a lost runner or a rate limit explains whatever
///    follows (a tool whose download failed is then "not found").
/// 5. **lockfile-mismatch**: a frozen install that refused the lockfile installed
///    nothing, so the test runner is then "not found": the lockfile is the cause.
/// 6. **missing-executable** before any lint or test rule: `ruff: command not found`
///    names ruff, and a lint rule must not read that as ruff's findings; "command not
///    found" beats a generic exit status.
/// 7. **lint-findings** before **tests-failing**: lint tools print `error:` lines and
///    compile-like diagnostics that test rules could take for failures; each lint rule
///    needs a tool-specific shape (a summary line, a lint name, the tool in the step).
/// 8. **tests-failing**: the project's own tests; last among strong rules because every
///    class above can also make tests fail.
///
/// Weak rules (a warning, exit status 127, the failing step naming a lint tool or test
/// runner) are tried only after every strong rule, in the same class order.
pub static RULES: &[Rule] = &[
    // ---- 1. timeout-oom ------------------------------------------------------------
    rule!("gha-job-timeout", TimeoutOom,
        "GitHub Actions cancelled the job at its timeout",
        Subject::Step,
        [p!("has exceeded the maximum execution time")],
        [("Error: The job running on runner GitHub Actions 2 has exceeded the maximum execution time of 360 minutes.", "")]),
    rule!("gha-step-timeout", TimeoutOom,
        "GitHub Actions cancelled a step at its timeout-minutes",
        Subject::Capture,
        [p!("has timed out after", r"The action '(?P<subject>[^']+)' has timed out after")],
        [("Error: The action 'Run tests' has timed out after 10 minutes.", "Run tests")]),
    rule!("gitlab-job-timeout", TimeoutOom,
        "GitLab stopped the job at its timeout",
        Subject::Step,
        [p!("execution took longer than")],
        [("ERROR: Job failed: execution took longer than 1h0m0s seconds", "")]),
    rule!("bitbucket-time-limit", TimeoutOom,
        "Bitbucket stopped the step at its max-time",
        Subject::Step,
        [p!("exceeded build time limit")],
        [("Exceeded build time limit of 120 minutes", "")]),
    rule!("bitbucket-memory-limit", TimeoutOom,
        "A Bitbucket step container ran out of memory",
        Subject::Step,
        [p!("exceeded memory limit", r"(?i)(container|service) '[^']+' exceeded memory limit")],
        [("Container 'Build' exceeded memory limit.", "")]),
    rule!("node-heap-oom", TimeoutOom,
        "Node.js ran out of heap",
        Subject::Step,
        [p!("javascript heap out of memory"), p!("reached heap limit allocation failed")],
        [("FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory", "")]),
    rule!("jvm-oom", TimeoutOom,
        "The JVM ran out of memory",
        Subject::Step,
        [p!("java.lang.outofmemoryerror")],
        [("java.lang.OutOfMemoryError: Java heap space", "")]),
    rule!("alloc-failed", TimeoutOom,
        "An allocation failed (Rust's abort on OOM, fork without memory)",
        Subject::Step,
        [p!("memory allocation of", r"memory allocation of \d+ bytes failed"),
         p!("cannot allocate memory")],
        [("memory allocation of 4294967296 bytes failed", ""),
         ("/bin/sh: fork: Cannot allocate memory", "")]),
    rule!("killed-137", TimeoutOom,
        "The process was killed (exit status 137, SIGKILL: the OOM killer)",
        Subject::Step,
        [p!("exit code 137"), p!("exit status 137"), p!("(signal: 9, sigkill"),
         p!("terminated with signal 9"), p!("returned non-zero exit status 137"),
         p!("killed", r"^Killed$|^Killed\s|line \d+: +\d+ Killed\b")],
        [("Error: Process completed with exit code 137.", ""),
         ("ERROR: Job failed: exit code 137", ""),
         ("error: could not compile `app` (lib); process didn't exit successfully: `rustc` (signal: 9, SIGKILL: kill)", ""),
         ("/tmp/script.sh: line 4:   312 Killed                  cargo build --release", "")]),

    // A package manager's own fetch that failed is the registry's (or the network's)
    // fault even when the address is local (a mirror on loopback): it goes before the
    // service rules, which would read `ECONNREFUSED 127.0.0.1:…` as a missing service.
    rule!("registry-fetch-failed", Transient,
        "A package manager could not reach its registry",
        Subject::Fixed("registry"),
        [p!("fetcherror: request to"),
         p!("npm error network request"),
         p!("npm err! network request")],
        [("npm error FetchError: request to http://127.0.0.1:9/ms failed, reason: connect ECONNREFUSED 127.0.0.1:9", "registry"),
         ("npm ERR! network request to https://registry.npmjs.org/ms failed, reason: getaddrinfo EAI_AGAIN registry.npmjs.org", "registry")]),

    // ---- 2. service-unreachable --------------------------------------------------------
    rule!("libpq-connection-failed", ServiceUnreachable,
        "PostgreSQL refused or did not answer (libpq, psycopg)",
        Subject::Capture,
        [p!("connection to server at", r#"connection to server at "(?P<host>[^"]+)"[^,]*, port (?P<port>\d+) failed"#),
         p!("connection to server on socket", r#"connection to server on socket "(?P<subject>[^"]+)""#)],
        [(r#"psycopg.OperationalError: connection failed: connection to server at "127.0.0.1", port 5432 failed: Connection refused"#, "127.0.0.1:5432")]),
    rule!("libpq-could-not-connect", ServiceUnreachable,
        "PostgreSQL refused a connection (older libpq wording)",
        Subject::Near(r#"host "(?P<host>[^"]+)".*port (?P<port>\d+)"#, ""),
        [p!("could not connect to server")],
        [("psql: error: could not connect to server: Connection refused", "")]),
    rule!("unknown-service-host", ServiceUnreachable,
        "A service container's host name does not resolve (the service is not there)",
        Subject::Capture,
        [p!("could not translate host name", r#"could not translate host name "(?P<subject>[^"]+)""#),
         p!("enotfound", r"ENOTFOUND (?P<subject>(?:postgres|postgresql|db|database|redis|mysql|mariadb|mongo|mongodb|rabbitmq|elasticsearch|memcached|kafka|zookeeper|minio|localstack|selenium)[a-z0-9_-]*)(?:\s|$|:)"),
         p!("connecting to", r"Error -?\d+ connecting to (?P<host>[a-z][a-z0-9_-]*):(?P<port>\d+)\. (?:Name or service not known|Temporary failure)")],
        [(r#"sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) could not translate host name "postgres" to address: Name or service not known"#, "postgres"),
         ("Error: getaddrinfo ENOTFOUND redis", "redis")]),
    rule!("redis-connection", ServiceUnreachable,
        "Redis refused a connection",
        Subject::Capture,
        [p!("connecting to", r"Error \d+ connecting to (?P<host>[\w.-]+):(?P<port>\d+)\. Connection refused"),
         p!("redis connection to", r"Redis connection to (?P<host>[\w.-]+):(?P<port>\d+) failed")],
        [("redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379. Connection refused.", "localhost:6379")]),
    rule!("mysql-connection", ServiceUnreachable,
        "MySQL refused a connection",
        Subject::Capture,
        [p!("can't connect to mysql server on", r"Can't connect to MySQL server on '(?P<subject>[^']+)'")],
        [(r#"django.db.utils.OperationalError: (2002, "Can't connect to MySQL server on '127.0.0.1' (115)")"#, "127.0.0.1")]),
    rule!("jdbc-connection-refused", ServiceUnreachable,
        "A JDBC driver's connection was refused",
        Subject::Capture,
        [p!("refused", r"Connection to (?P<subject>[\w.-]+:\d+) refused")],
        [("org.postgresql.util.PSQLException: Connection to localhost:5432 refused. Check that the hostname and port are correct", "localhost:5432")]),
    rule!("database-unreachable", ServiceUnreachable,
        "A database client could not connect",
        Subject::Fixed("database"),
        [p!("error communicating with database")],
        [("Error: error communicating with database: Connection refused (os error 111)", "database")]),
    rule!("docker-daemon", ServiceUnreachable,
        "No Docker daemon to talk to",
        Subject::Fixed("docker"),
        [p!("cannot connect to the docker daemon")],
        [("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?", "docker")]),
    rule!("local-connection-refused", ServiceUnreachable,
        "A local or service-container endpoint refused a connection (ECONNREFUSED, os error 111)",
        Subject::Capture,
        [p!("econnrefused", r"ECONNREFUSED (?P<host>127\.0\.0\.1|localhost|::1|0\.0\.0\.0|[a-z][a-z0-9_-]*):(?P<port>\d+)"),
         p!("connection refused", r"dial tcp (?P<host>127\.0\.0\.1|localhost|\[::1\]|0\.0\.0\.0|[a-z][a-z0-9_-]*):(?P<port>\d+): connect: connection refused"),
         // A host:port standing alone (not `store_test.go:18`, a file and line).
         p!("connection refused", r"(?:^|[\s(\['=@/])(?P<host>127\.0\.0\.1|localhost|\[::1\]|0\.0\.0\.0|[a-z][a-z0-9_-]*):(?P<port>\d{2,5})\b"),
         p!("connection refused", r"connect to (?P<host>localhost|127\.0\.0\.1) port (?P<port>\d+)"),
         p!("i/o timeout", r"dial tcp (?P<host>127\.0\.0\.1|localhost|[a-z][a-z0-9_-]*):(?P<port>\d+): i/o timeout")],
        [("Error: connect ECONNREFUSED 127.0.0.1:5432", "127.0.0.1:5432"),
         ("dial tcp 127.0.0.1:6379: connect: connection refused", "127.0.0.1:6379"),
         ("    store_test.go:18: dial tcp 127.0.0.1:5432: connect: connection refused", "127.0.0.1:5432"),
         ("pymongo.errors.ServerSelectionTimeoutError: localhost:27017: [Errno 111] Connection refused", "localhost:27017")]),

    // ---- 3. toolchain-unsupported ------------------------------------------------------
    rule!("rustc-too-old", ToolchainUnsupported,
        "A dependency needs a newer rustc than the job's",
        Subject::CapturePrefixed("rustc "),
        [p!("requires rustc", r"requires rustc [\d.]+ or newer, while the currently active rustc version is (?P<subject>[\d.]+)"),
         p!("requires rustc", r"cannot be built because it requires rustc (?P<subject>[\d.]+) or newer")],
        [("error: package `clap_lex v0.7.4` cannot be built because it requires rustc 1.74 or newer, while the currently active rustc version is 1.70.0", "rustc 1.70.0"),
         ("error: package `foo v1.0.0` cannot be built because it requires rustc 1.80 or newer", "rustc 1.80")]),
    rule!("cargo-too-old", ToolchainUnsupported,
        "The manifest needs a newer Cargo (an edition or a stabilised feature)",
        Subject::Capture,
        [p!("is required", r"feature `(?P<subject>edition\d{4})` is required"),
         p!("error[e0658]")],
        [("  feature `edition2024` is required", "edition2024"),
         ("error[E0658]: use of unstable library feature `is_none_or`", "")]),
    rule!("python-version-rejected", ToolchainUnsupported,
        "The interpreter is outside the project's or a dependency's requires-python",
        Subject::CapturePrefixed("Python "),
        [p!("requires a different python", r"requires a different Python: (?P<subject>[\d.]+) not in"),
         p!("incompatible with the project's python requirement", r"resolved to Python (?P<subject>[\d.]+)"),
         p!("is not supported by the project", r"activated Python version (?P<subject>[\d.]+)"),
         p!("requested python version", r"requested Python version \((?P<subject>[^)]+)\) does not satisfy"),
         p!("supported python range", r"supported Python range \((?P<subject>[^)]+)\) is not compatible"),
         p!("require a different python version"),
         p!("no module named 'tomllib'")],
        [("ERROR: Package 'svc' requires a different Python: 3.8.18 not in '>=3.9'", "Python 3.8.18"),
         ("error: The Python request from `.python-version` resolved to Python 3.9.20, which is incompatible with the project's Python requirement: `>=3.10`", "Python 3.9.20"),
         ("  ╰─▶ Because the requested Python version (>=3.9) does not satisfy Python>=3.10 and svc==0.1.0 depends on Python>=3.10, we can conclude that svc==0.1.0 cannot be used.", "Python >=3.9")]),
    rule!("python-interpreter-missing", ToolchainUnsupported,
        "tox or nox could not find the interpreter an environment asks for",
        Subject::Capture,
        [p!("interpreternotfound", r"InterpreterNotFound: (?P<subject>\S+)"),
         p!("could not find python interpreter", r"spec\(s\): (?P<subject>\S+)")],
        [("ERROR:  py313: InterpreterNotFound: python3.13", "python3.13"),
         ("py313: skipped because could not find python interpreter with spec(s): py313", "py313")]),
    rule!("node-engine-rejected", ToolchainUnsupported,
        "A package or the package manager refuses this Node.js version",
        Subject::Near(r#"(?:"node":"|Got: |current version of Node\.js is |Got ")(?P<subject>v?\d+\.\d+\.\d+)"#, "node "),
        [p!("code ebadengine"),
         p!("err_pnpm_unsupported_engine"),
         p!("is incompatible with this module"),
         p!("requires at least node.js"),
         p!("requires node.js", r"(?i)requires Node\.js (?:>=|≥|v)\s*\d+")],
        [("npm ERR! code EBADENGINE", ""),
         (" ERR_PNPM_UNSUPPORTED_ENGINE  Unsupported environment (bad pnpm and/or Node.js version)", ""),
         (r#"error vite@6.0.0: The engine "node" is incompatible with this module. Expected version "^18.0.0 || >=20.0.0". Got "16.20.2""#, "node 16.20.2")]),
    rule!("go-too-old", ToolchainUnsupported,
        "go.mod needs a newer Go than the job's",
        Subject::CapturePrefixed("go "),
        [p!("requires go >=", r"\(running go (?P<subject>[\d.]+)"),
         p!("invalid go version")],
        [("go: go.mod requires go >= 1.23.0 (running go 1.22.5; GOTOOLCHAIN=local)", "go 1.22.5")]),
    rule!("toolchain-not-available", ToolchainUnsupported,
        "The runtime version or image the job asks for does not exist",
        Subject::Capture,
        [p!("manifest unknown", r"manifest for (?P<subject>\S+) not found"),
         p!("was not found for", r"The version '(?P<subject>[^']+)' with architecture '[^']+' was not found"),
         p!("unable to find node version", r"Unable to find Node version '(?P<subject>[^']+)'")],
        [(r#"ERROR: Job failed: failed to pull image "python:3.15" with specified policies [always]: Error response from daemon: manifest for python:3.15 not found: manifest unknown: manifest unknown (manager.go:250:0s)"#, "python:3.15"),
         ("Error: The version '3.15' with architecture 'x64' was not found for Ubuntu 24.04.", "3.15")]),

    // ---- 4. transient --------------------------------------------------------------------
    rule!("runner-lost", Transient,
        "The runner went away (shutdown, lost communication, system failure)",
        Subject::None,
        [p!("the runner has received a shutdown signal"),
         p!("lost communication with the server"),
         p!("job failed (system failure)"),
         p!("runner system failure")],
        [("Error: The runner has received a shutdown signal. This can happen when the runner service is stopped, or a manually started runner is canceled.", ""),
         ("Error: The hosted runner: GitHub Actions 12 lost communication with the server.", "")]),
    rule!("rate-limited", Transient,
        "An API or registry rate limit",
        Subject::None,
        [p!("api rate limit exceeded"), p!("secondary rate limit"), p!("429 too many requests"),
         p!("toomanyrequests"), p!("rate limit exceeded"), p!("you have reached your pull rate limit")],
        [("Error: API rate limit exceeded for installation ID 42.", ""),
         ("toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading", "")]),
    rule!("registry-5xx", Transient,
        "A package registry or download host answered 5xx",
        Subject::None,
        [p!("50", r"(?i)\b50[0234]\b.*(registry|pypi|pythonhosted|crates\.io|npmjs|yarnpkg|proxy\.golang|maven|gradle|rubygems|packagist|github\.com|githubusercontent|ghcr\.io|docker\.io|download|fetch|GET https?://)"),
         p!("50", r"(?i)(registry|pypi|pythonhosted|crates\.io|npmjs|yarnpkg|proxy\.golang|maven|gradle|rubygems|packagist|github\.com|githubusercontent|ghcr\.io|docker\.io|download|fetch).*\b50[0234]\b")],
        [("npm ERR! 503 Service Unavailable - GET https://registry.npmjs.org/vitest", ""),
         ("error: failed to get `serde` as a dependency of package `app v0.1.0`: failed to download from `https://index.crates.io/se/rd/serde` (status 502)", "")]),
    rule!("network-error", Transient,
        "A network failure on the way to a registry or host",
        Subject::None,
        [p!("etimedout"), p!("econnreset"), p!("eai_again"), p!("could not resolve host"),
         p!("temporary failure in name resolution"), p!("connection reset by peer"),
         p!("read timed out"), p!("readtimeouterror"), p!("tls handshake timeout"),
         p!("i/o timeout"), p!("network is unreachable"), p!("spurious network error"),
         p!("failed to download"), p!("unable to access 'https://"), p!("early eof"),
         p!("the remote end hung up unexpectedly"), p!("ssl_error_syscall"),
         p!("connection timed out"), p!("enotfound"), p!("socket hang up")],
        [("npm ERR! code ECONNRESET", ""),
         ("curl: (6) Could not resolve host: astral.sh", ""),
         ("pip._vendor.urllib3.exceptions.ReadTimeoutError: HTTPSConnectionPool(host='files.pythonhosted.org', port=443): Read timed out.", "")]),

    // ---- 5. lockfile-mismatch ------------------------------------------------------------
    rule!("npm-ci-out-of-sync", LockfileMismatch,
        "npm ci refused a package-lock.json out of sync with package.json (or none)",
        Subject::Fixed("package-lock.json"),
        [p!("can only install packages when your package.json and package-lock.json"),
         p!("command can only install with an existing package-lock.json")],
        [("npm ERR! `npm ci` can only install packages when your package.json and package-lock.json or npm-shrinkwrap.json are in sync. Please update your lock file with `npm install` before continuing.", "package-lock.json")]),
    rule!("pnpm-frozen-lockfile", LockfileMismatch,
        "pnpm --frozen-lockfile refused an outdated or missing pnpm-lock.yaml",
        Subject::Fixed("pnpm-lock.yaml"),
        [p!("err_pnpm_outdated_lockfile"), p!("err_pnpm_no_lockfile"),
         p!("err_pnpm_lockfile_config_mismatch")],
        [(" ERR_PNPM_OUTDATED_LOCKFILE  Cannot install with \"frozen-lockfile\" because pnpm-lock.yaml is not up to date with <ROOT>/package.json", "pnpm-lock.yaml")]),
    rule!("yarn-frozen-lockfile", LockfileMismatch,
        "yarn refused to change yarn.lock (--frozen-lockfile, --immutable)",
        Subject::Fixed("yarn.lock"),
        [p!("your lockfile needs to be updated, but yarn was run with"),
         p!("the lockfile would have been modified by this install, which is explicitly forbidden"),
         p!("the lockfile would have been created by this install, which is explicitly forbidden")],
        [("error Your lockfile needs to be updated, but yarn was run with `--frozen-lockfile`.", "yarn.lock"),
         ("➤ YN0028: │ The lockfile would have been modified by this install, which is explicitly forbidden.", "yarn.lock")]),
    rule!("uv-locked", LockfileMismatch,
        "uv --locked refused an outdated or missing uv.lock",
        Subject::Fixed("uv.lock"),
        [p!("needs to be updated, but `--locked` was provided"),
         p!("unable to find lockfile at `uv.lock`, but `--locked` was provided")],
        [("error: The lockfile at `uv.lock` needs to be updated, but `--locked` was provided. To update the lockfile, run `uv lock`.", "uv.lock")]),
    rule!("cargo-locked", LockfileMismatch,
        "cargo --locked refused to update Cargo.lock",
        Subject::Fixed("Cargo.lock"),
        [p!("needs to be updated but --locked was passed"),
         p!("because --locked was passed")],
        [("error: the lock file /home/runner/work/app/app/Cargo.lock needs to be updated but --locked was passed to prevent this", "Cargo.lock")]),
    rule!("poetry-lock-stale", LockfileMismatch,
        "poetry.lock does not match pyproject.toml",
        Subject::Fixed("poetry.lock"),
        [p!("poetry.lock is not consistent with pyproject.toml"),
         p!("pyproject.toml changed significantly since poetry.lock was last generated")],
        [("pyproject.toml changed significantly since poetry.lock was last generated. Run `poetry lock [--no-update]` to fix the lock file.", "poetry.lock")]),
    rule!("pipenv-lock-stale", LockfileMismatch,
        "Pipfile.lock is out of date",
        Subject::Fixed("Pipfile.lock"),
        [p!("pipfile.lock", r"Pipfile\.lock \([0-9a-f]+\) is out of date")],
        [("Your Pipfile.lock (3b6d1f) is out of date. Expected: (9c2e4a).", "Pipfile.lock")]),
    rule!("bundler-frozen", LockfileMismatch,
        "Bundler in deployment/frozen mode refused a changed Gemfile",
        Subject::Fixed("Gemfile.lock"),
        [p!("you are trying to install in deployment mode after changing"),
         p!("and add the updated gemfile.lock to version control")],
        [("You are trying to install in deployment mode after changing your Gemfile. Run `bundle install` elsewhere and add the updated Gemfile.lock to version control.", "Gemfile.lock")]),
    rule!("go-sum-stale", LockfileMismatch,
        "go.mod or go.sum lack entries the build needs",
        Subject::Fixed("go.sum"),
        [p!("missing go.sum entry"), p!("updates to go.mod needed")],
        [("main.go:4:2: missing go.sum entry for module providing package github.com/gin-gonic/gin (imported by app); to add:", "go.sum")]),
    rule!("composer-lock-stale", LockfileMismatch,
        "composer.lock does not satisfy composer.json",
        Subject::Fixed("composer.lock"),
        [p!("your lock file does not contain a compatible set of packages")],
        [("Your lock file does not contain a compatible set of packages. Please run composer update.", "composer.lock")]),
    rule!("pip-hash-mismatch", LockfileMismatch,
        "pinned requirement hashes do not match",
        Subject::Fixed("requirements.txt"),
        [p!("do not match the hashes from the requirements file")],
        [("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. If you have updated the package versions, please update the hashes.", "requirements.txt")]),
    rule!("nuget-locked-mode", LockfileMismatch,
        "NuGet locked mode refused packages.lock.json",
        Subject::Fixed("packages.lock.json"),
        [p!("the packages lock file is inconsistent with the project dependencies")],
        [("error NU1004: The packages lock file is inconsistent with the project dependencies so restore can't be run in locked mode.", "packages.lock.json")]),

    // ---- 6. missing-executable -------------------------------------------------------
    rule!("shell-command-not-found", MissingExecutable,
        "The shell found no such command",
        Subject::Capture,
        // zsh's shape first: "zsh: command not found: just" also has bash's shape.
        [p!("command not found: ", r"command not found: (?P<subject>\S+)"),
         p!(": command not found", r"(?:^|: )(?P<subject>[^\s:]+): command not found"),
         p!(": not found", r"^(?:/bin/|/usr/bin/)?(?:ba|da)?sh: (?:\d+: )?(?:line \d+: )?(?P<subject>[^\s:]+): not found")],
        [("/home/runner/work/_temp/1b2c.sh: line 1: ruff: command not found", "ruff"),
         ("bash: line 120: tox: command not found", "tox"),
         ("sh: 1: vitest: not found", "vitest"),
         ("zsh: command not found: just", "just")]),
    rule!("spawn-failed", MissingExecutable,
        "A runner or tool could not start a program that is not installed",
        Subject::Capture,
        [p!("failed to spawn: `", r"Failed to spawn: `(?P<subject>[^`]+)`"),
         p!("executable file not found in $path", r#"exec: "(?P<subject>[^"]+)": executable file not found"#),
         p!("/usr/bin/env: ", r"/usr/bin/env: '?(?P<subject>[^':\s]+)'?: No such file or directory"),
         p!("make", r"^make(?:\[\d+\])?: (?P<subject>[^\s:*\[]+): (?:No such file or directory|Command not found)"),
         p!("is not recognized as an internal or external command", r"'(?P<subject>[^']+)' is not recognized as an internal or external command")],
        [("error: Failed to spawn: `pytest`", "pytest"),
         (r#"exec: "golangci-lint": executable file not found in $PATH"#, "golangci-lint"),
         ("make: just: No such file or directory", "just")]),
    rule!("python-module-missing", MissingExecutable,
        "python -m named a tool that is not installed",
        Subject::Capture,
        [p!(": no module named ", r"^\S*python[\d.]*: No module named (?P<subject>[\w.-]+)$")],
        [("/usr/local/bin/python: No module named pytest", "pytest")]),
    rule!("cargo-subcommand-missing", MissingExecutable,
        "A cargo subcommand or rustup component is not installed",
        Subject::Capture,
        [p!("no such command: `", r"no such (?:sub)?command: `(?P<subject>[^`]+)`"),
         p!("is not installed for the toolchain", r"'(?P<subject>[^']+)' is not installed for the toolchain")],
        [("error: no such command: `nextest`", "nextest"),
         ("error: 'cargo-clippy' is not installed for the toolchain '1.74.0-x86_64-unknown-linux-gnu'.", "cargo-clippy")]),

    // ---- 7. lint-findings --------------------------------------------------------------
    rule!("pre-commit-hook-failed", LintFindings,
        "A pre-commit hook failed",
        Subject::Near(r"^- hook id: (?P<subject>\S+)$", ""),
        [p!("failed", r"^(?P<subject>[^.\s][^.]*?)\.{4,}(?:\([^)]*\))?Failed$")],
        [("ruff.....................................................................Failed", "ruff")]),
    rule!("mypy-errors", LintFindings,
        "mypy found type errors",
        Subject::LintTool("mypy"),
        [p!("found", r"^Found \d+ errors? in \d+ files? \(checked \d+ source files?\)$"),
         p!(": error: ", r"^\S+\.pyi?:\d+: error: .*  \[[a-z-]+\]$")],
        [("Found 2 errors in 1 file (checked 12 source files)", "mypy"),
         ("src/svc/api.py:12: error: Incompatible return value type (got \"str\", expected \"int\")  [return-value]", "mypy")]),
    rule!("ruff-findings", LintFindings,
        "ruff check found problems, or ruff format would reformat",
        Subject::Fixed("ruff"),
        [p!("found", r"^Found \d+ errors?\.$"),
         p!("fixable with the `--fix` option"),
         p!("would reformat: "),
         p!("already formatted", r"would be reformatted")],
        [("Found 3 errors.", "ruff"),
         ("[*] 2 fixable with the `--fix` option.", "ruff"),
         ("Would reformat: src/svc/api.py", "ruff")]),
    rule!("black-would-reformat", LintFindings,
        "black --check would reformat files",
        Subject::Fixed("black"),
        [p!("oh no! 💥"), p!("would reformat ", r"^would reformat "),
         p!("would be left unchanged", r"would be reformatted")],
        [("would reformat /home/runner/work/svc/svc/src/svc/api.py", "black"),
         ("Oh no! 💥 💔 💥", "black")]),
    rule!("isort-unsorted", LintFindings,
        "isort --check found unsorted imports",
        Subject::Fixed("isort"),
        [p!("imports are incorrectly sorted")],
        [("ERROR: /app/src/svc/api.py Imports are incorrectly sorted and/or formatted.", "isort")]),
    rule!("pylint-findings", LintFindings,
        "pylint reported messages",
        Subject::Fixed("pylint"),
        [p!("your code has been rated at"),
         p!(": ", r"^\S+\.py:\d+:\d+: [CRWEF]\d{4}: ")],
        [("Your code has been rated at 7.50/10 (previous run: 7.50/10, +0.00)", "pylint")]),
    rule!("flake8-findings", LintFindings,
        "flake8-style findings (path:line:col: CODE message)",
        Subject::LintTool("flake8"),
        [p!(": ", r"^\S+\.py:\d+:\d+: [A-Z]{1,3}\d{3} ")],
        [("./src/svc/api.py:1:1: F401 'os' imported but unused", "flake8")]),
    rule!("clippy-findings", LintFindings,
        "clippy lints denied (-D warnings)",
        Subject::Fixed("clippy"),
        [p!("`-d clippy::"), p!("#[deny(clippy::"), p!("rust-lang.github.io/rust-clippy")],
        [("  = note: `-D clippy::needless-return` implied by `-D warnings`", "clippy"),
         ("  = help: for further information visit https://rust-lang.github.io/rust-clippy/master/index.html#needless_return", "clippy")]),
    rule!("rustc-denied-warnings", LintFindings,
        "rustc warnings turned into errors (-D warnings)",
        Subject::LintTool("rustc"),
        [p!("implied by `-d warnings`")],
        [("  = note: `-D unused-variables` implied by `-D warnings`", "rustc")]),
    rule!("rustfmt-diff", LintFindings,
        "cargo fmt --check found unformatted code",
        Subject::Fixed("rustfmt"),
        [p!("diff in ", r"^Diff in \S+(?: at line \d+|:\d+):$")],
        [("Diff in /home/runner/work/app/app/src/main.rs at line 1:", "rustfmt"),
         ("Diff in /builds/acme/app/src/lib.rs:12:", "rustfmt")]),
    rule!("eslint-problems", LintFindings,
        "eslint reported problems",
        Subject::Fixed("eslint"),
        [p!("problem", r"^✖ \d+ problems? \(\d+ errors?, \d+ warnings?\)$")],
        [("✖ 3 problems (2 errors, 1 warning)", "eslint")]),
    rule!("prettier-check", LintFindings,
        "prettier --check found unformatted files",
        Subject::Fixed("prettier"),
        [p!("code style issues found"), p!("run prettier with --write to fix")],
        [("[warn] Code style issues found in 2 files. Run Prettier with --write to fix.", "prettier")]),
    rule!("tsc-errors", LintFindings,
        "The TypeScript compiler reported type errors",
        Subject::Fixed("tsc"),
        [p!("error ts", r"error TS\d{4}:"),
         p!("found", r"^Found \d+ errors? in (?:\d+ files|\S+:\d+)\.?$")],
        [("src/app.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'.", "tsc")]),
    rule!("golangci-lint-findings", LintFindings,
        "golangci-lint reported issues",
        Subject::Fixed("golangci-lint"),
        [p!(".go:", r"^\S+\.go:\d+:\d+: .+ \((?:errcheck|govet|staticcheck|unused|gosimple|ineffassign|revive|gofmt|goimports|misspell|gocritic|gosec)\)$")],
        [("main.go:12:12: Error return value of `w.Write` is not checked (errcheck)", "golangci-lint")]),
    rule!("shellcheck-findings", LintFindings,
        "shellcheck reported issues",
        Subject::Fixed("shellcheck"),
        [p!("sc", r"^SC\d{4} \((?:error|warning|info|style)\): ")],
        [("SC2086 (info): Double quote to prevent globbing and word splitting.", "shellcheck")]),
    rule!("hadolint-findings", LintFindings,
        "hadolint reported issues",
        Subject::Fixed("hadolint"),
        [p!("dl", r"\bDL[34]\d{3} (?:error|warning|info|style):")],
        [("Dockerfile:3 DL3008 warning: Pin versions in apt get install.", "hadolint")]),
    rule!("rubocop-offenses", LintFindings,
        "RuboCop reported offenses",
        Subject::Fixed("rubocop"),
        [p!("detected", r"files? inspected, \d+ offenses? detected")],
        [("12 files inspected, 3 offenses detected, 2 offenses autocorrectable", "rubocop")]),

    // ---- 8. tests-failing ----------------------------------------------------------------
    rule!("pytest-failed", TestsFailing,
        "pytest reported failures or errors",
        Subject::None,
        [p!("failed", r"^=+ .*\b\d+ failed\b.* in [\d.]+s.* =+$"),
         p!("error", r"^=+ .*\b\d+ errors?\b.* in [\d.]+s.* =+$"),
         p!("failed", r"^\d+ failed(?:, \d+ \w+)* in [\d.]+s"),
         p!("failed", r"^FAILED \S+::\S+"),
         p!("error", r"^ERROR \S+(?:::\S+)? - ")],
        [("=========================== 1 failed, 12 passed in 0.85s ===========================", ""),
         ("FAILED tests/test_api.py::test_timestamp - AssertionError: assert '2024-05-01T12:00:00+02:00' == '2024-05-01T10:00:00+00:00'", "")]),
    rule!("cargo-test-failed", TestsFailing,
        "cargo test reported failures",
        Subject::None,
        [p!("test result: failed"), p!("error: test failed, to rerun pass"),
         p!("---- ", r"^---- \S+ stdout ----$"),
         p!("summary [", r"tests? run: \d+ passed(?:, \d+ \w+)*, [1-9]\d* failed")],
        [("test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s", ""),
         ("error: test failed, to rerun pass `--lib`", "")]),
    rule!("jest-vitest-failed", TestsFailing,
        "Jest or Vitest reported failed tests",
        Subject::None,
        [p!("failed", r"^\s*Tests?:?\s+[1-9]\d* failed"),
         p!("failed", r"^\s*Test (?:Suites|Files):?\s+[1-9]\d* failed"),
         p!("●", r"^\s*● .+ › "),
         p!("fail", r"^\s*FAIL\s+\S+\.(?:test|spec)\.\w+ > ")],
        [("Tests:       1 failed, 11 passed, 12 total", ""),
         (" Test Files  1 failed | 3 passed (4)", ""),
         (" FAIL  src/sum.test.ts > sum > adds negatives", "")]),
    rule!("go-test-failed", TestsFailing,
        "go test reported failures",
        Subject::None,
        [p!("--- fail: ", r"^\s*--- FAIL: \S+"), p!("fail", r"^FAIL\s+\S+\s+[\d.]+s$"),
         p!("fail", r"^FAIL$")],
        [("--- FAIL: TestParseDate (0.00s)", ""),
         ("FAIL\texample.com/app/internal/dates\t0.012s", "")]),
    rule!("ctest-failed", TestsFailing,
        "CTest reported failed tests",
        Subject::None,
        [p!("tests failed out of"), p!("the following tests failed:")],
        [("75% tests passed, 1 tests failed out of 4", "")]),
    rule!("unittest-failed", TestsFailing,
        "unittest (or Django's runner) reported failures",
        Subject::None,
        [p!("failed (", r"^FAILED \((?:failures|errors)=\d+")],
        [("FAILED (failures=1, errors=1)", "")]),
    rule!("js-runner-failing", TestsFailing,
        "mocha, node --test, deno or ava reported failures",
        Subject::None,
        [p!("failing", r"^\s*[1-9]\d* failing$"), p!("# fail ", r"^# fail [1-9]\d*$"),
         p!("failed |", r"^FAILED \| \d+ passed \| [1-9]\d* failed"),
         // node --test's spec reporter (the default output from Node 23 on).
         p!("ℹ fail ", r"^ℹ fail [1-9]\d*$"),
         p!("failing tests:", r"^✖ failing tests:$")],
        [("  2 failing", ""), ("# fail 1", ""), ("ℹ fail 1", ""), ("✖ failing tests:", "")]),
    rule!("xunit-failed", TestsFailing,
        "rspec, minitest, PHPUnit, Maven, Gradle, dotnet or bats reported failures",
        Subject::None,
        [p!("failure", r"^\d+ (?:examples?|tests?|runs?), (?:\d+ assertions, )?[1-9]\d* failures?"),
         p!("failures!"), p!("there are test failures"), p!("there were failing tests"),
         p!("tests run:", r"Tests run: \d+, Failures: (?:[1-9]\d*, Errors: \d+|\d+, Errors: [1-9])"),
         p!("failed!", r"^Failed!\s+-\s+Failed:\s+[1-9]")],
        [("4 examples, 1 failure", ""),
         ("[ERROR] Tests run: 5, Failures: 1, Errors: 0, Skipped: 0, Time elapsed: 0.1 s <<< FAILURE! -- in com.acme.AppTest", "")]),

    // ---- weak rules ------------------------------------------------------------------------
    rule!("node-engine-warning", ToolchainUnsupported,
        "npm warned that this Node.js version is unsupported (weak: often harmless)",
        Subject::Near(r"current: \{ ?node: '(?P<subject>v?[\d.]+)'", "node "),
        [p!("warn ebadengine"), p!("unsupported engine")],
        [("npm WARN EBADENGINE Unsupported engine {", "")], weak),
    rule!("composer-lock-warning", LockfileMismatch,
        "Composer warned that composer.lock is not up to date",
        Subject::Fixed("composer.lock"),
        [p!("the lock file is not up to date with the latest changes in composer.json")],
        [("Warning: The lock file is not up to date with the latest changes in composer.json.", "composer.lock")], weak),
    rule!("exit-127", MissingExecutable,
        "Exit status 127: the shell found no such program",
        Subject::StepProgram,
        [p!("exit code 127"), p!("exit status 127"), p!("error 127")],
        [("Error: Process completed with exit code 127.", ""),
         ("make: *** [Makefile:3: test] Error 127", "")], weak),
    rule!("lint-step-failed", LintFindings,
        "The failing step runs a lint or format tool",
        Subject::LintTool("lint"),
        [p!("$ ", r"^\$ .*\b(?:pre-commit|ruff|flake8|mypy|black|isort|pylint|clippy|cargo fmt|rustfmt|eslint|prettier|golangci-lint|gofmt|go vet|shellcheck|hadolint|rubocop|tsc|stylelint|biome|markdownlint|yamllint|actionlint)\b")],
        [("$ npx eslint .", "eslint")], weak, last_step),
    rule!("test-step-failed", TestsFailing,
        "The failing step runs the test suite",
        Subject::None,
        [p!("$ ", r"^\$ .*\b(?:pytest|cargo test|cargo nextest|go test|npm test|npm run test|pnpm test|yarn test|jest|vitest|ctest|tox|nox|rspec|phpunit|mvn test|gradle test|dotnet test|unittest|manage\.py test|mix test|bun test|deno test)\b")],
        [("$ python -m pytest -q", "")], weak, last_step),
];

/// Compiled regexes, per rule and pattern, and each rule's [`Subject::Near`] regex.
struct Compiled {
    patterns: Vec<Vec<Option<Regex>>>,
    near: Vec<Option<Regex>>,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| Compiled {
        // The table is constant and a unit test compiles every regex, so a failure here
        // is a bug in this file, caught before it ships.
        patterns: RULES
            .iter()
            .map(|r| {
                r.patterns
                    .iter()
                    .map(|p| {
                        p.regex
                            .map(|re| Regex::new(re).expect("rule regexes are tested"))
                    })
                    .collect()
            })
            .collect(),
        near: RULES
            .iter()
            .map(|r| match r.subject {
                Subject::Near(re, _) => Some(Regex::new(re).expect("rule regexes are tested")),
                _ => None,
            })
            .collect(),
    })
}

/// Where a rule fired.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Index of the rule in [`RULES`].
    pub rule: usize,
    /// The line.
    pub line: usize,
    /// The pattern's subject capture, if any.
    pub captured: Option<String>,
}

/// The lines of a normalised log, with what the rules need: lowercased copies and which
/// step (`$ command` line) each line belongs to.
pub struct Lines<'a> {
    lines: &'a [&'a str],
    lower: Vec<String>,
    /// For each line, the index of the `$` line of its step.
    step_of: Vec<Option<usize>>,
    /// The failing step's `$` line: the step holding the first failure marker, else the
    /// last step.
    failing: Option<usize>,
}

/// Forge bookkeeping around a job's output: never worth quoting as context.
fn is_noise(line: &str) -> bool {
    const NOISE: &[&str] = &[
        "Error: Process completed with exit code",
        "Post job cleanup.",
        "Cleaning up orphan processes",
        "Cleaning up project directory",
        "Executing \"step_script\" stage",
        "Using docker image ",
        "Skipping Git submodules setup",
        "Searching for test report files",
        "Finished scanning for test reports",
        "Merged test suites, total number tests",
        "Images used:",
        "build : docker.io/",
        "Default variables:",
        "BITBUCKET_",
        "Running after_script",
        "Uploading artifacts",
        "Saving cache",
    ];
    line == "CI" || NOISE.iter().any(|n| line.starts_with(n))
}

/// A line that starts an error message.
fn is_headline(line: &str) -> bool {
    ["error", "Error", "ERROR", "FAIL", "✖", "●"]
        .iter()
        .any(|p| line.starts_with(p))
}

/// Lines that say a job failed, which end the failing step's output.
fn is_failure_marker(lower: &str) -> bool {
    lower.starts_with("error: process completed with exit code")
        || lower.starts_with("error: job failed")
        || lower.starts_with("job failed")
}

impl<'a> Lines<'a> {
    /// Indexes `lines`.
    pub fn new(lines: &'a [&'a str]) -> Lines<'a> {
        let lower: Vec<String> = lines.iter().map(|l| l.to_lowercase()).collect();
        let mut step_of = Vec::with_capacity(lines.len());
        let mut current = None;
        let mut after_script = false;
        let mut failing = None;
        for (i, l) in lower.iter().enumerate() {
            // GitLab's after_script runs after a failed script: its commands are not the
            // failing step.
            if l.starts_with("running after_script") {
                after_script = true;
            } else if l.starts_with("saving cache")
                || l.starts_with("uploading artifacts")
                || l.starts_with("cleaning up")
                || l.starts_with("error: job failed")
            {
                after_script = false;
            }
            if l.starts_with("$ ") && !after_script {
                current = Some(i);
            }
            step_of.push(current);
            if failing.is_none() && is_failure_marker(l) {
                failing = Some(current);
            }
        }
        Lines {
            lines,
            failing: failing.unwrap_or(current),
            lower,
            step_of,
        }
    }

    /// The command of the step line `i` belongs to.
    pub fn step_at(&self, i: usize) -> Option<&'a str> {
        let s = (*self.step_of.get(i)?)?;
        self.lines[s].strip_prefix("$ ").map(str::trim)
    }

    /// The failing step's command.
    pub fn failing_step(&self) -> Option<&'a str> {
        self.failing
            .and_then(|s| self.lines[s].strip_prefix("$ ").map(str::trim))
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether pattern `p` of rule `r` fires on line `i`; with its capture.
    fn fires(&self, r: usize, p: usize, i: usize) -> Option<Option<String>> {
        let pat = &RULES[r].patterns[p];
        if !self.lower[i].contains(pat.needle) {
            return None;
        }
        let Some(re) = &compiled().patterns[r][p] else {
            return Some(None);
        };
        let caps = re.captures(self.lines[i])?;
        Some(capture(&caps))
    }

    /// The last line in `range` that rule `r` fires on.
    pub fn find_in(&self, r: usize, range: std::ops::Range<usize>) -> Option<Hit> {
        let rule = &RULES[r];
        for i in range.rev() {
            if rule.last_step_only && Some(i) != self.failing {
                continue;
            }
            for p in 0..rule.patterns.len() {
                if let Some(captured) = self.fires(r, p, i) {
                    return Some(Hit {
                        rule: r,
                        line: i,
                        captured,
                    });
                }
            }
        }
        None
    }

    /// The failing step's lines, from its `$` line to the end (the whole log when it
    /// has no steps): a job stops at its first failing step, so what earlier steps
    /// printed passed, and what comes after (timeouts, runner messages) is about it.
    pub fn failing_window(&self) -> std::ops::Range<usize> {
        self.failing.unwrap_or(0)..self.len()
    }

    /// Every line.
    pub fn everything(&self) -> std::ops::Range<usize> {
        0..self.len()
    }

    /// The subject of a hit, as its rule names it.
    pub fn subject(&self, hit: &Hit, step: Option<&str>) -> Option<String> {
        let rule = &RULES[hit.rule];
        let s = match rule.subject {
            Subject::None => None,
            Subject::Capture => hit.captured.clone(),
            Subject::CapturePrefixed(prefix) => {
                hit.captured.as_ref().map(|c| format!("{prefix}{c}"))
            }
            Subject::Near(_, prefix) => {
                let re = compiled().near[hit.rule].as_ref()?;
                // One message over several lines (the hit may be any of them): the five
                // lines around it, searched as one line, the hit's own first.
                let end = (hit.line + 6).min(self.len());
                let before = self.lines[hit.line.saturating_sub(5)..hit.line].join(" ");
                let joined = format!("{} {before}", self.lines[hit.line..end].join(" "));
                re.captures(&joined)
                    .and_then(|c| capture(&c))
                    .map(|c| format!("{prefix}{c}"))
                    .or_else(|| hit.captured.clone())
            }
            Subject::Fixed(name) => Some(name.to_owned()),
            Subject::LintTool(default) => Some(
                step.and_then(lint_tool_of)
                    .or_else(|| {
                        // The rule matched the step line itself.
                        self.lines[hit.line]
                            .strip_prefix("$ ")
                            .and_then(lint_tool_of)
                    })
                    .unwrap_or(default)
                    .to_owned(),
            ),
            Subject::Step => step.map(str::to_owned),
            Subject::StepProgram => step.and_then(program_of),
        };
        s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
    }

    /// At most [`MAX_EXCERPT_LINES`] lines of the hit's step: up to four before the hit
    /// (what led to it), the rest after (the rest of the message), then the rule's other
    /// matches (more failed tests, more findings), nearest first.
    pub fn excerpt(&self, hit: &Hit) -> Vec<String> {
        /// Lines kept for the rule's other matches.
        const FOR_OTHERS: usize = 3;
        let step = self.step_of[hit.line];
        let shown = |i: usize| {
            let l = self.lines[i].trim();
            self.step_of[i] == step && !l.is_empty() && !l.starts_with("$ ") && !is_noise(l)
        };
        let mut picked = BTreeSet::from([hit.line]);
        for i in (0..hit.line).rev().filter(|&i| shown(i)).take(4) {
            picked.insert(i);
        }
        // The message's headline, when the hit is a note under it (rustc's `= note:`
        // lines, pytest's `E` lines): the nearest error line above, within a screen.
        if let Some(h) = (hit.line.saturating_sub(12)..hit.line)
            .rev()
            .filter(|&i| shown(i))
            .find(|&i| is_headline(self.lines[i].trim()))
        {
            picked.insert(h);
        }
        for i in (hit.line + 1..self.len()).filter(|&i| shown(i)) {
            if picked.len() >= MAX_EXCERPT_LINES - FOR_OTHERS {
                break;
            }
            picked.insert(i);
        }
        // Other lines the rule fires on (failed test names, more findings), nearest first.
        let rule = &RULES[hit.rule];
        let mut others: Vec<usize> = (0..self.len())
            .filter(|i| !picked.contains(i) && shown(*i))
            .filter(|&i| (0..rule.patterns.len()).any(|p| self.fires(hit.rule, p, i).is_some()))
            .filter(|&i| shown(i))
            .collect();
        others.sort_by_key(|&i| i.abs_diff(hit.line));
        for i in others {
            if picked.len() >= MAX_EXCERPT_LINES {
                break;
            }
            picked.insert(i);
        }
        picked
            .into_iter()
            .map(|i| excerpt_line(self.lines[i]))
            .collect()
    }

    /// The last [`MAX_EXCERPT_LINES`] shown lines of the failing step (no rule fired).
    pub fn tail_excerpt(&self) -> Vec<String> {
        // The failing step's output; all of the log when that is empty.
        let from = self.failing.unwrap_or(0);
        let has_output = self.lines[from..]
            .iter()
            .any(|l| !l.trim().is_empty() && !l.starts_with("$ ") && !is_noise(l.trim()));
        let lines = if has_output {
            &self.lines[from..]
        } else {
            self.lines
        };
        let mut out: Vec<String> = lines
            .iter()
            .rev()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty() && !l.starts_with("$ ") && !is_noise(l))
            .take(MAX_EXCERPT_LINES)
            .map(excerpt_line)
            .collect();
        out.reverse();
        out
    }
}

/// `subject`, or `host:port`, from a match.
fn capture(caps: &regex_lite::Captures<'_>) -> Option<String> {
    if let Some(s) = caps.name("subject") {
        return Some(s.as_str().to_owned());
    }
    match (caps.name("host"), caps.name("port")) {
        (Some(h), Some(p)) => Some(format!("{}:{}", h.as_str(), p.as_str())),
        (Some(h), None) => Some(h.as_str().to_owned()),
        _ => None,
    }
}

/// The lint tool a step command runs.
fn lint_tool_of(step: &str) -> Option<&'static str> {
    let words: Vec<&str> = step
        .split(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
        .filter(|w| !w.is_empty())
        .collect();
    LINT_TOOLS.iter().find_map(|(needle, tool)| {
        let parts: Vec<&str> = needle.split(' ').collect();
        words
            .windows(parts.len())
            .any(|w| w == parts.as_slice())
            .then_some(*tool)
    })
}

/// The program a step runs: its first word that is not an assignment or `sudo`/`env`.
fn program_of(step: &str) -> Option<String> {
    step.split_whitespace()
        .find(|w| !w.contains('=') && !matches!(*w, "sudo" | "env" | "exec" | "time"))
        .map(|w| w.rsplit('/').next().unwrap_or(w).to_owned())
}

/// An excerpt line: trimmed and cut to [`MAX_EXCERPT_CHARS`].
fn excerpt_line(line: &str) -> String {
    let l = line.trim();
    if l.chars().count() <= MAX_EXCERPT_CHARS {
        return l.to_owned();
    }
    let mut s: String = l.chars().take(MAX_EXCERPT_CHARS - 1).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_needles_lowercase_and_regexes_compile() {
        let mut ids = BTreeSet::new();
        for r in RULES {
            assert!(ids.insert(r.id), "duplicate rule id {}", r.id);
            assert!(
                !r.description.is_empty() && !r.examples.is_empty(),
                "{}",
                r.id
            );
            for p in r.patterns {
                assert!(!p.needle.is_empty(), "{}", r.id);
                assert_eq!(
                    p.needle,
                    p.needle.to_lowercase(),
                    "{}: needles are lowercase",
                    r.id
                );
                if let Some(re) = p.regex {
                    Regex::new(re).unwrap_or_else(|e| panic!("{}: {re}: {e}", r.id));
                }
            }
            if let Subject::Near(re, _) = r.subject {
                Regex::new(re).unwrap_or_else(|e| panic!("{}: {re}: {e}", r.id));
            }
        }
        assert!(!ids.contains("unknown"), "`unknown` is the no-rule id");
    }

    /// Weak rules come after every strong one, and strong rules keep the documented
    /// class order.
    #[test]
    fn the_table_keeps_its_documented_order() {
        let order = [
            FailureClass::TimeoutOom,
            FailureClass::ServiceUnreachable,
            FailureClass::ToolchainUnsupported,
            FailureClass::Transient,
            FailureClass::LockfileMismatch,
            FailureClass::MissingExecutable,
            FailureClass::LintFindings,
            FailureClass::TestsFailing,
        ];
        let first_weak = RULES.iter().position(|r| r.weak).unwrap();
        assert!(RULES[first_weak..].iter().all(|r| r.weak));
        // The one documented exception: a package manager's failed fetch is transient
        // and must precede the service rules that would read its refused address.
        let ranks: Vec<usize> = RULES[..first_weak]
            .iter()
            .filter(|r| r.id != "registry-fetch-failed")
            .map(|r| order.iter().position(|c| *c == r.class).unwrap())
            .collect();
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");
    }

    /// Every example line fires its own rule (alone, as the last line of a log) with
    /// the subject it names.
    #[test]
    fn every_rule_recognises_its_examples() {
        for (idx, r) in RULES.iter().enumerate() {
            for (line, subject) in r.examples {
                let log = if r.last_step_only {
                    line.to_string()
                } else {
                    format!("$ run the step\n{line}")
                };
                let all: Vec<&str> = log.lines().collect();
                let ctx = Lines::new(&all);
                let hit = ctx
                    .find_in(idx, ctx.everything())
                    .unwrap_or_else(|| panic!("{} does not fire on: {line}", r.id));
                if !subject.is_empty() {
                    let step = ctx.step_at(hit.line);
                    assert_eq!(
                        ctx.subject(&hit, step).as_deref(),
                        Some(*subject),
                        "{}: {line}",
                        r.id
                    );
                }
            }
        }
    }

    #[test]
    fn lint_tools_and_programs_of_steps() {
        assert_eq!(lint_tool_of("cargo fmt --all -- --check"), Some("rustfmt"));
        assert_eq!(lint_tool_of("uv run ruff check ."), Some("ruff"));
        assert_eq!(lint_tool_of("npx eslint ."), Some("eslint"));
        assert_eq!(
            lint_tool_of("cargo clippy --all-targets -- -D warnings"),
            Some("clippy")
        );
        assert_eq!(
            lint_tool_of("./node_modules/.bin/prettier --check ."),
            Some("prettier")
        );
        assert_eq!(lint_tool_of("pytest -q"), None);
        assert_eq!(lint_tool_of("blackbox run"), None, "whole words only");
        assert_eq!(
            program_of("FOO=1 sudo /usr/bin/just test").as_deref(),
            Some("just")
        );
        assert_eq!(program_of("   "), None);
    }
}
