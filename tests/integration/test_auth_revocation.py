"""Revocation outlives Redis (issue 12, SPEC 10): every revoked access token
(logout, refresh reuse, deactivation, role change) is kept in Postgres with
its expiry, and when Redis loses its data the worker's mirror sync writes
the live ones back as omni:revoked:<jti> along with the API keys, within
the sync interval (2 s). And logout takes the token's exp only as a whole
number of seconds."""

import shutil
import time
import uuid

import pytest

import stack
from auth_support import (  # noqa: F401
    PASSWORD, Client, User, admin, assert_error,
    assert_gateway_401, auth_gw, auth_nginx, claims, cli_create_user,
    create_key, direct_json, login, new_user, refresh,
    register, set_role, unique_email)

SYNC_S = 2.0            # OMNI_APIKEY_SYNC_MS
RESTORED_WITHIN = SYNC_S + 2.0


@pytest.fixture
def own(migrated):
    """A Redis, a worker (1 process) and a gateway of this test's own, so
    it may flush Redis without touching the session's; and a client. The
    worker signs with the gateway's dev key."""
    workdir = stack.make_tmpdir("omni-test-revocation-")
    redis = stack.Redis().start()
    worker = nginx = client = None
    report = None
    try:
        nginx = stack.Nginx(worker_socket=workdir / "worker.sock",
                            redis_addr=redis.addr, api_rate="1000r/s",
                            extra={"AUTH_RATE": "6000r/m"}).start()
        worker = stack.Worker(migrated, redis, workdir=workdir, workers=1,
                              env={"OMNI_JWT_PRIVATE_KEY":
                                   nginx.keys_dir / "jwt-private.pem"})
        worker.start()
        client = Client(nginx)
        yield redis, worker, client
    finally:
        if client is not None:
            client.close()
        if nginx is not None:
            nginx.destroy()
        if worker is not None:
            worker.stop()
            report = worker.sanitizer_report()
            worker.destroy()
        redis.destroy()
        shutil.rmtree(workdir, ignore_errors=True)
    assert report is None, report


def me_status(client, token):
    r = client.get("/auth/me", token=token)
    if r.status_code == 401:
        assert_gateway_401(r, "token_revoked")
    return r.status_code


def flush_and_wait_refused(redis, client, tokens):
    """FLUSHALL, then the seconds until every token is refused (401
    token_revoked) again through the gateway."""
    redis.client().flushall()
    start = time.monotonic()
    # right after the flush Redis knows nothing: the gap this closes
    stack.wait_until(lambda: all(me_status(client, t) == 401
                                 for t in tokens),
                     RESTORED_WITHIN + 5, "the revocations to come back",
                     interval=0.05)
    took = time.monotonic() - start
    print("revocations back %.2f s after FLUSHALL" % took)
    return took


def test_logged_out_token_is_refused_again_after_flushall(own):
    redis, worker, client = own
    user = register(client)
    login(client, user)
    assert client.post("/auth/logout", token=user.access).status_code == 204
    assert me_status(client, user.access) == 401
    took = flush_and_wait_refused(redis, client, [user.access])
    assert took < RESTORED_WITHIN, took
    ttl = redis.client().ttl("omni:revoked:" + claims(user.access)["jti"])
    remaining = claims(user.access)["exp"] - time.time()
    assert remaining <= ttl <= remaining + 65, (ttl, remaining)


def test_reused_refresh_familys_tokens_are_refused_again_after_flushall(
        own):
    redis, worker, client = own
    user = register(client)
    login(client, user)
    first_access, first_refresh = user.access, user.refresh
    refresh(client, user)
    r = client.post("/auth/refresh", {"refresh_token": first_refresh})
    assert_error(r, 401, "token_reused")
    took = flush_and_wait_refused(redis, client, [first_access, user.access])
    assert took < RESTORED_WITHIN, took


def test_deactivated_and_demoted_users_stay_locked_out_after_flushall(
        own, migrated, tmp_path):
    redis, worker, client = own
    email = unique_email("admin")
    code, out, err = cli_create_user(migrated, tmp_path, email, PASSWORD,
                                     "admin")
    assert code == 0, (out, err)
    boss = User(email, PASSWORD, id=out.strip(), role="admin")
    login(client, boss)
    gone, demoted = new_user(client), new_user(client, boss, "developer")
    key = create_key(client, token=gone.access)["key"]
    r = client.request("PATCH", "/api/v1/users/" + gone.id,
                       token=boss.access, json={"is_active": False})
    assert r.status_code == 200, r.text
    set_role(client, boss, demoted, "viewer")
    took = flush_and_wait_refused(redis, client, [gone.access,
                                                  demoted.access])
    assert took < RESTORED_WITHIN, took
    # the admin's own token came through untouched, the key stays dead
    assert me_status(client, boss.access) == 200
    assert client.get("/api/v1/api-keys", apikey=key).status_code == 401


