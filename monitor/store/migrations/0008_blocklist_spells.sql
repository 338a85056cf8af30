-- Blocklist (DNSBL) listing spells: one row per listing of a service's sending IP or
-- domain on one zone, from the check that saw it to the one that confirmed the
-- delisting (NULL while listed). `zone` is the list's public name, never a query name
-- (a Spamhaus DQS query name holds the key). Written by the leader (fenced).
CREATE TABLE blocklist_spells (
    id         INTEGER PRIMARY KEY,
    service    TEXT NOT NULL,
    target     TEXT NOT NULL,
    zone       TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at   REAL,
    codes      TEXT NOT NULL DEFAULT '',
    txt        TEXT,
    UNIQUE (service, target, zone, started_at)
);
CREATE INDEX blocklist_spells_open ON blocklist_spells (service, ended_at);
