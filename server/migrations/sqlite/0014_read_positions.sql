-- View counts from read markers: see migrations/postgres/0020_read_positions.sql (the same
-- tables; SQLite sets a marker's position in an AFTER trigger, which moves the counts).
ALTER TABLE read_markers ADD COLUMN pos INTEGER;

CREATE TABLE read_positions (
    cid      INTEGER NOT NULL,
    pos      INTEGER NOT NULL,
    readers  INTEGER NOT NULL,
    PRIMARY KEY (cid, pos)
) WITHOUT ROWID;

UPDATE read_markers SET pos = (
    SELECT m.pos FROM conversations c JOIN messages m ON m.cid = c.id
    WHERE c.tenant = read_markers.tenant AND c.conv = read_markers.conv
      AND m.message = read_markers.message);
INSERT INTO read_positions (cid, pos, readers)
    SELECT c.id, r.pos, count(*)
    FROM read_markers r JOIN conversations c ON c.tenant = r.tenant AND c.conv = r.conv
    WHERE r.pos IS NOT NULL GROUP BY c.id, r.pos;

CREATE TRIGGER read_markers_pos_insert AFTER INSERT ON read_markers
BEGIN
    UPDATE read_markers SET pos = (
        SELECT m.pos FROM conversations c JOIN messages m ON m.cid = c.id
        WHERE c.tenant = NEW.tenant AND c.conv = NEW.conv AND m.message = NEW.message)
    WHERE tenant = NEW.tenant AND conv = NEW.conv AND account = NEW.account;
END;

CREATE TRIGGER read_markers_pos_move AFTER UPDATE OF message ON read_markers
BEGIN
    UPDATE read_markers SET pos = (
        SELECT m.pos FROM conversations c JOIN messages m ON m.cid = c.id
        WHERE c.tenant = NEW.tenant AND c.conv = NEW.conv AND m.message = NEW.message)
    WHERE tenant = NEW.tenant AND conv = NEW.conv AND account = NEW.account;
END;

CREATE TRIGGER read_markers_positions AFTER UPDATE OF pos ON read_markers
    WHEN OLD.pos IS NOT NEW.pos
BEGIN
    UPDATE read_positions SET readers = readers - 1
        WHERE cid = (SELECT id FROM conversations WHERE tenant = NEW.tenant AND conv = NEW.conv)
          AND pos = OLD.pos;
    DELETE FROM read_positions
        WHERE cid = (SELECT id FROM conversations WHERE tenant = NEW.tenant AND conv = NEW.conv)
          AND pos = OLD.pos AND readers <= 0;
    INSERT INTO read_positions (cid, pos, readers)
        SELECT id, NEW.pos, 1 FROM conversations
        WHERE tenant = NEW.tenant AND conv = NEW.conv AND NEW.pos IS NOT NULL
        ON CONFLICT (cid, pos) DO UPDATE SET readers = readers + 1;
END;
