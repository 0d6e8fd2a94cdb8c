"""Privilege is current, not remembered (issue 12, SPEC 10): a role change
revokes the user's live access tokens and caps their API keys, and every
grant is checked against the actor's role in the database at that moment,
not the role a token or key still says."""

import hashlib
import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest

import stack
from auth_support import (  # noqa: F401
    PASSWORD, RSA_ARGS, User, admin, assert_error, assert_gateway_401, auth_gw,
    auth_nginx, claims, cli_create_user, create_key, direct_json, login,
    new_user, openssl_key, refresh, register, set_role, unique_email)


def patch(client, token, user_id, body):
    return client.request("PATCH", "/api/v1/users/" + user_id, token=token,
                          json=body)


@pytest.fixture
def second_admin(auth_gw, migrated, tmp_path):
    """An admin of this test's own (the module's `admin` demotes it)."""
    email = unique_email("admin2")
    code, out, err = cli_create_user(migrated, tmp_path, email, PASSWORD,
                                     "admin")
    assert code == 0, (code, out, err)
    user = User(email, PASSWORD, id=out.strip(), role="admin")
    login(auth_gw, user)
    return user


def current_role(migrated, user_id):
    return migrated.sql("SELECT role FROM auth_service.users WHERE id = %s",
                        (user_id,), dbname="omni")[0][0]


def identity(user, role):
    """The headers the gateway would set for user presenting a token that
    says role."""
    return {"X-User-Id": user.id, "X-User-Username": user.email,
            "X-User-Role": role}


# --- exploit (a): a demoted admin's token makes them admin again -------------

def test_demoted_admins_old_token_cannot_promote_them_back(auth_gw, admin,
                                                           second_admin,
                                                           migrated):
    stale = second_admin.access
    assert claims(stale)["role"] == "admin"
    set_role(auth_gw, admin, second_admin, "user")
    r = patch(auth_gw, stale, second_admin.id, {"role": "admin"})
    assert_gateway_401(r, "token_revoked")
    assert current_role(migrated, second_admin.id) == "user"


def test_worker_checks_the_actors_current_role_not_the_header(
        worker, auth_gw, admin, second_admin, migrated):
    """Straight to the worker with the stale admin role in X-User-Role (as a
    token the gateway has not heard is revoked would carry it): the actor
    is no admin any more, so the change is refused in SQL."""
    set_role(auth_gw, admin, second_admin, "user")
    victim = register(auth_gw)
    for target in (second_admin.id, victim.id):
        r = direct_json(worker, "PATCH", "/api/v1/users/" + target,
                        {"role": "admin"}, identity(second_admin, "admin"))
        assert r.status == 403, r
        assert r.json()["error"] == "forbidden", r
    assert current_role(migrated, second_admin.id) == "user"
    assert current_role(migrated, victim.id) == "user"


def test_deactivated_admin_cannot_administer_users_with_a_stale_header(
        worker, auth_gw, admin, second_admin, migrated):
    assert patch(auth_gw, admin.access, second_admin.id,
                 {"is_active": False}).status_code == 200
    victim = register(auth_gw)
    r = direct_json(worker, "PATCH", "/api/v1/users/" + victim.id,
                    {"role": "developer"}, identity(second_admin, "admin"))
    assert r.status == 403, r
    assert r.json()["error"] == "forbidden", r
    assert current_role(migrated, victim.id) == "user"


def test_an_id_that_is_no_user_cannot_change_roles(worker, auth_gw,
                                                   migrated):
    victim = register(auth_gw)
    r = direct_json(worker, "PATCH", "/api/v1/users/" + victim.id,
                    {"role": "admin"},
                    {"X-User-Id": str(uuid.uuid4()), "X-User-Role": "admin"})
    assert r.status == 403, r
    assert r.json()["error"] == "forbidden", r
    assert current_role(migrated, victim.id) == "user"


