-- Each vantage's last minutes of verdicts in full (outcome counts, degraded, excluded),
-- from which the leader combines one verdict per second for the incident policy
-- (monitor/combiner.py). Written only on a store several daemons share; pruned after an
-- hour by the leader. Runs stay the history; this is a short buffer.
CREATE TABLE recent_verdicts (
    service  TEXT    NOT NULL,
    second   INTEGER NOT NULL,
    vantage  TEXT    NOT NULL,
    channel  TEXT    NOT NULL,
    verdict  TEXT    NOT NULL,
    reason   TEXT,
    degraded INTEGER NOT NULL DEFAULT 0,
    excluded INTEGER NOT NULL DEFAULT 0,
    counts   TEXT,
    PRIMARY KEY (service, second, vantage, channel)
);
