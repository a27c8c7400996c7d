-- How many entries of the conversations `cids` the planner expects the tsquery `q` to match,
-- from its statistics, reading nothing: what a search chooses its words-first read by
-- (docs/SEARCH.md, "Cost"). EXPLAIN takes no parameters, so the values go in as literals
-- (`%L` quotes them); the cast to tsquery refuses anything that is not one.
CREATE OR REPLACE FUNCTION confab_search_estimate(q text, cids int8[]) RETURNS double precision
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    plan json;
BEGIN
    EXECUTE format(
        'EXPLAIN (FORMAT JSON) SELECT 1 FROM message_search s '
        'WHERE s.cid = ANY(%L::int8[]) AND s.terms @@ %L::tsquery',
        cids, q::tsquery)
    INTO plan;
    RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::double precision;
END
$$;
