-- PostgreSQL twin of migrations/0005_vantage_sources.sql: a source is (service, channel,
-- probe, vantage).
ALTER TABLE attempt_sources ADD COLUMN vantage TEXT COLLATE "C" NOT NULL DEFAULT '';
UPDATE attempt_sources s SET vantage = COALESCE(
    (SELECT r.vantage FROM runs r WHERE r.service = s.service
     ORDER BY r.last_second DESC LIMIT 1), '');
ALTER TABLE attempt_sources DROP CONSTRAINT attempt_sources_service_channel_probe_key;
ALTER TABLE attempt_sources ADD CONSTRAINT attempt_sources_source_key
    UNIQUE (service, channel, probe, vantage);
