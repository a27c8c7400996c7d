-- The per-account notification feed (issue 19; server/src/notify, docs/NOTIFICATIONS.md).
-- Rows are written after a commit, off the commit path. `source` names what caused the row
-- (a message id, or `join/<account>/<seq>` for a join request) so that computing the same
-- commit twice adds nothing. Reads join `memberships`: a row of a conversation the account
-- can no longer read is never returned, nor counted as unread.
CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL,
    account     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    conv        TEXT NOT NULL,
    source      TEXT NOT NULL,
    message     TEXT,
    actor       TEXT NOT NULL,
    preview     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    read_at     INTEGER
);
CREATE UNIQUE INDEX notifications_source ON notifications (tenant, account, conv, source);
-- A page is one backward range of this index.
CREATE INDEX notifications_feed ON notifications (tenant, account, id);
-- The unread count reads only unread rows.
CREATE INDEX notifications_unread ON notifications (tenant, account, id) WHERE read_at IS NULL;
-- A deleted message's preview is cleared in every feed (by conversation and message).
CREATE INDEX notifications_message ON notifications (tenant, conv, message);
