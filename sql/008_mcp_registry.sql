-- 008_mcp_registry: the MCP gateway's registry (servers, their tools as
-- last approved, circuit breakers, the prober leases, the audit trail) in
-- omni2, and the tool-call records in mcp_performance.

CREATE SCHEMA IF NOT EXISTS omni2;
COMMENT ON SCHEMA omni2 IS
    'MCP gateway: registry, tool catalog, circuit breakers, audit.';

CREATE SCHEMA IF NOT EXISTS mcp_performance;
COMMENT ON SCHEMA mcp_performance IS
    'MCP tool-call records written in batches by omni-worker.';


CREATE TABLE omni2.mcp_servers (
    id           uuid        PRIMARY KEY,
    name         text        NOT NULL UNIQUE
                             CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,31}$'),
    url          text        NOT NULL CHECK (url ~ '^https?://'),
    transport    text        NOT NULL DEFAULT 'streamable-http'
                             CHECK (transport = 'streamable-http'),
    header_names text[]      NOT NULL DEFAULT '{}',
    headers_enc  bytea,
    timeout_ms   int         NOT NULL DEFAULT 30000
                             CHECK (timeout_ms BETWEEN 100 AND 300000),
    enabled      boolean     NOT NULL DEFAULT true,
    roles        text[]      NOT NULL DEFAULT '{}',
    tool_roles   jsonb       NOT NULL DEFAULT '{}'
                             CHECK (jsonb_typeof(tool_roles) = 'object'),
    health       jsonb       NOT NULL DEFAULT
        '{"interval_ms":10000,"failure_threshold":3,"cooldown_ms":30000}'
                             CHECK (jsonb_typeof(health) = 'object'),
    protocol     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text
);

COMMENT ON TABLE omni2.mcp_servers IS
    'Registered MCP upstreams (Streamable HTTP). Written by the admin API.';
COMMENT ON COLUMN omni2.mcp_servers.header_names IS
    'Names of the headers sent upstream, shown to readers; their values are '
    'only in headers_enc.';
COMMENT ON COLUMN omni2.mcp_servers.headers_enc IS
    'The headers as a JSON object sealed with AES-256-GCM under the key of '
    'OMNI_MCP_SECRET_KEY_FILE: version byte 1, 12-byte nonce, ciphertext, '
    '16-byte tag; the server id is the additional data. Never returned.';
COMMENT ON COLUMN omni2.mcp_servers.protocol IS
    'Protocol revision the upstream last answered with (2026-07-28 for a '
    'stateless server, else the negotiated session revision); NULL until '
    'the first contact.';


CREATE TABLE omni2.mcp_tools (
    server_id        uuid        NOT NULL
                                 REFERENCES omni2.mcp_servers ON DELETE CASCADE,
    name             text        NOT NULL,
    definition       jsonb       NOT NULL,
    hash             text        NOT NULL,
    status           text        NOT NULL DEFAULT 'active'
                                 CHECK (status IN ('active', 'quarantined')),
    pending          jsonb,
    pending_hash     text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server_id, name),
    CHECK ((status = 'quarantined') = (pending IS NOT NULL))
);

COMMENT ON TABLE omni2.mcp_tools IS
    'Each server''s tools as approved (definition: name, description, '
    'inputSchema, annotations; hash: SHA-256 hex of those four). A tool whose '
    'definition changed is quarantined, the new one kept in pending until an '
    'admin approves it.';


CREATE TABLE omni2.circuit_breakers (
    server_id     uuid        PRIMARY KEY
                              REFERENCES omni2.mcp_servers ON DELETE CASCADE,
    state         text        NOT NULL DEFAULT 'closed'
                              CHECK (state IN ('closed', 'open', 'half_open')),
    failures      int         NOT NULL DEFAULT 0,
    opened_at     timestamptz,
    next_probe_at timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE omni2.circuit_breakers IS
    'One breaker per server (lib/breaker.c''s state), written by whichever '
    'process saw the change and announced on Redis.';


CREATE TABLE omni2.mcp_probe_leases (
    server_id  uuid        PRIMARY KEY
                           REFERENCES omni2.mcp_servers ON DELETE CASCADE,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);

COMMENT ON TABLE omni2.mcp_probe_leases IS
    'Who probes each server until when: one prober per server across every '
    'process and replica.';


CREATE TABLE omni2.mcp_audit (
    id          bigserial   PRIMARY KEY,
    server_id   uuid        NOT NULL,
    server_name text        NOT NULL,
    action      text        NOT NULL,
    actor       text,
    detail      jsonb       NOT NULL DEFAULT '{}',
    at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX mcp_audit_server_at_idx ON omni2.mcp_audit (server_id, at);

COMMENT ON TABLE omni2.mcp_audit IS
    'Registry changes (created, updated, deleted) and tool definition '
    'changes (tool.changed with old and new hash, tool.approved). Kept when '
    'the server is deleted. Header values never appear here.';


-- A server as the API shows it: header names with "[redacted]" values,
-- never headers_enc; the breaker's state beside the registry fields.
CREATE FUNCTION omni2.mcp_server_json(s omni2.mcp_servers)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object(
        'id', s.id, 'name', s.name, 'url', s.url, 'transport', s.transport,
        'headers', (SELECT coalesce(jsonb_object_agg(h, '[redacted]'), '{}')
                    FROM unnest(s.header_names) AS h),
        'timeout_ms', s.timeout_ms, 'enabled', s.enabled,
        'roles', to_jsonb(s.roles), 'tool_roles', s.tool_roles,
        'health', s.health, 'protocol', s.protocol,
        'state', coalesce((SELECT b.state FROM omni2.circuit_breakers AS b
                           WHERE b.server_id = s.id), 'closed'),
        'created_at', to_char(s.created_at AT TIME ZONE 'UTC',
                              'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'updated_at', to_char(s.updated_at AT TIME ZONE 'UTC',
                              'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
$$;


CREATE TABLE mcp_performance.tool_calls (
    id         bigserial   PRIMARY KEY,
    at         timestamptz NOT NULL,
    server_id  uuid        NOT NULL,
    tool       text        NOT NULL,
    user_id    text,
    latency_us bigint      NOT NULL,
    outcome    text        NOT NULL,
    bytes_in   bigint      NOT NULL,
    bytes_out  bigint      NOT NULL
);

CREATE INDEX tool_calls_server_at_idx
    ON mcp_performance.tool_calls (server_id, at);
CREATE INDEX tool_calls_at_idx ON mcp_performance.tool_calls (at);

COMMENT ON TABLE mcp_performance.tool_calls IS
    'One row per tools/call through the gateway, appended in batches. '
    'outcome: ok, tool_error (isError), rpc_error, timeout, upstream_error, '
    'unavailable.';


-- SHA-256 (hex) of a tool's name, description, inputSchema and annotations;
-- jsonb's text form orders keys, so the same definition always has the
-- same hash whatever order the upstream wrote it in.
CREATE FUNCTION omni2.mcp_tool_hash(def jsonb)
    RETURNS text
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT encode(sha256(convert_to(jsonb_build_object(
        'name', def->'name', 'description', def->'description',
        'inputSchema', def->'inputSchema',
        'annotations', def->'annotations')::text, 'UTF8')), 'hex')
$$;


-- Stores what tools/list answered (a JSON array of tool objects): new
-- tools are trusted as found, a tool whose hash changed is quarantined
-- (its new definition kept in pending, the change audited), one back to
-- its approved definition is active again, tools no longer listed are
-- removed. Returns the tools quarantined by this call.
CREATE FUNCTION omni2.mcp_catalog_store(p_server uuid, p_tools jsonb,
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
