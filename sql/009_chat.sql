-- 009_chat: the chat service's data (omnichat): LLM providers, their models
-- and versioned prices, budgets, the usage ledger, and each user's
-- projects, prompts with immutable versions, conversations and messages.
-- The API's validation and answers are the omnichat.api() function below:
-- every statement filters by owner, another user's object is not found.

CREATE SCHEMA IF NOT EXISTS omnichat;
COMMENT ON SCHEMA omnichat IS
    'Chat: providers, models, prices, budgets, usage ledger, projects, '
    'prompts, conversations, messages.';


CREATE TABLE omnichat.providers (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text        NOT NULL UNIQUE
                             CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,31}$'),
    type         text        NOT NULL CHECK (type IN ('openai', 'anthropic')),
    base_url     text        NOT NULL CHECK (base_url ~ '^https?://'),
    api_key_env  text,
    api_key_file text,
    fallbacks    jsonb       NOT NULL DEFAULT '[]'
                             CHECK (jsonb_typeof(fallbacks) = 'array'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text,
    CHECK (api_key_env IS NULL OR api_key_file IS NULL)
);

COMMENT ON TABLE omnichat.providers IS
    'LLM providers (admin API). base_url is stored without a trailing /v1. '
    'The API key is only referenced: the name of an environment variable or '
    'the path of a secret file of the worker; its value is never stored.';


CREATE TABLE omnichat.models (
    id                uuid    PRIMARY KEY DEFAULT gen_random_uuid(),
    provider_id       uuid    NOT NULL
                              REFERENCES omnichat.providers ON DELETE CASCADE,
    name              text    NOT NULL,
    context_window    int     NOT NULL CHECK (context_window > 0),
    max_output_tokens int     NOT NULL CHECK (max_output_tokens > 0),
    fallbacks         jsonb   NOT NULL DEFAULT '[]'
                              CHECK (jsonb_typeof(fallbacks) = 'array'),
    active            boolean NOT NULL DEFAULT true,
    UNIQUE (provider_id, name)
);

CREATE INDEX models_name_idx ON omnichat.models (name) WHERE active;

COMMENT ON TABLE omnichat.models IS
    'A provider''s models. A model left out of a PATCH is retired '
    '(active false), not deleted: usage rows still name its prices.';


CREATE TABLE omnichat.model_prices (
    model_id   uuid        NOT NULL
                           REFERENCES omnichat.models ON DELETE CASCADE,
    version    int         NOT NULL CHECK (version > 0),
    input      numeric     NOT NULL CHECK (input >= 0),
    output     numeric     NOT NULL CHECK (output >= 0),
    cached     numeric     NOT NULL CHECK (cached >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, version)
);

COMMENT ON TABLE omnichat.model_prices IS
    'Prices per million input, output and cached tokens; a change inserts '
    'the next version, the highest is current; usage rows record theirs.';


