-- Single-writer leases, PostgreSQL flavour of migrations/0002_leases.sql.
-- One row per account. A worker may write only while it holds the row's
-- current `token`; every acquisition by anyone increments it (a fencing
-- token), and every fenced append checks it in its own transaction (a
-- conditional UPDATE of this row, which also orders the append before any
-- concurrent take-over), so a writer that lost the lease is refused.
--
-- Times are milliseconds since the Unix epoch on the DATABASE's clock
-- (clock_timestamp() in the statements), so hosts' clocks never matter.
CREATE TABLE leases (
    account_id  TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,   -- host|boot id|pid namespace|pid|nonce of the holding process
    token       BIGINT  NOT NULL,   -- fencing token: 1, 2, 3, ... never reused
    acquired_at BIGINT  NOT NULL,   -- ms since epoch, database clock
    expires_at  BIGINT  NOT NULL    -- ms since epoch, database clock
);
