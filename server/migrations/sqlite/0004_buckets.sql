-- The message bucket parts of each conversation (ARCHITECTURE.md, "Bounded buckets"), so a
-- client lists them (newest first, paged) instead of guessing: a row per `msgs` document,
-- written by a trigger when the document's row is first inserted (inside the commit that
-- stores its first change).
CREATE TABLE buckets (
    tenant  TEXT NOT NULL,
    conv    TEXT NOT NULL,
    period  INTEGER NOT NULL,
    part    INTEGER NOT NULL,
    PRIMARY KEY (tenant, conv, period, part)
) WITHOUT ROWID;

-- A doc id is `<tenant>/msgs/<conv>.<period>[.<part>]`; neither tenant nor conversation
-- holds `/` or `.`. `key` is what follows `<tenant>/msgs/`, `tail` what follows `<conv>.`.
CREATE VIEW bucket_keys AS
SELECT doc_id, tenant,
       substr(k, 1, instr(k, '.') - 1) AS conv,
       substr(k, instr(k, '.') + 1) AS tail
FROM (SELECT doc_id, tenant, substr(doc_id, length(tenant) + 7) AS k FROM docs
      WHERE substr(doc_id, length(tenant) + 1, 6) = '/msgs/');

CREATE TRIGGER docs_note_bucket AFTER INSERT ON docs
WHEN substr(NEW.doc_id, length(NEW.tenant) + 1, 6) = '/msgs/'
BEGIN
    INSERT OR IGNORE INTO buckets (tenant, conv, period, part)
    SELECT tenant, conv,
           CAST(CASE WHEN instr(tail, '.') = 0 THEN tail
                     ELSE substr(tail, 1, instr(tail, '.') - 1) END AS INTEGER),
           CAST(CASE WHEN instr(tail, '.') = 0 THEN '0'
                     ELSE substr(tail, instr(tail, '.') + 1) END AS INTEGER)
    FROM bucket_keys WHERE doc_id = NEW.doc_id;
END;

-- Buckets stored before this migration.
INSERT OR IGNORE INTO buckets (tenant, conv, period, part)
SELECT tenant, conv,
       CAST(CASE WHEN instr(tail, '.') = 0 THEN tail
                 ELSE substr(tail, 1, instr(tail, '.') - 1) END AS INTEGER),
       CAST(CASE WHEN instr(tail, '.') = 0 THEN '0'
                 ELSE substr(tail, instr(tail, '.') + 1) END AS INTEGER)
FROM bucket_keys;