CREATE TABLE omnichat.budgets (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    scope          text        NOT NULL CHECK (scope IN ('user', 'project')),
    target         text        NOT NULL,
    tokens_per_day bigint      CHECK (tokens_per_day >= 0),
    cost_per_day   numeric     CHECK (cost_per_day >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text,
    UNIQUE (scope, target)
);

COMMENT ON TABLE omnichat.budgets IS
    'Daily budgets of a user (target: user id) or a project (target: '
    'project id), in tokens and/or cost; NULL is unlimited.';


CREATE TABLE omnichat.projects (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     text        NOT NULL,
    name        text        NOT NULL,
    description text,
    fallbacks   jsonb       NOT NULL DEFAULT '[]'
                            CHECK (jsonb_typeof(fallbacks) = 'array'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, name)
);

CREATE INDEX projects_user_created_idx
    ON omnichat.projects (user_id, created_at, id);


CREATE TABLE omnichat.prompts (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid        NOT NULL
                           REFERENCES omnichat.projects ON DELETE CASCADE,
    user_id    text        NOT NULL,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

CREATE INDEX prompts_project_created_idx
    ON omnichat.prompts (project_id, created_at, id);
CREATE INDEX prompts_user_created_idx
    ON omnichat.prompts (user_id, created_at);


CREATE TABLE omnichat.prompt_versions (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    prompt_id  uuid        NOT NULL
                           REFERENCES omnichat.prompts ON DELETE CASCADE,
    user_id    text        NOT NULL,
    version    int         NOT NULL CHECK (version > 0),
    content    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (prompt_id, version)
);

CREATE INDEX prompt_versions_user_created_idx
    ON omnichat.prompt_versions (user_id, created_at);

COMMENT ON TABLE omnichat.prompt_versions IS
    'Immutable: an edit inserts the next version; conversations pin one.';


CREATE TABLE omnichat.conversations (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           text        NOT NULL,
    project_id        uuid        NOT NULL
                                  REFERENCES omnichat.projects ON DELETE CASCADE,
    prompt_version_id uuid        NOT NULL
                                  REFERENCES omnichat.prompt_versions,
    model             text        NOT NULL,
    fallbacks         jsonb       CHECK (jsonb_typeof(fallbacks) = 'array'),
    max_tool_rounds   int         NOT NULL DEFAULT 8
                                  CHECK (max_tool_rounds BETWEEN 0 AND 32),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX conversations_user_created_idx
    ON omnichat.conversations (user_id, created_at, id);
CREATE INDEX conversations_project_idx
    ON omnichat.conversations (project_id);
CREATE INDEX conversations_prompt_version_idx
    ON omnichat.conversations (prompt_version_id);

COMMENT ON COLUMN omnichat.conversations.user_id IS
    'The owner; the events service lets only them subscribe to '
    'conversation-<id>.';
COMMENT ON COLUMN omnichat.conversations.fallbacks IS
    'NULL: the project''s list applies, else the model''s.';


CREATE TABLE omnichat.messages (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id     uuid        NOT NULL REFERENCES omnichat.conversations
                                    ON DELETE CASCADE,
    user_id             text        NOT NULL,
    role                text        NOT NULL
                                    CHECK (role IN ('system', 'user',
                                           'assistant', 'tool')),
    content             text        NOT NULL DEFAULT '',
    tool_calls          jsonb,
    tool_call_id        text,
    input_tokens        int         NOT NULL DEFAULT 0,
    output_tokens       int         NOT NULL DEFAULT 0,
    cached_tokens       int         NOT NULL DEFAULT 0,
    cost                numeric     NOT NULL DEFAULT 0,
    latency_ms          int,
    status              text        NOT NULL DEFAULT 'ok'
                                    CHECK (status IN ('ok', 'error',
                                           'client_disconnected')),
    provider            text,
    model               text,
    provider_request_id text,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX messages_conversation_created_idx
    ON omnichat.messages (conversation_id, created_at, id);
CREATE INDEX messages_user_created_idx
    ON omnichat.messages (user_id, created_at);


CREATE TABLE omnichat.llm_usage (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    at                  timestamptz NOT NULL DEFAULT now(),
    user_id             text,
    api_key_id          uuid,
    project_id          uuid,
    conversation_id     uuid,
    message_id          uuid,
    provider            text        NOT NULL,
    model               text        NOT NULL,
    model_id            uuid,
    price_version       int,
    provider_request_id text,
    input_tokens        int         NOT NULL DEFAULT 0,
    output_tokens       int         NOT NULL DEFAULT 0,
    cached_tokens       int         NOT NULL DEFAULT 0,
    cost                numeric     NOT NULL DEFAULT 0,
    status              text        NOT NULL
                                    CHECK (status IN ('ok', 'error',
                                           'client_disconnected',
                                           'fallback')),
    estimated           boolean     NOT NULL DEFAULT false,
    latency_ms          int
);

CREATE INDEX llm_usage_user_at_idx ON omnichat.llm_usage (user_id, at);
CREATE INDEX llm_usage_project_at_idx ON omnichat.llm_usage (project_id, at);
CREATE INDEX llm_usage_conversation_at_idx
    ON omnichat.llm_usage (conversation_id, at, id);
CREATE INDEX llm_usage_api_key_at_idx ON omnichat.llm_usage (api_key_id, at);
CREATE INDEX llm_usage_at_idx ON omnichat.llm_usage (at);

COMMENT ON TABLE omnichat.llm_usage IS
    'One row per provider attempt, appended in batches; (model_id, '
    'price_version) names the prices the cost was computed with; estimated: '
    'output counted from what arrived, not reported by the provider. The id '
    'is a UUID so that its lists page with the same cursors as the others.';



-- Validation raises SQLSTATE OC400 (missing or wrongly typed member) or
-- OC422 (invalid value) with the member's name as DETAIL, OC404 for an
-- object the caller cannot see; omnichat.api() turns them into answers.
CREATE FUNCTION omnichat.fail(p_state text, p_field text, p_msg text)
    RETURNS void
    LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_msg,
        DETAIL = coalesce(p_field, '');
END
$$;


CREATE FUNCTION omnichat.ts(t timestamptz)
    RETURNS text
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;


CREATE FUNCTION omnichat.uuid_or_null(p text)
    RETURNS uuid
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN p ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                          '[0-9a-f]{12}$' THEN p::uuid END
$$;


-- Members of b outside allowed are refused, naming the first.
CREATE FUNCTION omnichat.only(b jsonb, allowed text[], prefix text)
    RETURNS void
    LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    k text;
BEGIN
    SELECT min(x) INTO k FROM jsonb_object_keys(b) AS x
    WHERE x <> ALL (allowed);
    IF k IS NOT NULL THEN
        PERFORM omnichat.fail('OC422', prefix || k,
            prefix || k || ': unknown field');
    END IF;
END
$$;


-- A string member: NULL when absent (or null) and optional; its length
-- counted in characters, blank refused.
CREATE FUNCTION omnichat.str(b jsonb, k text, required boolean, maxlen int,
    prefix text DEFAULT '')
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v jsonb := b -> k;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        IF required THEN
            PERFORM omnichat.fail('OC400', prefix || k,
                prefix || k || ': required');
        END IF;
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'string' THEN
        PERFORM omnichat.fail('OC400', prefix || k,
            prefix || k || ': must be a string');
    END IF;
    IF btrim(v #>> '{}', E' \t\r\n') = '' THEN
        PERFORM omnichat.fail('OC422', prefix || k,
            prefix || k || ': must not be empty');
    END IF;
    IF length(v #>> '{}') > maxlen THEN
        PERFORM omnichat.fail('OC422', prefix || k,
            prefix || k || ': longer than ' || maxlen || ' characters');
    END IF;
    RETURN v #>> '{}';
END
$$;


-- A number member in [lo, hi] (integral when whole): NULL when absent.
CREATE FUNCTION omnichat.num(b jsonb, k text, required boolean, lo numeric,
    hi numeric, whole boolean, prefix text DEFAULT '')
    RETURNS numeric
    LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v jsonb := b -> k;
    n numeric;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        IF required THEN
            PERFORM omnichat.fail('OC400', prefix || k,
                prefix || k || ': required');
        END IF;
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'number' THEN
        PERFORM omnichat.fail('OC400', prefix || k,
            prefix || k || ': must be a number');
    END IF;
    n := (v #>> '{}')::numeric;
    IF n < lo OR n > hi OR whole AND n <> trunc(n) THEN
        PERFORM omnichat.fail('OC422', prefix || k, prefix || k
            || CASE WHEN whole THEN ': must be an integer' ELSE
               ': must be a number' END
            || ' from ' || lo || ' to ' || hi);
    END IF;
    RETURN n;
END
$$;


-- A fallbacks list: [{provider, model}] naming configured active models.
CREATE FUNCTION omnichat.fallbacks(b jsonb, k text, prefix text DEFAULT '')
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
AS $$
DECLARE
    v jsonb := b -> k;
    e jsonb;
    i int := 0;
    f text;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'array' THEN
        PERFORM omnichat.fail('OC400', prefix || k,
            prefix || k || ': must be an array of {provider, model}');
    END IF;
    IF jsonb_array_length(v) > 8 THEN
        PERFORM omnichat.fail('OC422', prefix || k,
            prefix || k || ': at most 8 targets');
    END IF;
    FOR e IN SELECT x FROM jsonb_array_elements(v) AS x LOOP
        f := prefix || k || '[' || i || ']';
        IF jsonb_typeof(e) <> 'object' THEN
            PERFORM omnichat.fail('OC400', f, f || ': must be an object');
        END IF;
        PERFORM omnichat.only(e, '{provider,model}', f || '.');
        PERFORM omnichat.str(e, 'provider', true, 32, f || '.');
        PERFORM omnichat.str(e, 'model', true, 200, f || '.');
        IF NOT EXISTS (SELECT 1 FROM omnichat.models AS m
                       JOIN omnichat.providers AS p ON p.id = m.provider_id
                       WHERE p.name = e->>'provider' AND m.name = e->>'model'
                         AND m.active) THEN
            PERFORM omnichat.fail('OC422', f, f || ': no configured model "'
                || (e->>'model') || '" of provider "' || (e->>'provider')
                || '"');
        END IF;
        i := i + 1;
    END LOOP;
    RETURN v;
END
$$;


-- --- providers ---------------------------------------------------------------

CREATE FUNCTION omnichat.provider_json(p omnichat.providers)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'id', p.id, 'name', p.name, 'type', p.type, 'base_url', p.base_url,
        'api_key_env', p.api_key_env, 'api_key_file', p.api_key_file,
        'created_by', p.created_by))
        || jsonb_build_object(
        'fallbacks', p.fallbacks,
        'models', coalesce((SELECT jsonb_agg(jsonb_build_object(
            'name', m.name, 'context_window', m.context_window,
            'max_output_tokens', m.max_output_tokens,
            'fallbacks', m.fallbacks,
            'price', jsonb_build_object('input', pr.input,
                'output', pr.output, 'cached', pr.cached,
                'version', pr.version)) ORDER BY m.name)
            FROM omnichat.models AS m
            JOIN LATERAL (SELECT * FROM omnichat.model_prices AS x
                          WHERE x.model_id = m.id
                          ORDER BY x.version DESC LIMIT 1) AS pr ON true
            WHERE m.provider_id = p.id AND m.active), '[]'),
        'created_at', omnichat.ts(p.created_at),
        'updated_at', omnichat.ts(p.updated_at))
$$;


-- base_url: http(s), no credentials, query or fragment; kept without
-- trailing slashes or a trailing /v1 (the client adds the API's path).
CREATE FUNCTION omnichat.base_url(u text)
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF u IS NULL THEN
        RETURN NULL;
    END IF;
    IF u !~ '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?$'
       OR u ~ '/\.\.?(/|$)' THEN
        PERFORM omnichat.fail('OC422', 'base_url', 'base_url: must be an '
            'http:// or https:// URL without credentials, query or fragment');
    END IF;
    u := rtrim(u, '/');
    IF u ~ '/v1$' THEN
        u := rtrim(left(u, -3), '/');
    END IF;
    RETURN u;
END
$$;


-- Stores models (the whole list of a provider): updates those named,
-- adds new ones, retires the others; a price that changed inserts the
-- next version.
CREATE FUNCTION omnichat.provider_models(p_provider uuid, v jsonb)
    RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    e jsonb;
    pr jsonb;
    i int := 0;
    f text;
    names text[] := '{}';
    mid uuid;
    cw numeric;
    mo numeric;
    pin numeric;
    pout numeric;
    pcached numeric;
    cur omnichat.model_prices;
BEGIN
    IF jsonb_typeof(v) <> 'array' THEN
        PERFORM omnichat.fail('OC400', 'models',
            'models: must be an array of models');
    END IF;
    IF jsonb_array_length(v) = 0 OR jsonb_array_length(v) > 100 THEN
        PERFORM omnichat.fail('OC422', 'models',
            'models: from 1 to 100 models');
    END IF;
    FOR e IN SELECT x FROM jsonb_array_elements(v) AS x LOOP
        f := 'models[' || i || '].';
        IF jsonb_typeof(e) <> 'object' THEN
            PERFORM omnichat.fail('OC400', rtrim(f, '.'),
                rtrim(f, '.') || ': must be an object');
        END IF;
        PERFORM omnichat.only(e, '{name,context_window,max_output_tokens,'
            'price,fallbacks}', f);
        PERFORM omnichat.str(e, 'name', true, 200, f);
        IF (e->>'name') = ANY (names) THEN
            PERFORM omnichat.fail('OC422', f || 'name',
                f || 'name: listed twice');
        END IF;
        names := names || (e->>'name');
        cw := omnichat.num(e, 'context_window', true, 1, 100000000, true, f);
        mo := omnichat.num(e, 'max_output_tokens', true, 1, cw, true, f);
        pr := e -> 'price';
        IF pr IS NULL OR jsonb_typeof(pr) <> 'object' THEN
            PERFORM omnichat.fail('OC400', f || 'price',
                f || 'price: required, {input, output, cached}');
        END IF;
        PERFORM omnichat.only(pr, '{input,output,cached}', f || 'price.');
        pin := omnichat.num(pr, 'input', true, 0, 1000000, false,
            f || 'price.');
        pout := omnichat.num(pr, 'output', true, 0, 1000000, false,
            f || 'price.');
        pcached := coalesce(omnichat.num(pr, 'cached', false, 0, 1000000,
            false, f || 'price.'), pin);
        INSERT INTO omnichat.models AS m (provider_id, name, context_window,
            max_output_tokens, fallbacks)
        VALUES (p_provider, e->>'name', cw, mo,
            coalesce(omnichat.fallbacks(e, 'fallbacks', f), '[]'))
        ON CONFLICT (provider_id, name) DO UPDATE SET
            context_window = excluded.context_window,
            max_output_tokens = excluded.max_output_tokens,
            fallbacks = excluded.fallbacks, active = true
        RETURNING id INTO mid;
        SELECT * INTO cur FROM omnichat.model_prices
        WHERE model_id = mid ORDER BY version DESC LIMIT 1;
        IF NOT FOUND OR (cur.input, cur.output, cur.cached)
                        IS DISTINCT FROM (pin, pout, pcached) THEN
            INSERT INTO omnichat.model_prices (model_id, version, input,
                output, cached)
            VALUES (mid, coalesce(cur.version, 0) + 1, pin, pout, pcached);
        END IF;
        i := i + 1;
    END LOOP;
    UPDATE omnichat.models SET active = false
    WHERE provider_id = p_provider AND name <> ALL (names) AND active;
END
$$;


CREATE FUNCTION omnichat.provider_write(p_user text, p_id text, b jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    p omnichat.providers;
    creating boolean := p_id IS NULL;
    v_type text;
    v_env text;
    v_file text;
BEGIN
    IF b ? 'api_key' THEN
        PERFORM omnichat.fail('OC422', 'api_key', 'api_key: keys are given '
            'by reference only: api_key_env or api_key_file');
    END IF;
    PERFORM omnichat.only(b, '{name,type,base_url,api_key_env,api_key_file,'
        'models,fallbacks}', '');
    IF NOT creating THEN
        SELECT * INTO p FROM omnichat.providers AS x
        WHERE x.id = omnichat.uuid_or_null(p_id) OR x.name = p_id FOR UPDATE;
        IF NOT FOUND THEN
            PERFORM omnichat.fail('OC404', '', 'no provider "'
                || left(p_id, 64) || '"');
        END IF;
    END IF;
    IF omnichat.str(b, 'name', creating, 32) !~ '^[a-z0-9][a-z0-9-]{0,31}$'
    THEN
        PERFORM omnichat.fail('OC422', 'name', 'name: 1 to 32 characters '
            'a-z, 0-9 and -, starting with a letter or digit');
    END IF;
    v_type := omnichat.str(b, 'type', creating, 16);
    IF v_type NOT IN ('openai', 'anthropic') THEN
        PERFORM omnichat.fail('OC422', 'type',
            'type: must be "openai" or "anthropic"');
    END IF;
    v_env := omnichat.str(b, 'api_key_env', false, 128);
    IF v_env !~ '^[A-Za-z_][A-Za-z0-9_]*$' THEN
        PERFORM omnichat.fail('OC422', 'api_key_env',
            'api_key_env: the name of an environment variable');
    END IF;
    v_file := omnichat.str(b, 'api_key_file', false, 4096);
    IF v_file !~ '^/' OR v_file ~ '(^|/)\.\.?(/|$)' OR v_file ~ '[[:cntrl:]]'
    THEN
        PERFORM omnichat.fail('OC422', 'api_key_file',
            'api_key_file: an absolute path without . or .. segments');
    END IF;
    IF v_env IS NOT NULL AND v_file IS NOT NULL THEN
        PERFORM omnichat.fail('OC422', 'api_key_env',
            'api_key_env: give api_key_env or api_key_file, not both');
    END IF;
    IF creating THEN
        IF NOT b ? 'models' THEN
            PERFORM omnichat.fail('OC400', 'models', 'models: required');
        END IF;
        INSERT INTO omnichat.providers (name, type, base_url, api_key_env,
            api_key_file, fallbacks, created_by)
        VALUES (b->>'name', v_type,
            omnichat.base_url(omnichat.str(b, 'base_url', true, 2048)),
            v_env, v_file, '[]', p_user)
        RETURNING * INTO p;
    ELSE
        UPDATE omnichat.providers AS x SET
            name = coalesce(b->>'name', x.name),
            type = coalesce(v_type, x.type),
            base_url = coalesce(omnichat.base_url(
                omnichat.str(b, 'base_url', false, 2048)), x.base_url),
            api_key_env = CASE WHEN b ? 'api_key_file' AND v_file IS NOT NULL
                THEN NULL WHEN b ? 'api_key_env' THEN v_env
                ELSE x.api_key_env END,
            api_key_file = CASE WHEN b ? 'api_key_env' AND v_env IS NOT NULL
                THEN NULL WHEN b ? 'api_key_file' THEN v_file
                ELSE x.api_key_file END,
            updated_at = now()
        WHERE x.id = p.id RETURNING * INTO p;
    END IF;
    IF b ? 'models' THEN
        PERFORM omnichat.provider_models(p.id, b->'models');
    END IF;
    IF b ? 'fallbacks' THEN
        UPDATE omnichat.providers SET fallbacks =
            coalesce(omnichat.fallbacks(b, 'fallbacks'), '[]')
        WHERE id = p.id;
    END IF;
    SELECT * INTO p FROM omnichat.providers WHERE id = p.id;
    RETURN omnichat.provider_json(p);
END
$$;


-- --- budgets -----------------------------------------------------------------

CREATE FUNCTION omnichat.budget_json(x omnichat.budgets)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object('id', x.id, 'scope', x.scope,
        CASE x.scope WHEN 'user' THEN 'user_id' ELSE 'project_id' END,
        x.target, 'tokens_per_day', x.tokens_per_day,
        'cost_per_day', x.cost_per_day,
        'created_at', omnichat.ts(x.created_at),
        'updated_at', omnichat.ts(x.updated_at))
$$;


CREATE FUNCTION omnichat.budget_write(p_user text, b jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_scope text;
    v_target text;
    x omnichat.budgets;
BEGIN
    PERFORM omnichat.only(b, '{scope,user_id,project_id,tokens_per_day,'
        'cost_per_day}', '');
    v_scope := omnichat.str(b, 'scope', true, 16);
    IF v_scope = 'user' THEN
        v_target := omnichat.str(b, 'user_id', true, 200);
    ELSIF v_scope = 'project' THEN
        v_target := omnichat.str(b, 'project_id', true, 36);
        IF NOT EXISTS (SELECT 1 FROM omnichat.projects
                       WHERE id = omnichat.uuid_or_null(v_target)) THEN
            PERFORM omnichat.fail('OC422', 'project_id',
                'project_id: no such project');
        END IF;
    ELSE
        PERFORM omnichat.fail('OC422', 'scope',
            'scope: must be "user" or "project"');
    END IF;
    IF b ? (CASE v_scope WHEN 'user' THEN 'project_id' ELSE 'user_id' END)
    THEN
        PERFORM omnichat.fail('OC422', CASE v_scope WHEN 'user'
            THEN 'project_id' ELSE 'user_id' END, 'a ' || v_scope
            || ' budget names only its ' || v_scope);
    END IF;
    INSERT INTO omnichat.budgets AS o (scope, target, tokens_per_day,
        cost_per_day, created_by)
    VALUES (v_scope, v_target,
        omnichat.num(b, 'tokens_per_day', false, 0, 1e15, true),
        omnichat.num(b, 'cost_per_day', false, 0, 1e12, false), p_user)
    ON CONFLICT (scope, target) DO UPDATE SET
        tokens_per_day = excluded.tokens_per_day,
        cost_per_day = excluded.cost_per_day, updated_at = now()
    RETURNING * INTO x;
    RETURN omnichat.budget_json(x);
END
$$;


-- --- projects, prompts, conversations, messages ------------------------------

CREATE FUNCTION omnichat.project_json(p omnichat.projects)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object('id', p.id, 'user_id', p.user_id,
        'name', p.name, 'description', p.description,
        'fallbacks', p.fallbacks, 'created_at', omnichat.ts(p.created_at),
        'updated_at', omnichat.ts(p.updated_at))
$$;


CREATE FUNCTION omnichat.version_json(v omnichat.prompt_versions)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object('id', v.id, 'prompt_id', v.prompt_id,
        'version', v.version, 'content', v.content,
        'created_at', omnichat.ts(v.created_at))
$$;


CREATE FUNCTION omnichat.prompt_json(p omnichat.prompts)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object('id', p.id, 'project_id', p.project_id,
        'user_id', p.user_id, 'name', p.name,
        'created_at', omnichat.ts(p.created_at),
        'latest_version', (SELECT omnichat.version_json(v)
            FROM omnichat.prompt_versions AS v WHERE v.prompt_id = p.id
            ORDER BY v.version DESC LIMIT 1))
$$;


CREATE FUNCTION omnichat.conversation_json(c omnichat.conversations)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object('id', c.id, 'user_id', c.user_id,
        'project_id', c.project_id,
        'prompt_version_id', c.prompt_version_id,
        'prompt_id', v.prompt_id, 'prompt_version', v.version,
        'model', c.model, 'fallbacks', c.fallbacks,
        'max_tool_rounds', c.max_tool_rounds,
        'created_at', omnichat.ts(c.created_at),
        'updated_at', omnichat.ts(c.updated_at))
    FROM omnichat.prompt_versions AS v WHERE v.id = c.prompt_version_id
$$;


CREATE FUNCTION omnichat.message_json(m omnichat.messages)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('tool_calls', m.tool_calls,
        'tool_call_id', m.tool_call_id, 'latency_ms', m.latency_ms,
        'provider', m.provider, 'model', m.model,
        'provider_request_id', m.provider_request_id))
        || jsonb_build_object('id', m.id, 'role', m.role,
        'content', m.content,
        'usage', jsonb_build_object('input_tokens', m.input_tokens,
            'output_tokens', m.output_tokens,
            'cached_tokens', m.cached_tokens),
        'cost', m.cost, 'status', m.status,
        'created_at', omnichat.ts(m.created_at))
$$;


CREATE FUNCTION omnichat.usage_json(u omnichat.llm_usage)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object('id', u.id, 'at', omnichat.ts(u.at),
        'provider', u.provider, 'model', u.model,
        'provider_request_id', u.provider_request_id,
        'message_id', u.message_id,
        'usage', jsonb_build_object('input_tokens', u.input_tokens,
            'output_tokens', u.output_tokens,
            'cached_tokens', u.cached_tokens),
        'cost', u.cost, 'price_version', u.price_version,
        'status', u.status, 'estimated', u.estimated,
        'latency_ms', u.latency_ms)
$$;

-- {"items":[...],"next_cursor":...} from rows fetched limit + 1: the
-- extra row only tells that a next page exists.
CREATE FUNCTION omnichat.page(items jsonb[], ids uuid[], lim int)
    RETURNS jsonb
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object(
        'items', coalesce(to_jsonb(items[1:lim]), '[]'),
        'next_cursor', CASE WHEN cardinality(items) > lim
                            THEN to_jsonb(ids[lim]) END)
$$;


CREATE FUNCTION omnichat.own_project(p_user text, p_id text, p_field text)
    RETURNS omnichat.projects
    LANGUAGE plpgsql STABLE
AS $$
DECLARE
    p omnichat.projects;
BEGIN
    SELECT * INTO p FROM omnichat.projects
    WHERE id = omnichat.uuid_or_null(p_id) AND user_id = p_user;
    IF NOT FOUND THEN
        PERFORM omnichat.fail('OC404', p_field, coalesce(p_field || ': ', '')
            || 'no project "' || left(p_id, 64) || '"');
    END IF;
    RETURN p;
END
$$;


-- A time argument: RFC 3339 (a date alone is its midnight; a time without
-- an offset is UTC), never the words
-- timestamptz also reads (now, yesterday, infinity).
CREATE FUNCTION omnichat.time_arg(b jsonb, k text, dflt timestamptz)
    RETURNS timestamptz
    LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF b->>k IS NULL THEN
        RETURN dflt;
    END IF;
    IF (b->>k) !~ ('^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?'
                   '(Z|[+-]\d\d(:?\d\d)?)?)?$') THEN
        PERFORM omnichat.fail('OC400', k, k || ': not an RFC 3339 time');
    END IF;
    IF (b->>k) ~ '[T ].*(Z|[+-]\d\d(:?\d\d)?)$' THEN
        RETURN (b->>k)::timestamptz;
    END IF;
    RETURN (b->>k)::timestamp AT TIME ZONE 'UTC';
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow
    OR invalid_text_representation THEN
    PERFORM omnichat.fail('OC400', k, k || ': not an RFC 3339 time');
END
$$;


-- Totals of the ledger per user, project, model or provider over
-- [from, to): everyone's for an admin, the caller's own otherwise.
CREATE FUNCTION omnichat.usage_summary(p_user text, p_admin boolean,
    b jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
AS $$
DECLARE
    v_to timestamptz := omnichat.time_arg(b, 'to', now());
    v_from timestamptz := omnichat.time_arg(b, 'from',
        v_to - interval '1 day');
    g text := coalesce(b->>'group_by', 'model');
    r jsonb;
BEGIN
    IF g NOT IN ('user', 'project', 'model', 'provider') THEN
        PERFORM omnichat.fail('OC400', 'group_by',
            'group_by: user, project, model or provider');
    END IF;
    IF v_from >= v_to OR v_to - v_from > interval '366 days' THEN
        PERFORM omnichat.fail('OC400', 'from',
            'from: before to, at most 366 days before');
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object(g, x.key,
            'requests', x.requests, 'input_tokens', x.input_tokens,
            'output_tokens', x.output_tokens,
            'cached_tokens', x.cached_tokens, 'cost', x.cost,
            'errors', x.errors) ORDER BY x.cost DESC, x.key), '[]')
    INTO r
    FROM (SELECT CASE g WHEN 'user' THEN u.user_id
                        WHEN 'project' THEN u.project_id::text
                        WHEN 'model' THEN u.model ELSE u.provider END AS key,
                 count(*) AS requests, sum(u.input_tokens) AS input_tokens,
                 sum(u.output_tokens) AS output_tokens,
                 sum(u.cached_tokens) AS cached_tokens, sum(u.cost) AS cost,
                 count(*) FILTER (WHERE u.status <> 'ok') AS errors
          FROM omnichat.llm_usage AS u
          WHERE u.at >= v_from AND u.at < v_to
            AND (p_admin OR u.user_id = p_user)
          GROUP BY 1) AS x;
    RETURN jsonb_build_object('from', omnichat.ts(v_from),
        'to', omnichat.ts(v_to), 'group_by', g, 'items', r);
END
$$;


CREATE FUNCTION omnichat.api(p_op text, p_user text, p_id text,
    p_body text, p_limit int, p_cursor uuid, p_admin boolean,
    OUT status int, OUT body text)
    LANGUAGE plpgsql
AS $$
DECLARE
    b jsonb;
    r jsonb;
    p omnichat.projects;
    pr omnichat.prompts;
    pv omnichat.prompt_versions;
    c omnichat.conversations;
    st text;
    msg text;
    fld text;
    v_desc text;
    v_model text;
BEGIN
    status := 200;
    BEGIN
        b := p_body::jsonb;
    EXCEPTION WHEN OTHERS THEN
        PERFORM omnichat.fail('OC400', '', 'the body is JSON Postgres '
            'cannot hold (a number out of range)');
    END;
    CASE p_op
    WHEN 'usage.summary' THEN
        r := omnichat.usage_summary(p_user, p_admin, b);
    WHEN 'providers.list' THEN
        SELECT omnichat.page(array_agg(omnichat.provider_json(x)
                                       ORDER BY x.name),
                             array_agg(x.id ORDER BY x.name), p_limit)
        INTO r FROM (SELECT * FROM omnichat.providers AS y
            WHERE p_cursor IS NULL OR y.name > (SELECT name
                FROM omnichat.providers WHERE id = p_cursor)
            ORDER BY y.name LIMIT p_limit + 1) AS x;
    WHEN 'providers.get' THEN
        SELECT omnichat.provider_json(x) INTO r FROM omnichat.providers AS x
        WHERE x.id = omnichat.uuid_or_null(p_id) OR x.name = p_id;
        IF r IS NULL THEN
            PERFORM omnichat.fail('OC404', '', 'no provider "'
                || left(p_id, 64) || '"');
        END IF;
    WHEN 'providers.create' THEN
        r := omnichat.provider_write(p_user, NULL, b);
        status := 201;
    WHEN 'providers.update' THEN
        r := omnichat.provider_write(p_user, p_id, b);
    WHEN 'budgets.list' THEN
        SELECT omnichat.page(array_agg(omnichat.budget_json(x)
                                       ORDER BY x.created_at, x.id),
                             array_agg(x.id ORDER BY x.created_at, x.id),
                             p_limit)
        INTO r FROM (SELECT * FROM omnichat.budgets AS y
            WHERE p_cursor IS NULL OR (y.created_at, y.id) > (SELECT
                created_at, id FROM omnichat.budgets WHERE id = p_cursor)
            ORDER BY y.created_at, y.id LIMIT p_limit + 1) AS x;
    WHEN 'budgets.write' THEN
        r := omnichat.budget_write(p_user, b);
        status := 201;

    WHEN 'projects.list' THEN
        SELECT omnichat.page(array_agg(omnichat.project_json(x)
                                       ORDER BY x.created_at DESC, x.id DESC),
                             array_agg(x.id ORDER BY x.created_at DESC,
                                       x.id DESC), p_limit)
        INTO r FROM (SELECT * FROM omnichat.projects AS y
            WHERE y.user_id = p_user AND (p_cursor IS NULL
                OR (y.created_at, y.id) < (SELECT created_at, id
                    FROM omnichat.projects
                    WHERE id = p_cursor AND user_id = p_user))
            ORDER BY y.created_at DESC, y.id DESC LIMIT p_limit + 1) AS x;
    WHEN 'projects.create' THEN
        PERFORM omnichat.only(b, '{name,description,fallbacks}', '');
        INSERT INTO omnichat.projects (user_id, name, description, fallbacks)
        VALUES (p_user, omnichat.str(b, 'name', true, 200),
            omnichat.str(b, 'description', false, 2000),
            coalesce(omnichat.fallbacks(b, 'fallbacks'), '[]'))
        RETURNING * INTO p;
        r := omnichat.project_json(p);
        status := 201;
    WHEN 'projects.get' THEN
        r := omnichat.project_json(omnichat.own_project(p_user, p_id, NULL));
    WHEN 'projects.update' THEN
        PERFORM omnichat.only(b, '{name,description,fallbacks}', '');
        p := omnichat.own_project(p_user, p_id, NULL);
        v_desc := omnichat.str(b, 'description', false, 2000);
        UPDATE omnichat.projects AS x SET
            name = coalesce(omnichat.str(b, 'name', false, 200), x.name),
            description = CASE WHEN b ? 'description' THEN v_desc
                          ELSE x.description END,
            fallbacks = CASE WHEN b ? 'fallbacks' THEN
                coalesce(omnichat.fallbacks(b, 'fallbacks'), '[]')
                ELSE x.fallbacks END,
            updated_at = now()
        WHERE x.id = p.id AND x.user_id = p_user RETURNING * INTO p;
        r := omnichat.project_json(p);
    WHEN 'projects.delete' THEN
        DELETE FROM omnichat.projects
        WHERE id = omnichat.uuid_or_null(p_id) AND user_id = p_user;
        IF NOT FOUND THEN
            PERFORM omnichat.fail('OC404', '', 'no project "'
                || left(p_id, 64) || '"');
        END IF;
        status := 204;

    WHEN 'prompts.list' THEN
        p := omnichat.own_project(p_user, p_id, NULL);
        SELECT omnichat.page(array_agg(omnichat.prompt_json(x)
                                       ORDER BY x.created_at, x.id),
                             array_agg(x.id ORDER BY x.created_at, x.id),
                             p_limit)
        INTO r FROM (SELECT * FROM omnichat.prompts AS y
            WHERE y.project_id = p.id AND y.user_id = p_user
              AND (p_cursor IS NULL OR (y.created_at, y.id) > (SELECT
                  created_at, id FROM omnichat.prompts
                  WHERE id = p_cursor AND user_id = p_user))
            ORDER BY y.created_at, y.id LIMIT p_limit + 1) AS x;
    WHEN 'prompts.create' THEN
        PERFORM omnichat.only(b, '{name,content}', '');
        p := omnichat.own_project(p_user, p_id, NULL);
        INSERT INTO omnichat.prompts (project_id, user_id, name)
        VALUES (p.id, p_user, omnichat.str(b, 'name', true, 200))
        RETURNING * INTO pr;
        INSERT INTO omnichat.prompt_versions (prompt_id, user_id, version,
            content)
        VALUES (pr.id, p_user, 1, omnichat.str(b, 'content', true, 100000));
        r := omnichat.prompt_json(pr);
        status := 201;
    WHEN 'versions.create' THEN
        PERFORM omnichat.only(b, '{content}', '');
        SELECT * INTO pr FROM omnichat.prompts
        WHERE id = omnichat.uuid_or_null(p_id) AND user_id = p_user
        FOR UPDATE;
        IF NOT FOUND THEN
            PERFORM omnichat.fail('OC404', '', 'no prompt "'
                || left(p_id, 64) || '"');
        END IF;
        INSERT INTO omnichat.prompt_versions (prompt_id, user_id, version,
            content)
        SELECT pr.id, p_user, coalesce(max(v.version), 0) + 1,
            omnichat.str(b, 'content', true, 100000)
        FROM omnichat.prompt_versions AS v WHERE v.prompt_id = pr.id
        RETURNING * INTO pv;
        r := omnichat.version_json(pv);
        status := 201;

    WHEN 'conversations.list' THEN
        SELECT omnichat.page(array_agg(omnichat.conversation_json(x)
                                       ORDER BY x.created_at DESC, x.id DESC),
                             array_agg(x.id ORDER BY x.created_at DESC,
                                       x.id DESC), p_limit)
        INTO r FROM (SELECT * FROM omnichat.conversations AS y
            WHERE y.user_id = p_user AND (p_cursor IS NULL
                OR (y.created_at, y.id) < (SELECT created_at, id
                    FROM omnichat.conversations
                    WHERE id = p_cursor AND user_id = p_user))
            ORDER BY y.created_at DESC, y.id DESC LIMIT p_limit + 1) AS x;
    WHEN 'conversations.create' THEN
        PERFORM omnichat.only(b, '{project_id,prompt_version_id,model,'
            'fallbacks,max_tool_rounds}', '');
        p := omnichat.own_project(p_user,
            omnichat.str(b, 'project_id', true, 64), 'project_id');
        SELECT v.* INTO pv FROM omnichat.prompt_versions AS v
        WHERE v.id = omnichat.uuid_or_null(omnichat.str(b,
            'prompt_version_id', true, 64)) AND v.user_id = p_user;
        IF NOT FOUND THEN
            PERFORM omnichat.fail('OC404', 'prompt_version_id',
                'prompt_version_id: no prompt version "'
                || left(b->>'prompt_version_id', 64) || '"');
        END IF;
        IF NOT EXISTS (SELECT 1 FROM omnichat.prompts
                       WHERE id = pv.prompt_id AND project_id = p.id) THEN
            PERFORM omnichat.fail('OC422', 'prompt_version_id',
                'prompt_version_id: a version of a prompt of another project');
        END IF;
        v_model := omnichat.str(b, 'model', true, 200);
        IF NOT EXISTS (SELECT 1 FROM omnichat.models
                       WHERE name = v_model AND active) THEN
            PERFORM omnichat.fail('OC422', 'model', 'model: no configured '
                'provider serves "' || left(v_model, 64) || '"');
        END IF;
        INSERT INTO omnichat.conversations (user_id, project_id,
            prompt_version_id, model, fallbacks, max_tool_rounds)
        VALUES (p_user, p.id, pv.id, v_model,
            omnichat.fallbacks(b, 'fallbacks'),
            coalesce(omnichat.num(b, 'max_tool_rounds', false, 0, 32, true),
                8))
        RETURNING * INTO c;
        r := omnichat.conversation_json(c);
        status := 201;
    WHEN 'conversations.get' THEN
        SELECT omnichat.conversation_json(x) INTO r
        FROM omnichat.conversations AS x
        WHERE x.id = omnichat.uuid_or_null(p_id) AND x.user_id = p_user;
        IF r IS NULL THEN
            PERFORM omnichat.fail('OC404', '', 'no conversation "'
                || left(p_id, 64) || '"');
        END IF;
    WHEN 'conversations.delete' THEN
        DELETE FROM omnichat.conversations
        WHERE id = omnichat.uuid_or_null(p_id) AND user_id = p_user;
        IF NOT FOUND THEN
            PERFORM omnichat.fail('OC404', '', 'no conversation "'
                || left(p_id, 64) || '"');
        END IF;
        status := 204;
    WHEN 'conversations.usage' THEN
        SELECT * INTO c FROM omnichat.conversations
        WHERE id = omnichat.uuid_or_null(p_id) AND user_id = p_user;
        IF NOT FOUND THEN
            PERFORM omnichat.fail('OC404', '', 'no conversation "'
                || left(p_id, 64) || '"');
        END IF;
        SELECT omnichat.page(array_agg(omnichat.usage_json(x)
                                       ORDER BY x.at, x.id),
                             array_agg(x.id ORDER BY x.at, x.id), p_limit)
        INTO r FROM (SELECT * FROM omnichat.llm_usage AS y
            WHERE y.conversation_id = c.id AND y.user_id = p_user
              AND (p_cursor IS NULL OR (y.at, y.id) > (SELECT at, id
                  FROM omnichat.llm_usage
                  WHERE id = p_cursor AND user_id = p_user))
            ORDER BY y.at, y.id LIMIT p_limit + 1) AS x;
    WHEN 'messages.list' THEN
        SELECT * INTO c FROM omnichat.conversations
        WHERE id = omnichat.uuid_or_null(p_id) AND user_id = p_user;
        IF NOT FOUND THEN
            PERFORM omnichat.fail('OC404', '', 'no conversation "'
                || left(p_id, 64) || '"');
        END IF;
        SELECT omnichat.page(array_agg(omnichat.message_json(x)
                                       ORDER BY x.created_at, x.id),
                             array_agg(x.id ORDER BY x.created_at, x.id),
                             p_limit)
        INTO r FROM (SELECT * FROM omnichat.messages AS y
            WHERE y.conversation_id = c.id AND y.user_id = p_user
              AND (p_cursor IS NULL OR (y.created_at, y.id) > (SELECT
                  created_at, id FROM omnichat.messages
                  WHERE id = p_cursor AND user_id = p_user))
            ORDER BY y.created_at, y.id LIMIT p_limit + 1) AS x;
    END CASE;
    body := r::text;
EXCEPTION
    WHEN SQLSTATE 'OC400' OR SQLSTATE 'OC404' OR SQLSTATE 'OC422' THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
            fld = PG_EXCEPTION_DETAIL;
        status := substr(st, 3)::int;
        body := (jsonb_build_object('error', CASE status
                WHEN 400 THEN CASE WHEN fld = '' THEN 'invalid_json'
                    WHEN p_op = 'usage.summary' THEN 'invalid_parameter'
                    ELSE 'invalid_field' END WHEN 404 THEN 'not_found'
                ELSE 'invalid_value' END, 'message', msg)
            || CASE WHEN fld <> '' THEN jsonb_build_object('field', fld)
               ELSE '{}' END)::text;
    WHEN unique_violation THEN
        status := 409;
        body := jsonb_build_object('error', 'conflict', 'message',
            'name: another ' || CASE split_part(p_op, '.', 1)
                WHEN 'providers' THEN 'provider'
                WHEN 'projects' THEN 'project of yours'
                ELSE 'prompt of this project' END || ' has this name',
            'field', 'name')::text;
END
$$;

COMMENT ON FUNCTION omnichat.api(text, text, text, text, int, uuid,
    boolean) IS
    'The chat API: op, the caller (every object is filtered by user_id), '
    'the route''s {id}, the JSON body (or query arguments), limit and '
    'cursor of lists, whether the caller is an admin; returns '
    'the HTTP status and the JSON body (errors name the field).';
