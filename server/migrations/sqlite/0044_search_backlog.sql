-- The inverted index is written behind the commit (docs/SEARCH.md, "Cost"): a commit writes
-- an entry's `message_search_time` row and names the entry here; the indexer
-- (`Projections::index_search_backlog`) moves the backlog into FTS5 a few thousand entries
-- a transaction, outside the commits that acknowledge messages, and FTS5's segment for
-- thousands of entries costs less per entry than one per commit. Until then a search reads
-- the backlog's terms from `message_search_time` (`SEARCH_LITE`). An entry is in FTS5 or
-- here, never both: an edit of an indexed entry deletes its old terms from FTS5 and names
-- it here again.
CREATE TABLE search_backlog (
    entry       INTEGER PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

-- A deleted or dropped message's entry: only one FTS5 holds is queued for the purge pass
-- (migration 0034); one in the backlog is only unnamed.
DROP TRIGGER messages_search_deleted;
DROP TRIGGER messages_search_dropped;

CREATE TRIGGER messages_search_deleted AFTER UPDATE OF deleted ON messages
    WHEN NEW.deleted <> 0 AND OLD.deleted = 0
BEGIN
    INSERT INTO search_forget (entry, terms)
        SELECT NEW.cid * 4294967296 + NEW.pos, terms FROM message_search_time
        WHERE created_at = NEW.created_at AND cid = NEW.cid AND pos = NEW.pos
          AND NOT EXISTS (SELECT 1 FROM search_backlog
            WHERE entry = NEW.cid * 4294967296 + NEW.pos);
    DELETE FROM search_backlog WHERE entry = NEW.cid * 4294967296 + NEW.pos;
    DELETE FROM message_search_time
        WHERE created_at = NEW.created_at AND cid = NEW.cid AND pos = NEW.pos;
END;

CREATE TRIGGER messages_search_dropped AFTER DELETE ON messages
BEGIN
    INSERT INTO search_forget (entry, terms)
        SELECT OLD.cid * 4294967296 + OLD.pos, terms FROM message_search_time
        WHERE created_at = OLD.created_at AND cid = OLD.cid AND pos = OLD.pos
          AND NOT EXISTS (SELECT 1 FROM search_backlog
            WHERE entry = OLD.cid * 4294967296 + OLD.pos);
    DELETE FROM search_backlog WHERE entry = OLD.cid * 4294967296 + OLD.pos;
    DELETE FROM message_search_time
        WHERE created_at = OLD.created_at AND cid = OLD.cid AND pos = OLD.pos;
END;
