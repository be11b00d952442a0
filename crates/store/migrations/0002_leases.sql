-- Single-writer leases (SQLite flavour; migrations_pg/0002_leases.sql is the
-- PostgreSQL one). One row per account. A worker may write only while it
-- holds the row's current `token`; every acquisition by anyone increments it
-- (a fencing token), and every fenced append checks it in its own
-- transaction, so a writer that lost the lease is refused by the database.
--
-- Times are milliseconds since the Unix epoch on the DATABASE's clock (the
-- statements compute them there), so hosts' clocks never matter. SQLite is
-- embedded, so here the database's clock is the host's.
CREATE TABLE leases (
    account_id  TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,   -- host|boot id|pid namespace|pid|nonce of the holding process
    token       INTEGER NOT NULL,   -- fencing token: 1, 2, 3, ... never reused
    acquired_at INTEGER NOT NULL,   -- ms since epoch, database clock
    expires_at  INTEGER NOT NULL    -- ms since epoch, database clock
);
