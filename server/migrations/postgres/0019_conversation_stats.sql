-- Per-conversation stats (seed 001 `stats`: message_count, media_count, file_count), kept
-- beside the conversation's summary so that reading them costs one row whatever the
-- history (docs/SCHEMA.md, "Projection: stats and views"). Counted: messages not deleted;
-- media: kinds image, video and voice; files: kind file. Triggers on `messages` keep them,
-- one statement-level UPDATE per statement of the commit functions (grouped by
-- conversation), so the commit path keeps its statements and old nodes commit unchanged.
ALTER TABLE conversations
    ADD COLUMN message_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN media_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN file_count BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION confab_is_media(k text) RETURNS int8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE WHEN k IN ('image', 'video', 'voice') THEN 1 ELSE 0 END;

CREATE FUNCTION confab_is_file(k text) RETURNS int8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE WHEN k = 'file' THEN 1 ELSE 0 END;

-- Rows stored before: counted once here.
UPDATE conversations c SET message_count = s.n, media_count = s.media, file_count = s.files
    FROM (SELECT cid, count(*) AS n, sum(confab_is_media(kind)) AS media,
                 sum(confab_is_file(kind)) AS files
          FROM messages WHERE NOT deleted GROUP BY cid) s
    WHERE c.id = s.cid;

-- `delta` rows: (cid, kind, +1 or -1).
CREATE FUNCTION confab_stats_apply(delta_cid int8[], delta_kind text[], delta_sign int8[])
RETURNS void LANGUAGE sql AS $$
    UPDATE conversations c SET message_count = c.message_count + s.n,
                               media_count = c.media_count + s.media,
                               file_count = c.file_count + s.files
        FROM (SELECT d.cid, sum(d.sign) AS n, sum(d.sign * confab_is_media(d.kind)) AS media,
                     sum(d.sign * confab_is_file(d.kind)) AS files
              FROM UNNEST(delta_cid, delta_kind, delta_sign) AS d(cid, kind, sign)
              GROUP BY d.cid) s
        WHERE c.id = s.cid AND (s.n <> 0 OR s.media <> 0 OR s.files <> 0);
$$;

CREATE FUNCTION confab_stats_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM confab_stats_apply(array_agg(cid), array_agg(kind), array_agg(1::int8))
        FROM added WHERE NOT deleted;
    RETURN NULL;
END $$;

CREATE FUNCTION confab_stats_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM confab_stats_apply(array_agg(a.cid), array_agg(a.kind),
                               array_agg(CASE WHEN a.deleted THEN -1 ELSE 1 END::int8))
        FROM after_rows a JOIN before_rows b ON b.cid = a.cid AND b.pos = a.pos
        WHERE a.deleted <> b.deleted;
    RETURN NULL;
END $$;

CREATE FUNCTION confab_stats_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM confab_stats_apply(array_agg(cid), array_agg(kind), array_agg(-1::int8))
        FROM gone WHERE NOT deleted;
    RETURN NULL;
END $$;

CREATE TRIGGER messages_stats_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION confab_stats_inserted();
CREATE TRIGGER messages_stats_update AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows FOR EACH STATEMENT
    EXECUTE FUNCTION confab_stats_updated();
CREATE TRIGGER messages_stats_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION confab_stats_deleted();
