-- 010_omnex: contexts and memories (the Omnex store). The API's validation
-- and answers are omnex.api() below: every statement filters by owner, and
-- another user's object is simply not found. Embeddings are real[] (Debian
-- 12 packages no pgvector), stored unit-length with their model's name, so
-- a cosine similarity is a dot product and vectors of another model or
-- dimension are never compared. The worker ranks them (exact top-k) from
-- embedding_packed, the same floats as bytes: 7x faster to read than the
-- array's text and a dot product in C instead of SQL per element.

CREATE SCHEMA IF NOT EXISTS omnex;
COMMENT ON SCHEMA omnex IS
    'Omnex: each user''s structured contexts and embedded memories.';


CREATE TABLE omnex.contexts (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    owner      text        NOT NULL,
    namespace  text        NOT NULL
                           CHECK (namespace ~ '^[A-Za-z0-9._-]{1,128}$'),
    key        text        NOT NULL CHECK (key ~ '^[A-Za-z0-9._-]{1,128}$'),
    value      jsonb       NOT NULL,
    tags       text[]      NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner, namespace, key)
);

CREATE INDEX contexts_tags_idx ON omnex.contexts USING gin (tags);
CREATE INDEX contexts_owner_updated_idx
    ON omnex.contexts (owner, updated_at);

COMMENT ON TABLE omnex.contexts IS
    'Structured contexts: a JSON value per (owner, namespace, key), upserted.';


CREATE TABLE omnex.memories (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    owner            text        NOT NULL,
    namespace        text        NOT NULL
                                 CHECK (namespace ~ '^[A-Za-z0-9._-]{1,128}$'),
    content          text        NOT NULL,
    metadata         jsonb       NOT NULL DEFAULT '{}'
                                 CHECK (jsonb_typeof(metadata) = 'object'),
    embedding        real[],
    embedding_packed bytea,
    embedding_model  text,
    embed_claimed_at timestamptz,
    embed_attempts   int         NOT NULL DEFAULT 0,
    tsv              tsvector    GENERATED ALWAYS AS
                                 (to_tsvector('english', content)) STORED,
    -- a batch's memories in input order: equal ranks list older first
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((embedding IS NULL) = (embedding_model IS NULL))
);

-- The semantic scan reads embedding_packed row after row: keep it in the
-- row, and the array (the same floats again) out of it.
ALTER TABLE omnex.memories ALTER COLUMN embedding SET STORAGE EXTERNAL,
    ALTER COLUMN embedding_packed SET STORAGE MAIN;

CREATE INDEX memories_owner_ns_idx ON omnex.memories (owner, namespace, id);
CREATE INDEX memories_owner_idx ON omnex.memories (owner, id);
CREATE INDEX memories_tsv_idx ON omnex.memories USING gin (tsv);
CREATE INDEX memories_model_idx ON omnex.memories (embedding_model);

COMMENT ON TABLE omnex.memories IS
    'Memories: text, searchable by text at once, semantically once the '
    'worker has stored its embedding (unit length) under embedding_model. '
    'A row without one, or with another model''s, is the embedding queue '
    '(embed_claimed_at: claimed by a worker process, reclaimable later; '
    'embed_attempts: claims since the last success).';


CREATE FUNCTION omnex.fail(p_state text, p_field text, p_msg text)
    RETURNS void
    LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_msg,
        DETAIL = coalesce(p_field, '');
END
$$;


CREATE FUNCTION omnex.ts(t timestamptz)
    RETURNS text
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;


-- A namespace or key: NULL when absent and optional.
CREATE FUNCTION omnex.name(v text, field text, required boolean)
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF v IS NULL THEN
        IF required THEN
            PERFORM omnex.fail('OX400', field, field || ': required');
        END IF;
        RETURN NULL;
    END IF;
    IF v !~ '^[A-Za-z0-9._-]{1,128}$' THEN
        PERFORM omnex.fail('OX422', field, field
            || ': must match ^[A-Za-z0-9._-]{1,128}$');
    END IF;
    RETURN v;
END
$$;


