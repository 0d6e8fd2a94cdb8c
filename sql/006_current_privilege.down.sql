-- 006_current_privilege (down): drops what 006 created and restores the
-- 004 versions of the functions it replaced.

CREATE OR REPLACE FUNCTION auth_service.revoke_family(family uuid,
    OUT jtis text[], OUT exps bigint[])
    LANGUAGE sql
AS $$
    WITH r AS (
        UPDATE auth_service.refresh_tokens SET revoked_at = now()
        WHERE family_id = family AND revoked_at IS NULL
    )
    SELECT coalesce(array_agg(access_jti), '{}'),
           coalesce(array_agg(extract(epoch FROM access_expires_at)::bigint),
                    '{}')
    FROM auth_service.refresh_tokens
    WHERE family_id = family AND access_expires_at > now()
$$;

CREATE OR REPLACE FUNCTION auth_service.rotate_refresh(old_hash text,
    new_hash text, new_jti text, access_exp bigint, refresh_exp bigint,
    OUT outcome text, OUT user_id uuid, OUT email text, OUT username text,
    OUT role text, OUT jtis text[], OUT exps bigint[])
    LANGUAGE plpgsql
AS $$
DECLARE
    t auth_service.refresh_tokens;
    u auth_service.users;
BEGIN
    SELECT * INTO t FROM auth_service.refresh_tokens
    WHERE token_hash = old_hash FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'invalid';
        RETURN;
    END IF;
    IF t.revoked_at IS NOT NULL THEN
        outcome := 'revoked';
        RETURN;
    END IF;
    IF t.used_at IS NOT NULL THEN
        outcome := 'reused';
        SELECT f.jtis, f.exps INTO jtis, exps
        FROM auth_service.revoke_family(t.family_id) AS f;
        RETURN;
    END IF;
    IF t.expires_at <= now() THEN
        outcome := 'expired';
        RETURN;
    END IF;
    SELECT * INTO u FROM auth_service.users WHERE id = t.user_id;
    IF NOT u.is_active THEN
        outcome := 'revoked';
        SELECT f.jtis, f.exps INTO jtis, exps
        FROM auth_service.revoke_family(t.family_id) AS f;
        RETURN;
    END IF;

    UPDATE auth_service.refresh_tokens SET used_at = now() WHERE id = t.id;
    INSERT INTO auth_service.refresh_tokens
        (family_id, user_id, token_hash, access_jti, access_expires_at,
         expires_at)
    VALUES (t.family_id, t.user_id, new_hash, new_jti,
            to_timestamp(access_exp), to_timestamp(refresh_exp));
    outcome := 'ok';
    user_id := u.id;
    email := u.email;
    username := u.username;
    role := u.role;
END
$$;

CREATE OR REPLACE FUNCTION auth_service.update_user(actor uuid, target uuid,
    new_role text, new_active boolean,
    OUT outcome text, OUT jtis text[], OUT exps bigint[],
    OUT keys_removed text[], OUT keys_lowered text[])
    LANGUAGE plpgsql
AS $$
DECLARE
    u auth_service.users;
BEGIN
    SELECT * INTO u FROM auth_service.users WHERE id = target FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN;
    END IF;
    IF actor = target AND (new_active IS FALSE
                           OR (new_role IS NOT NULL AND new_role <> 'admin'))
    THEN
        outcome := 'self';
        RETURN;
    END IF;

    UPDATE auth_service.users
    SET role = coalesce(new_role, u.role),
        is_active = coalesce(new_active, u.is_active),
        updated_at = now()
    WHERE id = target
    RETURNING * INTO u;

    IF NOT u.is_active THEN
        UPDATE auth_service.refresh_tokens SET revoked_at = now()
        WHERE user_id = target AND revoked_at IS NULL;
        SELECT coalesce(array_agg(access_jti), '{}'),
               coalesce(array_agg(
                   extract(epoch FROM access_expires_at)::bigint), '{}')
        INTO jtis, exps
        FROM auth_service.refresh_tokens
        WHERE user_id = target AND access_expires_at > now();

        UPDATE auth_service.api_keys SET revoked_at = now()
        WHERE user_id = target AND revoked_at IS NULL;
        SELECT coalesce(array_agg(key_hash), '{}') INTO keys_removed
        FROM auth_service.api_keys
        WHERE user_id = target
          AND (expires_at IS NULL OR expires_at > now());
    ELSE
        WITH l AS (
            UPDATE auth_service.api_keys SET role = u.role
            WHERE user_id = target AND revoked_at IS NULL
              AND auth_service.role_rank(role) > auth_service.role_rank(u.role)
            RETURNING key_hash
        )
        SELECT coalesce(array_agg(key_hash), '{}') INTO keys_lowered FROM l;
    END IF;
    outcome := 'ok';
END
$$;

DROP FUNCTION auth_service.logout(text, uuid, bigint);
DROP FUNCTION auth_service.record_revoked(text[], bigint[]);
DROP TABLE auth_service.revoked_tokens;
