-- 018_chat_turn_split: the chat turn's first round trip split in two, for
-- time to first token (SPEC 9). turn_plan() reads what the provider call
-- needs (no row lock, no transaction id, no WAL); turn_ask() saves the
-- user's message under the id the worker chose, sent beside the provider
-- call (not beside the plan: on 2 cores its backend slowed the plan's
-- more than it saved); the reply is saved only once the question is.
-- turn_begin() stays for a worker of the build before.
--
-- The plan's JSON is built as json, not jsonb: it is text the worker
-- parses, and jsonb's binary form, built and then printed, cost a fifth
-- of the plan's time. The history is read by conversation alone: the
-- conversation is the caller's (checked first) and so are its messages;
-- with the owner's filter too the planner may AND in the owner's index (it
-- did for a user of 200 messages: a second index scan at every turn).

-- Returns turn_begin()'s answer without saving anything: {project_id,
-- system, history, input_estimate, targets, budgets, max_tool_rounds,
-- tools}. history leaves out p_mid (the question, when turn_ask committed
-- first) and is cut as if the question, of p_chars characters, were its
-- newest message: the worker appends it.
CREATE FUNCTION omnichat.turn_plan(p_user text, p_conv text, p_mid uuid,
    p_chars int, p_role text, p_tools jsonb,
    OUT status int, OUT body text)
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
    tools json;
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

    SELECT coalesce(json_agg(x.o ORDER BY x.n), '[]') INTO tools
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

    status := 200;
    body := json_build_object('tools', tools, 'project_id', c.project_id,
        'system', sys, 'history', hist,
        'input_estimate', used + own + length(sys) / 4 + 8,
        'targets', t, 'budgets', bud,
        'max_tool_rounds', c.max_tool_rounds)::text;
END
$$;


-- Saves the user's message (p_mid) and bumps the conversation's
-- updated_at: 'ok', or 'not_found' (not the caller's, or deleted since
-- the plan was read), or 'no_model' (no configured model serves it: the
-- turn answers 422 and, as before the split, saves nothing). Commits
-- without waiting for the WAL flush, as turn_begin_nowait() did (sql/016):
-- the reply's synchronous save flushes the question with it.
CREATE FUNCTION omnichat.turn_ask(p_user text, p_conv uuid, p_mid uuid,
    p_content text)
    RETURNS text
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE omnichat.conversations AS c SET updated_at = now()
    WHERE c.id = p_conv AND c.user_id = p_user
      AND EXISTS (SELECT 1 FROM omnichat.models AS m
                  JOIN omnichat.providers AS p ON p.id = m.provider_id
                  WHERE m.name = c.model AND m.active
                    AND EXISTS (SELECT 1 FROM omnichat.model_prices AS x
                                WHERE x.model_id = m.id));
    IF NOT FOUND THEN
        RETURN CASE WHEN EXISTS (SELECT 1 FROM omnichat.conversations
                                 WHERE id = p_conv AND user_id = p_user)
            THEN 'no_model' ELSE 'not_found' END;
    END IF;
    INSERT INTO omnichat.messages (id, conversation_id, user_id, role, content)
    VALUES (p_mid, p_conv, p_user, 'user', p_content);
    RETURN 'ok';
END
$$;
