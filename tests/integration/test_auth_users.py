"""User administration (issue 5): `omni-worker user create`, admin-only
GET/PATCH /api/v1/users at the gateway and in the worker, role changes
from the next token (the old one revoked), and deactivation revoking
tokens and API keys. The privilege exploits of issue 12 are in
test_auth_privilege.py."""

import hashlib
import uuid

import pytest

import stack
from auth_support import (  # noqa: F401
    PASSWORD, UUID_RE, User, admin, assert_error, assert_gateway_401,
    assert_user, auth_gw, auth_nginx, claims, cli_create_user, create_key,
    direct_json, login, new_user, refresh, register, set_role, unique_email,
    unique_username)

ROLES = ("admin", "developer", "user", "viewer")


def patch(client, admin_token, user_id, body):
    return client.request("PATCH", "/api/v1/users/" + user_id,
                          token=admin_token, json=body)


def all_users(client, token, limit=500):
    """Every user, page by page."""
    items, cursor = [], None
    while True:
        path = "/api/v1/users?limit=%d" % limit
        if cursor:
            path += "&cursor=" + cursor
        r = client.get(path, token=token)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert set(doc) == {"items", "next_cursor"}, doc
        items += doc["items"]
        cursor = doc["next_cursor"]
        if cursor is None:
            return items


# --- the CLI -----------------------------------------------------------------

def test_cli_creates_a_user_who_can_log_in(auth_gw, migrated, tmp_path):
    email, name = unique_email("cli"), unique_username()
    code, out, err = cli_create_user(migrated, tmp_path, email, PASSWORD,
                                     "developer", username=name)
    assert code == 0, (out, err)
    uid = out.strip()
    assert UUID_RE.match(uid), out
    user = User(email, PASSWORD, name, uid, "developer")
    login(auth_gw, user)
    assert claims(user.access)["role"] == "developer"
    r = auth_gw.get("/auth/me", token=user.access)
    assert r.status_code == 200, r.text
    assert_user(r.json(), user)
    assert r.json()["role"] == "developer"


def test_cli_reads_only_the_first_line_of_the_password_file(auth_gw, migrated,
                                                            tmp_path):
    email = unique_email("cli")
    pwfile = tmp_path / "pw"
    pwfile.write_text(PASSWORD + "\nsecond line\n")
    code, out, err = stack.run_worker(
        {"OMNI_DATABASE_URL": migrated.url(), "OMNI_SQL_DIR": stack.SQL_DIR},
        args=["user", "create", "--email", email, "--password-file",
              str(pwfile), "--role", "user"], timeout=60)
    assert code == 0, (out, err)
    login(auth_gw, User(email, PASSWORD))


def test_cli_refuses_a_duplicate_email(migrated, tmp_path):
    email = unique_email("cli")
    assert cli_create_user(migrated, tmp_path, email, PASSWORD,
                           "user")[0] == 0
    code, out, err = cli_create_user(migrated, tmp_path, email.upper(),
                                     PASSWORD, "user")
    assert code == 1, (out, err)
    assert "email" in (out + err).lower()


@pytest.mark.parametrize("password,role", [("short", "user"),
                                           (PASSWORD, "root"),
                                           (PASSWORD, "")])
def test_cli_refuses_a_weak_password_or_bad_role(migrated, tmp_path,
                                                 password, role):
    code, out, err = cli_create_user(migrated, tmp_path, unique_email("cli"),
                                     password, role)
    assert code == 1, (out, err)
    assert (out + err).strip()
    assert not UUID_RE.match(out.strip())


def test_admin_made_by_the_cli_can_list_users(auth_gw, admin):
    me = auth_gw.get("/auth/me", token=admin.access)
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "admin"
    assert any(u["id"] == admin.id for u in all_users(auth_gw, admin.access))


# --- who may administer users ------------------------------------------------

@pytest.mark.parametrize("role", ["user", "developer", "viewer"])
def test_non_admin_gets_403_listing_users(auth_gw, admin, role):
    user = new_user(auth_gw, admin, role)
    r = auth_gw.get("/api/v1/users", token=user.access)
    assert_error(r, 403, "insufficient_role")
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]


