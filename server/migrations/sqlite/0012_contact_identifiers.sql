-- Hashed phone numbers and emails of accounts, for contact matching (seed 000 "Contacts":
-- import phone contacts, match existing users; docs/CONTACTS.md). Only SHA-256 hashes (hex)
-- of the normalized identifiers are stored, registered by the tenant's identity service
-- (a service account), which owns the verified phone numbers and emails. One hash belongs
-- to one account per tenant: registering it again moves it (numbers are recycled).
CREATE TABLE account_identifiers (
    tenant   TEXT NOT NULL,
    hash     TEXT NOT NULL,
    account  TEXT NOT NULL,
    PRIMARY KEY (tenant, hash)
);
CREATE INDEX account_identifiers_account ON account_identifiers (tenant, account);