def test_live_key_and_revoked_token_both_come_back(own):
    redis, worker, client = own
    user = register(client)
    login(client, user)
    key = create_key(client, token=user.access)["key"]
    live = User(user.email, user.password, id=user.id)
    login(client, live)
    assert client.post("/auth/logout", token=user.access).status_code == 204
    redis.client().flushall()
    start = time.monotonic()
    stack.wait_until(
        lambda: (client.get("/api/v1/api-keys", apikey=key).status_code
                 == 200 and me_status(client, user.access) == 401),
        RESTORED_WITHIN + 5, "the key and the revocation to come back",
        interval=0.05)
    took = time.monotonic() - start
    print("key and revocation back %.2f s after FLUSHALL" % took)
    assert took < RESTORED_WITHIN, took
    assert me_status(client, live.access) == 200
    assert redis.client().exists("omni:apikey:synced")


def test_expired_revocations_are_not_written_back(own, migrated):
    redis, worker, client = own
    jti = "expired-" + uuid.uuid4().hex
    migrated.sql("INSERT INTO auth_service.revoked_tokens (jti, expires_at)"
                 " VALUES (%s, now() - interval '10 minutes')", (jti,),
                 dbname="omni")
    user = register(client)
    login(client, user)
    assert client.post("/auth/logout", token=user.access).status_code == 204
    flush_and_wait_refused(redis, client, [user.access])
    assert not redis.client().exists("omni:revoked:" + jti)


# --- revoked_tokens ----------------------------------------------------------

def revoked_row(pg, jti):
    return pg.sql("SELECT extract(epoch FROM expires_at)::bigint"
                  " FROM auth_service.revoked_tokens WHERE jti = %s",
                  (jti,), dbname="omni")


def test_logout_records_the_jti_with_the_tokens_exp(auth_gw, migrated):
    user = register(auth_gw)
    login(auth_gw, user)
    c = claims(user.access)
    assert auth_gw.post("/auth/logout", token=user.access).status_code == 204
    assert revoked_row(migrated, c["jti"]) == [(c["exp"],)]


def test_logout_of_a_token_of_no_user_is_recorded_too(auth_gw, auth_nginx,
                                                      migrated):
    token = auth_nginx.token(sub="svc-" + uuid.uuid4().hex, role="user")
    c = claims(token)
    assert auth_gw.post("/auth/logout", token=token).status_code == 204
    assert revoked_row(migrated, c["jti"]) == [(c["exp"],)]
    assert_gateway_401(auth_gw.get("/auth/me", token=token), "token_revoked")


def test_revocations_long_expired_are_pruned(auth_gw, migrated):
    old = "old-" + uuid.uuid4().hex
    migrated.sql("INSERT INTO auth_service.revoked_tokens (jti, expires_at)"
                 " VALUES (%s, now() - interval '2 hours')", (old,),
                 dbname="omni")
    user = register(auth_gw)
    login(auth_gw, user)
    assert auth_gw.post("/auth/logout", token=user.access).status_code == 204
    assert revoked_row(migrated, old) == []


# --- logout reads exp as a whole number of seconds ---------------------------

@pytest.mark.parametrize("exp", [1.9e9, 1900000000.5])
def test_logout_of_a_token_with_a_fractional_exp_is_400_naming_exp(
        auth_gw, auth_nginx, redis_server, exp):
    """Through the gateway: the claim reaches the worker as written
    ("1.9e9"), which used to be read as 1 and revoke nothing while
    answering 204."""
    token = auth_nginx.token(sub=str(uuid.uuid4()), role="user", exp=exp)
    r = auth_gw.post("/auth/logout", token=token)
    assert_error(r, 400, "invalid_request", "exp")
    assert not redis_server.client().exists(
        "omni:revoked:" + claims(token)["jti"])


@pytest.mark.parametrize("exp", ["1.9e9", "1e3", "-5", "+1900000000",
                                 "1900000000x", "0x70000000",
                                 "19000000000000000000"])
def test_logout_refuses_an_exp_that_is_not_a_plain_integer(worker, exp):
    """Straight to the worker, as the gateway would call it."""
    jti = "x-" + uuid.uuid4().hex
    r = direct_json(worker, "POST", "/auth/logout", headers={
        "X-User-Id": str(uuid.uuid4()), "X-User-Role": "user",
        "X-Token-Id": jti, "X-Token-Expires": exp})
    assert r.status == 400, r
    assert r.json()["error"] == "invalid_request", r
    assert r.json()["message"].startswith("exp"), r


def test_logout_takes_a_plain_integer_exp(worker, redis_server, migrated):
    jti = "x-" + uuid.uuid4().hex
    exp = int(time.time()) + 600
    r = direct_json(worker, "POST", "/auth/logout", headers={
        "X-User-Id": str(uuid.uuid4()), "X-User-Role": "user",
        "X-Token-Id": jti, "X-Token-Expires": str(exp)})
    assert r.status == 204, r
    ttl = redis_server.client().ttl("omni:revoked:" + jti)
    assert 600 - 5 <= ttl <= 600 + 65, ttl
    assert revoked_row(migrated, jti) == [(exp,)]
