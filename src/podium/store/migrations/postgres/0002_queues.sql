-- 0002: the queue a run waits on (`podium run --queue`), so a worker claims only its queues' runs
-- (`podium worker --queue`). Runs recorded before queues existed are on `default`.

ALTER TABLE runs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
