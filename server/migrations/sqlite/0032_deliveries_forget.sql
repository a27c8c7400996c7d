-- A webhook delivery keeps no text of a message deleted after it was queued: see
-- migrations/postgres/0039_deliveries_forget.sql (the same columns and trigger; SQLite's one
-- writer needs no lock). A payload that is not JSON is deleted, never left to fail the
-- commit.
ALTER TABLE webhook_outbox ADD COLUMN about_cid INTEGER;
ALTER TABLE webhook_outbox ADD COLUMN about_message TEXT;
CREATE INDEX webhook_outbox_about ON webhook_outbox (about_cid, about_message)
    WHERE about_message IS NOT NULL;

UPDATE webhook_outbox
    SET about_cid = (SELECT c.id FROM conversations c WHERE c.tenant = webhook_outbox.tenant
                     AND c.conv = json_extract(webhook_outbox.payload, '$.notification.conversation')),
        about_message = json_extract(payload, '$.notification.message')
    WHERE CASE WHEN json_valid(payload)
               THEN json_type(payload, '$.notification.preview') IS NOT NULL ELSE 0 END;

CREATE TRIGGER messages_deleted_deliveries AFTER UPDATE OF deleted ON messages
    WHEN NEW.deleted AND NOT OLD.deleted
BEGIN
    DELETE FROM webhook_outbox
        WHERE about_cid = NEW.cid AND about_message = NEW.message AND NOT json_valid(payload);
    UPDATE webhook_outbox
        SET payload = json_replace(payload, '$.notification.preview', ''), about_message = NULL
        WHERE about_cid = NEW.cid AND about_message = NEW.message;
END;

UPDATE webhook_outbox
    SET payload = json_replace(payload, '$.notification.preview', ''), about_message = NULL
    WHERE EXISTS (SELECT 1 FROM messages m WHERE m.cid = webhook_outbox.about_cid
                  AND m.message = webhook_outbox.about_message AND m.deleted);
