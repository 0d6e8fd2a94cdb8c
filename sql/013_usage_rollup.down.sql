-- 013_usage_rollup (down): drops the ledger's rollups and their triggers.

DROP TRIGGER llm_usage_rollup_truncate ON omnichat.llm_usage;
DROP TRIGGER llm_usage_rollup_delete ON omnichat.llm_usage;
DROP TRIGGER llm_usage_rollup_update ON omnichat.llm_usage;
DROP TRIGGER llm_usage_rollup_insert ON omnichat.llm_usage;
DROP FUNCTION omnichat.usage_rollup_apply();
DROP TABLE omnichat.usage_rollup;
