-- keel store schema, PostgreSQL flavour of migrations/0001_init.sql (SQLite);
-- keep the two in step (same tables, columns, order). Differences: BIGINT for
-- INTEGER (so every integer decodes as i64), and COLLATE "C" on columns that
-- are compared as strings for ordering, so locale collation cannot reorder them.
--
-- Only INTEGER and TEXT are used: decimals are exact strings (never REAL) and
-- times are RFC 3339 UTC with a fixed nine-digit fraction, so string order is
-- time order on both databases.

-- The hash-chained audit log: the source of truth. Every table below it is a
-- projection that rebuild_projections() can recreate from this one.
CREATE TABLE audit (
    seq       BIGINT  PRIMARY KEY,      -- 1, 2, 3, ... without gaps
    at        TEXT COLLATE "C" NOT NULL,
    kind      TEXT    NOT NULL,
    event_id  TEXT    NOT NULL UNIQUE,  -- idempotency key
    payload   TEXT    NOT NULL,         -- the event as JSON, byte for byte as hashed
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);

CREATE TABLE account (
    id        TEXT PRIMARY KEY,
    cash      TEXT NOT NULL,            -- opening cash
    opened_at TEXT NOT NULL
);

-- Current cash: opening cash plus the cash flow of every fill. One row.
CREATE TABLE cash (
    id     BIGINT PRIMARY KEY CHECK (id = 1),
    amount TEXT    NOT NULL
);

CREATE TABLE target_sets (
    id        TEXT PRIMARY KEY,
    payload   TEXT NOT NULL,
    status    TEXT NOT NULL CHECK (status IN ('queued', 'executing', 'completed')),
    queued_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX target_sets_by_status ON target_sets (status, queued_at);

CREATE TABLE cycles (
    cycle_id      TEXT    PRIMARY KEY,
    target_set_id TEXT    NOT NULL,
    attempt       BIGINT NOT NULL,
    started_at    TEXT COLLATE "C" NOT NULL,
    finished_at   TEXT,
    outcome       TEXT
);
CREATE INDEX cycles_by_start ON cycles (started_at);
CREATE INDEX cycles_by_set ON cycles (target_set_id);

CREATE TABLE guard_decisions (
    cycle_id  TEXT PRIMARY KEY,
    decisions TEXT NOT NULL
);

CREATE TABLE orders (
    client_order_id TEXT PRIMARY KEY,
    cycle_id        TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL,
    qty             TEXT NOT NULL,
    order_type      TEXT NOT NULL,
    limit_price     TEXT,
    tif             TEXT NOT NULL,
    status          TEXT NOT NULL,
    broker_order_id TEXT,
    filled_qty      TEXT NOT NULL,
    avg_fill_price  TEXT,
    arrival_price   TEXT NOT NULL,
    reason          TEXT,
    created_at      TEXT COLLATE "C" NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX orders_by_created ON orders (created_at);
CREATE INDEX orders_by_status ON orders (status);
CREATE INDEX orders_by_symbol ON orders (symbol, created_at);

CREATE TABLE fills (
    fill_id         TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL,
    qty             TEXT NOT NULL,
    price           TEXT NOT NULL,
    at              TEXT COLLATE "C" NOT NULL,
    slippage_bps    TEXT
);
CREATE INDEX fills_by_at ON fills (at);
CREATE INDEX fills_by_symbol ON fills (symbol, at);
CREATE INDEX fills_by_order ON fills (client_order_id);

-- Flat positions have no row.
CREATE TABLE positions (
    symbol   TEXT PRIMARY KEY,
    qty      TEXT NOT NULL,
    avg_cost TEXT NOT NULL
);

-- One row once the switch was ever touched; engaged is 0 or 1.
CREATE TABLE kill_switch (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    engaged BIGINT NOT NULL CHECK (engaged IN (0, 1)),
    reason  TEXT    NOT NULL,
    source  TEXT    NOT NULL,
    at      TEXT    NOT NULL
);

CREATE TABLE eod_snapshots (
    date     TEXT COLLATE "C" PRIMARY KEY,
    snapshot TEXT NOT NULL,
    equity   TEXT NOT NULL,
    cash     TEXT NOT NULL,
    gross    TEXT NOT NULL,
    net      TEXT NOT NULL,
    day_pnl  TEXT NOT NULL
);

-- The latest reconciliation only; the history is in the audit log.
CREATE TABLE reconciliations (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    ok          BIGINT NOT NULL CHECK (ok IN (0, 1)),
    differences TEXT    NOT NULL,
    at          TEXT    NOT NULL
);
