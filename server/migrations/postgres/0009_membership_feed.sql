-- The account's membership feed across a cluster (docs/PROTOCOL.md, "Memberships"): every
-- membership row a commit inserts, or whose role or status it changes, notifies channel
-- `confab_members` with `<tenant> <account> <conv> <role> <status> <seq>`, where `seq` is
-- the conversation document's last seq in that commit (`docs` is updated first, in step 1
-- of `confab_commit`). Delivered at commit, in commit order, to every listening node; each
-- node pushes it to the account's connections it holds. One notification per affected
-- account: the cost never grows with the group's size or the connected accounts.
CREATE FUNCTION confab_note_membership() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    s int8;
BEGIN
    SELECT last_seq INTO s FROM docs WHERE doc_id = NEW.tenant || '/conv/' || NEW.conv;
    PERFORM pg_notify('confab_members', NEW.tenant || ' ' || NEW.account || ' ' || NEW.conv
        || ' ' || NEW.role || ' ' || NEW.status || ' ' || COALESCE(s, 0));
    RETURN NULL;
END $$;

CREATE TRIGGER memberships_notify_insert AFTER INSERT ON memberships
    FOR EACH ROW EXECUTE FUNCTION confab_note_membership();

CREATE TRIGGER memberships_notify_update AFTER UPDATE ON memberships
    FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION confab_note_membership();
