-- 0001: runs (a listing projection of their events), the per-run event log and control signals.
-- Instants are unix seconds (REAL); a run's row and its events change in one transaction.

CREATE TABLE runs (
    run_id           TEXT    PRIMARY KEY,
    workflow_name    TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    created_at       REAL    NOT NULL,
    updated_at       REAL    NOT NULL,
    last_seq         INTEGER NOT NULL,
    owner            TEXT,
    epoch            INTEGER NOT NULL DEFAULT 0,
    lease_expires_at REAL
);

CREATE INDEX runs_by_created ON runs (created_at DESC, run_id DESC);
CREATE INDEX runs_by_status ON runs (status, created_at DESC);

-- Clustered by (run_id, seq): reading one run's log is one contiguous range scan.
CREATE TABLE events (
    run_id TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    kind   TEXT    NOT NULL,
    at     REAL    NOT NULL,
    data   BLOB    NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE signals (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    created_at  REAL    NOT NULL,
    consumed_at REAL
);

CREATE INDEX signals_by_run ON signals (run_id, id);