@pytest.mark.parametrize("role", ["developer", "user", "viewer"])
def test_admin_cannot_change_their_own_role(auth_gw, second_admin, migrated,
                                            role):
    r = patch(auth_gw, second_admin.access, second_admin.id, {"role": role})
    assert_error(r, 422, "invalid_value", "role")
    assert current_role(migrated, second_admin.id) == "admin"
    # the refusal revoked nothing
    assert auth_gw.get("/auth/me",
                       token=second_admin.access).status_code == 200


def test_admin_may_demote_another_admin(auth_gw, admin, second_admin):
    r = patch(auth_gw, admin.access, second_admin.id, {"role": "developer"})
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "developer"


# --- exploit (b): a demoted admin's token mints an admin API key -------------

def test_demoted_admins_old_token_cannot_mint_an_admin_key(auth_gw, admin,
                                                           second_admin,
                                                           migrated):
    stale = second_admin.access
    set_role(auth_gw, admin, second_admin, "user")
    r = auth_gw.post("/api/v1/api-keys", {"name": "x", "role": "admin"},
                     token=stale)
    assert_gateway_401(r, "token_revoked")
    assert migrated.sql("SELECT count(*) FROM auth_service.api_keys"
                        " WHERE user_id = %s", (second_admin.id,),
                        dbname="omni")[0][0] == 0


def test_key_role_is_checked_against_the_creators_current_role(
        worker, auth_gw, admin, second_admin, migrated):
    """Straight to the worker with the stale X-User-Role: admin."""
    set_role(auth_gw, admin, second_admin, "user")
    for role in ("admin", "developer"):
        r = direct_json(worker, "POST", "/api/v1/api-keys",
                        {"name": "x", "role": role},
                        identity(second_admin, "admin"))
        assert r.status == 403, r
        assert r.json()["error"] == "insufficient_role", r
        assert r.json()["message"].startswith("role"), r
    # without a role the key gets the current one, not the header's
    r = direct_json(worker, "POST", "/api/v1/api-keys", {"name": "d"},
                    identity(second_admin, "admin"))
    assert r.status == 201, r
    assert r.json()["role"] == "user"
    assert {row[0] for row in migrated.sql(
        "SELECT role FROM auth_service.api_keys WHERE user_id = %s",
        (second_admin.id,), dbname="omni")} == {"user"}


def test_deactivated_creator_gets_forbidden_not_insufficient_role(
        worker, auth_gw, admin):
    user = new_user(auth_gw)
    assert patch(auth_gw, admin.access, user.id,
                 {"is_active": False}).status_code == 200
    r = direct_json(worker, "POST", "/api/v1/api-keys", {"name": "x"},
                    identity(user, "user"))
    assert r.status == 403, r
    assert r.json()["error"] == "forbidden", r
    assert "deactivated" in r.json()["message"], r


# --- demotion caps keys; changes apply on the very next request --------------

def test_admin_key_of_a_demoted_admin_is_capped(auth_gw, admin, second_admin,
                                                redis_server):
    key = create_key(auth_gw, token=second_admin.access, role="admin")
    assert auth_gw.get("/api/v1/users?limit=1",
                       apikey=key["key"]).status_code == 200
    set_role(auth_gw, admin, second_admin, "user")
    # the very next request with the key is a user's
    assert_error(auth_gw.get("/api/v1/users?limit=1", apikey=key["key"]),
                 403, "insufficient_role")
    assert redis_server.client().hget(
        "omni:apikey:" + hashlib.sha256(key["key"].encode()).hexdigest(),
        "role") == b"user"
    # nor can the capped key mint a higher one
    r = auth_gw.post("/api/v1/api-keys", {"name": "up", "role": "admin"},
                     apikey=key["key"])
    assert_error(r, 403, "insufficient_role", "role")
    assert auth_gw.get("/api/v1/api-keys",
                       apikey=key["key"]).status_code == 200


