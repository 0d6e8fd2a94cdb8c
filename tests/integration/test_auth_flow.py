"""The auth service end to end through the gateway (issue 5): register,
log in, call a protected endpoint as that user, refresh, theft detection on
a replayed refresh token, logout, and the per-IP limit on login."""

import time
import uuid

import pytest

from auth_support import (  # noqa: F401
    PASSWORD, REFRESH_RE, Client, User, assert_error,
    assert_gateway_401, assert_user, auth_gw, auth_nginx, claims, login,
    refresh, register, unique_email, unique_username)


def test_register_answers_201_with_the_new_user(auth_gw):
    email = unique_email()
    r = auth_gw.post("/auth/register", {"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    assert_user(doc)
    assert doc["email"] == email
    assert doc["username"] is None
    assert doc["role"] == "user"
    assert doc["is_active"] is True
    assert doc["last_login_at"] is None


def test_register_keeps_the_username(auth_gw):
    name = unique_username()
    r = auth_gw.post("/auth/register", {"email": unique_email(),
                                        "password": PASSWORD,
                                        "username": name})
    assert r.status_code == 201, r.text
    assert r.json()["username"] == name


def test_register_ignores_a_role_in_the_body(auth_gw):
    r = auth_gw.post("/auth/register", {"email": unique_email(),
                                        "password": PASSWORD,
                                        "role": "admin"})
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "user"


def test_register_ignores_unknown_fields(auth_gw):
    r = auth_gw.post("/auth/register", {"email": unique_email(),
                                        "password": PASSWORD,
                                        "favourite_colour": "blue",
                                        "nested": {"a": [1, 2]}})
    assert r.status_code == 201, r.text


def test_login_answers_a_bearer_pair(auth_gw):
    user = register(auth_gw)
    r = auth_gw.post("/auth/login", {"email": user.email,
                                     "password": user.password})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert set(doc) == {"access_token", "refresh_token", "token_type",
                        "expires_in"}
    assert doc["token_type"] == "Bearer"
    assert doc["expires_in"] == 900
    assert doc["access_token"].count(".") == 2
    assert REFRESH_RE.match(doc["refresh_token"]), doc["refresh_token"]
    c = claims(doc["access_token"])
    assert c["sub"] == user.id
    assert c["role"] == "user"
    assert c["preferred_username"] == user.email


def test_login_by_username(auth_gw):
    user = register(auth_gw, username=unique_username())
    doc = login(auth_gw, user, by="username")
    c = claims(doc["access_token"])
    assert c["sub"] == user.id
    assert c["preferred_username"] == user.username


def test_protected_call_sees_the_logged_in_user(auth_gw):
    """GET /auth/me is answered by the worker from the X-User-Id the
    gateway set from the verified token."""
    user = register(auth_gw, username=unique_username())
    login(auth_gw, user)
    r = auth_gw.get("/auth/me", token=user.access)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert_user(doc, user)
    assert doc["role"] == "user"
    assert doc["is_active"] is True


def test_forged_identity_headers_do_not_change_who_me_is(auth_gw):
    alice, bob = register(auth_gw), register(auth_gw)
    login(auth_gw, alice)
    r = auth_gw.get("/auth/me", token=alice.access,
                    headers={"X-User-Id": bob.id, "X-User-Role": "admin"})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == alice.id
    assert r.json()["role"] == "user"


def test_me_without_credentials_is_401_at_the_gateway(auth_gw):
    r = auth_gw.get("/auth/me")
    assert_error(r, 401, "missing_credentials")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error=" not in r.headers["WWW-Authenticate"]


def test_me_for_a_token_whose_subject_is_no_user_is_404(auth_gw, auth_nginx):
    token = auth_nginx.token(sub=str(uuid.uuid4()), role="user")
    assert_error(auth_gw.get("/auth/me", token=token), 404, "not_found")


def test_me_with_an_api_key_is_refused_at_the_gateway(auth_gw):
    """/auth/ locations take bearer tokens only."""
    user = register(auth_gw)
    login(auth_gw, user)
    r = auth_gw.post("/api/v1/api-keys", {"name": "k"}, token=user.access)
    assert r.status_code == 201, r.text
    r = auth_gw.get("/auth/me", apikey=r.json()["key"])
    assert r.status_code == 401, r.text


def test_refresh_rotates_the_pair(auth_gw):
    user = register(auth_gw)
    first = login(auth_gw, user)
    second = refresh(auth_gw, user)
    assert set(second) == {"access_token", "refresh_token", "token_type",
                           "expires_in"}
    assert second["token_type"] == "Bearer"
    assert second["expires_in"] == 900
    assert REFRESH_RE.match(second["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    c1, c2 = claims(first["access_token"]), claims(second["access_token"])
    assert c2["sub"] == c1["sub"] == user.id
    assert c2["jti"] != c1["jti"]
    r = auth_gw.get("/auth/me", token=second["access_token"])
    assert r.status_code == 200, r.text
    assert r.json()["id"] == user.id


def test_refresh_token_chain_keeps_working(auth_gw):
    user = register(auth_gw)
    login(auth_gw, user)
    seen = {user.refresh}
    for _ in range(3):
        refresh(auth_gw, user)
        assert user.refresh not in seen
        seen.add(user.refresh)
    assert auth_gw.get("/auth/me", token=user.access).status_code == 200


def test_replayed_refresh_token_revokes_the_whole_family(auth_gw):
    user = register(auth_gw)
    first = login(auth_gw, user)
    spent = user.refresh
    second = refresh(auth_gw, user)
    # the thief (or the victim) presents the spent token again
    r = auth_gw.post("/auth/refresh", {"refresh_token": spent})
    assert_error(r, 401, "token_reused")
    # every refresh token of the family is dead, the newest too
    r = auth_gw.post("/auth/refresh",
                     {"refresh_token": second["refresh_token"]})
    assert_error(r, 401, "token_revoked")
    # and so is every access token the family was issued
    for token in (second["access_token"], first["access_token"]):
        assert_gateway_401(auth_gw.get("/auth/me", token=token),
                           "token_revoked")


def test_family_revocation_writes_each_live_jti_to_redis(auth_gw,
                                                         redis_server):
    user = register(auth_gw)
    first = login(auth_gw, user)
    spent = user.refresh
    second = refresh(auth_gw, user)
    auth_gw.post("/auth/refresh", {"refresh_token": spent})
    r = redis_server.client()
    for token in (first["access_token"], second["access_token"]):
        ttl = r.ttl("omni:revoked:" + claims(token)["jti"])
        assert 0 < ttl <= 900 + 120, ttl


def test_replay_does_not_touch_another_login_of_the_same_user(auth_gw):
    user = register(auth_gw)
    other = User(user.email, user.password, id=user.id)
    login(auth_gw, other)
    login(auth_gw, user)
    spent = user.refresh
    refresh(auth_gw, user)
    assert auth_gw.post("/auth/refresh",
                        {"refresh_token": spent}).status_code == 401
    assert auth_gw.get("/auth/me", token=other.access).status_code == 200
    refresh(auth_gw, other)


def test_refresh_with_an_unknown_token_is_401_invalid_token(auth_gw):
    r = auth_gw.post("/auth/refresh",
                     {"refresh_token": "omr_" + "A" * 43})
    assert_error(r, 401, "invalid_token")


@pytest.mark.parametrize("token", ["", "garbage", "omr_short",
                                   "omk_" + "A" * 43, "omr_" + "!" * 43,
                                   "omr_" + "A" * 4000])
def test_refresh_with_a_malformed_token_is_401_invalid_token(auth_gw, token):
    r = auth_gw.post("/auth/refresh", {"refresh_token": token})
    assert_error(r, 401, "invalid_token")


def test_logout_answers_204_and_the_gateway_then_refuses_the_token(auth_gw):
    user = register(auth_gw)
    login(auth_gw, user)
    assert auth_gw.get("/auth/me", token=user.access).status_code == 200
    r = auth_gw.post("/auth/logout", token=user.access)
    assert r.status_code == 204, r.text
    assert r.content == b""
    r = auth_gw.get("/auth/me", token=user.access)
    assert_gateway_401(r, "token_revoked")
    assert 'realm="omni"' in r.headers["WWW-Authenticate"]
    # on /api/ as well, not only where it logged out
    assert_gateway_401(auth_gw.get("/api/v1/api-keys", token=user.access),
                       "token_revoked")


def test_logout_revokes_the_refresh_family(auth_gw):
    user = register(auth_gw)
    login(auth_gw, user)
    refresh(auth_gw, user)
    r = auth_gw.post("/auth/logout", token=user.access)
    assert r.status_code == 204, r.text
    r = auth_gw.post("/auth/refresh", {"refresh_token": user.refresh})
    assert_error(r, 401, "token_revoked")


def test_logout_writes_the_jti_with_the_tokens_remaining_lifetime(
        auth_gw, redis_server):
    user = register(auth_gw)
    login(auth_gw, user)
    c = claims(user.access)
    assert auth_gw.post("/auth/logout",
                        token=user.access).status_code == 204
    ttl = redis_server.client().ttl("omni:revoked:" + c["jti"])
    remaining = c["exp"] - time.time()
    assert remaining - 5 <= ttl <= remaining + 120, (ttl, remaining)


def test_logout_leaves_the_users_other_sessions_alone(auth_gw):
    user = register(auth_gw)
    other = User(user.email, user.password, id=user.id)
    login(auth_gw, other)
    login(auth_gw, user)
    assert auth_gw.post("/auth/logout",
                        token=user.access).status_code == 204
    assert auth_gw.get("/auth/me", token=other.access).status_code == 200
    refresh(auth_gw, other)
    assert auth_gw.get("/auth/me", token=other.access).status_code == 200


def test_logout_without_a_token_is_401_at_the_gateway(auth_gw):
    assert_error(auth_gw.post("/auth/logout"), 401, "missing_credentials")


def test_login_again_after_logout_works(auth_gw):
    user = register(auth_gw)
    login(auth_gw, user)
    assert auth_gw.post("/auth/logout",
                        token=user.access).status_code == 204
    login(auth_gw, user)
    assert auth_gw.get("/auth/me", token=user.access).status_code == 200


def test_full_flow(auth_gw):
    """The issue's acceptance path in one go."""
    email, name = unique_email(), unique_username()
    r = auth_gw.post("/auth/register", {"email": email, "password": PASSWORD,
                                        "username": name})
    assert r.status_code == 201, r.text
    user = User(email, PASSWORD, name, r.json()["id"])
    login(auth_gw, user)
    me = auth_gw.get("/auth/me", token=user.access)
    assert me.status_code == 200 and me.json()["id"] == user.id
    spent = user.refresh
    refresh(auth_gw, user)
    assert auth_gw.get("/auth/me", token=user.access).status_code == 200
    assert_error(auth_gw.post("/auth/refresh", {"refresh_token": spent}),
                 401, "token_reused")
    assert_gateway_401(auth_gw.get("/auth/me", token=user.access),
                       "token_revoked")
    login(auth_gw, user)
    assert auth_gw.post("/auth/logout",
                        token=user.access).status_code == 204
    assert_gateway_401(auth_gw.get("/auth/me", token=user.access),
                       "token_revoked")


# --- the shared gateway's per-IP limit (AUTH_RATE 10r/m, burst 5) ------------

def test_login_is_limited_per_client_address_at_the_gateway(gateway):
    """From one address, 6 logins pass at once (burst 5 + 1), the next is
    429; another address is not affected, and register shares the limit.
    Addresses of this test's own, so no other test's budget is spent."""
    limited = Client(gateway, source="127.0.0.9")
    other = Client(gateway, source="127.0.0.10")
    body = {"email": unique_email("nobody"), "password": "wrong password"}
    try:
        statuses = [limited.post("/auth/login", body).status_code
                    for _ in range(6)]
        assert statuses == [401] * 6
        r = limited.post("/auth/login", body)
        assert_error(r, 429, "rate_limited")
        assert int(r.headers["Retry-After"]) > 0
        assert "RateLimit-Policy" in r.headers
        assert_error(limited.post("/auth/register",
                                  {"email": unique_email(),
                                   "password": PASSWORD}),
                     429, "rate_limited")
        assert other.post("/auth/login", body).status_code == 401
    finally:
        limited.close()
        other.close()