-- A string member of b: NULL when absent (or null) and optional.
CREATE FUNCTION omnex.str(b jsonb, k text, field text, required boolean)
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v jsonb := b -> k;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        IF required THEN
            PERFORM omnex.fail('OX400', field, field || ': required');
        END IF;
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'string' THEN
        PERFORM omnex.fail('OX400', field, field || ': must be a string');
    END IF;
    RETURN v #>> '{}';
END
$$;


CREATE FUNCTION omnex.tags(v jsonb)
    RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    t text[];
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN '{}';
    END IF;
    IF jsonb_typeof(v) <> 'array' THEN
        PERFORM omnex.fail('OX400', 'tags', 'tags: must be an array of '
            'strings');
    END IF;
    IF jsonb_array_length(v) > 32 THEN
        PERFORM omnex.fail('OX422', 'tags', 'tags: at most 32');
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(v) AS e
               WHERE jsonb_typeof(e) <> 'string') THEN
        PERFORM omnex.fail('OX400', 'tags', 'tags: must be an array of '
            'strings');
    END IF;
    SELECT coalesce(array_agg(DISTINCT e ORDER BY e), '{}') INTO t
    FROM jsonb_array_elements_text(v) AS e;
    IF EXISTS (SELECT 1 FROM unnest(t) AS e
               WHERE length(e) NOT BETWEEN 1 AND 64) THEN
        PERFORM omnex.fail('OX422', 'tags', 'tags: each 1 to 64 characters');
    END IF;
    RETURN t;
END
$$;


CREATE FUNCTION omnex.context_json(c omnex.contexts)
    RETURNS jsonb
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object('id', c.id, 'namespace', c.namespace,
        'key', c.key, 'value', c.value, 'tags', to_jsonb(c.tags),
        'created_at', omnex.ts(c.created_at),
        'updated_at', omnex.ts(c.updated_at))
$$;


CREATE FUNCTION omnex.memory_json(m omnex.memories, p_model text)
    RETURNS jsonb
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object('id', m.id, 'namespace', m.namespace,
        'content', m.content, 'metadata', m.metadata,
        'embedded', coalesce(m.embedding_model = p_model, false),
        'created_at', omnex.ts(m.created_at))
$$;


-- A list cursor: the base64url of "namespace/key" of the last item shown
-- ('/' is in neither pattern).
CREATE FUNCTION omnex.cursor_encode(ns text, k text)
    RETURNS text
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT translate(encode(convert_to(ns || '/' || k, 'UTF8'), 'base64'),
                     E'+/=\n', '-_')
$$;


CREATE FUNCTION omnex.cursor_decode(c text, OUT ns text, OUT k text)
    LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    t text;
BEGIN
    BEGIN
        t := translate(c, '-_', '+/');
        t := t || repeat('=', (4 - length(t) % 4) % 4);
        t := convert_from(decode(t, 'base64'), 'UTF8');
    EXCEPTION WHEN OTHERS THEN
        t := NULL;
    END;
    IF t IS NULL OR t !~ '^[A-Za-z0-9._-]{1,128}/[A-Za-z0-9._-]{1,128}$' THEN
        PERFORM omnex.fail('OX400', 'cursor', 'cursor: not a cursor this '
            'list gave');
    END IF;
    ns := split_part(t, '/', 1);
    k := split_part(t, '/', 2);
END
$$;


CREATE FUNCTION omnex.context_put(p_owner text, p_ns text, p_key text,
    b jsonb, OUT status int, OUT r jsonb)
    LANGUAGE plpgsql
AS $$
DECLARE
    created boolean;
BEGIN
    PERFORM omnex.name(p_ns, 'namespace', true);
    PERFORM omnex.name(p_key, 'key', true);
    IF NOT b ? 'value' THEN
        PERFORM omnex.fail('OX400', 'value', 'value: required');
    END IF;
    IF octet_length((b -> 'value')::text) > 262144 THEN
        PERFORM omnex.fail('OX413', 'value', 'value: larger than 256 KiB');
    END IF;
    INSERT INTO omnex.contexts AS x (owner, namespace, key, value, tags)
    VALUES (p_owner, p_ns, p_key, b -> 'value', omnex.tags(b -> 'tags'))
    ON CONFLICT (owner, namespace, key) DO UPDATE
        SET value = EXCLUDED.value, tags = EXCLUDED.tags, updated_at = now()
    RETURNING omnex.context_json(x), (x.xmax = 0) INTO r, created;
    status := CASE WHEN created THEN 201 ELSE 200 END;
