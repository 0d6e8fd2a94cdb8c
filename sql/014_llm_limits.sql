-- 014_llm_limits: the LLM gateway's model aliases (a name routed to ordered
-- provider targets) and per-API-key rate limits in tokens and requests per
-- minute, with their admin API (omnichat.gateway_api(), the same shape as
-- omnichat.api()) and the gateway's one query a request that reads both.

CREATE TABLE omnichat.model_aliases (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL UNIQUE
                CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$'),
    description text,
    targets     jsonb       NOT NULL
                CHECK (jsonb_typeof(targets) = 'array'
                       AND jsonb_array_length(targets) BETWEEN 1 AND 8),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text
);

COMMENT ON TABLE omnichat.model_aliases IS
    'Model names of the LLM gateway that route to ordered provider targets '
    '[{provider, model}], tried in order before the first byte. An alias '
    'wins over a model of the same name added later.';


CREATE TABLE omnichat.key_limits (
    api_key_id          uuid        PRIMARY KEY
                        REFERENCES auth_service.api_keys ON DELETE CASCADE,
    tokens_per_minute   bigint      CHECK (tokens_per_minute > 0),
    requests_per_minute int         CHECK (requests_per_minute > 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          text,
    CHECK (tokens_per_minute IS NOT NULL OR requests_per_minute IS NOT NULL)
);

COMMENT ON TABLE omnichat.key_limits IS
    'Rate limits of an API key on the LLM gateway, per minute (NULL: none). '
    'The worker keeps their buckets in Redis (services/chat/limits.c).';


CREATE FUNCTION omnichat.alias_json(a omnichat.model_aliases)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object('id', a.id, 'name', a.name,
        'description', a.description, 'targets', a.targets,
        'created_by', a.created_by,
        'created_at', omnichat.ts(a.created_at),
        'updated_at', omnichat.ts(a.updated_at))
$$;


CREATE FUNCTION omnichat.alias_write(p_user text, p_name text, b jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    creating boolean := p_name IS NULL;
    a omnichat.model_aliases;
    v_name text;
    v_targets jsonb;
    i int;
BEGIN
    PERFORM omnichat.only(b, CASE WHEN creating
        THEN '{name,description,targets}'::text[]
        ELSE '{description,targets}'::text[] END, '');
    IF NOT creating THEN
        SELECT * INTO a FROM omnichat.model_aliases AS x
        WHERE x.name = p_name FOR UPDATE;
        IF NOT FOUND THEN
            PERFORM omnichat.fail('OC404', '', 'no alias "'
                || left(p_name, 64) || '"');
        END IF;
    END IF;
    IF creating THEN
        v_name := omnichat.str(b, 'name', true, 128);
        IF v_name !~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' THEN
            PERFORM omnichat.fail('OC422', 'name', 'name: letters, digits '
                'and . _ : - (starting with a letter or digit)');
        END IF;
        IF EXISTS (SELECT 1 FROM omnichat.models
                   WHERE name = v_name AND active) THEN
            PERFORM omnichat.fail('OC422', 'name', 'name: a configured '
                'model is called "' || v_name || '"');
        END IF;
    END IF;
    v_targets := omnichat.fallbacks(b, 'targets');
    IF v_targets IS NULL AND (creating OR b ? 'targets') THEN
        PERFORM omnichat.fail('OC400', 'targets', 'targets: required, an '
            'array of {provider, model}');
    END IF;
    IF v_targets IS NOT NULL THEN
        IF jsonb_array_length(v_targets) = 0 THEN
            PERFORM omnichat.fail('OC422', 'targets',
                'targets: at least one target');
        END IF;
        SELECT min(y.ord) - 1 INTO i
        FROM jsonb_array_elements(v_targets) WITH ORDINALITY AS y(e, ord)
        WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(v_targets)
                          WITH ORDINALITY AS z(e, ord)
                      WHERE z.ord < y.ord AND z.e = y.e);
        IF i IS NOT NULL THEN
            PERFORM omnichat.fail('OC422', 'targets[' || i || ']',
                'targets[' || i || ']: repeats an earlier target');
        END IF;
    END IF;
    IF creating THEN
        INSERT INTO omnichat.model_aliases (name, description, targets,
            created_by)
        VALUES (v_name, omnichat.str(b, 'description', false, 1000),
            v_targets, p_user)
        RETURNING * INTO a;
    ELSE
        UPDATE omnichat.model_aliases SET
            description = CASE WHEN b ? 'description'
                THEN omnichat.str(b, 'description', false, 1000)
                ELSE description END,
            targets = coalesce(v_targets, targets), updated_at = now()
        WHERE id = a.id RETURNING * INTO a;
    END IF;
    RETURN omnichat.alias_json(a);
END
$$;


CREATE FUNCTION omnichat.limit_json(x omnichat.key_limits)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object('api_key_id', x.api_key_id,
        'tokens_per_minute', x.tokens_per_minute,
        'requests_per_minute', x.requests_per_minute,
        'created_by', x.created_by,
        'created_at', omnichat.ts(x.created_at),
        'updated_at', omnichat.ts(x.updated_at))
$$;


CREATE FUNCTION omnichat.limit_write(p_user text, p_key text, b jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    x omnichat.key_limits;
    v_tpm numeric;
    v_rpm numeric;
BEGIN
    PERFORM omnichat.only(b, '{tokens_per_minute,requests_per_minute}', '');
    IF NOT EXISTS (SELECT 1 FROM auth_service.api_keys
                   WHERE id = omnichat.uuid_or_null(p_key)
                     AND revoked_at IS NULL) THEN
        PERFORM omnichat.fail('OC404', '', 'no live API key "'
            || left(p_key, 64) || '"');
    END IF;
    v_tpm := omnichat.num(b, 'tokens_per_minute', false, 1, 1e12, true);
    v_rpm := omnichat.num(b, 'requests_per_minute', false, 1, 1e6, true);
    IF v_tpm IS NULL AND v_rpm IS NULL THEN
        PERFORM omnichat.fail('OC422', 'tokens_per_minute', 'tokens_per_minute '
            'or requests_per_minute: at least one (DELETE lifts the limits)');
    END IF;
    INSERT INTO omnichat.key_limits AS o (api_key_id, tokens_per_minute,
        requests_per_minute, created_by)
    VALUES (p_key::uuid, v_tpm, v_rpm, p_user)
    ON CONFLICT (api_key_id) DO UPDATE SET
        tokens_per_minute = excluded.tokens_per_minute,
        requests_per_minute = excluded.requests_per_minute,
        updated_at = now()
    RETURNING * INTO x;
    RETURN omnichat.limit_json(x);
END
$$;


-- The admin API of aliases and limits; answers as omnichat.api() does.
CREATE FUNCTION omnichat.gateway_api(p_op text, p_user text, p_id text,
    p_body text, p_limit int, p_cursor uuid, p_admin boolean,
    OUT status int, OUT body text)
    LANGUAGE plpgsql
AS $$
DECLARE
    b jsonb;
    r jsonb;
    st text;
    msg text;
    fld text;
BEGIN
    status := 200;
    BEGIN
        b := p_body::jsonb;
    EXCEPTION WHEN OTHERS THEN
        PERFORM omnichat.fail('OC400', '', 'the body is JSON Postgres '
            'cannot hold (a number out of range)');
    END;
    CASE p_op
    WHEN 'aliases.list' THEN
        SELECT omnichat.page(array_agg(omnichat.alias_json(x)
                                       ORDER BY x.name),
                             array_agg(x.id ORDER BY x.name), p_limit)
        INTO r FROM (SELECT * FROM omnichat.model_aliases AS y
            WHERE p_cursor IS NULL OR y.name > (SELECT name
                FROM omnichat.model_aliases WHERE id = p_cursor)
            ORDER BY y.name LIMIT p_limit + 1) AS x;
    WHEN 'aliases.get' THEN
        SELECT omnichat.alias_json(x) INTO r FROM omnichat.model_aliases AS x
        WHERE x.name = p_id;
        IF r IS NULL THEN
            PERFORM omnichat.fail('OC404', '', 'no alias "'
                || left(p_id, 64) || '"');
        END IF;
    WHEN 'aliases.create' THEN
        r := omnichat.alias_write(p_user, NULL, b);
        status := 201;
    WHEN 'aliases.update' THEN
        r := omnichat.alias_write(p_user, p_id, b);
    WHEN 'aliases.delete' THEN
        DELETE FROM omnichat.model_aliases WHERE name = p_id;
        IF NOT FOUND THEN
            PERFORM omnichat.fail('OC404', '', 'no alias "'
                || left(p_id, 64) || '"');
        END IF;
        status := 204;
    WHEN 'limits.list' THEN
        SELECT omnichat.page(array_agg(omnichat.limit_json(x)
                                       ORDER BY x.api_key_id),
                             array_agg(x.api_key_id ORDER BY x.api_key_id),
                             p_limit)
        INTO r FROM (SELECT * FROM omnichat.key_limits AS y
            WHERE p_cursor IS NULL OR y.api_key_id > p_cursor
            ORDER BY y.api_key_id LIMIT p_limit + 1) AS x;
    WHEN 'limits.put' THEN
        r := omnichat.limit_write(p_user, p_id, b);
    WHEN 'limits.delete' THEN
        DELETE FROM omnichat.key_limits
        WHERE api_key_id = omnichat.uuid_or_null(p_id);
        IF NOT FOUND THEN
            PERFORM omnichat.fail('OC404', '', 'no limits for the key "'
                || left(p_id, 64) || '"');
        END IF;
        status := 204;
    END CASE;
    body := r::text;
EXCEPTION
    WHEN SQLSTATE 'OC400' OR SQLSTATE 'OC404' OR SQLSTATE 'OC422' THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
            fld = PG_EXCEPTION_DETAIL;
        status := substr(st, 3)::int;
        body := (jsonb_build_object('error', CASE status
                WHEN 400 THEN CASE WHEN fld = '' THEN 'invalid_json'
                    ELSE 'invalid_field' END WHEN 404 THEN 'not_found'
                ELSE 'invalid_value' END, 'message', msg)
            || CASE WHEN fld <> '' THEN jsonb_build_object('field', fld)
               ELSE '{}' END)::text;
    WHEN unique_violation THEN
        status := 409;
        body := jsonb_build_object('error', 'conflict', 'message',
            'name: another alias has this name', 'field', 'name')::text;
END
$$;

COMMENT ON FUNCTION omnichat.gateway_api(text, text, text, text, int, uuid,
    boolean) IS
    'The LLM gateway''s admin API (aliases, per-key limits), called as '
    'omnichat.api() is; returns the HTTP status and the JSON body.';


-- What the gateway asks once a request: the targets of the model name (an
-- alias's in order; else the model, by provider name when several serve
-- it, then that model's fallbacks: omnichat.gateway_begin()'s), the
-- caller's daily budgets and the calling API key's limits (null: none).
-- PL/pgSQL, whose statements' plans are cached in the session: the SQL
-- function gateway_begin() is planned again at every call (a few times
-- the CPU of this one).
CREATE FUNCTION omnichat.gateway_plan(p_user text, p_model text, p_key text)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
AS $$
DECLARE
    v_alias text;
    v_wanted jsonb;
BEGIN
    SELECT a.name, a.targets INTO v_alias, v_wanted
    FROM omnichat.model_aliases AS a WHERE a.name = p_model;
    IF v_alias IS NULL THEN
        SELECT jsonb_build_array(jsonb_build_object('provider', p.name,
                   'model', m.name)) || m.fallbacks
        INTO v_wanted
        FROM omnichat.models AS m
        JOIN omnichat.providers AS p ON p.id = m.provider_id
        WHERE m.name = p_model AND m.active
        ORDER BY p.name LIMIT 1;
    END IF;
    RETURN jsonb_build_object(
        'targets', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'provider', p.name, 'type', p.type, 'base_url', p.base_url,
                'api_key_env', p.api_key_env, 'api_key_file', p.api_key_file,
                'model', m.name, 'model_id', m.id,
                'max_output_tokens', m.max_output_tokens,
                'price_version', pr.version, 'input', pr.input,
                'output', pr.output, 'cached', pr.cached) ORDER BY w.ord),
                '[]')
            FROM jsonb_array_elements(coalesce(v_wanted, '[]'))
                WITH ORDINALITY AS w(e, ord)
            JOIN omnichat.providers AS p ON p.name = w.e->>'provider'
            JOIN omnichat.models AS m ON m.provider_id = p.id
                AND m.name = w.e->>'model' AND m.active
            JOIN LATERAL (SELECT * FROM omnichat.model_prices AS x
                          WHERE x.model_id = m.id
                          ORDER BY x.version DESC LIMIT 1) AS pr ON true),
        'budgets', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'key', b.scope || ':' || b.target,
                'tokens_per_day', b.tokens_per_day,
                'cost_per_day', b.cost_per_day)), '[]')
            FROM omnichat.budgets AS b
            WHERE b.scope = 'user' AND b.target = p_user),
        'limits', (SELECT jsonb_build_object(
                'tokens_per_minute', l.tokens_per_minute,
                'requests_per_minute', l.requests_per_minute)
            FROM omnichat.key_limits AS l
            WHERE l.api_key_id = omnichat.uuid_or_null(p_key)),
        'alias', v_alias);
