-- Search cost bounded by the page, not the tenant's matches (docs/SEARCH.md, "Cost").
-- Each entry carries its message's `created_at` (it never changes), keyed in the results'
-- order: a query whose terms match many messages walks the newest entries and stops at the
-- page, one whose terms match few reads them from the GIN index and sorts them. The
-- planner chooses from the query's own estimate (the search statement is planned for its
-- parameters, never as a generic plan).
ALTER TABLE message_search ADD COLUMN created_at BIGINT;
UPDATE message_search s SET created_at = m.created_at
    FROM messages m WHERE m.cid = s.cid AND m.pos = s.pos;
ALTER TABLE message_search ALTER COLUMN created_at SET NOT NULL;
-- The key is the order's: `(cid, pos)` alone needs no index of its own (an entry is found
-- from its row, which has `created_at`), and the commit writes one btree entry less.
-- A dropped row takes its entry along by a statement trigger, not the foreign key, whose
-- check cost a query per entry (an entry is written by a join on its row, so it cannot be
-- without one).
ALTER TABLE message_search DROP CONSTRAINT message_search_cid_pos_fkey;
ALTER TABLE message_search DROP CONSTRAINT message_search_pkey;
CREATE UNIQUE INDEX message_search_time ON message_search (created_at, cid, pos);

CREATE OR REPLACE FUNCTION confab_search_unindex() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_search
        WHERE created_at = NEW.created_at AND cid = NEW.cid AND pos = NEW.pos;
    RETURN NULL;
END $$;

CREATE FUNCTION confab_search_dropped() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_search s USING gone g
        WHERE s.created_at = g.created_at AND s.cid = g.cid AND s.pos = g.pos;
    RETURN NULL;
END $$;
CREATE TRIGGER messages_search_dropped AFTER DELETE ON messages
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION confab_search_dropped();

CREATE OR REPLACE FUNCTION confab_search_index(
    x_tenants text[], x_convs text[], x_ids text[], x_terms text[]
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO message_search (cid, pos, created_at, terms)
        SELECT m.cid, m.pos, m.created_at, array_to_tsvector(string_to_array(x.terms, ' '))
        FROM UNNEST(x_tenants, x_convs, x_ids, x_terms) AS x(t, c, id, terms)
        JOIN conversations cv ON cv.tenant = x.t AND cv.conv = x.c
        JOIN messages m ON m.cid = cv.id AND hashtext(m.message) = hashtext(x.id)
            AND m.message = x.id
        WHERE NOT m.deleted
        ON CONFLICT (created_at, cid, pos) DO UPDATE SET terms = EXCLUDED.terms;
$$;

-- The backfill of messages projected before the index (0027) had terms
-- (`engine::search_backfill`): every message row is visited once in (cid, pos) order;
-- `cid`/`pos` is the last one visited, `done` set when none is left. One row.
CREATE TABLE search_backfill (
    id    BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    cid   BIGINT NOT NULL,
    pos   BIGINT NOT NULL,
    done  BOOLEAN NOT NULL
);
INSERT INTO search_backfill (cid, pos, done)
    SELECT -1, -1, NOT EXISTS (SELECT 1 FROM messages);

-- The planner's choice between the walk and the GIN index reads the statistics: have them
-- now, not at autovacuum's next pass.
ANALYZE message_search;
