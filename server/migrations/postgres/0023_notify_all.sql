-- Notifications of the level `all` (server/src/notify, docs/NOTIFICATIONS.md). An ordinary
-- message of a group or channel notifies every member at `all`, coalesced: one row per
-- account and conversation (`kind = 'message'`, `source = 'messages'`) whose `count` says
-- how many messages it stands for; a new message while it is unread adds to the count, one
-- after it was read starts it again at the new messages. Other kinds keep `count = 1`.
ALTER TABLE notifications ADD COLUMN count BIGINT NOT NULL DEFAULT 1;
-- A webhook delivery that may still take in later ones (`<tenant>/<conversation>#<part>`):
-- while it waits unclaimed, the notifier merges new recipients and counts into it instead
-- of queueing another; a claim clears the key, so a delivery being sent never changes.
ALTER TABLE webhook_outbox ADD COLUMN coalesce_key TEXT;
CREATE INDEX webhook_outbox_coalesce ON webhook_outbox (coalesce_key)
    WHERE coalesce_key IS NOT NULL;
