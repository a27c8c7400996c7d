-- When each read marker last moved (a member's `last_read_at`): milliseconds since the epoch
-- by the database's clock, stamped by the row's own trigger whenever the marker names
-- another message, so every commit path and every node of a cluster stamp it alike (one
-- clock). A marker stored before this migration has no time (NULL) until it moves.
ALTER TABLE read_markers ADD COLUMN read_at BIGINT;

CREATE FUNCTION confab_read_marker_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR OLD.message IS DISTINCT FROM NEW.message THEN
        NEW.read_at := (extract(epoch FROM clock_timestamp()) * 1000)::int8;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER read_markers_read_at BEFORE INSERT OR UPDATE OF message ON read_markers
    FOR EACH ROW EXECUTE FUNCTION confab_read_marker_at();
