-- the durable notification outbox: one row per (incident event, notifier) to deliver.
-- No foreign key to incidents(id): the outbox must accept an event even when the incidents
-- table lives in another migration or backend, and rows outlive pruned incidents.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id     INTEGER NOT NULL,
    notifier        TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    -- payload["seq"], the per-incident event sequence number: with the three columns
    -- before it, the key that makes a replayed event a no-op
    seq             INTEGER NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      REAL    NOT NULL,
    next_attempt_at REAL    NOT NULL,
    tries           INTEGER NOT NULL DEFAULT 0,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'failed')),
    last_error      TEXT,
    sent_at         REAL,
    UNIQUE (incident_id, notifier, event, seq)
);
-- the dispatcher's question, "what is due?", stays cheap as sent rows pile up: both
-- indexes hold pending rows only (due items; the head of each incident/notifier pair)
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_pending ON outbox (incident_id, notifier, id) WHERE state = 'pending';
CREATE INDEX outbox_incident ON outbox (incident_id, id);
