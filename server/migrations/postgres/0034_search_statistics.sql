-- The planner's choice between the walk and the GIN index (docs/SEARCH.md, "Cost") reads
-- the statistics of `terms`: a tsvector's keep its most common lexemes, ten per unit of the
-- statistics target, and estimates every other one (a middling word, a prefix of one) at
-- the floor of that list. The default target (100) keeps 1,000 lexemes; 1,000 keeps 10,000,
-- so the words whose matches decide the choice are counted, not guessed.
ALTER TABLE message_search ALTER COLUMN terms SET STATISTICS 1000;
ANALYZE message_search;
