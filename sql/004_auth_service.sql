-- 004_auth_service: users, refresh tokens (rotated, in families) and API
-- keys, and the functions that change them atomically.

CREATE TABLE auth_service.users (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email          text        NOT NULL,
    username       text,
    password_hash  text        NOT NULL,
    role           text        NOT NULL DEFAULT 'user',
    is_active      boolean     NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz,
    CONSTRAINT users_role_valid
        CHECK (role IN ('admin', 'developer', 'user', 'viewer')),
    CONSTRAINT users_email_length CHECK (length(email) BETWEEN 3 AND 254),
    CONSTRAINT users_username_length
        CHECK (username IS NULL OR length(username) BETWEEN 3 AND 64),
    CONSTRAINT users_password_hash_format
        CHECK (password_hash LIKE '$pbkdf2-sha256$%')
);

-- the worker names the field of a 409 from these constraint names
CREATE UNIQUE INDEX users_email_key ON auth_service.users (lower(email));
CREATE UNIQUE INDEX users_username_key ON auth_service.users (lower(username));
CREATE INDEX users_created_at_idx ON auth_service.users (created_at, id);

COMMENT ON TABLE auth_service.users IS
    'Accounts. Email and username are unique case-insensitively; '
    'password_hash is PBKDF2-HMAC-SHA256 in passlib''s format.';


CREATE TABLE auth_service.refresh_tokens (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    family_id          uuid        NOT NULL,
    user_id            uuid        NOT NULL
                       REFERENCES auth_service.users (id) ON DELETE CASCADE,
    token_hash         text        NOT NULL,
    access_jti         text        NOT NULL,
    access_expires_at  timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    used_at            timestamptz,
    revoked_at         timestamptz,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT refresh_tokens_access_jti_key UNIQUE (access_jti),
    CONSTRAINT refresh_tokens_token_hash_hex
        CHECK (token_hash ~ '^[0-9a-f]{64}$')
);

CREATE INDEX refresh_tokens_family_id_idx
    ON auth_service.refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx
    ON auth_service.refresh_tokens (user_id, created_at);
CREATE INDEX refresh_tokens_expires_at_idx
    ON auth_service.refresh_tokens (expires_at);

COMMENT ON TABLE auth_service.refresh_tokens IS
    'One row per issued token pair: the refresh token (SHA-256 hex of the '
    'opaque value) and the jti/expiry of the access token issued with it. '
    'A login starts a family; each refresh spends its row (used_at) and adds '
    'one to the family. Presenting a spent token revokes the family.';


CREATE TABLE auth_service.api_keys (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL
                REFERENCES auth_service.users (id) ON DELETE CASCADE,
    name        text        NOT NULL,
    prefix      text        NOT NULL,
    key_hash    text        NOT NULL,
    role        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
    CONSTRAINT api_keys_key_hash_hex CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT api_keys_role_valid
        CHECK (role IN ('admin', 'developer', 'user', 'viewer')),
    CONSTRAINT api_keys_name_length CHECK (length(name) BETWEEN 1 AND 100)
);

CREATE INDEX api_keys_user_id_idx
    ON auth_service.api_keys (user_id, created_at, id);

COMMENT ON TABLE auth_service.api_keys IS
    'API keys, stored as SHA-256 hex (the key itself is shown once). Live '
    'keys are mirrored to Redis as omni:apikey:<key_hash> for the gateway.';


CREATE FUNCTION auth_service.role_rank(role text) RETURNS int
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE role WHEN 'viewer' THEN 1 WHEN 'user' THEN 2
                     WHEN 'developer' THEN 3 WHEN 'admin' THEN 4 END
$$;


-- Revokes a whole refresh family; returns the access tokens issued in it
-- that have not expired yet (for omni:revoked:<jti>), as two arrays.
CREATE FUNCTION auth_service.revoke_family(family uuid,
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


-- Spends refresh token old_hash and issues its successor in the same family.
-- outcome: ok | invalid | expired | revoked | reused. On reused (a spent
-- token presented again: it was stolen, or the thief already used it) and
-- on a deactivated user the family is revoked and jtis/exps name the access
-- tokens to revoke at the gateway. The row lock makes two concurrent
-- refreshes of one token a reuse.
CREATE FUNCTION auth_service.rotate_refresh(old_hash text, new_hash text,
    new_jti text, access_exp bigint, refresh_exp bigint,
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


-- Changes a user's role and/or active flag (NULL = unchanged) on behalf of
-- admin actor. outcome: ok | not_found | self (an admin may not deactivate
-- or demote themself). When the user ends up inactive: every refresh family
-- is revoked, every API key revoked, and the live access-token jtis and all
-- the user's unexpired key hashes are returned to clear at the gateway
-- (again on a retry, so a Redis failure can be repaired by repeating the
-- call). When the role drops below a key's role, the key is lowered and
-- returned in keys_lowered.
CREATE FUNCTION auth_service.update_user(actor uuid, target uuid,
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


-- Deletes refresh tokens that expired more than `keep` ago.
CREATE FUNCTION auth_service.prune_refresh_tokens(keep interval)
    RETURNS bigint
    LANGUAGE plpgsql
AS $$
DECLARE
    n bigint;
BEGIN
    IF keep IS NULL OR keep < interval '0' THEN
        RAISE EXCEPTION 'auth_service.prune_refresh_tokens: keep must be a '
                        'non-negative interval, not %', keep
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM auth_service.refresh_tokens WHERE expires_at < now() - keep;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