END
$$;


CREATE FUNCTION omnex.context_list(p_owner text, b jsonb, p_limit int,
    p_cursor text)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
AS $$
DECLARE
    ns text := omnex.name(omnex.str(b, 'namespace', 'namespace', false),
                          'namespace', false);
    tag text := omnex.str(b, 'tag', 'tag', false);
    pre text := omnex.str(b, 'prefix', 'prefix', false);
    cns text;
    ckey text;
    items jsonb[];
    keys text[];
BEGIN
    IF pre IS NOT NULL AND pre !~ '^[A-Za-z0-9._-]{0,128}$' THEN
        PERFORM omnex.fail('OX422', 'prefix', 'prefix: must match '
            '^[A-Za-z0-9._-]{0,128}$');
    END IF;
    IF tag IS NOT NULL AND length(tag) NOT BETWEEN 1 AND 64 THEN
        PERFORM omnex.fail('OX422', 'tag', 'tag: 1 to 64 characters');
    END IF;
    IF p_cursor IS NOT NULL THEN
        SELECT d.ns, d.k INTO cns, ckey FROM omnex.cursor_decode(p_cursor) AS d;
    END IF;
    SELECT array_agg(omnex.context_json(x) ORDER BY x.namespace, x.key),
           array_agg(omnex.cursor_encode(x.namespace, x.key)
                     ORDER BY x.namespace, x.key)
    INTO items, keys
    FROM (SELECT * FROM omnex.contexts AS y
          WHERE y.owner = p_owner
            AND (ns IS NULL OR y.namespace = ns)
            AND (tag IS NULL OR y.tags @> ARRAY[tag])
            AND (pre IS NULL OR starts_with(y.key, pre))
            AND (cns IS NULL OR (y.namespace, y.key) > (cns, ckey))
          ORDER BY y.namespace, y.key LIMIT p_limit + 1) AS x;
    RETURN jsonb_build_object(
        'items', coalesce(to_jsonb(items[1:p_limit]), '[]'),
        'next_cursor', CASE WHEN cardinality(items) > p_limit
                            THEN to_jsonb(keys[p_limit]) END);
END
$$;


-- One memory of an add: validated, inserted, its answer.
CREATE FUNCTION omnex.memory_insert(p_owner text, e jsonb, f text,
    p_model text)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    m omnex.memories;
    ns text;
    content text;
    meta jsonb := e -> 'metadata';
BEGIN
    IF jsonb_typeof(e) <> 'object' THEN
        PERFORM omnex.fail('OX400', rtrim(f, '.'), rtrim(f, '.')
            || ': must be an object');
    END IF;
    ns := coalesce(omnex.name(omnex.str(e, 'namespace', f || 'namespace',
                                        false), f || 'namespace', false),
                   'default');
    content := omnex.str(e, 'content', f || 'content', true);
    IF btrim(content, E' \t\r\n') = '' THEN
        PERFORM omnex.fail('OX422', f || 'content', f
            || 'content: must not be empty');
    END IF;
    IF octet_length(content) > 65536 THEN
        PERFORM omnex.fail('OX413', f || 'content', f
            || 'content: larger than 64 KiB');
    END IF;
    IF meta IS NULL OR jsonb_typeof(meta) = 'null' THEN
        meta := '{}';
    ELSIF jsonb_typeof(meta) <> 'object' THEN
        PERFORM omnex.fail('OX400', f || 'metadata', f
            || 'metadata: must be an object');
    ELSIF octet_length(meta::text) > 65536 THEN
        PERFORM omnex.fail('OX413', f || 'metadata', f
            || 'metadata: larger than 64 KiB');
    END IF;
    INSERT INTO omnex.memories AS x (owner, namespace, content, metadata)
    VALUES (p_owner, ns, content, meta)
    RETURNING x.* INTO m;
    RETURN omnex.memory_json(m, p_model);
