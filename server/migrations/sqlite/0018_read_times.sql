-- When each read marker last moved: see migrations/postgres/0025_read_times.sql (SQLite
-- stamps the row in AFTER triggers; `julianday('now')` is fixed within a statement).
ALTER TABLE read_markers ADD COLUMN read_at INTEGER;

CREATE TRIGGER read_markers_read_at_insert AFTER INSERT ON read_markers
BEGIN
    UPDATE read_markers SET read_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    WHERE tenant = NEW.tenant AND conv = NEW.conv AND account = NEW.account;
END;

CREATE TRIGGER read_markers_read_at_move AFTER UPDATE OF message ON read_markers
    WHEN OLD.message IS NOT NEW.message
BEGIN
    UPDATE read_markers SET read_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    WHERE tenant = NEW.tenant AND conv = NEW.conv AND account = NEW.account;
END;
