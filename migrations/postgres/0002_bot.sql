-- Keep in sync with the other backend's 0002_bot.sql (tests/migrations.rs compares them).
-- The bot's memory: what it proposed in each pull request (also kept in the PR body, so
-- a lost database is recovered from the forge), the per-installation PR budget, and
-- per-repository choices.

ALTER TABLE repositories ADD COLUMN ignored BOOLEAN NOT NULL DEFAULT FALSE;
-- JSON of the choices made with slash commands (add/remove features).
ALTER TABLE repositories ADD COLUMN settings TEXT;
-- Why the last analysis did or did not lead to a pull request.
ALTER TABLE repositories ADD COLUMN last_outcome TEXT;
ALTER TABLE repositories ADD COLUMN last_analyzed_sha TEXT;
ALTER TABLE repositories ADD COLUMN last_analyzed_at BIGINT;

CREATE TABLE pull_requests (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    number        BIGINT NOT NULL,
    branch        TEXT   NOT NULL,
    state         TEXT   NOT NULL CHECK (state IN ('open', 'closed', 'merged')),
    proposal_hash TEXT   NOT NULL,
    head_sha      TEXT,
    -- A proposal the bot could not push because people committed to its branch: it
    -- commented once instead, and does not repeat itself for the same proposal.
    notified_hash TEXT,
    -- Closed by pipewright itself (`ignore`), not refused by a person: `unignore` may
    -- propose the same files again.
    closed_by_bot BOOLEAN NOT NULL DEFAULT FALSE,
    url           TEXT,
    opened_at     BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (repository_id, number)
);

-- One row per pull request opened, for the per-installation hourly budget.
CREATE TABLE pr_openings (
    installation_id BIGINT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    repository_id   BIGINT NOT NULL,
    opened_at       BIGINT NOT NULL,
    PRIMARY KEY (installation_id, repository_id, opened_at)
);
CREATE INDEX pr_openings_window ON pr_openings (installation_id, opened_at);

-- Slash commands already executed, so a redelivered or re-queued comment runs once.
CREATE TABLE executed_commands (
    forge       TEXT   NOT NULL,
    comment_id  TEXT   NOT NULL,
    body_hash   TEXT   NOT NULL,
    executed_at BIGINT NOT NULL,
    PRIMARY KEY (forge, comment_id, body_hash)
);
