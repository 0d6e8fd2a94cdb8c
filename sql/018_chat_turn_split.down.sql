-- 018_chat_turn_split (down): the worker calls turn_begin_nowait() again.

DROP FUNCTION omnichat.turn_ask(text, uuid, uuid, text);
DROP FUNCTION omnichat.turn_plan(text, text, uuid, int, text, jsonb);
