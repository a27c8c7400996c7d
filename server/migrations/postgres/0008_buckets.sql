-- The message bucket parts of each conversation (ARCHITECTURE.md, "Bounded buckets"), so a
-- client lists them (newest first, paged) instead of guessing: a row per `msgs` document,
-- written by a trigger when the document's row is first inserted (inside the commit that
-- stores its first change, on any node).
CREATE TABLE buckets (
    tenant  TEXT NOT NULL,
    conv    TEXT NOT NULL,
    period  BIGINT NOT NULL,
    part    INTEGER NOT NULL,
    PRIMARY KEY (tenant, conv, period, part)
);

-- A msgs key is `<conv>.<period>` or `<conv>.<period>.<part>`; a conversation id has no `.`.
CREATE FUNCTION confab_bucket_row(d_id text, d_tenant text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    k text := split_part(d_id, '/', 3);
    c text := split_part(k, '.', 1);
    rest text := substr(k, length(c) + 2);
BEGIN
    INSERT INTO buckets (tenant, conv, period, part)
    VALUES (d_tenant, c, split_part(rest, '.', 1)::bigint,
            COALESCE(NULLIF(split_part(rest, '.', 2), ''), '0')::integer)
    ON CONFLICT DO NOTHING;
END $$;

CREATE FUNCTION confab_note_bucket() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM confab_bucket_row(NEW.doc_id, NEW.tenant);
    RETURN NULL;
END $$;

CREATE TRIGGER docs_note_bucket AFTER INSERT ON docs
    FOR EACH ROW WHEN (split_part(NEW.doc_id, '/', 2) = 'msgs')
    EXECUTE FUNCTION confab_note_bucket();

-- Buckets stored before this migration.
SELECT confab_bucket_row(doc_id, tenant) FROM docs WHERE split_part(doc_id, '/', 2) = 'msgs';
