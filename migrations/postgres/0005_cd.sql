-- Keep in sync with the other backend's 0005_cd.sql (tests/migrations.rs compares them).
-- Continuous delivery: who did what (audit_log), and deploy credentials encrypted at rest.

-- Who (actor), what (action), on what (installation, repository, target), when, and
-- details. Never secret values: the code that writes here passes names, not values.
-- No foreign keys: the trail outlives the installations and repositories it names.
CREATE TABLE audit_log (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              BIGINT NOT NULL,
    -- cli (a person on the server's shell), forge (a person through a slash command),
    -- console (an operator in the web console), bot (pipewright on its own).
    actor_kind      TEXT   NOT NULL CHECK (actor_kind IN ('cli', 'forge', 'console', 'bot')),
    actor           TEXT   NOT NULL,
    action          TEXT   NOT NULL,
    forge           TEXT,
    installation    TEXT,
    repository      TEXT,
    repository_name TEXT,
    target          TEXT,
    -- JSON object.
    details         TEXT   NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_owner ON audit_log (forge, installation, at);

-- One named deploy credential value (e.g. FLY_API_TOKEN), AES-256-GCM sealed with the
-- key `key_id` of PIPEWRIGHT_CREDENTIALS_KEY, bound to its owner (forge, installation,
-- repository, target, name) by the associated data. repository = '' is the
-- installation's default; otherwise the forge's stable repository id overrides it.
CREATE TABLE deploy_credentials (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    forge           TEXT   NOT NULL,
    installation    TEXT   NOT NULL,
    repository      TEXT   NOT NULL DEFAULT '',
    repository_name TEXT,
    target          TEXT   NOT NULL,
    name            TEXT   NOT NULL,
    key_id          TEXT   NOT NULL,
    nonce           TEXT   NOT NULL,
    ciphertext      TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (forge, installation, repository, target, name)
);
CREATE INDEX deploy_credentials_key ON deploy_credentials (key_id);
