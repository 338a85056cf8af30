-- key/value state: policy windows, watermarks, the report ledger
CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
