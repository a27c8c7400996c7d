-- Prefix queries without reading every entry of the prefix (docs/SEARCH.md, "Cost"). FTS5
-- answers a prefix by merging the entries of every term that starts with it before its
-- first match, so "the" read every entry of "the", "they", "then" ... ; with a prefix index
-- of 2 and 3 characters such a prefix is one list read in order, and a longer prefix names
-- fewer terms. No query reads positions (every term is only required), so none are stored
-- (`detail=none`). The entries are written again from `message_search_time`, which holds
-- every entry's terms (both are written and deleted together, migration 0026).
DROP TABLE message_search;
CREATE VIRTUAL TABLE message_search USING fts5(
    terms,
    content = '',
    contentless_delete = 1,
    detail = none,
    prefix = '2 3',
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO message_search (rowid, terms)
    SELECT cid * 4294967296 + pos, terms FROM message_search_time;
