-- 007_dashboard_contract_keys (down): the seeded dashboard settings back in
-- 003's shapes. A contract default becomes 003's seed again; otherwise the
-- renamed members get their old names back, members 003's rules require are
-- filled in, and a contract member the up file would recreate with the same
-- value (a default, or one derived from the same old member) is dropped;
-- the rest stays as an extra member. The rewrite is audited and bumps the
-- cache generation, as going up does.

CREATE FUNCTION pg_temp.dashboard_number(v jsonb, factor numeric)
    RETURNS jsonb
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'number'
                THEN to_jsonb(trim_scale(v::text::numeric * factor)) END
$$;

-- v without member `name` when it holds `dflt`
CREATE FUNCTION pg_temp.dashboard_drop_if(v jsonb, name text, dflt jsonb)
    RETURNS jsonb
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN v->name = dflt THEN v - name ELSE v END
$$;

CREATE FUNCTION pg_temp.dashboard_legacy(p_key text, v jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    r     jsonb;
    hours jsonb;
BEGIN
    IF p_key = 'dev_mode' THEN
        IF v IN ('"true"', '"false"') THEN
            RETURN jsonb_build_object('enabled', v = '"true"');
        END IF;
        RETURN v;
    END IF;
    IF jsonb_typeof(v) IS DISTINCT FROM 'object' THEN
        RETURN v;
    END IF;

    CASE p_key
    WHEN 'alert_thresholds' THEN
        IF v = '{"cost_daily": 100, "error_rate": 0.05,
                 "response_time_p99": 5000}' THEN
            RETURN '{"error_rate_percent": 5, "p95_ms": 1000, "p99_ms": 3000,
                     "mcp_failure_count": 3}';
        END IF;
        r := (v - 'error_rate' - 'response_time_p99' - 'response_time_p95')
            || jsonb_build_object(
                'error_rate_percent', coalesce(
                    pg_temp.dashboard_number(v->'error_rate', 100), '5'),
                'p99_ms', coalesce(v->'response_time_p99', '3000'),
                'mcp_failure_count', coalesce(v->'mcp_failure_count', '3'));
        -- 003's rules want p95_ms <= p99_ms
        r := r || jsonb_build_object('p95_ms', coalesce(
            v->'response_time_p95',
            CASE WHEN jsonb_typeof(r->'p99_ms') = 'number'
                      AND (r->>'p99_ms')::numeric < 1000
                 THEN r->'p99_ms' ELSE '1000' END));
        RETURN pg_temp.dashboard_drop_if(r, 'cost_daily', '100');

    WHEN 'chart_settings' THEN
        IF v = '{"cost_period": "today", "queries_hours": 24,
                 "response_time_hours": 24}' THEN
            RETURN '{"default_hours": 24, "bucket": "5m", "max_points": 288}';
        END IF;
        hours := coalesce(v->'queries_hours', '24');
        r := (v - 'queries_hours') || jsonb_build_object(
            'default_hours', hours,
            'max_points', coalesce(v->'max_points', '288'));
        -- 003's rules want default_hours * 12 <= max_points for 5m buckets
        r := r || jsonb_build_object('bucket', coalesce(v->'bucket',
            CASE WHEN jsonb_typeof(hours) = 'number'
                      AND jsonb_typeof(r->'max_points') = 'number'
                      AND (hours::text::numeric) * 12
                          > (r->>'max_points')::numeric
                 THEN '"1h"'::jsonb ELSE '"5m"' END));
        r := pg_temp.dashboard_drop_if(r, 'response_time_hours', hours);
        RETURN pg_temp.dashboard_drop_if(r, 'cost_period', '"today"');

    WHEN 'dev_features' THEN
        IF v = '{"websocket_debug": true, "quick_login": false,
                 "quick_login_email": "", "quick_login_password": ""}' THEN
            RETURN '{"show_debug_panel": false, "mock_data": false}';
        END IF;
        r := pg_temp.dashboard_drop_if(v, 'websocket_debug', 'true');
        r := pg_temp.dashboard_drop_if(r, 'quick_login', 'false');
        r := pg_temp.dashboard_drop_if(r, 'quick_login_email', '""');
        RETURN pg_temp.dashboard_drop_if(r, 'quick_login_password', '""');

    WHEN 'live_updates' THEN
        IF v = '{"max_stored_events": 1000}' THEN
            RETURN '{"enabled": true, "max_stored_events": 1000,
                     "channels": ["activity", "mcp_health"]}';
        END IF;
        RETURN '{"enabled": true, "max_stored_events": 1000,
                 "channels": ["activity", "mcp_health"]}' || v;

    WHEN 'refresh_interval' THEN
        IF v = '{"stats": 5, "charts": 30, "activity": 5}' THEN
            RETURN '{"seconds": 30}';
        END IF;
        r := (v - 'stats') || jsonb_build_object(
            'seconds', coalesce(v->'stats', v->'seconds', '30'));
        r := pg_temp.dashboard_drop_if(r, 'charts', r->'seconds');
        RETURN pg_temp.dashboard_drop_if(r, 'activity', r->'seconds');

    ELSE
        RETURN v;
    END CASE;
END
$$;

WITH n AS (
    SELECT c.key, c.value AS old_value,
           pg_temp.dashboard_legacy(c.key, c.value) AS value
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

-- 003's descriptions
UPDATE omni2_dashboard.dashboard_config AS c
SET description = d.description
FROM (VALUES
    ('alert_thresholds',
     'When the dashboard raises alerts: error rate, p95/p99 latency, and '
     'consecutive MCP health-check failures.'),
    ('chart_settings',
     'Chart defaults: time window, bucket width and most points per series.'),
    ('dev_features',
     'Developer aids in the dashboard UI.'),
    ('dev_mode',
     'Development mode for the dashboard.'),
    ('live_updates',
     'Live event feed: on/off, how many recent events are kept for '
     '/api/v1/dashboard/activity, and the channels subscribed.'),
    ('refresh_interval',
     'How often the dashboard polls when live updates are off.')
) AS d (key, description)
WHERE c.key = d.key;

UPDATE omni2_dashboard.cache_state SET generation = generation + 1;

DROP FUNCTION pg_temp.dashboard_legacy(text, jsonb);
DROP FUNCTION pg_temp.dashboard_drop_if(jsonb, text, jsonb);
DROP FUNCTION pg_temp.dashboard_number(jsonb, numeric);
