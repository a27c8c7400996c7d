-- Stored view counts (docs/SCHEMA.md, "Projection: stats and views"): a channel post's
-- views are the accounts whose read marker has ever reached it, kept in `message_views`
-- (one row per post with a view, read by its key with the page: O(1) per post; 0020 summed
-- the marker positions after the page's oldest post on every read). Only channels count
-- views: other conversations' markers write nothing here, so a message costs no bytes for
-- them and a group's readers never rewrite its message rows. Each marker keeps the furthest position it has reached
-- (`seen_pos`); when it moves past that, the posts in (seen_pos, pos] get one view each
-- and `seen_pos` follows. A marker moving back and forward again, or written by several
-- devices of the account (one row per account), counts each post once. An account's first
-- marker counts the post it names only (where the account started reading: a subscriber
-- joining a channel of 10,000 posts does not view its history by reading the newest, and
-- counting it would cost every post before). The cost is per marker move and the posts it
-- passes, never per member.
--
-- `read_positions` (0020) is still kept by its trigger: nodes of the previous release read
-- it during a rolling upgrade.
ALTER TABLE read_markers ADD COLUMN seen_pos BIGINT;
CREATE TABLE message_views (
    cid    BIGINT NOT NULL,
    pos    BIGINT NOT NULL,
    views  BIGINT NOT NULL,
    PRIMARY KEY (cid, pos)
);

-- Markers stored before: each has reached its position, and the channel posts keep the
-- count 0020 gave them (the markers at or after them): suffix sums of `read_positions`,
-- one probe per message at or before a channel's furthest marker.
UPDATE read_markers SET seen_pos = pos WHERE pos IS NOT NULL;
CREATE TEMPORARY TABLE view_suffix AS
    SELECT cid, pos, sum(readers) OVER (PARTITION BY cid ORDER BY pos DESC) AS n
    FROM read_positions;
CREATE INDEX ON view_suffix (cid, pos);
INSERT INTO message_views (cid, pos, views)
    SELECT m.cid, m.pos, (SELECT v.n FROM view_suffix v
                          WHERE v.cid = m.cid AND v.pos >= m.pos
                          ORDER BY v.pos LIMIT 1)
    FROM messages m JOIN conversations c ON c.id = m.cid AND c.kind = 'channel'
    WHERE m.pos <= (SELECT max(v.pos) FROM view_suffix v WHERE v.cid = m.cid);
DROP TABLE view_suffix;

-- The furthest position reached, set with the position (BEFORE: it is part of the row
-- written). An upsert's insert attempt that turns into an update fires this again for
-- the update, where OLD is the stored row.
CREATE FUNCTION confab_read_marker_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.seen_pos := NEW.pos;
    ELSE
        NEW.seen_pos := CASE WHEN OLD.seen_pos IS NULL THEN NEW.pos
                             WHEN NEW.pos IS NULL THEN OLD.seen_pos
                             ELSE greatest(OLD.seen_pos, NEW.pos) END;
    END IF;
    RETURN NEW;
END $$;

-- After the row is written (an upsert's insert fires only when it inserted), the channel
-- posts between the old furthest position and the new one get their view.
CREATE FUNCTION confab_read_views() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_from int8;
BEGIN
    IF NEW.seen_pos IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF OLD.seen_pos IS NOT DISTINCT FROM NEW.seen_pos THEN
            RETURN NULL;
        END IF;
        v_from := OLD.seen_pos;
    END IF;
    -- A first position: the post it names.
    v_from := coalesce(v_from, NEW.seen_pos - 1);
    INSERT INTO message_views AS v (cid, pos, views)
        SELECT m.cid, m.pos, 1
        FROM conversations c JOIN messages m ON m.cid = c.id
        WHERE c.tenant = NEW.tenant AND c.conv = NEW.conv AND c.kind = 'channel'
          AND m.pos > v_from AND m.pos <= NEW.seen_pos
        ORDER BY m.pos
        ON CONFLICT (cid, pos) DO UPDATE SET views = v.views + 1;
    RETURN NULL;
END $$;

-- Named to run after `read_markers_pos` (triggers of an event run in name order), which
-- sets the position this reads.
CREATE TRIGGER read_markers_seen BEFORE INSERT OR UPDATE OF message ON read_markers
    FOR EACH ROW EXECUTE FUNCTION confab_read_marker_seen();
CREATE TRIGGER read_markers_views AFTER INSERT OR UPDATE ON read_markers
    FOR EACH ROW EXECUTE FUNCTION confab_read_views();

-- A message row deleted (retention's drop of a bucket) takes its views with it.
CREATE FUNCTION confab_views_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_views v USING gone g WHERE v.cid = g.cid AND v.pos = g.pos;
    RETURN NULL;
END $$;
CREATE TRIGGER messages_views_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION confab_views_deleted();
