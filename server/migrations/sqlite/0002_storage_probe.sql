-- One row the health prober rewrites while the storage is down (server/src/store/health.rs):
-- a write transaction that succeeds means commits can succeed again (disk full is over).
-- `pad` takes a 64 KiB blob, so the probe needs room the way a real commit does, not just
-- one page of the WAL.
CREATE TABLE storage_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL,
    pad BLOB
);
INSERT INTO storage_probe (id, at) VALUES (1, 0);
