-- A deleted or edited message's terms leave the file, not only the answers (docs/STORAGE.md,
-- "What a delete removes"). `contentless_delete` only marked an entry deleted: its terms
-- stayed in the segment until FTS5 merged it, which for old messages is never. FTS5's
-- `secure-delete` takes an entry's terms out of the pages that hold them (`PRAGMA
-- secure_delete` zeroes the freed bytes), given the entry's terms, which
-- `message_search_time` holds. It costs milliseconds an entry (every segment is searched
-- for every term), so a deleted or dropped message's entry is queued in `search_forget`
-- (its row there leaves `message_search_time` at once) and the purge pass deletes it a few
-- at a time (`Forgetting::forget_search_entries`); until then the search's join to a live
-- row keeps it out of answers. An edit replaces its entry in the commit. An entry's rowid
-- is never used again: conversations are never deleted and positions never reused.
DROP TRIGGER messages_search_deleted;
DROP TRIGGER messages_search_dropped;
DROP TRIGGER messages_search_time_deleted;
DROP TRIGGER messages_search_time_dropped;
DROP TABLE message_search;
CREATE VIRTUAL TABLE message_search USING fts5(
    terms,
    content = '',
    detail = none,
    prefix = '2 3',
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO message_search (message_search, rank) VALUES ('secure-delete', 1);
INSERT INTO message_search (rowid, terms)
    SELECT cid * 4294967296 + pos, terms FROM message_search_time;

CREATE TABLE search_forget (
    entry   INTEGER PRIMARY KEY,
    terms   TEXT NOT NULL
);

CREATE TRIGGER messages_search_deleted AFTER UPDATE OF deleted ON messages
    WHEN NEW.deleted <> 0 AND OLD.deleted = 0
BEGIN
    INSERT INTO search_forget (entry, terms)
        SELECT NEW.cid * 4294967296 + NEW.pos, terms FROM message_search_time
        WHERE created_at = NEW.created_at AND cid = NEW.cid AND pos = NEW.pos;
    DELETE FROM message_search_time
        WHERE created_at = NEW.created_at AND cid = NEW.cid AND pos = NEW.pos;
END;

CREATE TRIGGER messages_search_dropped AFTER DELETE ON messages
BEGIN
    INSERT INTO search_forget (entry, terms)
        SELECT OLD.cid * 4294967296 + OLD.pos, terms FROM message_search_time
        WHERE created_at = OLD.created_at AND cid = OLD.cid AND pos = OLD.pos;
    DELETE FROM message_search_time
        WHERE created_at = OLD.created_at AND cid = OLD.cid AND pos = OLD.pos;
END;
