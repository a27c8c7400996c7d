-- No notification text outlives its message (server/src/notify, docs/NOTIFICATIONS.md,
-- "Deleted messages"). The notifier writes a row or webhook delivery carrying a message's
-- text only in a transaction that first takes this lock shared (`pg_advisory_xact_lock_shared`,
-- the same key) and then finds the message's row not deleted. A commit that deletes
-- messages (a delete, an account's erasure, the conversation's deletion and its trigger)
-- takes it exclusively on each row it marks deleted, before it clears previews. So either
-- the notifier's write commits first and the deletion, which waits for it, clears what it
-- wrote (`confab_conversation_deleted`, or the notifier's own `forget_notified` after the
-- commit), or the deletion commits first and the notifier, which waited for it, sees the
-- row deleted and writes nothing. One lock per conversation (its key), held to commit.
CREATE FUNCTION confab_message_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('confab.notify'), (NEW.cid % 2147483647)::int4);
    RETURN NULL;
END $$;

CREATE TRIGGER messages_deleted AFTER UPDATE OF deleted ON messages
    FOR EACH ROW WHEN (NEW.deleted AND NOT OLD.deleted)
    EXECUTE FUNCTION confab_message_deleted();
