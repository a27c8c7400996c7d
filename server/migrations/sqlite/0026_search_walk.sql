-- Search cost bounded by the page, not the tenant's matches (docs/SEARCH.md, "Cost"): see
-- migrations/postgres/0033_search_walk.sql. FTS5 has no order but its rowid's, so every
-- entry also has a row here in the results' order, with its terms: a query whose terms
-- match many messages walks these newest first and checks the terms in the row; one whose
-- terms match few reads them from FTS5 and sorts them (the store counts the matches, up
-- to a bound, to choose).
CREATE TABLE message_search_time (
    created_at  INTEGER NOT NULL,
    cid         INTEGER NOT NULL,
    pos         INTEGER NOT NULL,
    terms       TEXT NOT NULL,
    PRIMARY KEY (created_at, cid, pos)
) WITHOUT ROWID;

-- Entries indexed before this migration: their terms are not stored anywhere readable
-- (FTS5 without content), so they are indexed again by the backfill below.
INSERT INTO message_search (message_search) VALUES ('delete-all');

CREATE TRIGGER messages_search_time_deleted AFTER UPDATE OF deleted ON messages
    WHEN NEW.deleted <> 0 AND OLD.deleted = 0
BEGIN
    DELETE FROM message_search_time
        WHERE created_at = NEW.created_at AND cid = NEW.cid AND pos = NEW.pos;
END;

CREATE TRIGGER messages_search_time_dropped AFTER DELETE ON messages
BEGIN
    DELETE FROM message_search_time
        WHERE created_at = OLD.created_at AND cid = OLD.cid AND pos = OLD.pos;
END;

-- The backfill of messages without an entry (`engine::search_backfill`): see Postgres 0033.
CREATE TABLE search_backfill (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    cid   INTEGER NOT NULL,
    pos   INTEGER NOT NULL,
    done  INTEGER NOT NULL
);
INSERT INTO search_backfill (id, cid, pos, done)
    SELECT 1, -1, -1, NOT EXISTS (SELECT 1 FROM messages);
