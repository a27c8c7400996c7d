-- Discovery (docs/POLICY.md, "Joining"; docs/REST.md): the conversation summary also keeps
-- the scope, the description, the number of active members and how a non-member gets in
-- (`join_route`: `open | request | invite`), written by the same commit
-- as the change that moves them (the engine's projection of the conversation after it).
-- As Postgres migration 0014: the count is filled from the memberships; rows written before
-- are marked not projected and keep `private` (never listed) until the server projects them
-- from their documents at start (ARCHITECTURE.md, "Discovery").
ALTER TABLE conversations ADD COLUMN scope TEXT NOT NULL DEFAULT 'private';
ALTER TABLE conversations ADD COLUMN description TEXT;
ALTER TABLE conversations ADD COLUMN active_members INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN join_route TEXT NOT NULL DEFAULT 'invite';
-- Set by every commit of the summary; 0: written before this migration.
ALTER TABLE conversations ADD COLUMN discovery_projected INTEGER NOT NULL DEFAULT 0;
CREATE INDEX conversations_unprojected ON conversations (tenant, conv)
    WHERE NOT discovery_projected;
UPDATE conversations SET active_members = (SELECT count(*) FROM memberships m
    WHERE m.tenant = conversations.tenant AND m.conv = conversations.conv
      AND m.status = 'active');

-- The discovery listing: one range of this index per page, holding only conversations
-- someone may discover (SQLite compares text bytewise, as the cursor needs).
CREATE INDEX conversations_discover ON conversations (tenant, conv)
    WHERE scope <> 'private' AND lifecycle <> 'deleted' AND kind IN ('group', 'channel');