END
$$;


CREATE FUNCTION omnex.memory_add(p_owner text, b jsonb, p_model text,
    OUT r jsonb)
    LANGUAGE plpgsql
AS $$
DECLARE
    items jsonb := b -> 'items';
    out jsonb[] := '{}';
    i int;
BEGIN
    IF items IS NULL THEN
        r := omnex.memory_insert(p_owner, b, '', p_model);
        RETURN;
    END IF;
    IF jsonb_typeof(items) <> 'array' THEN
        PERFORM omnex.fail('OX400', 'items', 'items: must be an array');
    END IF;
    IF jsonb_array_length(items) NOT BETWEEN 1 AND 100 THEN
        PERFORM omnex.fail('OX422', 'items', 'items: 1 to 100 memories');
    END IF;
    FOR i IN 0 .. jsonb_array_length(items) - 1 LOOP
        out := out || omnex.memory_insert(p_owner, items -> i,
            'items[' || i || '].', p_model);
    END LOOP;
    r := jsonb_build_object('items', to_jsonb(out));
END
$$;


-- Search: text ranks by ts_rank_cd; semantic is p_sem, the worker's exact
-- top list by cosine similarity ([[id, score], ...] best first, of the
-- configured model's vectors only); hybrid fuses the two lists by
-- reciprocal rank (k = 60, each list 4k long, at least 50).
CREATE FUNCTION omnex.memory_search(p_owner text, b jsonb, p_sem jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
AS $$
DECLARE
    query text := omnex.str(b, 'query', 'query', true);
    ns text := omnex.name(omnex.str(b, 'namespace', 'namespace', false),
                          'namespace', false);
    mode text := coalesce(omnex.str(b, 'mode', 'mode', false),
                          CASE WHEN p_sem IS NULL THEN 'text'
                               ELSE 'hybrid' END);
    filter jsonb := coalesce(b -> 'filter', '{}');
    k int := 10;
    n int;
    q tsquery;
    r jsonb;
BEGIN
    IF b ? 'k' THEN
        IF jsonb_typeof(b -> 'k') <> 'number'
           OR (b ->> 'k')::numeric <> floor((b ->> 'k')::numeric) THEN
            PERFORM omnex.fail('OX400', 'k', 'k: must be an integer');
        END IF;
        IF (b ->> 'k')::numeric NOT BETWEEN 1 AND 100 THEN
            PERFORM omnex.fail('OX422', 'k', 'k: 1 to 100');
        END IF;
        k := (b ->> 'k')::int;
    END IF;
    IF jsonb_typeof(filter) = 'null' THEN
        filter := '{}';
    ELSIF jsonb_typeof(filter) <> 'object' THEN
        PERFORM omnex.fail('OX400', 'filter', 'filter: must be an object '
            '(metadata members to match)');
    END IF;
    IF mode NOT IN ('text', 'semantic', 'hybrid') THEN
        PERFORM omnex.fail('OX422', 'mode', 'mode: text, semantic or hybrid');
    END IF;
    n := greatest(4 * k, 50);
    q := websearch_to_tsquery('english', query);
    WITH
    t AS (
        SELECT y.id, y.s,
               row_number() OVER (ORDER BY y.s DESC, y.created_at, y.id) AS rk
        FROM (SELECT x.id, x.created_at, ts_rank_cd(x.tsv, q)::float8 AS s
              FROM omnex.memories AS x
              WHERE mode <> 'semantic' AND x.owner = p_owner
                AND (ns IS NULL OR x.namespace = ns)
                AND x.metadata @> filter AND x.tsv @@ q
              ORDER BY s DESC, x.created_at, x.id
              LIMIT CASE WHEN mode = 'text' THEN k ELSE n END) AS y),
    v AS (
        SELECT (e.v ->> 0)::uuid AS id, (e.v ->> 1)::float8 AS s, e.rk
        FROM jsonb_array_elements(CASE WHEN mode = 'text' THEN '[]'
                                       ELSE coalesce(p_sem, '[]') END)
             WITH ORDINALITY AS e(v, rk)
        ORDER BY e.rk LIMIT CASE WHEN mode = 'semantic' THEN k ELSE n END),
    f AS (
        SELECT coalesce(t.id, v.id) AS id,
               CASE mode WHEN 'text' THEN t.s WHEN 'semantic' THEN v.s
               ELSE coalesce(1.0 / (60 + t.rk), 0)
                    + coalesce(1.0 / (60 + v.rk), 0) END AS s
        FROM t FULL JOIN v ON t.id = v.id
        ORDER BY 2 DESC, 1 LIMIT k)
    SELECT coalesce(jsonb_agg(jsonb_build_object('id', m.id,
               'namespace', m.namespace, 'content', m.content,
               'metadata', m.metadata, 'score', f.s)
               ORDER BY f.s DESC, f.id), '[]')
    INTO r
    FROM f JOIN omnex.memories AS m ON m.id = f.id AND m.owner = p_owner;
    RETURN jsonb_build_object('items', r, 'mode', mode);
END
$$;


CREATE FUNCTION omnex.api(p_op text, p_owner text, p_ns text, p_key text,
    p_body text, p_limit int, p_cursor text, p_sem text, p_model text,
    OUT status int, OUT body text)
    LANGUAGE plpgsql
AS $$
DECLARE
    b jsonb;
    r jsonb;
    c omnex.contexts;
    m omnex.memories;
    st text;
    msg text;
    fld text;
BEGIN
    status := 200;
    BEGIN
        b := coalesce(p_body::jsonb, '{}');
    EXCEPTION WHEN OTHERS THEN
        PERFORM omnex.fail('OX400', '', 'the body is JSON Postgres cannot '
            'hold (a number out of range)');
    END;
    CASE p_op
    WHEN 'contexts.put' THEN
        SELECT x.status, x.r INTO status, r
        FROM omnex.context_put(p_owner, p_ns, p_key, b) AS x;
    WHEN 'contexts.get', 'contexts.delete' THEN
        PERFORM omnex.name(p_ns, 'namespace', true);
        PERFORM omnex.name(p_key, 'key', true);
        IF p_op = 'contexts.get' THEN
            SELECT * INTO c FROM omnex.contexts
            WHERE owner = p_owner AND namespace = p_ns AND key = p_key;
        ELSE
            DELETE FROM omnex.contexts
            WHERE owner = p_owner AND namespace = p_ns AND key = p_key
            RETURNING * INTO c;
            status := 204;
        END IF;
        IF c.id IS NULL THEN
            PERFORM omnex.fail('OX404', '', 'no context "' || p_key
                || '" in namespace "' || p_ns || '"');
        END IF;
        r := omnex.context_json(c);
    WHEN 'contexts.list' THEN
        r := omnex.context_list(p_owner, b, p_limit, p_cursor);
    WHEN 'memories.add' THEN
        r := omnex.memory_add(p_owner, b, p_model);
        status := 201;
    WHEN 'memories.get', 'memories.delete' THEN
        IF p_key ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                    '[0-9a-f]{12}$' THEN
            IF p_op = 'memories.get' THEN
                SELECT * INTO m FROM omnex.memories
                WHERE owner = p_owner AND id = p_key::uuid;
            ELSE
                DELETE FROM omnex.memories
                WHERE owner = p_owner AND id = p_key::uuid
                RETURNING * INTO m;
                status := 204;
            END IF;
        END IF;
        IF m.id IS NULL THEN
            PERFORM omnex.fail('OX404', '', 'no memory "' || left(p_key, 64)
                || '"');
        END IF;
        r := omnex.memory_json(m, p_model);
    WHEN 'memories.search' THEN
        r := omnex.memory_search(p_owner, b, p_sem::jsonb);
    END CASE;
    body := r::text;
EXCEPTION
    WHEN SQLSTATE 'OX400' OR SQLSTATE 'OX404' OR SQLSTATE 'OX413'
         OR SQLSTATE 'OX422' THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
            fld = PG_EXCEPTION_DETAIL;
        status := substr(st, 3)::int;
        body := (jsonb_build_object('error', CASE status
                WHEN 400 THEN CASE WHEN fld = '' THEN 'invalid_json'
                    WHEN fld = 'cursor' THEN 'invalid_parameter'
                    WHEN msg LIKE '%: required' THEN 'missing_field'
                    ELSE 'invalid_field' END
                WHEN 404 THEN 'not_found'
                WHEN 413 THEN 'too_large'
                ELSE 'invalid_value' END, 'message', msg)
            || CASE WHEN fld <> '' THEN jsonb_build_object('field', fld)
               ELSE '{}' END)::text;
END
$$;


-- The embedding queue, for the worker: claims up to p_limit memories
-- without a p_model vector, oldest first, never tried or not since their
-- last claim; when there are none, one that failed before (alone, so a
-- text the provider refuses never holds back others), its retries spaced
-- 30 s, 60 s, ... up to an hour.
CREATE FUNCTION omnex.embed_claim(p_model text, p_limit int)
    RETURNS TABLE (id uuid, content text)
    LANGUAGE plpgsql
AS $$
BEGIN
    RETURN QUERY
    UPDATE omnex.memories AS m
    SET embed_claimed_at = now(), embed_attempts = m.embed_attempts + 1
    FROM (SELECT x.id FROM omnex.memories AS x
          WHERE (x.embedding_model IS NULL OR x.embedding_model < p_model
                 OR x.embedding_model > p_model)
            AND x.embed_attempts = 0
          ORDER BY x.created_at LIMIT p_limit
          FOR UPDATE SKIP LOCKED) AS c
    WHERE m.id = c.id
    RETURNING m.id, m.content;
    IF FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    UPDATE omnex.memories AS m
    SET embed_claimed_at = now(), embed_attempts = m.embed_attempts + 1
    FROM (SELECT x.id FROM omnex.memories AS x
          WHERE (x.embedding_model IS NULL OR x.embedding_model < p_model
                 OR x.embedding_model > p_model)
            AND x.embed_attempts > 0
            AND x.embed_claimed_at < now() - least(interval '1 hour',
                interval '30 seconds' * 2 ^ least(x.embed_attempts - 1, 7))
          ORDER BY x.embed_claimed_at LIMIT 1
          FOR UPDATE SKIP LOCKED) AS c
    WHERE m.id = c.id
    RETURNING m.id, m.content;
END
$$;


-- Stores [{"id","embedding"}] under p_model; a memory deleted meanwhile
-- is skipped. Returns how many were stored.
CREATE FUNCTION omnex.embed_store(p_model text, p_items text)
    RETURNS int
    LANGUAGE sql
AS $$
    WITH s AS (
        UPDATE omnex.memories AS m
        SET embedding = v.a, embedding_model = p_model, embed_claimed_at = NULL,
            embed_attempts = 0,
            embedding_packed = (SELECT string_agg(float4send(x), ''::bytea
                                                  ORDER BY i)
                                FROM unnest(v.a) WITH ORDINALITY AS u(x, i))
        FROM jsonb_array_elements(p_items::jsonb) AS e,
             LATERAL (SELECT ARRAY(SELECT jsonb_array_elements_text(
                         e -> 'embedding')::real) AS a) AS v
        WHERE m.id = (e ->> 'id')::uuid
        RETURNING 1)
    SELECT count(*)::int FROM s
$$;


-- Where to ask for p_model's embeddings: the provider of an active model of
-- that name (an openai-type provider: the /v1/embeddings API).
CREATE FUNCTION omnex.embedder(p_model text,
    OUT base_url text, OUT api_key_env text, OUT api_key_file text)
    LANGUAGE sql STABLE
AS $$
    SELECT p.base_url, p.api_key_env, p.api_key_file
    FROM omnichat.models AS m JOIN omnichat.providers AS p
         ON p.id = m.provider_id
    WHERE m.name = p_model AND m.active AND p.type = 'openai'
    ORDER BY p.name LIMIT 1
$$;
