-- Stored view counts: see migrations/postgres/0022_stored_views.sql (the same table and
-- counting, channels only: a marker moving past the furthest position it reached gives the
-- posts in between one view each, a first marker the post it names; SQLite moves them when
-- the position is set, in an AFTER trigger).
-- `read_positions` (0014) is still kept for nodes of the previous release.
ALTER TABLE read_markers ADD COLUMN seen_pos INTEGER;
CREATE TABLE message_views (
    cid    INTEGER NOT NULL,
    pos    INTEGER NOT NULL,
    views  INTEGER NOT NULL,
    PRIMARY KEY (cid, pos)
) WITHOUT ROWID;

UPDATE read_markers SET seen_pos = pos WHERE pos IS NOT NULL;
CREATE TEMPORARY TABLE view_suffix AS
    SELECT cid, pos, sum(readers) OVER (PARTITION BY cid ORDER BY pos DESC) AS n
    FROM read_positions;
CREATE INDEX temp.view_suffix_at ON view_suffix (cid, pos);
INSERT INTO message_views (cid, pos, views)
    SELECT m.cid, m.pos, (SELECT v.n FROM view_suffix v
                          WHERE v.cid = m.cid AND v.pos >= m.pos
                          ORDER BY v.pos LIMIT 1)
    FROM messages m JOIN conversations c ON c.id = m.cid AND c.kind = 'channel'
    WHERE m.pos <= (SELECT max(v.pos) FROM view_suffix v WHERE v.cid = m.cid);
DROP TABLE view_suffix;

CREATE TRIGGER read_markers_views AFTER UPDATE OF pos ON read_markers
    WHEN NEW.pos IS NOT NULL AND (OLD.seen_pos IS NULL OR NEW.pos > OLD.seen_pos)
BEGIN
    INSERT INTO message_views (cid, pos, views)
        SELECT m.cid, m.pos, 1 FROM conversations c JOIN messages m ON m.cid = c.id
        WHERE c.tenant = NEW.tenant AND c.conv = NEW.conv AND c.kind = 'channel'
          AND m.pos > coalesce(OLD.seen_pos, NEW.pos - 1) AND m.pos <= NEW.pos
        ON CONFLICT (cid, pos) DO UPDATE SET views = views + 1;
    UPDATE read_markers SET seen_pos = NEW.pos
        WHERE tenant = NEW.tenant AND conv = NEW.conv AND account = NEW.account;
END;

-- A message row deleted (retention's drop of a bucket) takes its views with it.
CREATE TRIGGER messages_views_delete AFTER DELETE ON messages
BEGIN
    DELETE FROM message_views WHERE cid = OLD.cid AND pos = OLD.pos;
END;
