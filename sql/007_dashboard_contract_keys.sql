-- 007_dashboard_contract_keys: the seeded dashboard settings in the
-- platform's shapes (SPEC section 6), which its dashboards and scripts
-- read. A value still equal to 003's seed becomes the contract default; a
-- customised one keeps its settings under the contract's names:
--
--   alert_thresholds  error_rate_percent/100 -> error_rate,
--                     p99_ms -> response_time_p99, p95_ms ->
--                     response_time_p95 (an Omni extra), cost_daily added
--   chart_settings    default_hours -> queries_hours and
--                     response_time_hours, cost_period added
--   dev_features      the contract's four members added
--   dev_mode          {"enabled": b} -> the JSON string "true"/"false"
--   live_updates      max_stored_events kept
--   refresh_interval  seconds -> stats, charts and activity
--
-- Contract members already present win; other members stay as optional
-- extras. Each rewrite is recorded in config_audit (changed_by NULL: the
-- platform itself) and bumps the cache generation. The down file turns
-- every value this one writes back into the one it came from, dev_mode's
-- extra members excepted.

CREATE FUNCTION pg_temp.dashboard_number(v jsonb, factor numeric)
    RETURNS jsonb
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'number'
                THEN to_jsonb(trim_scale(v::text::numeric * factor)) END
$$;

CREATE FUNCTION pg_temp.dashboard_contract(p_key text, v jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF p_key = 'dev_mode' THEN
        IF v IN ('"true"', '"false"') THEN
            RETURN v;
        END IF;
        RETURN to_jsonb(CASE WHEN v->'enabled' = 'true' THEN 'true'
                             ELSE 'false' END);
    END IF;
    IF jsonb_typeof(v) IS DISTINCT FROM 'object' THEN
        RETURN v;
    END IF;

    CASE p_key
    WHEN 'alert_thresholds' THEN
        IF v = '{"error_rate_percent": 5, "p95_ms": 1000, "p99_ms": 3000,
                 "mcp_failure_count": 3}' THEN
            RETURN '{"cost_daily": 100, "error_rate": 0.05,
                     "response_time_p99": 5000}';
        END IF;
        RETURN (v - 'error_rate_percent' - 'p99_ms' - 'p95_ms')
            || jsonb_build_object(
                'cost_daily', coalesce(v->'cost_daily', '100'),
                'error_rate', coalesce(v->'error_rate',
                    pg_temp.dashboard_number(v->'error_rate_percent', 0.01),
                    '0.05'),
                'response_time_p99', coalesce(v->'response_time_p99',
                                              v->'p99_ms', '5000'))
            || jsonb_strip_nulls(jsonb_build_object(
                'response_time_p95', coalesce(v->'response_time_p95',
                                              v->'p95_ms')));

    WHEN 'chart_settings' THEN
        IF v = '{"default_hours": 24, "bucket": "5m", "max_points": 288}' THEN
            RETURN '{"cost_period": "today", "queries_hours": 24,
                     "response_time_hours": 24}';
        END IF;
        RETURN (v - 'default_hours') || jsonb_build_object(
            'cost_period', coalesce(v->'cost_period', '"today"'),
            'queries_hours', coalesce(v->'queries_hours', v->'default_hours',
                                      '24'),
            'response_time_hours', coalesce(v->'response_time_hours',
                                            v->'default_hours', '24'));

    WHEN 'dev_features' THEN
        IF v = '{"show_debug_panel": false, "mock_data": false}' THEN
            RETURN '{"websocket_debug": true, "quick_login": false,
                     "quick_login_email": "", "quick_login_password": ""}';
        END IF;
        RETURN '{"websocket_debug": true, "quick_login": false,
                 "quick_login_email": "", "quick_login_password": ""}'
               || v;

    WHEN 'live_updates' THEN
        IF v = '{"enabled": true, "max_stored_events": 1000,
                 "channels": ["activity", "mcp_health"]}' THEN
            RETURN '{"max_stored_events": 1000}';
        END IF;
        RETURN '{"max_stored_events": 1000}' || v;

    WHEN 'refresh_interval' THEN
        IF v = '{"seconds": 30}' THEN
            RETURN '{"stats": 5, "charts": 30, "activity": 5}';
        END IF;
        RETURN (v - 'seconds') || jsonb_build_object(
            'stats', coalesce(v->'stats', v->'seconds', '5'),
            'charts', coalesce(v->'charts', v->'seconds', '30'),
            'activity', coalesce(v->'activity', v->'seconds', '5'));

    ELSE
        RETURN v;
    END CASE;
END
$$;

WITH n AS (
    SELECT c.key, c.value AS old_value,
           pg_temp.dashboard_contract(c.key, c.value) AS value
    FROM omni2_dashboard.dashboard_config AS c
    WHERE c.key IN ('alert_thresholds', 'chart_settings', 'dev_features',
                    'dev_mode', 'live_updates', 'refresh_interval')
    FOR UPDATE
), u AS (
    UPDATE omni2_dashboard.dashboard_config AS c
    SET value = n.value
    FROM n
    WHERE c.key = n.key AND n.value IS DISTINCT FROM n.old_value
    RETURNING n.key, n.old_value, n.value
)
INSERT INTO omni2_dashboard.config_audit (key, old_value, new_value)
SELECT key, old_value, value FROM u;

UPDATE omni2_dashboard.dashboard_config AS c
SET description = d.description
FROM (VALUES
    ('alert_thresholds',
     'When the dashboard raises alerts: daily cost, error rate (a fraction '
     'from 0 to 1) and p99 response time (ms); optional response_time_p95 '
     '(ms) and mcp_failure_count (consecutive MCP health-check failures).'),
    ('chart_settings',
     'Chart defaults: the cost chart''s period (today, 24h or 7d) and the '
     'hours of the queries/errors and response-time charts; optional '
     'bucket ("5m" or "1h") and max_points.'),
    ('dev_features',
     'Developer aids in the dashboard UI: the WebSocket debug window and '
     'quick login (its password is hidden from non-admins and from the '
     'activity feed).'),
    ('dev_mode',
     'Development mode for the dashboard: the JSON string "true" or '
     '"false".'),
    ('live_updates',
     'Live event feed: how many recent events are kept for '
     '/api/v1/dashboard/activity; optional enabled and channels.'),
    ('refresh_interval',
     'Seconds between the dashboard''s polls of stats, charts and activity; '
     'cached stats and charts are reused as long.')
) AS d (key, description)
WHERE c.key = d.key;

UPDATE omni2_dashboard.cache_state SET generation = generation + 1;

DROP FUNCTION pg_temp.dashboard_contract(text, jsonb);
DROP FUNCTION pg_temp.dashboard_number(jsonb, numeric);