@pytest.mark.parametrize("role", ["user", "developer", "viewer"])
def test_non_admin_gets_403_patching_a_user(auth_gw, admin, role):
    user = new_user(auth_gw, admin, role)
    victim = register(auth_gw)
    for body in ({"role": "admin"}, {"is_active": False}):
        assert_error(patch(auth_gw, user.access, victim.id, body), 403,
                     "insufficient_role")
        # not even on themself
        assert_error(patch(auth_gw, user.access, user.id, body), 403,
                     "insufficient_role")
    # nothing changed
    assert auth_gw.get("/auth/me", token=user.access).json()["role"] == role


def test_non_admin_api_key_gets_403_on_user_admin(auth_gw):
    user = new_user(auth_gw)
    key = create_key(auth_gw, token=user.access)["key"]
    assert_error(auth_gw.get("/api/v1/users", apikey=key), 403,
                 "insufficient_role")
    assert_error(auth_gw.request("PATCH", "/api/v1/users/" + user.id,
                                 apikey=key, json={"role": "admin"}),
                 403, "insufficient_role")


def test_admin_api_key_may_list_users(auth_gw, admin):
    key = create_key(auth_gw, token=admin.access, role="admin")["key"]
    r = auth_gw.get("/api/v1/users", apikey=key)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("role", [None, "user", "developer", "viewer"])
def test_worker_rechecks_the_role_itself(worker, role):
    """Straight to the worker, without the gateway's role check."""
    headers = {"X-User-Id": str(uuid.uuid4()), "X-User-Username": "x"}
    if role is not None:
        headers["X-User-Role"] = role
    r = direct_json(worker, "GET", "/api/v1/users", headers=headers)
    assert r.status == 403, r
    assert r.json()["error"]
    r = direct_json(worker, "PATCH", "/api/v1/users/" + str(uuid.uuid4()),
                    {"role": "admin"}, headers)
    assert r.status == 403, r
    assert r.json()["error"]


def test_token_minted_as_admin_is_enough_for_user_admin(auth_gw, auth_nginx):
    """The worker believes X-User-Role (the gateway verified the token): an
    admin token for an id that is no user may list users."""
    token = auth_nginx.token(sub=str(uuid.uuid4()), role="admin")
    r = auth_gw.get("/api/v1/users?limit=1", token=token)
    assert r.status_code == 200, r.text


# --- list --------------------------------------------------------------------

def test_list_shows_users_oldest_first_without_secrets(auth_gw, admin):
    a = register(auth_gw, username=unique_username())
    b = register(auth_gw)
    items = all_users(auth_gw, admin.access)
    ids = [u["id"] for u in items]
    assert ids.index(a.id) < ids.index(b.id)
    for u in items:
        assert_user(u)
    stamps = [u["created_at"] for u in items]
    assert stamps == sorted(stamps)
    found = items[ids.index(a.id)]
    assert found["email"] == a.email and found["username"] == a.username
    assert "password" not in repr(items)
    assert "$pbkdf2" not in repr(items)


def test_list_pages_with_a_cursor(auth_gw, admin):
    for _ in range(3):
        register(auth_gw)
    whole = [u["id"] for u in all_users(auth_gw, admin.access)]
    paged = [u["id"] for u in all_users(auth_gw, admin.access, limit=2)]
    assert paged == whole
    assert len(set(paged)) == len(paged)


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=x",
                                   "cursor=%21%21%21"])
def test_list_with_a_bad_limit_or_cursor_is_400_naming_it(auth_gw, admin,
                                                          query):
    r = auth_gw.get("/api/v1/users?" + query, token=admin.access)
    assert_error(r, 400, "invalid_parameter", query.split("=")[0])


# --- patch -------------------------------------------------------------------

def test_admin_changes_a_role(auth_gw, admin):
    user = register(auth_gw, username=unique_username())
    for role in ROLES:
        r = patch(auth_gw, admin.access, user.id, {"role": role})
        assert r.status_code == 200, r.text
        assert_user(r.json(), user)
        assert r.json()["role"] == role


