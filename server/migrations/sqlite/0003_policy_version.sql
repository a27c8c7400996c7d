-- The policy version of a conversation document: the seq of its last change to members,
-- roles, settings or lifecycle. A message batch is committed only if the version it was
-- validated against is still the stored one (the same check as on Postgres, where several
-- nodes commit).
ALTER TABLE docs ADD COLUMN policy_seq INTEGER NOT NULL DEFAULT 0;
