-- 004_auth_service (down): drops what 004_auth_service.sql created, in
-- reverse order.

DROP FUNCTION auth_service.prune_refresh_tokens(interval);
DROP FUNCTION auth_service.update_user(uuid, uuid, text, boolean);
DROP FUNCTION auth_service.rotate_refresh(text, text, text, bigint, bigint);
DROP FUNCTION auth_service.revoke_family(uuid);
DROP FUNCTION auth_service.role_rank(text);
DROP TABLE auth_service.api_keys;
DROP TABLE auth_service.refresh_tokens;
DROP TABLE auth_service.users;
