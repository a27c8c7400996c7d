-- Retention (issue 18): the audit trail of message buckets deleted because the
-- conversation's `retention_days` expired them (ARCHITECTURE.md, "Retention"). One row per
-- bucket part, written in the transaction that deletes it; it holds counts, no content.
CREATE TABLE bucket_drops (
    tenant      TEXT NOT NULL,
    conv        TEXT NOT NULL,
    period      BIGINT NOT NULL,
    part        INTEGER NOT NULL,
    retention_days INTEGER NOT NULL,
    changes     BIGINT NOT NULL,
    messages    BIGINT NOT NULL,
    dropped_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, conv, period, part)
);
