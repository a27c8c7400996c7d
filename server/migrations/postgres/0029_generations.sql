-- A document's generation (docs/SCHEMA.md, "Generations"): 0 until its history is first cut,
-- then the number of the cut that wrote its snapshot. A cut replaces the log and snapshot in
-- one transaction and takes the next seq. A metadata-only column add: no table rewrite.
ALTER TABLE docs ADD COLUMN generation bigint NOT NULL DEFAULT 0;
