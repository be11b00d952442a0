-- A target set can be closed as `superseded` when a newer one is queued
-- (SQLite flavour; migrations_pg/0004_superseded.sql is the PostgreSQL one).
-- SQLite cannot alter a CHECK constraint, so the projection table is rebuilt;
-- it is a projection, its rows are copied unchanged.
CREATE TABLE target_sets_new (
    id        TEXT PRIMARY KEY,
    payload   TEXT NOT NULL,
    status    TEXT NOT NULL CHECK (status IN ('queued', 'executing', 'completed', 'superseded')),
    queued_at TEXT NOT NULL
);
INSERT INTO target_sets_new (id, payload, status, queued_at)
    SELECT id, payload, status, queued_at FROM target_sets;
DROP TABLE target_sets;
ALTER TABLE target_sets_new RENAME TO target_sets;
CREATE INDEX target_sets_by_status ON target_sets (status, queued_at);
