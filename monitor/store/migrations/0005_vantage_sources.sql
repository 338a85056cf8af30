-- Attempt counts and evidence of several vantage points in one store: the source of a
-- row is (service, channel, probe, vantage). Rows from before carry the vantage that
-- measured the service (a store had one), or '' when it has no verdict of it.
CREATE TABLE attempt_sources_new (
    id      INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    channel TEXT NOT NULL,
    probe   TEXT NOT NULL,
    vantage TEXT NOT NULL DEFAULT '',
    UNIQUE (service, channel, probe, vantage)
);
INSERT INTO attempt_sources_new (id, service, channel, probe, vantage)
    SELECT s.id, s.service, s.channel, s.probe,
           COALESCE((SELECT r.vantage FROM runs r WHERE r.service = s.service
                     ORDER BY r.last_second DESC LIMIT 1), '')
    FROM attempt_sources s;
DROP TABLE attempt_sources;
ALTER TABLE attempt_sources_new RENAME TO attempt_sources;
