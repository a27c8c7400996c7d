-- Due history cuts: see migrations/postgres/0032_cut_due.sql (the same table and trigger;
-- one node, so the claim is a conditional update). SQLite's `min` of a NULL is NULL, hence
-- the coalesces; the time is the database's clock in ms.
CREATE TABLE cut_due (
    cid           INTEGER NOT NULL,
    period        INTEGER NOT NULL,
    part          INTEGER NOT NULL,
    deleted_at    INTEGER,
    edited_at     INTEGER,
    gen           INTEGER NOT NULL DEFAULT 1,
    claimed_until INTEGER NOT NULL DEFAULT 0,
    claimed_by    TEXT,
    PRIMARY KEY (cid, period, part)
);

CREATE TRIGGER messages_cut_due AFTER UPDATE OF preview, deleted ON messages
    WHEN NOT OLD.deleted
BEGIN
    INSERT INTO cut_due (cid, period, part, deleted_at, edited_at)
    VALUES (NEW.cid, NEW.period, NEW.part,
            CASE WHEN NEW.deleted THEN CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) END,
            CASE WHEN NEW.deleted THEN NULL ELSE CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) END)
    ON CONFLICT (cid, period, part) DO UPDATE SET gen = gen + 1,
        deleted_at = min(coalesce(deleted_at, excluded.deleted_at),
                         coalesce(excluded.deleted_at, deleted_at)),
        edited_at = min(coalesce(edited_at, excluded.edited_at),
                        coalesce(excluded.edited_at, edited_at));
END;

-- Conversation deletion by its owner: see migrations/postgres/0032_cut_due.sql.
CREATE TRIGGER conversations_deleted AFTER UPDATE OF lifecycle ON conversations
    WHEN NEW.lifecycle = 'deleted' AND OLD.lifecycle <> 'deleted'
BEGIN
    UPDATE messages SET deleted = 1, preview = '' WHERE cid = NEW.id AND deleted = 0;
    UPDATE notifications SET preview = ''
        WHERE tenant = NEW.tenant AND conv = NEW.conv AND preview <> '';
END;
