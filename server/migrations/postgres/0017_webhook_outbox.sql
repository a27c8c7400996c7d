-- Webhook deliveries of notifications to accounts with no connected client (issue 19;
-- server/src/notify/webhook.rs, docs/OPERATIONS.md "Push webhooks"). A row is written in
-- the notifier's batch and deleted once the receiver answered 2xx; a claim moves `next_at`
-- past the delivery's timeout (a lease), so a node that dies mid-delivery leaves the row
-- to be sent again: at least once. After the last attempt `dead_at` is set and the row is
-- kept (the dead-letter count in /metrics).
CREATE TABLE webhook_outbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant      TEXT NOT NULL,
    account     TEXT NOT NULL,
    payload     TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    last_error  TEXT,
    dead_at     BIGINT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_at) WHERE dead_at IS NULL;
CREATE INDEX webhook_outbox_dead ON webhook_outbox (dead_at) WHERE dead_at IS NOT NULL;
