-- keel paper broker: the simulated venue's own durable state.
-- Decimals are stored as TEXT (exact), instants as RFC 3339 TEXT.

CREATE TABLE account (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    account_id  TEXT NOT NULL,
    seed        TEXT NOT NULL,
    cash        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- Persisted counters: calls (fault decisions), events (event faults), orders (order ids).
CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);

CREATE TABLE positions (
    symbol    TEXT PRIMARY KEY,
    qty       TEXT NOT NULL,
    avg_cost  TEXT NOT NULL
);

-- One row per order ever received (accepted or rejected); `doc` is the full
-- simulator record (the broker order plus scheduling state) as JSON.
CREATE TABLE orders (
    seq              INTEGER PRIMARY KEY,
    client_order_id  TEXT NOT NULL UNIQUE,
    broker_order_id  TEXT NOT NULL UNIQUE,
    symbol           TEXT NOT NULL,
    status           TEXT NOT NULL,
    doc              TEXT NOT NULL
);
CREATE INDEX orders_by_status ON orders (status);

CREATE TABLE fills (
    fill_id          TEXT PRIMARY KEY,
    client_order_id  TEXT NOT NULL REFERENCES orders (client_order_id),
    symbol           TEXT NOT NULL,
    side             TEXT NOT NULL,
    qty              TEXT NOT NULL,
    price            TEXT NOT NULL,
    at               TEXT NOT NULL
);

-- The durable order-event stream; seq is the consumer's cursor.
CREATE TABLE events (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    at               TEXT NOT NULL,
    kind             TEXT NOT NULL,
    client_order_id  TEXT NOT NULL,
    payload          TEXT NOT NULL
);

-- Every submit that reached order handling, per client order id.
CREATE TABLE submissions (
    client_order_id  TEXT PRIMARY KEY,
    received         INTEGER NOT NULL,
    first_at         TEXT NOT NULL,
    last_at          TEXT NOT NULL
);