@pytest.mark.parametrize("body", [{}, {"role": None}, {"is_active": None},
                                  {"role": None, "is_active": None}])
def test_patch_changing_nothing_is_422_and_changes_nothing(auth_gw, admin,
                                                           body):
    """null on an optional field means absent (as the contract has it for
    expires_at), so these are all empty patches."""
    user = register(auth_gw)
    login(auth_gw, user)
    assert_error(patch(auth_gw, admin.access, user.id, body), 422,
                 "invalid_value")
    me = auth_gw.get("/auth/me", token=user.access).json()
    assert me["role"] == "user" and me["is_active"] is True


def test_patching_an_unknown_user_is_404(auth_gw, admin):
    for uid in (str(uuid.uuid4()), "not-a-uuid"):
        assert_error(patch(auth_gw, admin.access, uid, {"role": "user"}),
                     404, "not_found")


@pytest.mark.parametrize("body,status,code,field", [
    ({"role": "root"}, 422, "invalid_value", "role"),
    ({"role": ""}, 422, "invalid_value", "role"),
    ({"role": 5}, 400, "invalid_field", "role"),
    ({"role": ["admin"]}, 400, "invalid_field", "role"),
    ({"is_active": "no"}, 400, "invalid_field", "is_active"),
    ({"is_active": 0}, 400, "invalid_field", "is_active"),
    ({"is_active": "false"}, 400, "invalid_field", "is_active"),
])
def test_patch_with_bad_input_names_the_field(auth_gw, admin, body, status,
                                              code, field):
    user = register(auth_gw)
    assert_error(patch(auth_gw, admin.access, user.id, body), status, code,
                 field)


