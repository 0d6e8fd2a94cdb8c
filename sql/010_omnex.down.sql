-- 010_omnex (down): drops the omnex schema and everything 010_omnex.sql
-- created in it.

DROP SCHEMA omnex CASCADE;
