-- Keep in sync with the other backend's 0004_learn.sql (tests/migrations.rs compares them).
-- Learned detection: embeddings cached by fingerprint (per model), and per analysed
-- repository its fingerprint and the conventions its CI shows, from which each
-- installation's sibling index is built (and rebuilt by a replica that lacks the file).

CREATE TABLE embeddings (
    model_hash       TEXT   NOT NULL,
    fingerprint_hash TEXT   NOT NULL,
    -- Little-endian f32 values, base64: one spelling on both backends.
    vector           TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (model_hash, fingerprint_hash)
);

CREATE TABLE repo_conventions (
    repository_id    BIGINT  NOT NULL PRIMARY KEY REFERENCES repositories (id) ON DELETE CASCADE,
    installation_id  BIGINT  NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    -- Primary stack (the first project's language; '' when rules found none).
    language         TEXT    NOT NULL,
    fingerprint_hash TEXT    NOT NULL,
    fingerprint      TEXT    NOT NULL,
    has_ci           BOOLEAN NOT NULL,
    -- JSON of analyze::conventions::Conventions.
    conventions      TEXT    NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX repo_conventions_installation ON repo_conventions (installation_id, updated_at);
