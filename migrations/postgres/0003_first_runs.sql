-- Keep in sync with the other backend's 0003_first_runs.sql (tests/migrations.rs compares them).
-- The first CI runs of pipewright's proposals: how each ended, what failed (the
-- classifier's class), and what the bot did about it. A fix is never repeated: its key
-- is the proposal hash plus the failure class.

CREATE TABLE first_run_outcomes (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    pr_number     BIGINT NOT NULL,
    head_sha      TEXT   NOT NULL,
    run_id        TEXT   NOT NULL,
    -- `passed`, or the failure class (`missing-executable`, `tests-failing`, …).
    class         TEXT   NOT NULL,
    -- What the class pointed at: the missing tool, the lint, the version.
    subject       TEXT,
    -- none, commit, rerun, explain, blocked.
    action        TEXT   NOT NULL,
    fix_key       TEXT,
    -- The adjustment made (JSON) or a one-line reason.
    detail        TEXT,
    created_at    BIGINT NOT NULL,
    UNIQUE (repository_id, run_id, head_sha)
);
CREATE INDEX first_run_outcomes_by_pr ON first_run_outcomes (repository_id, pr_number);
CREATE INDEX first_run_outcomes_by_time ON first_run_outcomes (created_at);
