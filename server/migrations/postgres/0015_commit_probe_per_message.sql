-- The commit functions skip a message id already stored with `NOT EXISTS (SELECT 1 FROM
-- messages x WHERE x.cid = … AND hashtext(x.message) = hashtext(g.id) AND x.message = g.id)`.
-- Postgres turned that into an anti-join whose inner side was the conversation's messages
-- found by `cid` alone (`messages_id`'s first column), materialized once per commit: every
-- commit read every message row of its conversation, so a commit's cost grew with the
-- conversation's history (auto_explain at 5,000 messages: 4,997 rows read and 14,991
-- filtered for a 3-message batch, 0.9 ms of a 1.2 ms commit; docs/BENCHMARKS.md).
-- `OFFSET 0` keeps the EXISTS a subquery run per new message, whose scan has both index
-- columns: one probe of `messages_id` per message, whatever the history. The functions
-- are otherwise as in migrations 0010 (confab_commit_messages) and 0014 (confab_commit).

CREATE OR REPLACE FUNCTION confab_commit_messages(
    d_id text, d_prev int8, d_last int8,
    c_seqs int8[], c_hashes bytea[], c_bytes bytea[], c_accounts text[], c_at int8[],
    v_tenant text, v_conv text, v_count int8, v_created int8, v_max int8,
    g_ids text[], g_seqs int8[], g_authors text[], g_kinds text[], g_created int8[],
    g_previews text[], g_deleted bool[],
    f_doc text, f_policy int8
) RETURNS void LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    end_pos int8;
    conv_id int8;
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
    --    stored first is seen, and skipped.
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
        INSERT INTO messages (cid, pos, created_at, seq, period, part, deleted, message,
                author, kind, preview)
            SELECT conv_id, end_pos - v_count + g.o, g.ca, g.s, confab_msgs_period(d_id),
                    confab_msgs_part(d_id), g.del, g.id, g.a, g.k, g.p
            FROM UNNEST(g_ids, g_seqs, g_authors, g_kinds, g_created, g_previews, g_deleted)
                WITH ORDINALITY AS g(id, s, a, k, ca, p, del, o)
            WHERE NOT EXISTS (SELECT 1 FROM messages x WHERE x.cid = conv_id
                AND hashtext(x.message) = hashtext(g.id) AND x.message = g.id OFFSET 0);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION confab_commit(
    d_ids text[], d_tenants text[], d_prev int8[], d_last int8[],
    c_docs text[], c_seqs int8[], c_hashes bytea[], c_bytes bytea[], c_accounts text[],
    c_at int8[],
    b_tenants text[], b_actors bytea[], b_accounts text[], b_at int8[],
    t_tenants text[], t_convs text[], t_created int8[], t_activity int8[],
    s_tenants text[], s_convs text[], s_kinds text[], s_titles text[], s_lifecycles text[],
    s_parents text[], s_created int8[],
    m_tenants text[], m_convs text[], m_accounts text[], m_roles text[], m_statuses text[],
    r_tenants text[], r_convs text[], r_accounts text[], r_messages text[],
    a_tenants text[], a_convs text[], a_counts int8[], a_max int8[],
    g_tenants text[], g_convs text[], g_ids text[], g_docs text[], g_seqs int8[],
    g_authors text[], g_kinds text[], g_created int8[], g_previews text[], g_deleted bool[],
    u_tenants text[], u_convs text[], u_ids text[], u_previews text[], u_deleted bool[],
    d_policy int8[], f_docs text[], f_policy int8[],
    s_scopes text[], s_descriptions text[], s_members int8[], s_joins text[]
) RETURNS void LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    culprit text;
    advanced text[];
    locked bigint;
    e_tenants text[];
    e_convs text[];
    e_ids int8[];
    e_bases int8[];
