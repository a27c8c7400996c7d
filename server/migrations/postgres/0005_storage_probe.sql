-- One row the health prober rewrites while the storage is down (server/src/store/health.rs):
-- a write that succeeds means commits can succeed again (the database is back and can
-- write its WAL: a full disk is over).
CREATE TABLE storage_probe (
    id integer PRIMARY KEY CHECK (id = 1),
    at bigint NOT NULL
);
INSERT INTO storage_probe (id, at) VALUES (1, 0);
