-- 017_mcp_catalog_changes (down): the store reports quarantines only.

-- Stores what tools/list answered (a JSON array of tool objects): new
-- tools are trusted as found, a tool whose hash changed is quarantined
-- (its new definition kept in pending, the change audited), one back to
-- its approved definition is active again, tools no longer listed are
-- removed. Returns the tools quarantined by this call.
CREATE OR REPLACE FUNCTION omni2.mcp_catalog_store(p_server uuid, p_tools jsonb,
    p_protocol text)
    RETURNS TABLE (tool text, old_hash text, new_hash text, fields text[])
    LANGUAGE plpgsql
AS $$
DECLARE
    t jsonb;
    h text;
    cur omni2.mcp_tools;
    srv_name text;
BEGIN
    UPDATE omni2.mcp_servers SET protocol = p_protocol
    WHERE id = p_server AND protocol IS DISTINCT FROM p_protocol;
    SELECT name INTO srv_name FROM omni2.mcp_servers WHERE id = p_server;
    IF srv_name IS NULL THEN
        RETURN;
    END IF;
    FOR t IN SELECT jsonb_build_object('name', e->'name',
                 'description', e->'description',
                 'inputSchema', e->'inputSchema',
                 'annotations', e->'annotations')
             FROM jsonb_array_elements(p_tools) AS e
    LOOP
        h := omni2.mcp_tool_hash(t);
        SELECT * INTO cur FROM omni2.mcp_tools
        WHERE server_id = p_server AND name = t->>'name' FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO omni2.mcp_tools (server_id, name, definition, hash)
            VALUES (p_server, t->>'name', t, h);
        ELSIF cur.hash = h THEN
            UPDATE omni2.mcp_tools SET status = 'active', pending = NULL,
                pending_hash = NULL, updated_at = now()
            WHERE server_id = p_server AND name = cur.name
              AND status <> 'active';
        ELSIF cur.pending_hash IS DISTINCT FROM h THEN
            UPDATE omni2.mcp_tools SET status = 'quarantined', pending = t,
                pending_hash = h, updated_at = now()
            WHERE server_id = p_server AND name = cur.name;
            tool := cur.name;
            old_hash := cur.hash;
            new_hash := h;
            SELECT coalesce(array_agg(k ORDER BY k), '{}') INTO fields
            FROM jsonb_object_keys(t) AS k
            WHERE t->k IS DISTINCT FROM cur.definition->k;
            INSERT INTO omni2.mcp_audit (server_id, server_name, action,
                detail)
            VALUES (p_server, srv_name, 'tool.changed', jsonb_build_object(
                'tool', cur.name, 'old_hash', cur.hash, 'new_hash', h,
                'fields', to_jsonb(fields), 'old', cur.definition, 'new', t));
            RETURN NEXT;
        END IF;
    END LOOP;
    DELETE FROM omni2.mcp_tools AS m WHERE m.server_id = p_server
      AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_tools) AS e
                      WHERE e->>'name' = m.name);
END
$$;
