-- 009_chat (down): drops the omnichat schema and everything 009_chat.sql
-- created in it.

DROP SCHEMA omnichat CASCADE;
