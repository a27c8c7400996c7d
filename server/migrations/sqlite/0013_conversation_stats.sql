-- Per-conversation stats: see migrations/postgres/0019_conversation_stats.sql (the same
-- columns and counting; SQLite's triggers run per row).
ALTER TABLE conversations ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN media_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN file_count INTEGER NOT NULL DEFAULT 0;

UPDATE conversations SET
    message_count = (SELECT count(*) FROM messages m WHERE m.cid = conversations.id
                     AND m.deleted = 0),
    media_count = (SELECT count(*) FROM messages m WHERE m.cid = conversations.id
                   AND m.deleted = 0 AND m.kind IN ('image', 'video', 'voice')),
    file_count = (SELECT count(*) FROM messages m WHERE m.cid = conversations.id
                  AND m.deleted = 0 AND m.kind = 'file');

CREATE TRIGGER messages_stats_insert AFTER INSERT ON messages WHEN NEW.deleted = 0
BEGIN
    UPDATE conversations SET message_count = message_count + 1,
        media_count = media_count + (NEW.kind IN ('image', 'video', 'voice')),
        file_count = file_count + (NEW.kind = 'file')
        WHERE id = NEW.cid;
END;

CREATE TRIGGER messages_stats_update AFTER UPDATE OF deleted ON messages
    WHEN OLD.deleted <> NEW.deleted
BEGIN
    UPDATE conversations SET
        message_count = message_count + (CASE WHEN NEW.deleted <> 0 THEN -1 ELSE 1 END),
        media_count = media_count + (CASE WHEN NEW.deleted <> 0 THEN -1 ELSE 1 END)
            * (NEW.kind IN ('image', 'video', 'voice')),
        file_count = file_count + (CASE WHEN NEW.deleted <> 0 THEN -1 ELSE 1 END)
            * (NEW.kind = 'file')
        WHERE id = NEW.cid;
END;

CREATE TRIGGER messages_stats_delete AFTER DELETE ON messages WHEN OLD.deleted = 0
BEGIN
    UPDATE conversations SET message_count = message_count - 1,
        media_count = media_count - (OLD.kind IN ('image', 'video', 'voice')),
        file_count = file_count - (OLD.kind = 'file')
        WHERE id = OLD.cid;
END;