BEGIN
    -- 1. Seq compare-and-set. New documents get their row first; rows are locked in key
    --    order so two nodes never deadlock.
    IF 0 = ANY(d_prev) THEN
        INSERT INTO docs (doc_id, tenant)
            SELECT d, t FROM UNNEST(d_ids, d_tenants, d_prev) AS u(d, t, p) WHERE p = 0
            ON CONFLICT (doc_id) DO NOTHING;
    END IF;
    --    The conversation documents the batch was validated against are locked with them,
    --    in the same order, so a fenced batch and a policy move never deadlock.
    PERFORM 1 FROM docs WHERE doc_id = ANY(d_ids || f_docs) ORDER BY doc_id COLLATE "C"
        FOR UPDATE;
    WITH moved AS (
        UPDATE docs SET last_seq = u.l, policy_seq = GREATEST(docs.policy_seq, u.np)
            FROM UNNEST(d_ids, d_prev, d_last, d_policy) AS u(d, p, l, np)
            WHERE docs.doc_id = u.d AND docs.last_seq = u.p
            RETURNING docs.doc_id
    )
    SELECT array_agg(doc_id) INTO advanced FROM moved;
    IF COALESCE(cardinality(advanced), 0) <> cardinality(d_ids) THEN
        SELECT d INTO culprit FROM UNNEST(d_ids) AS d
            WHERE advanced IS NULL OR d <> ALL(advanced) LIMIT 1;
        RAISE EXCEPTION USING ERRCODE = 'CF001', MESSAGE = culprit;
    END IF;
    --    The fence: each conversation's policy version, after the batch's own moves, is
    --    the one the batch was validated against (another node may have moved it).
    IF cardinality(f_docs) > 0 THEN
        SELECT u.d INTO culprit FROM UNNEST(f_docs, f_policy) AS u(d, p)
            LEFT JOIN docs ON docs.doc_id = u.d
            WHERE COALESCE(docs.policy_seq, 0) <> u.p LIMIT 1;
        IF culprit IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'CF003', MESSAGE = culprit;
        END IF;
    END IF;
    PERFORM pg_notify('confab_changes', u.d || ' ' || (u.p + 1) || ' ' || u.l || ' ' || now_ms)
        FROM UNNEST(d_ids, d_prev, d_last) AS u(d, p, l),
            (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8 AS now_ms) AS t;

    -- 2. The change log.
    INSERT INTO changes (doc_id, seq, hash, bytes, account, accepted_at)
        SELECT * FROM UNNEST(c_docs, c_seqs, c_hashes, c_bytes, c_accounts, c_at);

    -- 3. Actor bindings: a binding another node made first must name the same account.
    IF cardinality(b_actors) > 0 THEN
        INSERT INTO actors (tenant, actor, account, bound_at)
            SELECT * FROM UNNEST(b_tenants, b_actors, b_accounts, b_at)
            ON CONFLICT (tenant, actor) DO NOTHING;
        SELECT 'actor ' || encode(u.x, 'hex') || ' of tenant ' || u.t || ' is bound to '
                || COALESCE(a.account, 'nobody') || ', not ' || u.acc
            INTO culprit
            FROM UNNEST(b_tenants, b_actors, b_accounts) AS u(t, x, acc)
            LEFT JOIN actors a ON a.tenant = u.t AND a.actor = u.x
            WHERE a.account IS DISTINCT FROM u.acc LIMIT 1;
        IF culprit IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'CF002', MESSAGE = culprit;
        END IF;
    END IF;

    -- 4. Conversation rows the batch touches exist and are locked in key order (inserted
    --    first only if some are missing).
    IF cardinality(t_convs) > 0 THEN
        PERFORM 1 FROM conversations
            WHERE (tenant, conv) IN (SELECT * FROM UNNEST(t_tenants, t_convs))
            ORDER BY tenant COLLATE "C", conv COLLATE "C" FOR UPDATE;
        GET DIAGNOSTICS locked = ROW_COUNT;
        IF locked < cardinality(t_convs) THEN
            INSERT INTO conversations (tenant, conv, kind, lifecycle, created_at, last_activity)
                SELECT t, c, 'unknown', 'active', ca, la
                FROM UNNEST(t_tenants, t_convs, t_created, t_activity) AS u(t, c, ca, la)
                ON CONFLICT (tenant, conv) DO NOTHING;
            PERFORM 1 FROM conversations
                WHERE (tenant, conv) IN (SELECT * FROM UNNEST(t_tenants, t_convs))
                ORDER BY tenant COLLATE "C", conv COLLATE "C" FOR UPDATE;
        END IF;
    END IF;
    IF cardinality(s_convs) > 0 THEN
        UPDATE conversations c SET kind = u.k, title = u.ti, lifecycle = u.l, parent = u.p,
                created_at = u.ca, scope = u.sc, description = u.de, active_members = u.n,
                join_route = u.j, discovery_projected = TRUE
            FROM UNNEST(s_tenants, s_convs, s_kinds, s_titles, s_lifecycles, s_parents,
                s_created, s_scopes, s_descriptions, s_members, s_joins)
                AS u(t, cv, k, ti, l, p, ca, sc, de, n, j)
            WHERE c.tenant = u.t AND c.conv = u.cv;
    END IF;

    -- 5. Members and read markers.
    IF cardinality(m_accounts) > 0 THEN
        INSERT INTO memberships (tenant, conv, account, role, status)
            SELECT * FROM UNNEST(m_tenants, m_convs, m_accounts, m_roles, m_statuses)
            ON CONFLICT (tenant, conv, account) DO UPDATE SET role = EXCLUDED.role,
                status = EXCLUDED.status;
    END IF;
    IF cardinality(r_accounts) > 0 THEN
        INSERT INTO read_markers (tenant, conv, account, message)
            SELECT * FROM UNNEST(r_tenants, r_convs, r_accounts, r_messages)
            ON CONFLICT (tenant, conv, account) DO UPDATE SET message = EXCLUDED.message;
    END IF;

    -- 6. New messages take the positions ending at their conversation's new last_pos, in
    --    batch order. The update locks the conversation rows; the insert is a statement of
    --    its own so that its snapshot, taken after those locks, sees every message another
    --    node committed before (a message id already stored is skipped).
    IF cardinality(g_ids) > 0 THEN
        WITH ends AS (
            UPDATE conversations c SET last_pos = c.last_pos + u.n,
                    last_activity = GREATEST(c.last_activity, u.mx)
                FROM UNNEST(a_tenants, a_convs, a_counts, a_max) AS u(t, cv, n, mx)
                WHERE c.tenant = u.t AND c.conv = u.cv
                RETURNING c.tenant, c.conv, c.id, c.last_pos - u.n AS base
        )
        SELECT array_agg(tenant), array_agg(conv), array_agg(id), array_agg(base)
            INTO e_tenants, e_convs, e_ids, e_bases FROM ends;
        INSERT INTO messages (cid, pos, created_at, seq, period, part, deleted, message,
                author, kind, preview)
            SELECT e.id,
                    e.base + row_number() OVER (PARTITION BY g.t, g.c ORDER BY g.o),
                    g.ca, g.s, confab_msgs_period(g.d), confab_msgs_part(g.d), g.del, g.id,
                    g.a, g.k, g.p
            FROM UNNEST(g_tenants, g_convs, g_ids, g_docs, g_seqs, g_authors, g_kinds,
                g_created, g_previews, g_deleted)
                WITH ORDINALITY AS g(t, c, id, d, s, a, k, ca, p, del, o)
            JOIN UNNEST(e_tenants, e_convs, e_ids, e_bases) AS e(t, c, id, base)
                ON e.t = g.t AND e.c = g.c
            WHERE NOT EXISTS (SELECT 1 FROM messages x WHERE x.cid = e.id
                AND hashtext(x.message) = hashtext(g.id) AND x.message = g.id OFFSET 0);
    END IF;

    -- 7. Edits and deletions of messages committed before this batch.
    IF cardinality(u_ids) > 0 THEN
        UPDATE messages m SET preview = u.p, deleted = u.d
            FROM UNNEST(u_tenants, u_convs, u_ids, u_previews, u_deleted)
                AS u(t, c, id, p, d)
            JOIN conversations cv ON cv.tenant = u.t AND cv.conv = u.c
            WHERE m.cid = cv.id AND hashtext(m.message) = hashtext(u.id)
                AND m.message = u.id;
    END IF;
END;
$$;
