-- 0003: the thread a run answers on (`podium ask`), so a thread's runs are listed from an index.

ALTER TABLE runs ADD COLUMN thread TEXT;

-- A thread's runs, newest first; only threaded runs are in it.
CREATE INDEX runs_by_thread ON runs (thread, created_at DESC, run_id DESC) WHERE thread IS NOT NULL;
