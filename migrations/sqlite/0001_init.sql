-- Keep in sync with migrations/postgres/0001_init.sql (tests/migrations.rs compares them).
-- Times are milliseconds since the Unix epoch (BIGINT), written by the application's
-- clock so both backends behave the same and tests can move time.

CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    dedupe_key      TEXT,
    concurrency_key TEXT,
    priority        BIGINT  NOT NULL DEFAULT 0,
    state           TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'dead')),
    run_at          BIGINT  NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    max_attempts    BIGINT  NOT NULL,
    locked_by       TEXT,
    locked_until    BIGINT,
    last_error      TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT
);
-- A dedupe key is unique among live jobs only: once a job is done, the same key may run again.
CREATE UNIQUE INDEX jobs_dedupe_live ON jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running', 'failed');
-- At most one running job per concurrency key, enforced by the database itself.
CREATE UNIQUE INDEX jobs_concurrency_running ON jobs (concurrency_key)
    WHERE concurrency_key IS NOT NULL AND state = 'running';
CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, id) WHERE state IN ('queued', 'failed');
CREATE INDEX jobs_lease ON jobs (locked_until) WHERE state = 'running';
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('succeeded', 'dead');

CREATE TABLE deliveries (
    forge       TEXT   NOT NULL,
    delivery_id TEXT   NOT NULL,
    event       TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (forge, delivery_id)
);
CREATE INDEX deliveries_received ON deliveries (received_at);

CREATE TABLE installations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    forge       TEXT   NOT NULL,
    external_id TEXT   NOT NULL,
    account     TEXT,
    state       TEXT   NOT NULL DEFAULT 'active'
                CHECK (state IN ('active', 'suspended', 'deleted')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (forge, external_id)
);

CREATE TABLE repositories (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    installation_id BIGINT REFERENCES installations (id) ON DELETE CASCADE,
    forge           TEXT    NOT NULL,
    external_id     TEXT    NOT NULL,
    full_name       TEXT    NOT NULL,
    default_branch  TEXT,
    private         BOOLEAN,
    archived        BOOLEAN,
    fork            BOOLEAN,
    state           TEXT    NOT NULL DEFAULT 'active'
                    CHECK (state IN ('active', 'removed', 'deleted')),
    last_push_sha   TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    UNIQUE (forge, external_id)
);
CREATE INDEX repositories_installation ON repositories (installation_id);
