-- The MLS directory (docs/E2EE.md, "Devices and key packages"). A device is registered by
-- its first key package upload, which binds its MLS signature key (trust on first use);
-- a removed device keeps its row (removed_at) so its id is never registered again.
CREATE TABLE devices (
    tenant         TEXT NOT NULL,
    account        TEXT NOT NULL,
    device         TEXT NOT NULL,
    signature_key  BYTEA NOT NULL,
    registered_at  BIGINT NOT NULL,
    removed_at     BIGINT,
    PRIMARY KEY (tenant, account, device)
);

-- Key packages waiting to be claimed, by their KeyPackageRef. An ordinary one is deleted
-- when claimed; the last-resort one (at most one per device) stays.
CREATE TABLE key_packages (
    ref          BYTEA PRIMARY KEY,
    tenant       TEXT NOT NULL,
    account      TEXT NOT NULL,
    device       TEXT NOT NULL,
    bytes        BYTEA NOT NULL,
    last_resort  BOOLEAN NOT NULL,
    uploaded_at  BIGINT NOT NULL
);
CREATE INDEX key_packages_device
    ON key_packages (tenant, account, device, last_resort, uploaded_at);

-- The refs of claimed ordinary packages: one uploaded again is refused.
CREATE TABLE claimed_key_packages (
    ref         BYTEA PRIMARY KEY,
    claimed_at  BIGINT NOT NULL
);
