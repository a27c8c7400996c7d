-- Confab storage, version 1 (Postgres).
CREATE TABLE docs (
    doc_id        TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    last_seq      BIGINT NOT NULL DEFAULT 0,
    snapshot      BYTEA,
    snapshot_seq  BIGINT NOT NULL DEFAULT 0
);

-- Append-only log; (doc_id, seq) is unique so two nodes can never both take a seq.
CREATE TABLE changes (
    doc_id       TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    hash         BYTEA NOT NULL,
    bytes        BYTEA NOT NULL,
    account      TEXT NOT NULL,
    accepted_at  BIGINT NOT NULL,
    PRIMARY KEY (doc_id, seq)
);
CREATE UNIQUE INDEX changes_hash ON changes (doc_id, hash);

-- Hashes of compacted changes, so a resubmission after compaction still acks.
CREATE TABLE compacted_hashes (
    doc_id  TEXT NOT NULL,
    hash    BYTEA NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (doc_id, hash)
);

CREATE TABLE actors (
    tenant    TEXT NOT NULL,
    actor     BYTEA NOT NULL,
    account   TEXT NOT NULL,
    bound_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, actor)
);

CREATE TABLE conversations (
    tenant      TEXT NOT NULL,
    conv        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    title       TEXT,
    lifecycle   TEXT NOT NULL,
    parent      TEXT,
    created_at  BIGINT NOT NULL,
    last_pos    BIGINT NOT NULL DEFAULT 0,
    last_activity BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, conv)
);

CREATE TABLE memberships (
    tenant   TEXT NOT NULL,
    conv     TEXT NOT NULL,
    account  TEXT NOT NULL,
    role     TEXT NOT NULL,
    status   TEXT NOT NULL,
    PRIMARY KEY (tenant, conv, account)
);
CREATE INDEX memberships_account ON memberships (tenant, account, status);

CREATE TABLE messages (
    tenant      TEXT NOT NULL,
    conv        TEXT NOT NULL,
    message     TEXT NOT NULL,
    pos         BIGINT NOT NULL,
    doc_id      TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    author      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    preview     TEXT NOT NULL,
    deleted     BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (tenant, conv, message)
);
CREATE UNIQUE INDEX messages_pos ON messages (tenant, conv, pos);

CREATE TABLE read_markers (
    tenant   TEXT NOT NULL,
    conv     TEXT NOT NULL,
    account  TEXT NOT NULL,
    message  TEXT NOT NULL,
    PRIMARY KEY (tenant, conv, account)
);

CREATE TABLE rejections (
    id       BIGSERIAL PRIMARY KEY,
    tenant   TEXT NOT NULL,
    doc_id   TEXT NOT NULL,
    account  TEXT NOT NULL,
    hash     BYTEA,
    code     TEXT NOT NULL,
    reason   TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX rejections_tenant ON rejections (tenant, at);
