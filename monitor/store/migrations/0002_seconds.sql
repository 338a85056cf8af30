-- Seconds: verdict runs, per-minute attempt counts, attempt evidence, maintenance windows.

-- One row per stretch of equal verdicts of one (service, channel, vantage); a month of a
-- healthy stream is a handful of rows. `reason` is set only for unknown runs, and runs of
-- different reasons are different runs. Seconds are inclusive on both ends.
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    service      TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    vantage      TEXT    NOT NULL,
    verdict      TEXT    NOT NULL,
    reason       TEXT,
    first_second INTEGER NOT NULL,
    last_second  INTEGER NOT NULL,
    CHECK (last_second >= first_second)
);
-- the open run of a stream (its latest) and "last second stored"
CREATE INDEX runs_stream_last ON runs (service, channel, vantage, last_second);
-- runs overlapping a range, for reports and the seconds API
CREATE INDEX runs_range ON runs (service, channel, first_second);

-- (service, channel, probe) named once, so that the two high-volume tables below carry a
-- one-byte integer instead of three strings per row (the 50 MB/month budget).
CREATE TABLE attempt_sources (
    id      INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    channel TEXT NOT NULL,
    probe   TEXT NOT NULL,
    UNIQUE (service, channel, probe)
);

-- Attempts per minute by outcome; WITHOUT ROWID so the primary key is the table itself
-- (no second copy of every key in a separate index).
CREATE TABLE minute_counts (
    source  INTEGER NOT NULL REFERENCES attempt_sources (id),
    minute  INTEGER NOT NULL,
    outcome TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (source, minute, outcome)
) WITHOUT ROWID;

-- Full attempts, kept only for unavailable and degraded seconds (the writer chooses).
-- This is the biggest table, so it is kept tight: times are integer microseconds (the
-- launch relative to its second), the attempt id is NULL when it is the launcher's own
-- "{probe}:{second}:{slot}", `detail` is compact JSON (NULL when empty), and the table is
-- its own (source, second, slot) index. That key also makes a replayed write a no-op.
CREATE TABLE evidence (
    source     INTEGER NOT NULL REFERENCES attempt_sources (id),
    second     INTEGER NOT NULL,
    slot       INTEGER NOT NULL,
    outcome    TEXT    NOT NULL,
    latency_us INTEGER NOT NULL,
    started_us INTEGER NOT NULL,
    attempt_id TEXT,
    detail     TEXT,
    PRIMARY KEY (source, second, slot)
) WITHOUT ROWID;

-- Scheduled maintenance: [start_second, end_second) of a service, or of every service ('*').
CREATE TABLE maintenance (
    id           INTEGER PRIMARY KEY,
    service      TEXT    NOT NULL,
    start_second INTEGER NOT NULL,
    end_second   INTEGER NOT NULL,
    reason       TEXT    NOT NULL DEFAULT '',
    source       TEXT    NOT NULL DEFAULT 'api',
    CHECK (end_second > start_second)
);
CREATE INDEX maintenance_service_start ON maintenance (service, start_second);
