-- Due history cuts (docs/STORAGE.md, "Cutting a part's history"). A row says a message part
-- holds a delete (`deleted_at`) or an edit (`edited_at`) whose earlier content its history
-- still keeps. The triggers below write it in the commit that stores the delete or edit, so
-- an acked delete is never left uncut by a restart or a lost node. Times are the database's
-- clock in ms, one clock for every node; the cut runner adds the configured delays, claims
-- due rows under a lease (`claimed_until`, FOR UPDATE SKIP LOCKED: one node at a time) and
-- after the cut deletes the row only if `gen` did not move meanwhile (a later delete or edit
-- keeps it due). No content: keys and times.
CREATE FUNCTION confab_now_ms() RETURNS int8 LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8
$$;

CREATE TABLE cut_due (
    cid           BIGINT NOT NULL,
    period        BIGINT NOT NULL,
    part          BIGINT NOT NULL,
    deleted_at    BIGINT,
    edited_at     BIGINT,
    gen           BIGINT NOT NULL DEFAULT 1,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    claimed_by    TEXT,
    PRIMARY KEY (cid, period, part)
);

-- A projected row's update that is not of an already deleted message: a delete when it
-- sets `deleted`, an edit otherwise (the commit writes both columns for either).
CREATE FUNCTION confab_cut_due() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    at int8 := confab_now_ms();
BEGIN
    INSERT INTO cut_due (cid, period, part, deleted_at, edited_at)
    VALUES (NEW.cid, NEW.period, NEW.part,
            CASE WHEN NEW.deleted THEN at END, CASE WHEN NEW.deleted THEN NULL ELSE at END)
    ON CONFLICT (cid, period, part) DO UPDATE SET gen = cut_due.gen + 1,
        deleted_at = least(cut_due.deleted_at, EXCLUDED.deleted_at),
        edited_at = least(cut_due.edited_at, EXCLUDED.edited_at);
    RETURN NULL;
END $$;

CREATE TRIGGER messages_cut_due AFTER UPDATE OF preview, deleted ON messages
    FOR EACH ROW WHEN (NOT OLD.deleted) EXECUTE FUNCTION confab_cut_due();

-- Conversation deletion by its owner (docs/POLICY.md, "Delete"): the commit that moves the
-- lifecycle to `deleted` marks every projected message of it deleted, with no preview (and
-- blanks its notifications' previews). That
-- update notes each part for a cut (above; the cut of a deleted conversation's part keeps
-- tombstones only), and the search and stats triggers drop its terms and counts.
CREATE FUNCTION confab_conversation_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE messages SET deleted = TRUE, preview = '' WHERE cid = NEW.id AND NOT deleted;
    UPDATE notifications SET preview = ''
        WHERE tenant = NEW.tenant AND conv = NEW.conv AND preview <> '';
    RETURN NULL;
END $$;

CREATE TRIGGER conversations_deleted AFTER UPDATE OF lifecycle ON conversations
    FOR EACH ROW WHEN (NEW.lifecycle = 'deleted' AND OLD.lifecycle <> 'deleted')
    EXECUTE FUNCTION confab_conversation_deleted();
