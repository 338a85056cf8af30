-- PostgreSQL twin of migrations/0001_core.sql: the same tables, numbers and meaning.
-- Text keys compare byte by byte (COLLATE "C"), as in SQLite, whatever the database's locale.
CREATE TABLE kv (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);
