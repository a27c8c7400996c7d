-- Removal generations of the MLS directory (docs/E2EE.md, "Every leaf is a registered
-- device"). Each removal of a device takes its tenant's next generation, counted here in
-- the removal's own write transaction (one at a time, so generations commit in order), and
-- stamps the device with it: a Delivery Service that checked a group's devices at
-- generation g asks only for the devices removed after g. No row: generation 0.
CREATE TABLE directory_generations (
    tenant      TEXT PRIMARY KEY,
    generation  INTEGER NOT NULL
);

-- The generation of the device's removal; 0 for one removed before generations were counted
-- (a unit's first check of a group asks by account, and reads removed_at), NULL while the
-- device is not removed.
ALTER TABLE devices ADD COLUMN removed_gen INTEGER;
UPDATE devices SET removed_gen = 0 WHERE removed_at IS NOT NULL;
CREATE INDEX devices_removed_gen ON devices (tenant, removed_gen);
