-- Server-side search of plaintext conversations (docs/SEARCH.md). One row per indexed
-- message: its terms as a tsvector built from the lexemes the server folded
-- (confab_core::search), never parsed again by a text search configuration. Encrypted
-- conversations' messages never get a row. The index follows the projected row: a row that
-- becomes deleted loses its entry (trigger below), a row that goes (retention) takes it
-- along (the foreign key), both in the transaction that changes the row.
CREATE TABLE message_search (
    cid    BIGINT NOT NULL,
    pos    BIGINT NOT NULL,
    terms  TSVECTOR NOT NULL,
    PRIMARY KEY (cid, pos),
    FOREIGN KEY (cid, pos) REFERENCES messages (cid, pos) ON DELETE CASCADE
);
CREATE INDEX message_search_terms ON message_search USING gin (terms);

CREATE FUNCTION confab_search_unindex() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_search WHERE cid = NEW.cid AND pos = NEW.pos;
    RETURN NULL;
END $$;

CREATE TRIGGER messages_search_deleted AFTER UPDATE OF deleted ON messages
    FOR EACH ROW WHEN (NEW.deleted AND NOT OLD.deleted)
    EXECUTE FUNCTION confab_search_unindex();

-- A batch's search terms, after its messages and updates (the commit functions run first,
-- in the same statement): each replaces its message's entry, unless the row is deleted.
-- `x_terms` are space-separated lexemes.
CREATE FUNCTION confab_search_index(
    x_tenants text[], x_convs text[], x_ids text[], x_terms text[]
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO message_search (cid, pos, terms)
        SELECT m.cid, m.pos, array_to_tsvector(string_to_array(x.terms, ' '))
        FROM UNNEST(x_tenants, x_convs, x_ids, x_terms) AS x(t, c, id, terms)
        JOIN conversations cv ON cv.tenant = x.t AND cv.conv = x.c
        JOIN messages m ON m.cid = cv.id AND hashtext(m.message) = hashtext(x.id)
            AND m.message = x.id
        WHERE NOT m.deleted
        ON CONFLICT (cid, pos) DO UPDATE SET terms = EXCLUDED.terms;
$$;
