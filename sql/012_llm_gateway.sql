-- 012_llm_gateway: what the LLM gateway (/v1/chat/completions,
-- /v1/messages, /v1/models) asks of Postgres, in one round trip a request.

-- The targets of a model name, in order: the model (by provider name when
-- several serve it), then that model's fallbacks; the same shape as
-- omnichat.turn_targets(). And the caller's daily budgets.
CREATE FUNCTION omnichat.gateway_begin(p_user text, p_model text)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    WITH first AS (
        SELECT p.name AS provider, m.name AS model, m.fallbacks
        FROM omnichat.models AS m
        JOIN omnichat.providers AS p ON p.id = m.provider_id
        WHERE m.name = p_model AND m.active
        ORDER BY p.name LIMIT 1
    ), wanted AS (
        SELECT 0 AS pos, f.provider, f.model FROM first AS f
        UNION ALL
        SELECT x.ord, x.e->>'provider', x.e->>'model'
        FROM first AS f,
            LATERAL jsonb_array_elements(f.fallbacks) WITH ORDINALITY AS x(e, ord)
    )
    SELECT jsonb_build_object(
        'targets', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'provider', p.name, 'type', p.type, 'base_url', p.base_url,
                'api_key_env', p.api_key_env, 'api_key_file', p.api_key_file,
                'model', m.name, 'model_id', m.id,
                'max_output_tokens', m.max_output_tokens,
                'price_version', pr.version, 'input', pr.input,
                'output', pr.output, 'cached', pr.cached) ORDER BY w.pos), '[]')
            FROM wanted AS w
            JOIN omnichat.providers AS p ON p.name = w.provider
            JOIN omnichat.models AS m ON m.provider_id = p.id
                AND m.name = w.model AND m.active
            JOIN LATERAL (SELECT * FROM omnichat.model_prices AS x
                          WHERE x.model_id = m.id
                          ORDER BY x.version DESC LIMIT 1) AS pr ON true),
        'budgets', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'key', b.scope || ':' || b.target,
                'tokens_per_day', b.tokens_per_day,
                'cost_per_day', b.cost_per_day)), '[]')
            FROM omnichat.budgets AS b
            WHERE b.scope = 'user' AND b.target = p_user))
$$;


-- The models a caller may name, as OpenAI's model list.
CREATE FUNCTION omnichat.gateway_models()
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object('object', 'list', 'data',
        coalesce(jsonb_agg(jsonb_build_object('id', x.name, 'object', 'model',
            'created', x.created, 'owned_by', x.owner) ORDER BY x.name), '[]'))
    FROM (SELECT DISTINCT ON (m.name) m.name,
                 extract(epoch FROM p.created_at)::bigint AS created,
                 p.name AS owner
          FROM omnichat.models AS m
          JOIN omnichat.providers AS p ON p.id = m.provider_id
          WHERE m.active
          ORDER BY m.name, p.name) AS x
$$;
