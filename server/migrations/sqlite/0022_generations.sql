-- A document's generation (docs/SCHEMA.md, "Generations"): 0 until its history is first cut,
-- then the number of the cut that wrote its snapshot. A cut replaces the log and snapshot in
-- one transaction and takes the next seq.
ALTER TABLE docs ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
