-- 014_llm_limits (down): drops the LLM gateway's aliases and per-key limits.

DROP FUNCTION omnichat.gateway_catalog();
DROP FUNCTION omnichat.gateway_plan(text, text, text);
DROP FUNCTION omnichat.gateway_api(text, text, text, text, int, uuid, boolean);
DROP FUNCTION omnichat.limit_write(text, text, jsonb);
DROP FUNCTION omnichat.limit_json(omnichat.key_limits);
DROP FUNCTION omnichat.alias_write(text, text, jsonb);
DROP FUNCTION omnichat.alias_json(omnichat.model_aliases);
DROP TABLE omnichat.key_limits;
DROP TABLE omnichat.model_aliases;
