-- 019_chat_model_targets (down): turn_targets() as 015 made it, without
-- the stored targets.

DROP TRIGGER providers_target ON omnichat.providers;
DROP TRIGGER model_prices_target ON omnichat.model_prices;
DROP TRIGGER models_target ON omnichat.models;
DROP FUNCTION omnichat.models_target_refresh();
DROP FUNCTION omnichat.model_target(uuid);
ALTER TABLE omnichat.models DROP COLUMN target;

CREATE OR REPLACE FUNCTION omnichat.turn_targets(c omnichat.conversations)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        WITH first AS (
            SELECT p.name AS provider, m.name AS model, m.fallbacks
            FROM omnichat.models AS m
            JOIN omnichat.providers AS p ON p.id = m.provider_id
            WHERE m.name = c.model AND m.active
            ORDER BY p.name LIMIT 1
        ), wanted AS (
            SELECT 0 AS pos, f.provider, f.model FROM first AS f
            UNION ALL
            SELECT x.ord, x.e->>'provider', x.e->>'model'
            FROM first AS f, LATERAL jsonb_array_elements(CASE
                    WHEN c.fallbacks IS NOT NULL THEN c.fallbacks
                    WHEN (SELECT jsonb_array_length(fallbacks)
                          FROM omnichat.projects WHERE id = c.project_id) > 0
                        THEN (SELECT fallbacks FROM omnichat.projects
                              WHERE id = c.project_id)
                    ELSE f.fallbacks END) WITH ORDINALITY AS x(e, ord)
        )
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                'provider', p.name, 'type', p.type, 'base_url', p.base_url,
                'api_key_env', p.api_key_env, 'api_key_file', p.api_key_file,
                'model', m.name, 'model_id', m.id,
                'context_window', m.context_window,
                'max_output_tokens', m.max_output_tokens,
                'price_version', pr.version, 'input', pr.input,
                'output', pr.output, 'cached', pr.cached) ORDER BY w.pos), '[]')
        FROM wanted AS w
        JOIN omnichat.providers AS p ON p.name = w.provider
        JOIN omnichat.models AS m ON m.provider_id = p.id AND m.name = w.model
            AND m.active
        JOIN LATERAL (SELECT * FROM omnichat.model_prices AS x
                      WHERE x.model_id = m.id
                      ORDER BY x.version DESC LIMIT 1) AS pr ON true
    );
END
$$;