def test_demotion_takes_effect_on_the_very_next_request(auth_gw, admin):
    user = new_user(auth_gw, admin, "developer")
    other_session = User(user.email, user.password, id=user.id)
    login(auth_gw, other_session)
    set_role(auth_gw, admin, user, "viewer")
    for token in (user.access, other_session.access):
        assert_gateway_401(auth_gw.get("/auth/me", token=token),
                           "token_revoked")
    # the refresh families stay: a refresh brings the new role
    refresh(auth_gw, user)
    assert claims(user.access)["role"] == "viewer"
    assert auth_gw.get("/auth/me", token=user.access).json()["role"] \
        == "viewer"


def test_promotion_revokes_the_old_token_too(auth_gw, admin):
    """Any role change: a token must never say a role the user no longer
    has, up or down."""
    user = new_user(auth_gw)
    set_role(auth_gw, admin, user, "developer")
    assert_gateway_401(auth_gw.get("/auth/me", token=user.access),
                       "token_revoked")
    refresh(auth_gw, user)
    assert claims(user.access)["role"] == "developer"


def test_patch_with_the_same_role_keeps_the_session(auth_gw, admin):
    user = new_user(auth_gw, admin, "developer")
    r = patch(auth_gw, admin.access, user.id, {"role": "developer"})
    assert r.status_code == 200, r.text
    assert auth_gw.get("/auth/me", token=user.access).status_code == 200


def test_deactivation_takes_effect_on_the_very_next_request(auth_gw, admin):
    user = new_user(auth_gw)
    key = create_key(auth_gw, token=user.access)["key"]
    assert patch(auth_gw, admin.access, user.id,
                 {"is_active": False}).status_code == 200
    assert_gateway_401(auth_gw.get("/auth/me", token=user.access),
                       "token_revoked")
    assert_error(auth_gw.get("/api/v1/api-keys", apikey=key), 401,
                 "invalid_token")


def test_role_change_records_the_revoked_tokens_in_postgres(auth_gw, admin,
                                                            migrated):
    user = new_user(auth_gw)
    jti, exp = claims(user.access)["jti"], claims(user.access)["exp"]
    set_role(auth_gw, admin, user, "viewer")
    rows = migrated.sql("SELECT extract(epoch FROM expires_at)::bigint"
                        " FROM auth_service.revoked_tokens WHERE jti = %s",
                        (jti,), dbname="omni")
    assert rows == [(exp,)]


# --- migration 006 goes down to exactly 004's functions ----------------------

REPLACED = ("auth_service.update_user(uuid,uuid,text,boolean)",
            "auth_service.rotate_refresh(text,text,text,bigint,bigint)",
            "auth_service.revoke_family(uuid)")


def _sql_up_to(version, into):
    into.mkdir()
    for path in Path(stack.SQL_DIR).iterdir():
        if path.name[:3].isdigit() and int(path.name[:3]) <= version:
            shutil.copy(path, into / path.name)
    return into


def _definitions(pg, db):
    return [pg.sql("SELECT pg_get_functiondef(%s::regprocedure)", (f,),
                   dbname=db)[0][0] for f in REPLACED]


def test_migration_006_down_restores_the_004_functions(migrated, fresh_db,
                                                       tmp_path):
    before = fresh_db()
    res = stack.migrate(["up"], migrated.url(before),
                        sql_dir=_sql_up_to(5, tmp_path / "to5"))
    assert res.returncode == 0, res.stderr
    after = fresh_db()
    sql6 = _sql_up_to(6, tmp_path / "to6")
    res = stack.migrate(["up"], migrated.url(after), sql_dir=sql6)
    assert res.returncode == 0, res.stderr
    replaced = _definitions(migrated, after)
    assert all(a != b for a, b in zip(replaced,
                                      _definitions(migrated, before)))
    res = stack.migrate(["down", "1"], migrated.url(after), sql_dir=sql6)
    assert res.returncode == 0, res.stderr
    assert _definitions(migrated, after) == _definitions(migrated, before)
    assert migrated.sql("SELECT to_regclass('auth_service.revoked_tokens')",
                        dbname=after) == [(None,)]


