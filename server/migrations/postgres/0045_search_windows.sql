-- A search reads the readable conversations' entries of a span of time without passing the
-- others' (docs/SEARCH.md, "Cost"; `store::search::windows`): keyed by conversation, then
-- time, one descent per conversation finds its entries of the span. Its leading column
-- serves what `message_search_cid` (0041) served, the readable conversations' bitmap
-- ANDed with the GIN index's, so it replaces it: the commit writes one btree entry an
-- entry, as before.
CREATE INDEX message_search_cid_time ON message_search (cid, created_at);
DROP INDEX message_search_cid;
ANALYZE message_search;

-- The planner's estimate of how many entries the conversations `cids` have (`q` null), or
-- how many entries of every conversation match the tsquery `q` (`cids` null), reading
-- nothing: what a search chooses its reads by (docs/SEARCH.md, "Cost"). Apart, as the
-- planner estimates them together (independent), so the readable conversations' list is
-- planned once, not once per term. EXPLAIN takes no parameters, so the values go in as
-- literals (`%L` quotes them); the cast to tsquery refuses anything that is not one.
CREATE OR REPLACE FUNCTION confab_search_estimate(q text, cids int8[]) RETURNS double precision
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    plan json;
BEGIN
    IF q IS NULL THEN
        EXECUTE format(
            'EXPLAIN (FORMAT JSON) SELECT 1 FROM message_search s WHERE s.cid = ANY(%L::int8[])',
            cids)
        INTO plan;
    ELSIF cids IS NULL THEN
        EXECUTE format(
            'EXPLAIN (FORMAT JSON) SELECT 1 FROM message_search s WHERE s.terms @@ %L::tsquery',
            q::tsquery)
        INTO plan;
    ELSE
        EXECUTE format(
            'EXPLAIN (FORMAT JSON) SELECT 1 FROM message_search s '
            'WHERE s.cid = ANY(%L::int8[]) AND s.terms @@ %L::tsquery',
            cids, q::tsquery)
        INTO plan;
    END IF;
    RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::double precision;
END
$$;
