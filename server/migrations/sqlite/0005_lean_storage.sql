-- Lean storage (issue 17): what the database keeps per message after compaction, from
-- ~1,600 bytes to under 300 (docs/BENCHMARKS.md, "Bytes on disk").
--
-- 1. `compacted_hashes` goes: a compacted change is found in the snapshot's Automerge
--    document, which knows the hashes of all its changes; its resubmission is acked with the
--    snapshot's seq (folded changes keep no seq of their own, docs/PROTOCOL.md).
-- 2. Conversations get an integer key, `id` (the rowid, kept by VACUUM because it is named),
--    and message rows name their conversation by it instead of repeating tenant and
--    conversation ids as text in the row and both indexes.
-- 3. A message row keeps its bucket as (period, part) instead of the document id's text.
DROP TABLE compacted_hashes;

CREATE TABLE conversations_lean (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL,
    conv        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    title       TEXT,
    lifecycle   TEXT NOT NULL,
    parent      TEXT,
    created_at  BIGINT NOT NULL,
    last_pos    BIGINT NOT NULL DEFAULT 0,
    last_activity BIGINT NOT NULL DEFAULT 0,
    UNIQUE (tenant, conv)
);
INSERT INTO conversations_lean (tenant, conv, kind, title, lifecycle, parent, created_at,
        last_pos, last_activity)
    SELECT tenant, conv, kind, title, lifecycle, parent, created_at, last_pos, last_activity
    FROM conversations;

CREATE TABLE messages_lean (
    cid         INTEGER NOT NULL,
    pos         INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    period      INTEGER NOT NULL,
    part        INTEGER NOT NULL,
    deleted     INTEGER NOT NULL,
    message     TEXT NOT NULL,
    author      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    preview     TEXT NOT NULL,
    PRIMARY KEY (cid, pos)
) WITHOUT ROWID;
-- `tail` is what follows `<tenant>/msgs/<conv>.` in the document id: `<period>[.<part>]`.
INSERT INTO messages_lean (cid, pos, created_at, seq, period, part, deleted, message, author,
        kind, preview)
    SELECT cid, pos, created_at, seq,
           CAST(CASE WHEN instr(tail, '.') = 0 THEN tail
                     ELSE substr(tail, 1, instr(tail, '.') - 1) END AS INTEGER),
           CAST(CASE WHEN instr(tail, '.') = 0 THEN '0'
                     ELSE substr(tail, instr(tail, '.') + 1) END AS INTEGER),
           deleted, message, author, kind, preview
    FROM (SELECT c.id AS cid, m.*,
                 substr(m.doc_id, length(m.tenant) + length(m.conv) + 8) AS tail
          FROM messages m JOIN conversations_lean c ON c.tenant = m.tenant AND c.conv = m.conv);

DROP TABLE messages;
DROP TABLE conversations;
ALTER TABLE conversations_lean RENAME TO conversations;
ALTER TABLE messages_lean RENAME TO messages;
CREATE UNIQUE INDEX messages_id ON messages (cid, message);
