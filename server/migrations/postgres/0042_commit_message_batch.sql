-- The common batch (new messages of one conversation) writes its messages' search entries
-- itself, from the rows its insert returns: an entry's position and time are at hand, and
-- no join of the conversation and no probe of `messages_id` per message is needed to find
-- them again (as `confab_search_index`, migration 0040, does for any other batch). That
-- lookup was a share of what search adds to a burst's commit (docs/BENCHMARKS.md, "What
-- search adds to a commit").
--
-- `g_terms` holds each new message's space-separated lexemes in the batch's order (null: no
-- entry, as for an encrypted conversation's message); a message is the `o`th of the batch,
-- so its position is `end_pos - v_count + o`. A message created deleted gets no entry. A new
-- position has no entry (a row's entry goes with it, migration 0033), so a plain insert,
-- without `ON CONFLICT`'s speculative one. A message id stored before (a replay, or another
-- node's) inserts no row; then, and only then, the batch's terms replace its row's entry by
-- the lookup, as for any other batch.
--
-- A new function, not a new text of `confab_commit_messages` (migration 0015): nodes still
-- on the previous release keep calling that one during a rolling upgrade. It is otherwise
-- as 0015's.
CREATE FUNCTION confab_commit_message_batch(
    d_id text, d_prev int8, d_last int8,
    c_seqs int8[], c_hashes bytea[], c_bytes bytea[], c_accounts text[], c_at int8[],
    v_tenant text, v_conv text, v_count int8, v_created int8, v_max int8,
    g_ids text[], g_seqs int8[], g_authors text[], g_kinds text[], g_created int8[],
    g_previews text[], g_deleted bool[], g_terms text[],
    f_doc text, f_policy int8
) RETURNS void LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    end_pos int8;
    conv_id int8;
    stored_count int8;
BEGIN
    -- 0. The fence, first: the conversation document sorts before its buckets, so its row
    --    is locked before the bucket's as in confab_commit. A shared lock: message batches
    --    of one conversation do not wait for each other here, a policy move waits for them
    --    (and they for it; then this reads the moved version and refuses).
    IF f_doc IS NOT NULL THEN
        PERFORM 1 FROM docs WHERE doc_id = f_doc AND policy_seq = f_policy FOR SHARE;
        IF NOT FOUND AND (f_policy <> 0 OR EXISTS (SELECT 1 FROM docs WHERE doc_id = f_doc)) THEN
            RAISE EXCEPTION USING ERRCODE = 'CF003', MESSAGE = f_doc;
        END IF;
    END IF;

    -- 1. Seq compare-and-set; the update locks the document's row.
    UPDATE docs SET last_seq = d_last WHERE doc_id = d_id AND last_seq = d_prev;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'CF001', MESSAGE = d_id;
    END IF;
    PERFORM pg_notify('confab_changes', d_id || ' ' || (d_prev + 1) || ' ' || d_last || ' '
        || (extract(epoch FROM clock_timestamp()) * 1000)::int8);

    -- 2. The change log.
    INSERT INTO changes (doc_id, seq, hash, bytes, account, accepted_at)
        SELECT d_id, u.* FROM UNNEST(c_seqs, c_hashes, c_bytes, c_accounts, c_at) AS u;

    -- 3. New messages take the positions ending at the conversation's new last_pos, in
    --    batch order (its row is created first if it is missing, as in confab_commit). The
    --    insert's snapshot is taken after the update's lock: a message id another node
    --    stored first is seen, and skipped. Then the search entries of the rows stored.
    IF v_count > 0 THEN
        UPDATE conversations SET last_pos = last_pos + v_count,
                last_activity = GREATEST(last_activity, v_max)
            WHERE tenant = v_tenant AND conv = v_conv
            RETURNING last_pos, id INTO end_pos, conv_id;
        IF NOT FOUND THEN
            INSERT INTO conversations (tenant, conv, kind, lifecycle, created_at, last_activity)
                VALUES (v_tenant, v_conv, 'unknown', 'active', v_created, 0)
                ON CONFLICT (tenant, conv) DO NOTHING;
            UPDATE conversations SET last_pos = last_pos + v_count,
                    last_activity = GREATEST(last_activity, v_max)
                WHERE tenant = v_tenant AND conv = v_conv
                RETURNING last_pos, id INTO end_pos, conv_id;
        END IF;
        WITH stored AS (
            INSERT INTO messages (cid, pos, created_at, seq, period, part, deleted, message,
                    author, kind, preview)
                SELECT conv_id, end_pos - v_count + g.o, g.ca, g.s, confab_msgs_period(d_id),
                        confab_msgs_part(d_id), g.del, g.id, g.a, g.k, g.p
                FROM UNNEST(g_ids, g_seqs, g_authors, g_kinds, g_created, g_previews,
                        g_deleted)
                    WITH ORDINALITY AS g(id, s, a, k, ca, p, del, o)
                WHERE NOT EXISTS (SELECT 1 FROM messages x WHERE x.cid = conv_id
                    AND hashtext(x.message) = hashtext(g.id) AND x.message = g.id OFFSET 0)
                RETURNING cid, pos, created_at, deleted
        ), indexed AS (
            INSERT INTO message_search (cid, pos, created_at, terms)
                SELECT s.cid, s.pos, s.created_at,
                        array_to_tsvector(string_to_array(t.terms, ' '))
                FROM stored s
                CROSS JOIN LATERAL (SELECT g_terms[s.pos - end_pos + v_count] AS terms) t
                WHERE NOT s.deleted AND t.terms IS NOT NULL
        )
        SELECT COUNT(*) INTO stored_count FROM stored;
        IF stored_count < v_count THEN
            INSERT INTO message_search (cid, pos, created_at, terms)
                SELECT m.cid, m.pos, m.created_at, array_to_tsvector(string_to_array(g.t, ' '))
                FROM UNNEST(g_ids, g_terms) AS g(id, t)
                CROSS JOIN LATERAL (
                    SELECT r.cid, r.pos, r.created_at FROM messages r
                    WHERE r.cid = conv_id AND hashtext(r.message) = hashtext(g.id)
                        AND r.message = g.id AND NOT r.deleted
                    OFFSET 0
                ) m
                WHERE g.t IS NOT NULL
                ON CONFLICT (created_at, cid, pos) DO UPDATE SET terms = EXCLUDED.terms;
        END IF;
    END IF;
END;
$$;
