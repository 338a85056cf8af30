-- Leadership among vantage points sharing a store: one row per lease, whose epoch grows by
-- one whenever its holder changes (the fencing token of every leader-only write). On
-- SQLite (one process) the daemon always holds it; the table is the same on PostgreSQL.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,
    expires_at REAL    NOT NULL
);
-- An outbox row is claimed by one holder for a while before it is sent (claim_due), so two
-- instances never send it at once; recording the outcome ends the claim.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until REAL;
