-- 008_mcp_registry (down): drops what 008_mcp_registry.sql created, in
-- reverse order.

DROP FUNCTION omni2.mcp_catalog_store(uuid, jsonb, text);
DROP FUNCTION omni2.mcp_tool_hash(jsonb);
DROP TABLE mcp_performance.tool_calls;
DROP FUNCTION omni2.mcp_server_json(omni2.mcp_servers);
DROP TABLE omni2.mcp_audit;
DROP TABLE omni2.mcp_probe_leases;
DROP TABLE omni2.circuit_breakers;
DROP TABLE omni2.mcp_tools;
DROP TABLE omni2.mcp_servers;
DROP SCHEMA mcp_performance;
DROP SCHEMA omni2;
