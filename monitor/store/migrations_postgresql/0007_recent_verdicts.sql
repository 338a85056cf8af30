-- PostgreSQL twin of migrations/0007_recent_verdicts.sql.
CREATE TABLE recent_verdicts (
    service  TEXT COLLATE "C" NOT NULL,
    second   BIGINT NOT NULL,
    vantage  TEXT COLLATE "C" NOT NULL,
    channel  TEXT COLLATE "C" NOT NULL,
    verdict  TEXT COLLATE "C" NOT NULL,
    reason   TEXT COLLATE "C",
    degraded INTEGER NOT NULL DEFAULT 0,
    excluded INTEGER NOT NULL DEFAULT 0,
    counts   TEXT,
    PRIMARY KEY (service, second, vantage, channel)
);