END
$$;


-- The models and aliases a caller may name, as OpenAI's model list: an
-- alias is listed while one of its targets is an active model.
CREATE FUNCTION omnichat.gateway_catalog()
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object('object', 'list', 'data',
        coalesce(jsonb_agg(jsonb_build_object('id', x.name, 'object', 'model',
            'created', x.created, 'owned_by', x.owner) ORDER BY x.name), '[]'))
    FROM (SELECT DISTINCT ON (y.name) y.name, y.created, y.owner
          FROM (SELECT a.name, extract(epoch FROM a.created_at)::bigint
                           AS created, 'omni' AS owner, 0 AS rank
                FROM omnichat.model_aliases AS a
                WHERE EXISTS (
                    SELECT 1 FROM jsonb_array_elements(a.targets) AS t(e)
                    JOIN omnichat.providers AS p ON p.name = t.e->>'provider'
                    JOIN omnichat.models AS m ON m.provider_id = p.id
                        AND m.name = t.e->>'model' AND m.active)
                UNION ALL
                SELECT m.name, extract(epoch FROM p.created_at)::bigint,
                       p.name, 1
                FROM omnichat.models AS m
                JOIN omnichat.providers AS p ON p.id = m.provider_id
                WHERE m.active) AS y
          ORDER BY y.name, y.rank, y.owner) AS x
$$;
