-- View counts (seed 000 `views`) from read markers (docs/SCHEMA.md, "Projection: stats and
-- views"): a post's views are the accounts whose read marker stands at or after it. Each
-- marker keeps the position (`pos`) of the message it names, and `read_positions` counts
-- the markers at each position, so a marker's move costs two rows whatever the number of
-- members, and a post's count sums the positions at or after it (at most the posts after
-- it), never the members. A marker naming a message whose row is not stored (yet) has no
-- position and counts nowhere until it moves.
ALTER TABLE read_markers ADD COLUMN pos BIGINT;

CREATE TABLE read_positions (
    cid      BIGINT NOT NULL,
    pos      BIGINT NOT NULL,
    readers  BIGINT NOT NULL,
    PRIMARY KEY (cid, pos)
);

UPDATE read_markers r SET pos = m.pos
    FROM conversations c JOIN messages m ON m.cid = c.id
    WHERE c.tenant = r.tenant AND c.conv = r.conv
      AND hashtext(m.message) = hashtext(r.message) AND m.message = r.message;
INSERT INTO read_positions (cid, pos, readers)
    SELECT c.id, r.pos, count(*)
    FROM read_markers r JOIN conversations c ON c.tenant = r.tenant AND c.conv = r.conv
    WHERE r.pos IS NOT NULL GROUP BY c.id, r.pos;

-- The position of the named message (a probe of `messages_id`).
CREATE FUNCTION confab_read_marker_pos() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.pos := (SELECT m.pos FROM conversations c JOIN messages m ON m.cid = c.id
                WHERE c.tenant = NEW.tenant AND c.conv = NEW.conv
                  AND hashtext(m.message) = hashtext(NEW.message)
                  AND m.message = NEW.message);
    RETURN NEW;
END $$;

-- After the row is written (an upsert's insert fires only when it inserted), so a marker
-- is counted once, at the position it holds.
CREATE FUNCTION confab_read_positions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_cid int8;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.pos IS NOT DISTINCT FROM NEW.pos THEN
        RETURN NULL;
    END IF;
    SELECT id INTO v_cid FROM conversations WHERE tenant = NEW.tenant AND conv = NEW.conv;
    IF v_cid IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.pos IS NOT NULL THEN
        UPDATE read_positions SET readers = readers - 1 WHERE cid = v_cid AND pos = OLD.pos;
        DELETE FROM read_positions WHERE cid = v_cid AND pos = OLD.pos AND readers <= 0;
    END IF;
    IF NEW.pos IS NOT NULL THEN
        INSERT INTO read_positions (cid, pos, readers) VALUES (v_cid, NEW.pos, 1)
            ON CONFLICT (cid, pos) DO UPDATE SET readers = read_positions.readers + 1;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER read_markers_pos BEFORE INSERT OR UPDATE OF message ON read_markers
    FOR EACH ROW EXECUTE FUNCTION confab_read_marker_pos();
CREATE TRIGGER read_markers_positions AFTER INSERT OR UPDATE ON read_markers
    FOR EACH ROW EXECUTE FUNCTION confab_read_positions();
