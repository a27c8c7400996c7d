-- Forgetting (docs/STORAGE.md, "What a delete removes"; docs/OPERATIONS.md, "Account
-- erasure"). Both tables hold ids and counts, never content.

-- Blobs a deleted message named, waiting for the sweep: due `deleted_at` plus the configured
-- delay. A row is a candidate only: the sweep deletes the blob when no live message of its
-- conversation names it, and removes the row either way.
CREATE TABLE blob_releases (
    tenant      TEXT NOT NULL,
    conv        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    deleted_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, conv, hash)
);
CREATE INDEX blob_releases_due ON blob_releases (deleted_at);

-- One account's erasure: where it stands (`step`, the messages' cursor) and what it did.
-- Resumed by any node whose lease (`lease_until`) is past.
CREATE TABLE erasures (
    tenant        TEXT NOT NULL,
    account       TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    requested_at  BIGINT NOT NULL,
    step          TEXT NOT NULL,
    after_cid     BIGINT NOT NULL DEFAULT 0,
    after_pos     BIGINT NOT NULL DEFAULT 0,
    messages      BIGINT NOT NULL DEFAULT 0,
    skipped       BIGINT NOT NULL DEFAULT 0,
    left_convs    BIGINT NOT NULL DEFAULT 0,
    kept_owner    BIGINT NOT NULL DEFAULT 0,
    devices       BIGINT NOT NULL DEFAULT 0,
    lease_until   BIGINT NOT NULL DEFAULT 0,
    updated_at    BIGINT NOT NULL,
    done_at       BIGINT,
    PRIMARY KEY (tenant, account)
);

-- An account's messages, for its erasure: without it the erasure reads every message.
CREATE INDEX messages_author ON messages (author, cid, pos);
