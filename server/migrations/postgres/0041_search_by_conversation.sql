-- The entries of the conversations a searcher may read, found without reading the others
-- (docs/SEARCH.md, "Cost"): the GIN index gives every entry of the terms in the tenant, and
-- a search reads a tenth of the conversations or fewer, so the planner ANDs the two
-- bitmaps and reads only the heap pages that hold both. A conversation's entries are many,
-- so the btree keeps each key once with a list of its rows (deduplication), ~7 B an entry.
CREATE INDEX message_search_cid ON message_search (cid);
