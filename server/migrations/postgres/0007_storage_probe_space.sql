-- The health prober's write while the storage is down (server/src/store/health.rs) must
-- need new disk space, or it succeeds on a full disk while commits fail: an update of the
-- one-row `storage_probe` fits in its page, and WAL segments are preallocated. The prober
-- empties this table (TRUNCATE gives it new, empty files) and inserts one uncompressed
-- 16 KiB value, which Postgres must write into newly extended pages: on a full disk that
-- fails with 53100 ("could not extend file"), as a commit does.
CREATE TABLE storage_probe_space (
    id integer PRIMARY KEY,
    pad bytea NOT NULL
);
-- Out of line and never compressed: the value always takes its 16 KiB of new pages.
ALTER TABLE storage_probe_space ALTER COLUMN pad SET STORAGE EXTERNAL;