def test_malformed_patch_body_is_400_invalid_json(auth_gw, admin):
    user = register(auth_gw)
    r = auth_gw.request("PATCH", "/api/v1/users/" + user.id,
                        token=admin.access, data=b'{"role": ',
                        headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")


@pytest.mark.parametrize("body", [{"is_active": False}, {"role": "user"},
                                  {"role": "viewer"}])
def test_admin_cannot_deactivate_or_demote_themself(auth_gw, migrated,
                                                    tmp_path, body):
    email = unique_email("admin")
    code, out, err = cli_create_user(migrated, tmp_path, email, PASSWORD,
                                     "admin")
    assert code == 0, (out, err)
    me = User(email, PASSWORD, id=out.strip(), role="admin")
    login(auth_gw, me)
    r = patch(auth_gw, me.access, me.id, body)
    doc = assert_error(r, 422, "invalid_value")
    named = ("role" if body.get("role") not in (None, "admin")
             else "is_active")
    assert doc["message"].startswith(named + ":"), doc
    r = auth_gw.get("/auth/me", token=me.access)
    assert r.json()["role"] == "admin" and r.json()["is_active"] is True


# --- role changes apply from the next token; the old one is revoked ---------

def test_role_change_applies_from_the_next_token(auth_gw, admin):
    user = new_user(auth_gw)
    old = user.access
    set_role(auth_gw, admin, user, "developer")
    # the token in hand says a role the user no longer has: revoked
    assert claims(old)["role"] == "user"
    assert_gateway_401(auth_gw.get("/auth/me", token=old), "token_revoked")
    # the session is kept: a refresh brings a token with the new role
    refresh(auth_gw, user)
    assert claims(user.access)["role"] == "developer"
    # and the gateway now lets it do what developers do
    r = auth_gw.post("/api/v1/api-keys", {"name": "d", "role": "developer"},
                     token=user.access)
    assert r.status_code == 201, r.text
    login(auth_gw, user)
    assert claims(user.access)["role"] == "developer"


def test_promotion_to_admin_opens_user_admin_from_the_next_token(auth_gw,
                                                                 admin):
    user = new_user(auth_gw)
    assert auth_gw.get("/api/v1/users",
                       token=user.access).status_code == 403
    set_role(auth_gw, admin, user, "admin")
    refresh(auth_gw, user)
    assert auth_gw.get("/api/v1/users?limit=1",
                       token=user.access).status_code == 200


def test_demotion_lowers_the_users_api_keys(auth_gw, admin, redis_server):
    user = new_user(auth_gw, admin, "developer")
    high = create_key(auth_gw, token=user.access, role="developer")
    low = create_key(auth_gw, token=user.access, role="viewer")
    set_role(auth_gw, admin, user, "viewer")
    refresh(auth_gw, user)
    roles = {i["id"]: i["role"] for i in auth_gw.get(
        "/api/v1/api-keys", token=user.access).json()["items"]}
    assert roles == {high["id"]: "viewer", low["id"]: "viewer"}
    mirrored = redis_server.client().hget(
        "omni:apikey:" + hashlib.sha256(high["key"].encode()).hexdigest(),
        "role")
    assert mirrored == b"viewer"
    # the lowered key now acts as a viewer: it cannot make a user key
    r = auth_gw.post("/api/v1/api-keys", {"name": "x", "role": "user"},
                     apikey=high["key"])
    assert_error(r, 403, "insufficient_role")


# --- deactivation ------------------------------------------------------------

def test_deactivated_user_is_locked_out_everywhere(auth_gw, admin,
                                                   redis_server):
    user = new_user(auth_gw)
    first_access, first_refresh = user.access, user.refresh
    login(auth_gw, user)        # a second session
    key = create_key(auth_gw, token=user.access)["key"]
    assert auth_gw.get("/api/v1/api-keys", apikey=key).status_code == 200

    r = patch(auth_gw, admin.access, user.id, {"is_active": False})
    assert r.status_code == 200, r.text
    assert r.json()["is_active"] is False

    # login with the right password
    r = auth_gw.post("/auth/login", {"email": user.email,
                                     "password": user.password})
    assert_error(r, 403, "account_disabled")
    # every access token it holds
    for token in (first_access, user.access):
        assert_gateway_401(auth_gw.get("/auth/me", token=token),
                           "token_revoked")
        assert_gateway_401(auth_gw.get("/api/v1/api-keys", token=token),
                           "token_revoked")
    # its API key, gone from the mirror at once
    assert_error(auth_gw.get("/api/v1/api-keys", apikey=key), 401,
                 "invalid_token")
    assert not redis_server.client().exists(
        "omni:apikey:" + hashlib.sha256(key.encode()).hexdigest())
    # every refresh token
    for token in (first_refresh, user.refresh):
        r = auth_gw.post("/auth/refresh", {"refresh_token": token})
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "token_revoked", r.text


def test_deactivated_user_with_a_wrong_password_gets_invalid_credentials(
        auth_gw, admin):
    """403 account_disabled only with the right password: otherwise the
    answer would tell who has an account."""
    user = new_user(auth_gw)
    assert patch(auth_gw, admin.access, user.id,
                 {"is_active": False}).status_code == 200
    r = auth_gw.post("/auth/login", {"email": user.email,
                                     "password": "not the password"})
    assert_error(r, 401, "invalid_credentials")


def test_reactivated_user_logs_in_but_old_keys_stay_revoked(auth_gw, admin):
    user = new_user(auth_gw)
    key = create_key(auth_gw, token=user.access)["key"]
    old_refresh = user.refresh
    assert patch(auth_gw, admin.access, user.id,
                 {"is_active": False}).status_code == 200
    r = patch(auth_gw, admin.access, user.id, {"is_active": True})
    assert r.status_code == 200, r.text
    assert r.json()["is_active"] is True
    login(auth_gw, user)
    assert auth_gw.get("/auth/me", token=user.access).status_code == 200
    assert auth_gw.get("/api/v1/api-keys", apikey=key).status_code == 401
    assert auth_gw.post("/auth/refresh",
                        {"refresh_token": old_refresh}).status_code == 401


def test_deactivation_shows_in_the_list(auth_gw, admin):
    user = register(auth_gw)
    assert patch(auth_gw, admin.access, user.id,
                 {"is_active": False}).status_code == 200
    found = [u for u in all_users(auth_gw, admin.access)
             if u["id"] == user.id]
    assert found and found[0]["is_active"] is False
