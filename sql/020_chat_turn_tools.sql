-- 020_chat_turn_tools: the tools a turn offers, kept per worker process.
-- The list depends on the MCP catalog, the servers' roles and breakers
-- and the caller's role and `tools` filter, and changes only when
-- omni:mcp:gen is bumped (every writer of those bumps it after writing
-- Postgres). Querying it was a tenth to a fifth of turn_plan()'s time
-- with an idle backend (SPEC 9's time to first token), with no tool
-- registered, and grows with the catalog. A worker that holds the list of (role, filter) at the
-- generation it reads beside the plan asks the plan without it; else the
-- plan carries it, or turn_tools() alone does when the generation moved.
-- 018's turn_plan() stays for a worker of the build before.

-- The tools a caller of p_role is offered, narrowed to p_tools (a JSON
-- array of names; NULL: all): 018's list, as JSON text.
CREATE FUNCTION omnichat.turn_tools(p_role text, p_tools jsonb)
    RETURNS text
    LANGUAGE plpgsql STABLE
AS $$
DECLARE
    list json;
BEGIN
    SELECT coalesce(json_agg(x.o ORDER BY x.n), '[]') INTO list
    FROM (SELECT s.name || '__' || t.name AS n,
                 json_build_object('name', s.name || '__' || t.name,
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
    RETURN list::text;
END
$$;


-- 018's plan with the tools apart: in the third column when p_with_tools,
-- else NULL, and no longer in the body.
CREATE FUNCTION omnichat.turn_plan(p_user text, p_conv text, p_mid uuid,
    p_chars int, p_role text, p_tools jsonb, p_with_tools boolean,
    OUT status int, OUT body text, OUT tools text)
    LANGUAGE plpgsql STABLE
AS $$
DECLARE
    c omnichat.conversations;
    t jsonb;
    sys text;
    hist json;
    own int := p_chars / 4 + 4;
    budget int;
    used int;
    bud json;
BEGIN
    SELECT * INTO c FROM omnichat.conversations
    WHERE id = omnichat.uuid_or_null(p_conv) AND user_id = p_user;
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

    budget := (t->0->>'context_window')::int
        - (t->0->>'max_output_tokens')::int - length(sys) / 4 - 8 - own;
    SELECT coalesce(json_agg(json_strip_nulls(json_build_object(
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
          WHERE m.conversation_id = c.id AND m.id <> p_mid
            AND m.role IN ('user', 'assistant', 'tool')
            AND (m.role <> 'assistant' OR m.status = 'ok'
                 OR m.content <> '')) AS h
    WHERE h.run <= budget;
    -- a history cut before a tool result would leave it without its call
    IF hist->0->>'role' = 'tool' THEN
        SELECT coalesce(json_agg(x.e ORDER BY x.i), '[]') INTO hist
        FROM json_array_elements(hist) WITH ORDINALITY AS x(e, i)
        WHERE x.i >= (SELECT min(y.i) FROM json_array_elements(hist)
                      WITH ORDINALITY AS y(e, i) WHERE y.e->>'role' <> 'tool');
    END IF;

    SELECT coalesce(json_agg(json_build_object('key', b.scope || ':'
                || b.target, 'tokens_per_day', b.tokens_per_day,
                'cost_per_day', b.cost_per_day)), '[]')
    INTO bud FROM omnichat.budgets AS b
    WHERE (b.scope = 'user' AND b.target = p_user)
       OR (b.scope = 'project' AND b.target = c.project_id::text);

    IF p_with_tools THEN
        tools := omnichat.turn_tools(p_role, p_tools);
    END IF;

    status := 200;
    body := json_build_object('project_id', c.project_id,
        'system', sys, 'history', hist,
        'input_estimate', used + own + length(sys) / 4 + 8,
        'targets', t, 'budgets', bud,
        'max_tool_rounds', c.max_tool_rounds)::text;
END
$$;
