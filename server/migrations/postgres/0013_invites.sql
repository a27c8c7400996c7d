-- Invite links (issue 18, "Joining"; docs/POLICY.md). The token is never stored: only its
-- SHA-256, so a database leak does not hand out links. A use is counted by one guarded
-- UPDATE (`uses < max_uses`), so concurrent joins never exceed `max_uses`.
CREATE TABLE invites (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    conv        TEXT NOT NULL,
    token_hash  BYTEA NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    max_uses    BIGINT,
    uses        BIGINT NOT NULL DEFAULT 0,
    revoked_at  BIGINT,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX invites_token ON invites (token_hash);
CREATE INDEX invites_conv ON invites (tenant, conv, created_at);
