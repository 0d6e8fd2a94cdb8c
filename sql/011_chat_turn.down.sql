-- 011_chat_turn (down): drops the chat turn's functions.

DROP FUNCTION omnichat.turn_save(text, uuid, jsonb);
DROP FUNCTION omnichat.turn_begin(text, text, text, text, jsonb);
DROP FUNCTION omnichat.turn_targets(omnichat.conversations);
