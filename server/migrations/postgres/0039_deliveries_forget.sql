-- A webhook delivery still queued (or dead) keeps no text of a message deleted after it was
-- queued (docs/NOTIFICATIONS.md, "Deleted messages"). A delivery that carries a message's
-- text names it (`about_cid`, the conversation's id, and `about_message`); the commit that
-- marks the message deleted (a delete, an account's erasure, the conversation's deletion
-- and its trigger) empties the text of every such delivery in the same transaction, after
-- `messages_deleted` took the conversation's notification lock (triggers of one event fire
-- in name order), so a delivery the notifier queues at the same time is either cleared here
-- or not queued at all (0035). A payload that is not JSON (the server writes none) cannot
-- be told where its text is: it is deleted, never left to fail the commit.
ALTER TABLE webhook_outbox ADD COLUMN about_cid BIGINT, ADD COLUMN about_message TEXT;
CREATE INDEX webhook_outbox_about ON webhook_outbox (about_cid, about_message)
    WHERE about_message IS NOT NULL;

-- `t` as jsonb, or NULL if it is not JSON.
CREATE FUNCTION confab_jsonb_or_null(t text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    RETURN t::jsonb;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN NULL;
END $$;

-- Deliveries queued before this migration: their payload names the message.
UPDATE webhook_outbox w SET about_cid = c.id,
       about_message = confab_jsonb_or_null(w.payload) #>> '{notification,message}'
    FROM conversations c
    WHERE c.tenant = w.tenant
      AND c.conv = confab_jsonb_or_null(w.payload) #>> '{notification,conversation}'
      AND confab_jsonb_or_null(w.payload) #> '{notification,preview}' IS NOT NULL;

CREATE FUNCTION confab_deliveries_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM webhook_outbox
        WHERE about_cid = NEW.cid AND about_message = NEW.message
          AND confab_jsonb_or_null(payload) IS NULL;
    UPDATE webhook_outbox
        SET payload = jsonb_set(payload::jsonb, '{notification,preview}', '""', false)::text,
            about_message = NULL
        WHERE about_cid = NEW.cid AND about_message = NEW.message;
    RETURN NULL;
END $$;

CREATE TRIGGER messages_deleted_deliveries AFTER UPDATE OF deleted ON messages
    FOR EACH ROW WHEN (NEW.deleted AND NOT OLD.deleted)
    EXECUTE FUNCTION confab_deliveries_forget();

-- Those queued before whose message is already deleted.
UPDATE webhook_outbox w
    SET payload = jsonb_set(payload::jsonb, '{notification,preview}', '""', false)::text,
        about_message = NULL
    FROM messages m
    WHERE m.cid = w.about_cid AND m.message = w.about_message AND m.deleted;
