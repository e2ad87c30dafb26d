-- 0002: a run's next timer (wake_at) and the indexes claim, list_runs and prune look runs up by.

ALTER TABLE runs ADD COLUMN wake_at REAL;

-- "Due parked runs": only runs with a timer are in it, ordered by when it is due.
CREATE INDEX runs_by_wake ON runs (wake_at) WHERE wake_at IS NOT NULL;

-- Paging by status or by workflow, newest first, with run_id breaking ties.
DROP INDEX runs_by_status;
CREATE INDEX runs_by_status ON runs (status, created_at DESC, run_id DESC);
CREATE INDEX runs_by_workflow ON runs (workflow_name, created_at DESC, run_id DESC);

-- Runs with unconsumed signals (claim, prune): the inbox rows nobody has handled yet.
CREATE INDEX signals_pending ON signals (run_id) WHERE consumed_at IS NULL;
