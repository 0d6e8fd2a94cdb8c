-- 012_llm_gateway (down): drops the LLM gateway's functions.

DROP FUNCTION omnichat.gateway_models();
DROP FUNCTION omnichat.gateway_begin(text, text);
