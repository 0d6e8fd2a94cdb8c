-- 020_chat_turn_tools (down): the worker asks 018's turn_plan() again.

DROP FUNCTION omnichat.turn_plan(text, text, uuid, int, text, jsonb, boolean);
DROP FUNCTION omnichat.turn_tools(text, jsonb);
