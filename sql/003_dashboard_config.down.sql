-- 003_dashboard_config (down): drops what 003_dashboard_config.sql created,
-- in reverse order (the seed goes with its table).

DROP TABLE omni2_dashboard.user_preferences;
DROP INDEX omni2_dashboard.dashboard_cache_expires_at_idx;
DROP TABLE omni2_dashboard.dashboard_cache;
DROP TABLE omni2_dashboard.dashboard_config;
