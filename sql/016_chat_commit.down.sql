-- 016_chat_commit (down): the worker calls turn_begin() itself again.

DROP FUNCTION omnichat.turn_begin_nowait(text, text, text, text, jsonb);
