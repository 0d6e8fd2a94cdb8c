-- 015_chat_perf (down): turn_targets() and turn_begin() as 011 made them.

CREATE OR REPLACE FUNCTION omnichat.turn_targets(c omnichat.conversations)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
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
$$;


CREATE OR REPLACE FUNCTION omnichat.turn_begin(p_user text, p_conv text,
    p_content text, p_role text, p_tools jsonb, OUT status int,
    OUT body text)
    LANGUAGE plpgsql
AS $$
DECLARE
    c omnichat.conversations;
    t jsonb;
    sys text;
    mid uuid;
    hist jsonb;
    budget int;
    used int;
    bud jsonb;
    tools jsonb;
BEGIN
    SELECT * INTO c FROM omnichat.conversations
    WHERE id = omnichat.uuid_or_null(p_conv) AND user_id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        status := 404;
        body := jsonb_build_object('error', 'not_found', 'message',
            'no conversation "' || left(p_conv, 64) || '"')::text;
        RETURN;
    END IF;
    t := omnichat.turn_targets(c);
    IF jsonb_array_length(t) = 0 OR t->0->>'model' <> c.model THEN
        status := 422;
        body := jsonb_build_object('error', 'invalid_value', 'field', 'model',
            'message', 'model: no configured provider serves "'
            || left(c.model, 64) || '"')::text;
        RETURN;
    END IF;
    SELECT v.content INTO sys FROM omnichat.prompt_versions AS v
    WHERE v.id = c.prompt_version_id;
    INSERT INTO omnichat.messages (conversation_id, user_id, role, content)
    VALUES (c.id, p_user, 'user', p_content) RETURNING id INTO mid;
    UPDATE omnichat.conversations SET updated_at = now() WHERE id = c.id;

    budget := (t->0->>'context_window')::int
        - (t->0->>'max_output_tokens')::int - length(sys) / 4 - 8;
    SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                'role', h.role, 'content', h.content,
                'tool_calls', h.tool_calls, 'tool_call_id', h.tool_call_id))
            ORDER BY h.created_at, h.id), '[]'),
        coalesce(sum(h.cost_est), 0)
    INTO hist, used
    FROM (SELECT m.*, length(m.content) / 4 + 4
                 + coalesce(length(m.tool_calls::text), 0) / 4 AS cost_est,
                 sum(length(m.content) / 4 + 4
                     + coalesce(length(m.tool_calls::text), 0) / 4)
                     OVER (ORDER BY m.created_at DESC, m.id DESC) AS run
          FROM omnichat.messages AS m
          WHERE m.conversation_id = c.id AND m.user_id = p_user
            AND m.role IN ('user', 'assistant', 'tool')
            AND (m.role <> 'assistant' OR m.status = 'ok'
                 OR m.content <> '')) AS h
    WHERE h.run <= greatest(budget, 0) OR h.id = mid;
    -- a history cut before a tool result would leave it without its call
    WHILE jsonb_array_length(hist) > 0 AND hist->0->>'role' = 'tool' LOOP
        hist := hist - 0;
    END LOOP;

    SELECT coalesce(jsonb_agg(jsonb_build_object('key', b.scope || ':'
                || b.target, 'tokens_per_day', b.tokens_per_day,
                'cost_per_day', b.cost_per_day)), '[]')
    INTO bud FROM omnichat.budgets AS b
    WHERE (b.scope = 'user' AND b.target = p_user)
       OR (b.scope = 'project' AND b.target = c.project_id::text);

    SELECT coalesce(jsonb_agg(x.o ORDER BY x.n), '[]') INTO tools
    FROM (SELECT s.name || '__' || t.name AS n,
                 jsonb_build_object('name', s.name || '__' || t.name,
                     'description',
                     coalesce(t.definition->>'description', ''),
                     'input_schema', coalesce(t.definition->'inputSchema',
                         '{"type":"object"}')) AS o
          FROM omni2.mcp_servers AS s
          JOIN omni2.mcp_tools AS t ON t.server_id = s.id
          LEFT JOIN omni2.circuit_breakers AS br ON br.server_id = s.id
          WHERE s.enabled AND t.status = 'active'
            AND coalesce(br.state, 'closed') <> 'open'
            AND (p_role = 'admin' OR ((cardinality(s.roles) = 0
                     OR p_role = ANY (s.roles))
                 AND (NOT s.tool_roles ? t.name
                      OR s.tool_roles->t.name ? p_role)))
            AND s.name || '__' || t.name ~ '^[A-Za-z0-9_-]{1,64}$'
            AND (p_tools IS NULL OR s.name || '__' || t.name IN (
                SELECT jsonb_array_elements_text(p_tools)))
          ORDER BY 1 LIMIT 128) AS x;

    status := 200;
    body := jsonb_build_object('message_id', mid, 'tools', tools, 'project_id', c.project_id,
        'system', sys, 'history', hist,
        'input_estimate', used + length(sys) / 4 + 8,
        'targets', t, 'budgets', bud,
        'max_tool_rounds', c.max_tool_rounds)::text;
END
$$;
