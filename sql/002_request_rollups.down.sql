-- 002_request_rollups (down): drops what 002_request_rollups.sql created,
-- in reverse order.

DROP FUNCTION omni_metrics.prune_rollups(interval);
DROP AGGREGATE omni_metrics.hist_sum(bigint[]);
DROP FUNCTION omni_metrics.hist_add(bigint[], bigint[]);
DROP FUNCTION omni_metrics.hist_bucket_upper(int);
DROP FUNCTION omni_metrics.hist_bucket_lower(int);
DROP FUNCTION omni_metrics.hist_bucket(bigint);
DROP TABLE omni_metrics.request_rollup;
