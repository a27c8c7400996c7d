-- The level `all` at O(1) per message (server/src/notify, docs/NOTIFICATIONS.md).
-- A conversation's ordinary messages are one stream: its row counts them (`n`), names the
-- newest and takes a new feed id (from the notifications' sequence, so it sorts among the
-- rows) each time the notifier stores a batch of them. A member's `message` entry is
-- derived when it is read: the stream's messages past its mark, less those it wrote or was
-- addressed by (`skip`). The notifier writes one stream row per conversation and batch and
-- one mark per author or addressed account, never one row per member.
CREATE TABLE notify_streams (
    tenant      TEXT NOT NULL,
    conv        TEXT NOT NULL,
    id          INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    message     TEXT NOT NULL,
    actor       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, conv)
);
-- A member's place in a stream: `n_mark`/`skip_mark` where it last read (or joined),
-- `skip` its own and addressed messages so far; `read_*` the entry as it was read. When the
-- stream's newest step is one it skipped (`skip_n = n`), its entry names `alt_*` instead:
-- the newest message that is its to count, with the feed id it had then. While its settings
-- keep the conversation quiet (muted, `mentions`, `none`; the notifier sees each change of
-- its private document) its entry is frozen as it stood then (`quiet_*`, `q_*`); a timed
-- mute ends at `quiet_until`: the stream's first step after it thaws the entry (the muted
-- time's messages not counted), found by the partial index below.
CREATE TABLE notify_marks (
    tenant      TEXT NOT NULL,
    account     TEXT NOT NULL,
    conv        TEXT NOT NULL,
    n_mark      INTEGER NOT NULL DEFAULT 0,
    skip        INTEGER NOT NULL DEFAULT 0,
    skip_mark   INTEGER NOT NULL DEFAULT 0,
    read_id     INTEGER,
    read_count  INTEGER NOT NULL DEFAULT 0,
    read_message TEXT,
    read_actor  TEXT,
    read_created_at INTEGER,
    read_at     INTEGER,
    skip_n      INTEGER NOT NULL DEFAULT 0,
    alt_id      INTEGER,
    alt_message TEXT,
    alt_actor   TEXT,
    alt_at      INTEGER,
    quiet_n     INTEGER,
    quiet_skip  INTEGER,
    quiet_until INTEGER,
    q_id        INTEGER,
    q_message   TEXT,
    q_actor     TEXT,
    q_at        INTEGER,
    PRIMARY KEY (tenant, account, conv)
);
CREATE INDEX notify_marks_timed ON notify_marks (tenant, conv, quiet_until)
    WHERE quiet_n IS NOT NULL AND quiet_until IS NOT NULL;
