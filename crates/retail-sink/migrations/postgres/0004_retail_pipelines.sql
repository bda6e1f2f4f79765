-- The order-lifecycle pipeline (ADR 0023): one row per order, and the alerts every pipeline
-- raises. `fold` holds the pipeline's own fold of the order's events (src/derived/orders.rs);
-- the other columns are derived from it for readers and are rewritten with it.

CREATE TABLE IF NOT EXISTS order_lifecycle (
    order_id         text        PRIMARY KEY,
    state            text,                      -- created, paid, ..., cancelled; NULL: payment only
    state_since      timestamptz,
    customer_id      text,
    store_id         bigint,
    amount           numeric,
    currency         text,
    created_at       timestamptz,
    paid_at          timestamptz,
    packed_at        timestamptz,
    shipped_at       timestamptz,
    delivered_at     timestamptz,
    cancelled_at     timestamptz,
    payment_id       text,
    payment_status   text,
    payment_amount   numeric,
    payment_at       timestamptz,
    payment_due_at   timestamptz,
    payment_timeout  boolean     NOT NULL DEFAULT false,
    payment_late     boolean     NOT NULL DEFAULT false,
    stuck_state      text,                      -- the current state, while an alert says it is stuck
    last_event_at    timestamptz NOT NULL,
    next_check_at    timestamptz,               -- pipeline time of the next verdict due
    fold             jsonb       NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS order_lifecycle_next_check_idx
    ON order_lifecycle (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS order_lifecycle_state_idx ON order_lifecycle (state, state_since);

CREATE TABLE IF NOT EXISTS alerts (
    alert_id     uuid        PRIMARY KEY,       -- UUID v5 of kind, subject and detail: raised once
    kind         text        NOT NULL,          -- payment_timeout, order_stuck, ...
    severity     text        NOT NULL,
    subject      text        NOT NULL,
    at           timestamptz NOT NULL,          -- event time the condition became true
    message      text        NOT NULL,
    resolved_at  timestamptz,                   -- event time it ended, if it did
    raised_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS alerts_at_idx ON alerts (at);
CREATE INDEX IF NOT EXISTS alerts_kind_at_idx ON alerts (kind, at);

-- The pipeline time the order sweeps last ran at, per consumer group.
CREATE TABLE IF NOT EXISTS pipeline_clock (
    group_id     text        NOT NULL,
    pipeline     text        NOT NULL,
    time         timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, pipeline)
);

-- The inventory-at-risk pipeline (ADR 0024): one row per store and SKU the ERP reports on.
-- `fold` holds the pipeline's state (src/derived/stock.rs); the other columns are derived.
CREATE TABLE IF NOT EXISTS inventory_risks (
    store_id           bigint      NOT NULL,
    sku                bigint      NOT NULL,
    snapshot_at        timestamptz,
    snapshot_on_hand   bigint,
    units_sold_after   bigint      NOT NULL,
    projected_on_hand  bigint,
    units_7d           bigint      NOT NULL,      -- over the velocity window ending at as_of
    velocity_per_day   double precision NOT NULL,
    days_of_cover      double precision,          -- NULL when nothing sold: unknown, not zero
    reorder_point      bigint      NOT NULL,
    lead_time_days     bigint      NOT NULL,
    risk_level         text        NOT NULL,      -- ok, low, critical, stockout
    first_flagged_at   timestamptz,
    as_of              timestamptz,               -- event time of the latest event applied
    next_check_at      timestamptz,               -- pipeline time at which pending events fall due
    fold               jsonb       NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, sku)
);

CREATE INDEX IF NOT EXISTS inventory_risks_next_check_idx
    ON inventory_risks (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS inventory_risks_level_idx ON inventory_risks (risk_level);

-- Fraud rules (ADR 0025): one row per rule and key (card or customer) with the pipeline's state,
-- and one row per alert with the payments that tripped it (also a row of `alerts`).
CREATE TABLE IF NOT EXISTS fraud_state (
    rule           text        NOT NULL,
    key            text        NOT NULL,
    next_check_at  timestamptz,
    fold           jsonb       NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule, key)
);

CREATE INDEX IF NOT EXISTS fraud_state_next_check_idx
    ON fraud_state (next_check_at) WHERE next_check_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS fraud_alerts (
    alert_id     uuid        PRIMARY KEY,
    rule         text        NOT NULL,
    key          text        NOT NULL,
    at           timestamptz NOT NULL,       -- event time of the payment that tripped it
    severity     text        NOT NULL,
    payment_ids  jsonb       NOT NULL,       -- the payments that tripped it
    message      text        NOT NULL,
    raised_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS fraud_alerts_at_idx ON fraud_alerts (at);
