-- A batch's search terms find their message rows one probe of `messages_id` each, whatever
-- the conversation's history (as migration 0015 does for the commit functions). The join of
-- 0033 let Postgres scan the conversation's messages by `cid` alone (`messages_id`'s first
-- column) and hash them: every plaintext commit read every message row of its
-- conversation, so a burst into one conversation slowed as it grew. The lateral subquery
-- with `OFFSET 0` cannot be pulled up into a join: it runs per term row, with both index
-- columns. Otherwise as in 0033.
CREATE OR REPLACE FUNCTION confab_search_index(
    x_tenants text[], x_convs text[], x_ids text[], x_terms text[]
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO message_search (cid, pos, created_at, terms)
        SELECT m.cid, m.pos, m.created_at, array_to_tsvector(string_to_array(x.terms, ' '))
        FROM UNNEST(x_tenants, x_convs, x_ids, x_terms) AS x(t, c, id, terms)
        JOIN conversations cv ON cv.tenant = x.t AND cv.conv = x.c
        CROSS JOIN LATERAL (
            SELECT r.cid, r.pos, r.created_at FROM messages r
            WHERE r.cid = cv.id AND hashtext(r.message) = hashtext(x.id)
                AND r.message = x.id AND NOT r.deleted
            OFFSET 0
        ) m
        ON CONFLICT (created_at, cid, pos) DO UPDATE SET terms = EXCLUDED.terms;
$$;
