-- Scheduled messages (ARCHITECTURE.md, "Scheduled messages"). A scheduled message waits in
-- its author's private document; these tables tell the scheduler which private documents
-- to look at, and when.
--
-- A private document's row here says "may hold a due message from next_at on". The trigger
-- below marks it (next_at 0: look now, gen + 1) in the commit that changed the document, so
-- no schedule can be committed without its hint. The scheduler claims due rows (a lease
-- until claimed_until, FOR UPDATE SKIP LOCKED: one node at a time), reads the document,
-- posts what is due and sets next_at to the next time, or deletes the row, only if gen did
-- not move meanwhile.
CREATE TABLE schedule_hints (
    doc_id        TEXT PRIMARY KEY,
    gen           BIGINT NOT NULL DEFAULT 1,
    next_at       BIGINT NOT NULL DEFAULT 0,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    claimed_by    TEXT
);
CREATE INDEX schedule_hints_due ON schedule_hints (next_at);

-- The bucket a due message is posted to, written before the post: a retry after a crash or
-- a lost lease posts to the same bucket, where the message id is found, so a scheduled
-- message is posted once. Deleted once the private document is settled.
CREATE TABLE schedule_posts (
    doc_id   TEXT NOT NULL,
    message  TEXT NOT NULL,
    bucket   TEXT NOT NULL,
    PRIMARY KEY (doc_id, message)
);

CREATE FUNCTION confab_schedule_hint() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO schedule_hints (doc_id) VALUES (NEW.doc_id)
    ON CONFLICT (doc_id) DO UPDATE SET gen = schedule_hints.gen + 1, next_at = 0;
    RETURN NULL;
END $$;

CREATE TRIGGER docs_schedule_hint AFTER INSERT OR UPDATE OF last_seq ON docs
    FOR EACH ROW WHEN (NEW.doc_id LIKE '%/private/%')
    EXECUTE FUNCTION confab_schedule_hint();
