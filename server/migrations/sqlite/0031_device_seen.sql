-- When each registered device last uploaded or asked how many key packages it holds (every
-- connection asks): what an account's device list shows as last seen (docs/E2EE.md,
-- "Devices and key packages"). NULL: not since this column exists.
ALTER TABLE devices ADD COLUMN last_seen_at INTEGER;
