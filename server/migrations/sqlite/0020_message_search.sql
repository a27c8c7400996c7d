-- Server-side search of plaintext conversations: see migrations/postgres/0027_message_search.sql.
-- An FTS5 table without content (the text is not stored twice; `contentless_delete` lets an
-- entry be replaced or removed). Its rowid is the message's (cid, pos) as
-- cid * 2^32 + pos. The server folds the terms (confab_core::search); the tokenizer folds
-- the same way again, so what it splits is what the query splits.
CREATE VIRTUAL TABLE message_search USING fts5(
    terms,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_search_deleted AFTER UPDATE OF deleted ON messages
    WHEN NEW.deleted <> 0 AND OLD.deleted = 0
BEGIN
    DELETE FROM message_search WHERE rowid = NEW.cid * 4294967296 + NEW.pos;
END;

CREATE TRIGGER messages_search_dropped AFTER DELETE ON messages
BEGIN
    DELETE FROM message_search WHERE rowid = OLD.cid * 4294967296 + OLD.pos;
END;
