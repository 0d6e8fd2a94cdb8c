-- 001_schemas: the schemas Omni owns (omni2, mcp_performance and omnichat
-- arrive with the migrations that fill them).

CREATE SCHEMA auth_service;
COMMENT ON SCHEMA auth_service IS
    'Users, refresh tokens and API keys (omni-worker auth).';

CREATE SCHEMA omni2_dashboard;
COMMENT ON SCHEMA omni2_dashboard IS
    'Dashboard configuration, cache and per-user preferences.';

CREATE SCHEMA omni_metrics;
COMMENT ON SCHEMA omni_metrics IS
    'Per-minute request rollups written by omni-worker.';