# --- a demotion racing a key's creation --------------------------------------

def test_key_lowered_between_insert_and_mirror_is_taken_back(migrated,
                                                             admin,
                                                             tmp_path):
    """The demotion commits after the key's INSERT but its Redis step runs
    before the key's HSET (found nothing to lower): the creation sees the
    change when it checks again and takes the key back (409), so no
    mirror entry keeps the old role. Redis writes are paused (CLIENT PAUSE
    WRITE, under the worker's 1 s Redis deadline) to hold the HSET."""
    key = openssl_key(tmp_path / "jwt.pem", *RSA_ARGS)
    redis = stack.Redis().start()
    w = report = None
    try:
        w = stack.Worker(migrated, redis, workers=1,
                         env={"OMNI_JWT_PRIVATE_KEY": key}).start()
        email = unique_email("race")
        r = direct_json(w, "POST", "/auth/register",
                        {"email": email, "password": PASSWORD})
        assert r.status == 201, r
        uid = r.json()["id"]
        migrated.sql("UPDATE auth_service.users SET role = 'developer'"
                     " WHERE id = %s", (uid,), dbname="omni")
        result = {}

        def create():
            result["r"] = direct_json(
                w, "POST", "/api/v1/api-keys",
                {"name": "race", "role": "developer"},
                {"X-User-Id": uid, "X-User-Username": email,
                 "X-User-Role": "developer"})
        redis.client().execute_command("CLIENT", "PAUSE", "800", "WRITE")
        t = threading.Thread(target=create)
        t.start()
        time.sleep(0.3)
        assert migrated.sql("SELECT outcome FROM auth_service.update_user("
                            "%s, %s, 'user', NULL)", (admin.id, uid),
                            dbname="omni") == [("ok",)]
        t.join(10)
        r = result["r"]
        assert r.status == 409, r
        assert r.json()["error"] == "conflict", r
        assert migrated.sql("SELECT count(*) FROM auth_service.api_keys"
                            " WHERE user_id = %s", (uid,),
                            dbname="omni") == [(0,)]
        assert redis.client().keys("omni:apikey:[0-9a-f]*") == []
    finally:
        if w is not None:
            w.stop()
            report = w.sanitizer_report()
            w.destroy()
        redis.destroy()
    assert report is None, report


def test_login_racing_a_role_change_issues_no_stale_token(worker_factory,
                                                          migrated, admin,
                                                          tmp_path):
    """The role is read before the password check (slow on purpose here:
    2,000,000 rounds) and the change commits during it: the token signed
    with the old role is not issued (409), so none escapes the
    revocation."""
    key = openssl_key(tmp_path / "jwt.pem", *RSA_ARGS)
    w = worker_factory(workers=1, env={"OMNI_JWT_PRIVATE_KEY": key,
                                       "OMNI_PASSWORD_ITERATIONS":
                                       "2000000"})
    email = unique_email("slow")
    r = direct_json(w, "POST", "/auth/register",
                    {"email": email, "password": PASSWORD}, timeout=60)
    assert r.status == 201, r
    uid = r.json()["id"]
    result = {}

    def sign_in():
        result["r"] = direct_json(w, "POST", "/auth/login",
                                  {"email": email, "password": PASSWORD},
                                  timeout=60)
    t = threading.Thread(target=sign_in)
    start = time.monotonic()
    t.start()
    time.sleep(0.2)
    assert migrated.sql("SELECT outcome FROM auth_service.update_user("
                        "%s, %s, 'viewer', NULL)", (admin.id, uid),
                        dbname="omni") == [("ok",)]
    t.join(60)
    assert time.monotonic() - start > 0.3, "the check was too fast to race"
    r = result["r"]
    assert r.status == 409, r
    assert r.json()["error"] == "conflict", r
    r = direct_json(w, "POST", "/auth/login",
                    {"email": email, "password": PASSWORD}, timeout=60)
    assert r.status == 200, r
    assert claims(r.json()["access_token"])["role"] == "viewer"
