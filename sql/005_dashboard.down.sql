-- 005_dashboard (down): drops what 005_dashboard.sql created, in reverse
-- order.

DROP FUNCTION omni2_dashboard.record_activity(text, text, text, jsonb);
DROP TABLE omni2_dashboard.activity;
DROP FUNCTION omni2_dashboard.put_config(text, jsonb, text);
DROP INDEX omni2_dashboard.config_audit_key_changed_at_idx;
DROP TABLE omni2_dashboard.config_audit;
DROP TRIGGER request_rollup_summary_truncate ON omni_metrics.request_rollup;
DROP TRIGGER request_rollup_summary_delete ON omni_metrics.request_rollup;
DROP TRIGGER request_rollup_summary_update ON omni_metrics.request_rollup;
DROP TRIGGER request_rollup_summary_insert ON omni_metrics.request_rollup;
DROP FUNCTION omni_metrics.request_summary_apply();
ALTER TABLE omni2_dashboard.dashboard_cache DROP COLUMN generation;
DROP TABLE omni2_dashboard.cache_state;
DROP TABLE omni_metrics.request_summary;
