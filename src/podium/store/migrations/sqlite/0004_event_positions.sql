-- 0004: every event's global position, in commit order, for followers of every run (the HTTP
-- API's `GET /events`, whose SSE ids they are). Existing events are numbered in the order they
-- were recorded.

ALTER TABLE events ADD COLUMN position INTEGER;

UPDATE events SET position = (
    SELECT numbered.n FROM (
        SELECT run_id, seq, ROW_NUMBER() OVER (ORDER BY at, run_id, seq) AS n FROM events
    ) AS numbered
    WHERE numbered.run_id = events.run_id AND numbered.seq = events.seq
);

CREATE UNIQUE INDEX events_by_position ON events (position);

-- The highest position pruning removed, so the next event never reuses it.
CREATE TABLE position_floor (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT INTO position_floor (id, last) VALUES (1, 0);
