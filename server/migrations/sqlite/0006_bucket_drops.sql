-- Retention (issue 18): the audit trail of message buckets deleted because the
-- conversation's `retention_days` expired them (ARCHITECTURE.md, "Retention"). One row per
-- bucket part, written in the transaction that deletes it; it holds counts, no content.
CREATE TABLE bucket_drops (
    tenant      TEXT NOT NULL,
    conv        TEXT NOT NULL,
    period      INTEGER NOT NULL,
    part        INTEGER NOT NULL,
    retention_days INTEGER NOT NULL,
    changes     INTEGER NOT NULL,
    messages    INTEGER NOT NULL,
    dropped_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, conv, period, part)
) WITHOUT ROWID;
