-- Incidents (Critical and Non-Critical Issues) and their timelines.
-- Times named *_at are epoch seconds as REAL (wall clock of the decision); first/last_unavailable
-- are the integer seconds the verdicts named. `data` is a JSON object (policy bookkeeping).
CREATE TABLE incidents (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    service             TEXT    NOT NULL,
    severity            TEXT    NOT NULL CHECK (severity IN ('critical', 'non_critical')),
    state               TEXT    NOT NULL
                        CHECK (state IN ('open', 'acknowledged', 'recovered', 'resolved')),
    kind                TEXT    NOT NULL,
    dedup_key           TEXT    NOT NULL DEFAULT '',
    opened_at           REAL    NOT NULL,
    first_unavailable   INTEGER,
    last_unavailable    INTEGER,
    unavailable_seconds INTEGER NOT NULL DEFAULT 0,
    acknowledged_at     REAL,
    acknowledged_by     TEXT,
    recovered_at        REAL,
    resolved_at         REAL,
    resolved_by         TEXT,
    ack_due_at          REAL,
    ack_breached_at     REAL,
    next_update_at      REAL,
    response_due_at     REAL,
    summary             TEXT    NOT NULL DEFAULT '',
    data                TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX incidents_service_state ON incidents (service, state);
CREATE INDEX incidents_opened_at ON incidents (opened_at);
-- the policy restores every incident not yet resolved at start
CREATE INDEX incidents_state ON incidents (state);

CREATE TABLE incident_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at          REAL    NOT NULL,
    kind        TEXT    NOT NULL,
    data        TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, id);
