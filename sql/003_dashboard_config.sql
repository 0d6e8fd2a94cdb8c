-- 003_dashboard_config: dashboard settings (seeded), the dashboard's read
-- cache and per-user preferences.

CREATE TABLE omni2_dashboard.dashboard_config (
    key         text        PRIMARY KEY
                            CHECK (key ~ '^[a-z][a-z0-9_]{0,63}$'),
    value       jsonb       NOT NULL,
    description text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text
);

COMMENT ON TABLE omni2_dashboard.dashboard_config IS
    'Dashboard settings served by GET/PUT /api/v1/config/{key}.';
COMMENT ON COLUMN omni2_dashboard.dashboard_config.updated_by IS
    'User id of the last PUT; NULL for the seeded value.';

INSERT INTO omni2_dashboard.dashboard_config (key, value, description) VALUES
    ('alert_thresholds',
     '{"error_rate_percent": 5, "p95_ms": 1000, "p99_ms": 3000,
       "mcp_failure_count": 3}',
     'When the dashboard raises alerts: error rate, p95/p99 latency, and '
     'consecutive MCP health-check failures.'),
    ('chart_settings',
     '{"default_hours": 24, "bucket": "5m", "max_points": 288}',
     'Chart defaults: time window, bucket width and most points per series.'),
    ('dev_features',
     '{"show_debug_panel": false, "mock_data": false}',
     'Developer aids in the dashboard UI.'),
    ('dev_mode',
     '{"enabled": false}',
     'Development mode for the dashboard.'),
    ('live_updates',
     '{"enabled": true, "max_stored_events": 1000,
       "channels": ["activity", "mcp_health"]}',
     'Live event feed: on/off, how many recent events are kept for '
     '/api/v1/dashboard/activity, and the channels subscribed.'),
    ('refresh_interval',
     '{"seconds": 30}',
     'How often the dashboard polls when live updates are off.');


CREATE TABLE omni2_dashboard.dashboard_cache (
    key        text        PRIMARY KEY,
    value      jsonb       NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX dashboard_cache_expires_at_idx
    ON omni2_dashboard.dashboard_cache (expires_at);

COMMENT ON TABLE omni2_dashboard.dashboard_cache IS
    'Computed dashboard answers reused until expires_at; expired rows are '
    'ignored by readers and swept by range on the expires_at index.';


CREATE TABLE omni2_dashboard.user_preferences (
    user_id     text        PRIMARY KEY,
    preferences jsonb       NOT NULL DEFAULT '{}'
                            CHECK (jsonb_typeof(preferences) = 'object'),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE omni2_dashboard.user_preferences IS
    'Per-user dashboard preferences (GET/PUT /api/v1/preferences): one JSON '
    'object per user.';
