-- 016_chat_commit: the chat turn's first round trip (turn_begin) no longer
-- waits for its WAL flush, for time to first token (SPEC 9): with
-- synchronous_commit on, its commit (the user's message) waited for the
-- disk before the provider could be called. The message is still saved
-- before the reply is: turn_save commits synchronously, and a WAL flush
-- covers every record before it, so a reply on disk has its question
-- there too. What a Postgres crash in between (wal_writer_delay, 200 ms
-- by default) can lose is a turn whose reply was never saved: its stream
-- had ended with an error event (the save failed), never with `done`.

CREATE FUNCTION omnichat.turn_begin_nowait(p_user text, p_conv text,
    p_content text, p_role text, p_tools jsonb,
    OUT status int, OUT body text)
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT b.status, b.body INTO status, body
    FROM omnichat.turn_begin(p_user, p_conv, p_content, p_role, p_tools)
        AS b;
END
$$;

COMMENT ON FUNCTION omnichat.turn_begin_nowait(text, text, text, text, jsonb)
    IS 'turn_begin() whose transaction commits without waiting for the WAL '
       'flush (the reply''s synchronous save flushes it)';
