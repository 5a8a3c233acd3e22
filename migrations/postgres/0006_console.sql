-- Keep in sync with the other backend's 0006_console.sql (tests/migrations.rs compares them).
-- The operator console: server-side sessions, what the last analysis of each repository
-- saw and proposed, a stored outcome class per repository (so the installation page
-- filters and pages through 10,000 repositories on an index), and the indexes the
-- console's keyset pagination walks.

-- Console sessions. The cookie holds a random token; only its SHA-256 is stored, so a
-- copy of the database cannot be used to sign in.
CREATE TABLE console_sessions (
    id_hash           TEXT   PRIMARY KEY,
    -- admin (PIPEWRIGHT_ADMIN_TOKEN) or the forge the person signed in with.
    principal         TEXT   NOT NULL CHECK (principal IN ('admin', 'github', 'gitlab', 'bitbucket')),
    login             TEXT   NOT NULL,
    user_id           TEXT,
    -- JSON array of installation row ids this person administers (NULL for admins: all).
    installations     TEXT,
    -- When the forge last confirmed those installations; re-checked after a short while.
    access_checked_at BIGINT NOT NULL,
    csrf_token        TEXT   NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    last_seen_at      BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- What the last analysis of a repository saw and proposed (one row per repository).
CREATE TABLE repo_snapshots (
    repository_id BIGINT PRIMARY KEY REFERENCES repositories (id) ON DELETE CASCADE,
    sha           TEXT,
    -- Short summary for lists and filters: "rust/cargo typescript/pnpm".
    stack         TEXT,
    -- The Analysis as JSON, with the rule and file behind each conclusion.
    analysis      TEXT,
    -- The same as `pipewright analyze --explain` prints it.
    explain       TEXT,
    -- The repository's .pipewright.yml as read (path and text), JSON.
    repo_config   TEXT,
    decision      TEXT,
    proposal_hash TEXT,
    -- JSON [{path, content}] of the files proposed at that commit.
    proposal      TEXT,
    -- JSON [{path, content}] of the files pipewright last wrote to its branch, and the commit.
    pushed        TEXT,
    pushed_sha    TEXT,
    analyzed_at   BIGINT NOT NULL
);

-- pr_open, merged, closed (by a person), ignored, skipped, failed; NULL = not analysed.
-- Recomputed by db/pull_requests.rs whenever one of its inputs changes.
ALTER TABLE repositories ADD COLUMN outcome TEXT;
CREATE INDEX repositories_by_name ON repositories (installation_id, full_name, id);
CREATE INDEX repositories_by_outcome ON repositories (installation_id, outcome, full_name, id);
CREATE INDEX pull_requests_history ON pull_requests (repository_id, opened_at);

-- Jobs that touched a repository (its concurrency key), and the dead-letter list.
CREATE INDEX jobs_by_concurrency ON jobs (concurrency_key, id);
CREATE INDEX jobs_dead ON jobs (id) WHERE state = 'dead';

-- Forge API use per installation and hour (the overview's "API calls and rate-limit
-- headroom"), written after each job from its client's counters.
CREATE TABLE installation_api_usage (
    installation_id BIGINT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    hour            BIGINT NOT NULL,
    calls           BIGINT NOT NULL,
    -- The lowest rate-limit headroom the forge reported in that hour, and its window.
    rate_remaining  BIGINT,
    rate_limit      BIGINT,
    rate_reset      BIGINT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (installation_id, hour)
);

-- The GitHub App made by the one-click setup (/setup/github). Its private key, webhook
-- secret and OAuth client secret are one AES-256-GCM sealed JSON document (the
-- PIPEWRIGHT_CREDENTIALS_KEY keyring); environment variables win over this row.
CREATE TABLE github_apps (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id      BIGINT NOT NULL UNIQUE,
    slug        TEXT   NOT NULL,
    owner       TEXT,
    html_url    TEXT,
    client_id   TEXT,
    -- The sealed JSON document: keyring key id, base64 nonce, base64 ciphertext + tag.
    key_id      TEXT   NOT NULL,
    nonce       TEXT   NOT NULL,
    ciphertext  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
