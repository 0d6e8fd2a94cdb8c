-- 006_current_privilege: privilege is current, not remembered. A role
-- change revokes the user's live access tokens (as deactivation does), every
-- grant is checked against the actor's role at that moment, and revoked
-- access tokens are kept here so they outlive Redis (the worker writes the
-- live ones back to Redis when Redis has lost its data).

CREATE TABLE auth_service.revoked_tokens (
    jti         text        PRIMARY KEY,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT revoked_tokens_jti_length CHECK (length(jti) BETWEEN 1 AND 128)
);

CREATE INDEX revoked_tokens_expires_at_idx
    ON auth_service.revoked_tokens (expires_at);

COMMENT ON TABLE auth_service.revoked_tokens IS
    'Revoked access tokens (logout, refresh reuse, deactivation, role '
    'change) until their exp: the source the Redis keys '
    'omni:revoked:<jti> are rebuilt from. Pruned as revocations are added.';


-- Records the access tokens jtis[i] (exp exps[i], unix seconds) as revoked
-- and deletes a bounded number of rows that expired over an hour ago, so
-- the table holds little more than the live revocations.
CREATE FUNCTION auth_service.record_revoked(jtis text[], exps bigint[])
    RETURNS void
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO auth_service.revoked_tokens AS r (jti, expires_at)
    SELECT j, to_timestamp(max(e))
    FROM unnest(jtis, exps) AS t(j, e)
    WHERE j IS NOT NULL AND e IS NOT NULL
    GROUP BY j
    ON CONFLICT (jti) DO UPDATE
        SET expires_at = greatest(r.expires_at, excluded.expires_at);

    DELETE FROM auth_service.revoked_tokens
    WHERE jti IN (SELECT jti FROM auth_service.revoked_tokens
                  WHERE expires_at < now() - interval '1 hour'
                  LIMIT 100 + 2 * coalesce(cardinality(jtis), 0));
END
$$;


-- As in 004, and the access tokens it names are recorded as revoked.
CREATE OR REPLACE FUNCTION auth_service.revoke_family(family uuid,
    OUT jtis text[], OUT exps bigint[])
    LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE auth_service.refresh_tokens SET revoked_at = now()
    WHERE family_id = family AND revoked_at IS NULL;
    SELECT coalesce(array_agg(access_jti), '{}'),
           coalesce(array_agg(extract(epoch FROM access_expires_at)::bigint),
                    '{}')
    INTO jtis, exps
    FROM auth_service.refresh_tokens
    WHERE family_id = family AND access_expires_at > now();
    PERFORM auth_service.record_revoked(jtis, exps);
END
$$;


-- Logout: records the presented access token (token_exp unix seconds) as
-- revoked and, when it is token_user's, revokes its refresh family. Returns
-- the family's live access tokens (empty when there is none).
CREATE FUNCTION auth_service.logout(token_jti text, token_user uuid,
    token_exp bigint, OUT jtis text[], OUT exps bigint[])
    LANGUAGE plpgsql
AS $$
DECLARE
    family uuid;
BEGIN
    PERFORM auth_service.record_revoked(ARRAY[token_jti], ARRAY[token_exp]);
    jtis := '{}';
    exps := '{}';
    SELECT t.family_id INTO family FROM auth_service.refresh_tokens t
    WHERE t.access_jti = token_jti AND t.user_id = token_user;
    IF FOUND THEN
        SELECT f.jtis, f.exps INTO jtis, exps
        FROM auth_service.revoke_family(family) AS f;
    END IF;
END
$$;


-- As in 004, but the user row is read FOR SHARE: a role change or
-- deactivation committing meanwhile is either seen here (the new token
-- carries the new role, or none is issued) or waits for this rotation and
-- then revokes the access token issued here. The user row is locked
-- before the token row, in update_user's order, so a refresh and a
-- deactivation cannot deadlock.
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
    WHERE token_hash = old_hash;
    IF NOT FOUND THEN
        outcome := 'invalid';
        RETURN;
    END IF;
    SELECT * INTO u FROM auth_service.users WHERE id = t.user_id FOR SHARE;
    SELECT * INTO t FROM auth_service.refresh_tokens
    WHERE token_hash = old_hash FOR UPDATE;
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


-- Changes target's role and/or active flag (NULL = unchanged) on behalf of
-- actor, whose role is read here, under a row lock, not taken from a token.
-- outcome: ok | forbidden (actor is no active admin) | not_found |
-- above (new_role ranks above the actor's role) | self_role (an admin may
-- not change their own role) | self_active (nor deactivate themself).
-- A deactivation revokes every refresh family and API key; a deactivation
-- or a role change (up or down) revokes every live access token (recorded
-- in revoked_tokens), while the refresh families of an active user stay:
-- a refresh issues a token with the role the user has then. Keys above the
-- new role are lowered (keys_lowered). jtis/exps name every live revoked
-- access token of the user and keys_removed every unexpired key hash of a
-- deactivated user, again on a retry, so a Redis failure can be repaired
-- by repeating the call.
CREATE OR REPLACE FUNCTION auth_service.update_user(actor uuid, target uuid,
    new_role text, new_active boolean,
    OUT outcome text, OUT jtis text[], OUT exps bigint[],
    OUT keys_removed text[], OUT keys_lowered text[])
    LANGUAGE plpgsql
AS $$
DECLARE
    a auth_service.users;
    u auth_service.users;
    live text[];
    live_exps bigint[];
BEGIN
    -- both rows locked in one order: two admins changing each other at
    -- once cannot deadlock
    PERFORM 1 FROM auth_service.users WHERE id IN (actor, target)
    ORDER BY id FOR UPDATE;
    SELECT * INTO a FROM auth_service.users WHERE id = actor;
    IF NOT FOUND OR NOT a.is_active OR a.role <> 'admin' THEN
        outcome := 'forbidden';
        RETURN;
    END IF;
    SELECT * INTO u FROM auth_service.users WHERE id = target;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN;
    END IF;
    IF new_role IS NOT NULL AND auth_service.role_rank(new_role)
                                > auth_service.role_rank(a.role) THEN
        outcome := 'above';
        RETURN;
    END IF;
    IF actor = target AND new_role IS NOT NULL AND new_role <> u.role THEN
        outcome := 'self_role';
        RETURN;
    END IF;
    IF actor = target AND new_active IS FALSE THEN
        outcome := 'self_active';
        RETURN;
    END IF;

    IF (new_role IS NOT NULL AND new_role <> u.role)
       OR (new_active IS FALSE AND u.is_active)
    THEN
        SELECT array_agg(access_jti),
               array_agg(extract(epoch FROM access_expires_at)::bigint)
        INTO live, live_exps
        FROM auth_service.refresh_tokens
        WHERE user_id = target AND access_expires_at > now();
        PERFORM auth_service.record_revoked(live, live_exps);
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

    SELECT coalesce(array_agg(t.access_jti), '{}'),
           coalesce(array_agg(extract(epoch FROM t.access_expires_at)::bigint),
                    '{}')
    INTO jtis, exps
    FROM auth_service.refresh_tokens t
    JOIN auth_service.revoked_tokens r ON r.jti = t.access_jti
    WHERE t.user_id = target AND t.access_expires_at > now();
    outcome := 'ok';
END
$$;
