-- The order-lifecycle pipeline (ADR 0023; SQLite: money in INTEGER cents, ADR 0020): one row per order, and the alerts every pipeline
-- raises. `fold` holds the pipeline's own fold of the order's events (src/derived/orders.rs);
-- the other columns are derived from it for readers and are rewritten with it.

CREATE TABLE IF NOT EXISTS order_lifecycle (
    order_id         TEXT     PRIMARY KEY,
    state            TEXT,                      -- created, paid, ..., cancelled; NULL: payment only
    state_since      TEXT,
    customer_id      TEXT,
    store_id         INTEGER,
    amount           INTEGER,
    currency         TEXT,
    created_at       TEXT,
    paid_at          TEXT,
    packed_at        TEXT,
    shipped_at       TEXT,
    delivered_at     TEXT,
    cancelled_at     TEXT,
    payment_id       TEXT,
    payment_status   TEXT,
    payment_amount   INTEGER,
    payment_at       TEXT,
    payment_due_at   TEXT,
    payment_timeout  INTEGER     NOT NULL DEFAULT 0,
    payment_late     INTEGER     NOT NULL DEFAULT 0,
    stuck_state      TEXT,                      -- the current state, while an alert says it is stuck
    last_event_at    TEXT NOT NULL,
    next_check_at    TEXT,               -- pipeline time of the next verdict due
    fold             TEXT     NOT NULL,
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX IF NOT EXISTS order_lifecycle_next_check_idx
    ON order_lifecycle (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS order_lifecycle_state_idx ON order_lifecycle (state, state_since);

CREATE TABLE IF NOT EXISTS alerts (
    alert_id     TEXT     PRIMARY KEY,       -- UUID v5 of kind, subject and detail: raised once
    kind         TEXT     NOT NULL,          -- payment_timeout, order_stuck, ...
    severity     TEXT     NOT NULL,
    subject      TEXT     NOT NULL,
    at           TEXT NOT NULL,          -- event time the condition became true
    message      TEXT     NOT NULL,
    resolved_at  TEXT,                   -- event time it ended, if it did
    raised_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX IF NOT EXISTS alerts_at_idx ON alerts (at);
CREATE INDEX IF NOT EXISTS alerts_kind_at_idx ON alerts (kind, at);

-- The pipeline time the order sweeps last ran at, per consumer group.
CREATE TABLE IF NOT EXISTS pipeline_clock (
    group_id     TEXT     NOT NULL,
    pipeline     TEXT     NOT NULL,
    time         TEXT NOT NULL,
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (group_id, pipeline)
);

-- The inventory-at-risk pipeline (ADR 0024): one row per store and SKU the ERP reports on.
-- `fold` holds the pipeline's state (src/derived/stock.rs); the other columns are derived.
CREATE TABLE IF NOT EXISTS inventory_risks (
    store_id           INTEGER     NOT NULL,
    sku                INTEGER     NOT NULL,
    snapshot_at        TEXT,
    snapshot_on_hand   INTEGER,
    units_sold_after   INTEGER     NOT NULL,
    projected_on_hand  INTEGER,
    units_7d           INTEGER     NOT NULL,      -- over the velocity window ending at as_of
    velocity_per_day   REAL        NOT NULL,
    days_of_cover      REAL,                      -- NULL when nothing sold: unknown, not zero
    reorder_point      INTEGER     NOT NULL,
    lead_time_days     INTEGER     NOT NULL,
    risk_level         TEXT        NOT NULL,      -- ok, low, critical, stockout
    first_flagged_at   TEXT,
    as_of              TEXT,                      -- event time of the latest event applied
    next_check_at      TEXT,                      -- pipeline time at which pending events fall due
    fold               TEXT        NOT NULL,
    updated_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (store_id, sku)
);

CREATE INDEX IF NOT EXISTS inventory_risks_next_check_idx
    ON inventory_risks (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS inventory_risks_level_idx ON inventory_risks (risk_level);

-- Fraud rules (ADR 0025): one row per rule and key (card or customer) with the pipeline's state,
-- and one row per alert with the payments that tripped it (also a row of `alerts`).
CREATE TABLE IF NOT EXISTS fraud_state (
    rule           TEXT        NOT NULL,
    key            TEXT        NOT NULL,
    next_check_at  TEXT,
    fold           TEXT        NOT NULL,
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (rule, key)
);

CREATE INDEX IF NOT EXISTS fraud_state_next_check_idx
    ON fraud_state (next_check_at) WHERE next_check_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS fraud_alerts (
    alert_id     TEXT        PRIMARY KEY,
    rule         TEXT        NOT NULL,
    key          TEXT        NOT NULL,
    at           TEXT        NOT NULL,       -- event time of the payment that tripped it
    severity     TEXT        NOT NULL,
    payment_ids  TEXT        NOT NULL,       -- JSON array: the payments that tripped it
    message      TEXT        NOT NULL,
    raised_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX IF NOT EXISTS fraud_alerts_at_idx ON fraud_alerts (at);
