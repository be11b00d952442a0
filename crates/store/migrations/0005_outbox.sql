-- Notification outbox (SQLite flavour; migrations_pg/0005_outbox.sql is the
-- PostgreSQL one).
--
-- `outbox` is derived from the audit log: the append that logs an event that
-- needs a person (keel_domain::alert::notice_of) inserts its row in the same
-- transaction, so a notification exists exactly when its event does, and a
-- rebuild re-derives it. The message itself is the audit row's payload
-- (joined by seq), so it is stored once.
CREATE TABLE outbox (
    seq      INTEGER PRIMARY KEY,   -- the causing event's audit seq
    event_id TEXT    NOT NULL,      -- the causing event's id: receivers drop duplicates by it
    kind     TEXT    NOT NULL,      -- keel_domain::AlertKind name
    also     TEXT    NOT NULL,      -- further kinds, comma-separated (may be empty)
    severity TEXT    NOT NULL,      -- info | warning | critical
    at       TEXT    NOT NULL
);
CREATE INDEX outbox_by_at ON outbox (at);

-- Delivery state per channel and notification, kept apart from the derived
-- outbox so a rebuild never forgets what was sent. No row: not tried yet.
CREATE TABLE outbox_delivery (
    channel    TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('delivered', 'skipped', 'failed')),
    attempts   INTEGER NOT NULL,
    next_at    TEXT,                -- failed: not before this time
    last_error TEXT,                -- failed: why (never a secret)
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (channel, seq)
);
