-- 0001: the whole Postgres schema, the same tables as SQLite's migrations 0001-0004 end with.
-- Instants are unix seconds (DOUBLE PRECISION), as in SQLite, so rows convert the same way; a
-- run's row and its events change in one transaction.

CREATE TABLE runs (
    run_id           TEXT             PRIMARY KEY,
    workflow_name    TEXT             NOT NULL,
    status           TEXT             NOT NULL,
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL,
    last_seq         INTEGER          NOT NULL,
    owner            TEXT,
    epoch            INTEGER          NOT NULL DEFAULT 0,
    lease_expires_at DOUBLE PRECISION,
    wake_at          DOUBLE PRECISION,
    thread           TEXT
);

CREATE INDEX runs_by_created ON runs (created_at DESC, run_id DESC);
CREATE INDEX runs_by_status ON runs (status, created_at DESC, run_id DESC);
CREATE INDEX runs_by_workflow ON runs (workflow_name, created_at DESC, run_id DESC);
-- "Due parked runs": only runs with a timer are in it, ordered by when it is due.
CREATE INDEX runs_by_wake ON runs (wake_at) WHERE wake_at IS NOT NULL;
-- A thread's runs, newest first; only threaded runs are in it.
CREATE INDEX runs_by_thread ON runs (thread, created_at DESC, run_id DESC) WHERE thread IS NOT NULL;

-- `position` is the event's global position (read_all), given from position_counter below.
CREATE TABLE events (
    run_id   TEXT             NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq      INTEGER          NOT NULL,
    kind     TEXT             NOT NULL,
    at       DOUBLE PRECISION NOT NULL,
    data     BYTEA            NOT NULL,
    position BIGINT           NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE UNIQUE INDEX events_by_position ON events (position);

-- The highest global position given. Every transaction that inserts events bumps it with an
-- UPDATE, so it holds this row's lock until it commits: positions are handed out in commit
-- order, and pruning never lowers it (positions are never reused).
CREATE TABLE position_counter (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last BIGINT  NOT NULL
);
INSERT INTO position_counter (id, last) VALUES (1, 0);

CREATE TABLE signals (
    id          BIGSERIAL        PRIMARY KEY,
    run_id      TEXT             NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    kind        TEXT             NOT NULL,
    payload     TEXT             NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    consumed_at DOUBLE PRECISION
);

CREATE INDEX signals_by_run ON signals (run_id, id);
-- Runs with unconsumed signals (claim, prune): the inbox rows nobody has handled yet.
CREATE INDEX signals_pending ON signals (run_id) WHERE consumed_at IS NULL;
