"""API keys (issue 5): created by a user, shown once, used with X-API-Key
at the gateway (which finds them in the worker's Redis mirror), listed and
deleted only by their owner, bounded by the owner's role, expiring, and
back within seconds after Redis loses its data."""

import base64
import datetime
import hashlib
import time
import uuid

import pytest

import stack
from auth_support import (  # noqa: F401
    APIKEY_RE, PASSWORD, RSA_ARGS, TIMESTAMP_RE, UUID_RE, Client, admin,
    assert_error, auth_gw, auth_nginx, create_key, direct_json, new_user,
    openssl_key, wait_for)

KEY_FIELDS = {"id", "name", "key", "prefix", "role", "created_at",
              "expires_at"}
ITEM_FIELDS = {"id", "name", "prefix", "role", "created_at", "expires_at"}


def rfc3339(ts):
    return datetime.datetime.fromtimestamp(
        ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def mirror_key(key):
    return "omni:apikey:" + hashlib.sha256(key.encode()).hexdigest()


def list_keys(client, **auth):
    r = client.get("/api/v1/api-keys", **auth)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def user(auth_gw):
    return new_user(auth_gw)


# --- create ------------------------------------------------------------------

def test_create_answers_201_with_the_key_shown_once(auth_gw, user):
    r = auth_gw.post("/api/v1/api-keys", {"name": "ci"}, token=user.access)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert set(doc) == KEY_FIELDS, doc
    assert UUID_RE.match(doc["id"])
    assert doc["name"] == "ci"
    assert APIKEY_RE.match(doc["key"]), doc["key"]
    assert doc["prefix"] == doc["key"][:12]
    assert doc["role"] == "user"          # the caller's role by default
    assert TIMESTAMP_RE.match(doc["created_at"])
    assert doc["expires_at"] is None
    # the list never shows the key again
    items = list_keys(auth_gw, token=user.access)["items"]
    assert [i["id"] for i in items] == [doc["id"]]
    assert set(items[0]) == ITEM_FIELDS
    assert items[0]["prefix"] == doc["prefix"]
    assert doc["key"] not in repr(items)


def test_keys_are_random(auth_gw, user):
    keys = {create_key(auth_gw, token=user.access)["key"] for _ in range(5)}
    assert len(keys) == 5


def test_key_is_mirrored_to_redis_for_the_gateway(auth_gw, user,
                                                  redis_server):
    doc = create_key(auth_gw, token=user.access, role="viewer")
    h = redis_server.client().hgetall(mirror_key(doc["key"]))
    h = {k.decode(): v.decode() for k, v in h.items()}
    assert h["key_id"] == doc["id"]
    assert h["user_id"] == user.id
    assert h["role"] == "viewer"
    assert h["username"] == user.email    # no username: the email
    assert h["expires_at"] == "0"


def test_the_database_keeps_only_a_hash_of_the_key(auth_gw, user, migrated):
    doc = create_key(auth_gw, token=user.access)
    conn = migrated.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM auth_service.api_keys WHERE id = %s",
                        (doc["id"],))
            row = cur.fetchone()
    finally:
        conn.close()
    assert row is not None
    values = [str(v) for v in row]
    assert not any(doc["key"] in v for v in values), row
    digest = hashlib.sha256(doc["key"].encode())
    forms = {digest.hexdigest(), base64.b64encode(digest.digest()).decode(),
             base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")}
    assert any(v in forms or (isinstance(c, (bytes, memoryview))
                              and bytes(c) == digest.digest())
               for v, c in zip(values, row)), row


def test_key_authenticates_as_its_owner_at_the_gateway(auth_gw, user):
    """The upstream sees the owner's X-User-Id: the key lists the owner's
    keys, the same list the owner's token gets."""
    doc = create_key(auth_gw, token=user.access)
    create_key(auth_gw, token=user.access)
    by_key = list_keys(auth_gw, apikey=doc["key"])
    by_token = list_keys(auth_gw, token=user.access)
    assert len(by_key["items"]) == 2
    assert by_key == by_token


def test_key_made_with_a_key_belongs_to_the_same_owner(auth_gw, user):
    first = create_key(auth_gw, token=user.access)
    second = create_key(auth_gw, apikey=first["key"])
    ids = {i["id"] for i in list_keys(auth_gw, token=user.access)["items"]}
    assert ids == {first["id"], second["id"]}


@pytest.mark.parametrize("role", ["viewer", "user"])
def test_key_may_have_the_callers_role_or_a_lower_one(auth_gw, user, role):
    assert create_key(auth_gw, token=user.access, role=role)["role"] == role


@pytest.mark.parametrize("role", ["developer", "admin"])
def test_key_above_the_callers_role_is_403_insufficient_role(auth_gw, user,
                                                             role):
    r = auth_gw.post("/api/v1/api-keys", {"name": "up", "role": role},
                     token=user.access)
    assert_error(r, 403, "insufficient_role")


def test_viewer_key_cannot_create_an_admin_key(auth_gw, user):
    viewer = create_key(auth_gw, token=user.access, role="viewer")
    for role in ("admin", "developer", "user"):
        r = auth_gw.post("/api/v1/api-keys", {"name": "up", "role": role},
                         apikey=viewer["key"])
        assert_error(r, 403, "insufficient_role")
    # its own role, which is also the default
    assert create_key(auth_gw, apikey=viewer["key"])["role"] == "viewer"


def test_admin_may_create_keys_of_any_role(auth_gw, admin):
    for role in ("admin", "developer", "user", "viewer"):
        assert create_key(auth_gw, token=admin.access,
                          role=role)["role"] == role
    assert create_key(auth_gw, token=admin.access)["role"] == "admin"


def test_create_without_credentials_is_401(auth_gw):
    assert_error(auth_gw.post("/api/v1/api-keys", {"name": "x"}), 401,
                 "missing_credentials")


# --- create: bad input -------------------------------------------------------

def test_create_without_a_name_is_400_naming_it(auth_gw, user):
    assert_error(auth_gw.post("/api/v1/api-keys", {}, token=user.access),
                 400, "missing_field", "name")


@pytest.mark.parametrize("field,value", [
    ("name", 5), ("name", None), ("name", ["k"]),
    ("role", 5), ("role", ["user"]), ("role", True),
    ("expires_at", 1900000000), ("expires_at", ["2099-01-01T00:00:00Z"]),
])
def test_create_with_a_wrong_type_is_400_naming_the_field(auth_gw, user,
                                                          field, value):
    body = {"name": "k", field: value}
    assert_error(auth_gw.post("/api/v1/api-keys", body, token=user.access),
                 400, "invalid_field", field)


@pytest.mark.parametrize("field,value", [
    ("name", ""), ("name", "n" * 101),
    ("role", "root"), ("role", ""), ("role", "Admin"),
    ("expires_at", "tomorrow"), ("expires_at", "2020-01-01T00:00:00Z"),
    ("expires_at", "2099-13-01T00:00:00Z"), ("expires_at", ""),
])
def test_create_with_a_bad_value_is_422_naming_the_field(auth_gw, user,
                                                         field, value):
    body = {"name": "k", field: value}
    assert_error(auth_gw.post("/api/v1/api-keys", body, token=user.access),
                 422, "invalid_value", field)


def test_name_of_100_characters_is_accepted(auth_gw, user):
    assert create_key(auth_gw, token=user.access,
                      name="\u00e9" * 100)["name"] == "\u00e9" * 100


def test_null_expiry_means_never(auth_gw, user):
    assert create_key(auth_gw, token=user.access,
                      expires_at=None)["expires_at"] is None


def test_future_expiry_is_kept(auth_gw, user, redis_server):
    at = int(time.time()) + 86400
    doc = create_key(auth_gw, token=user.access, expires_at=rfc3339(at))
    assert TIMESTAMP_RE.match(doc["expires_at"]), doc
    assert doc["expires_at"].startswith(rfc3339(at)[:19])
    mirrored = redis_server.client().hget(mirror_key(doc["key"]),
                                          "expires_at")
    assert int(mirrored) == at


# --- list --------------------------------------------------------------------

def test_list_is_newest_first_and_pages_with_a_cursor(auth_gw, user):
    made = [create_key(auth_gw, token=user.access, name="k%d" % i)["id"]
            for i in range(5)]
    newest_first = list(reversed(made))
    page = list_keys(auth_gw, token=user.access)
    assert [i["id"] for i in page["items"]] == newest_first
    assert page["next_cursor"] is None
    seen, cursor = [], None
    while True:
        path = "/api/v1/api-keys?limit=2"
        if cursor:
            path += "&cursor=" + cursor
        r = auth_gw.get(path, token=user.access)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert len(doc["items"]) <= 2
        seen += [i["id"] for i in doc["items"]]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
        assert len(seen) < 10, "the cursor never ends"
    assert seen == newest_first


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=-1",
                                   "limit=abc", "cursor=%21%21%21"])
def test_list_with_a_bad_limit_or_cursor_is_400_naming_it(auth_gw, user,
                                                          query):
    """The contract names no code for query parameters: the worker's
    existing one for them (api.c's limit) is 400 invalid_parameter."""
    r = auth_gw.get("/api/v1/api-keys?" + query, token=user.access)
    assert_error(r, 400, "invalid_parameter", query.split("=")[0])


def test_list_limit_500_is_accepted(auth_gw, user):
    r = auth_gw.get("/api/v1/api-keys?limit=500", token=user.access)
    assert r.status_code == 200, r.text


# --- owners ------------------------------------------------------------------

def test_one_user_cannot_see_anothers_keys(auth_gw):
    alice, bob = new_user(auth_gw), new_user(auth_gw)
    a = create_key(auth_gw, token=alice.access)
    b = create_key(auth_gw, token=bob.access)
    assert [i["id"] for i in list_keys(auth_gw, token=bob.access)["items"]] \
        == [b["id"]]
    assert [i["id"] for i in list_keys(auth_gw, apikey=b["key"])["items"]] \
        == [b["id"]]
    assert [i["id"] for i in list_keys(auth_gw,
                                       token=alice.access)["items"]] \
        == [a["id"]]


def test_one_user_cannot_delete_anothers_key(auth_gw):
    alice, bob = new_user(auth_gw), new_user(auth_gw)
    a = create_key(auth_gw, token=alice.access)
    r = auth_gw.request("DELETE", "/api/v1/api-keys/" + a["id"],
                        token=bob.access)
    assert_error(r, 404, "not_found")
    r = auth_gw.request("DELETE", "/api/v1/api-keys/" + a["id"],
                        apikey=create_key(auth_gw, token=bob.access)["key"])
    assert_error(r, 404, "not_found")
    # still there, still working
    assert list_keys(auth_gw, apikey=a["key"])["items"][0]["id"] == a["id"]


def test_an_admin_cannot_delete_anothers_key_either(auth_gw, admin):
    alice = new_user(auth_gw)
    a = create_key(auth_gw, token=alice.access)
    r = auth_gw.request("DELETE", "/api/v1/api-keys/" + a["id"],
                        token=admin.access)
    assert_error(r, 404, "not_found")
    assert auth_gw.get("/api/v1/api-keys", apikey=a["key"]).status_code == 200


# --- delete ------------------------------------------------------------------

def test_deleted_key_is_rejected_on_the_next_request(auth_gw, user,
                                                     redis_server):
    doc = create_key(auth_gw, token=user.access)
    assert auth_gw.get("/api/v1/api-keys", apikey=doc["key"]).status_code \
        == 200
    r = auth_gw.request("DELETE", "/api/v1/api-keys/" + doc["id"],
                        token=user.access)
    assert r.status_code == 204, r.text
    assert r.content == b""
    r = auth_gw.get("/api/v1/api-keys", apikey=doc["key"])
    assert_error(r, 401, "invalid_token")
    assert not redis_server.client().exists(mirror_key(doc["key"]))
    assert list_keys(auth_gw, token=user.access)["items"] == []


def test_a_key_may_delete_itself(auth_gw, user):
    doc = create_key(auth_gw, token=user.access)
    r = auth_gw.request("DELETE", "/api/v1/api-keys/" + doc["id"],
                        apikey=doc["key"])
    assert r.status_code == 204, r.text
    assert auth_gw.get("/api/v1/api-keys",
                       apikey=doc["key"]).status_code == 401


def test_deleting_twice_is_404(auth_gw, user):
    doc = create_key(auth_gw, token=user.access)
    path = "/api/v1/api-keys/" + doc["id"]
    assert auth_gw.request("DELETE", path, token=user.access).status_code \
        == 204
    assert_error(auth_gw.request("DELETE", path, token=user.access), 404,
                 "not_found")


@pytest.mark.parametrize("key_id", [str(uuid.uuid4()), "not-a-uuid", "1",
                                    "x" * 300])
def test_deleting_an_unknown_or_malformed_id_is_404(auth_gw, user, key_id):
    r = auth_gw.request("DELETE", "/api/v1/api-keys/" + key_id,
                        token=user.access)
    assert_error(r, 404, "not_found")


def test_deleting_one_key_leaves_the_others_working(auth_gw, user):
    a = create_key(auth_gw, token=user.access)
    b = create_key(auth_gw, token=user.access)
    assert auth_gw.request("DELETE", "/api/v1/api-keys/" + a["id"],
                           token=user.access).status_code == 204
    assert [i["id"] for i in list_keys(auth_gw, apikey=b["key"])["items"]] \
        == [b["id"]]


# --- expiry ------------------------------------------------------------------

def test_expired_key_is_rejected(auth_gw, user):
    at = int(time.time()) + 4
    doc = create_key(auth_gw, token=user.access, expires_at=rfc3339(at))
    assert auth_gw.get("/api/v1/api-keys", apikey=doc["key"]).status_code \
        == 200
    time.sleep(max(0, at + 1.5 - time.time()))
    assert_error(auth_gw.get("/api/v1/api-keys", apikey=doc["key"]), 401,
                 "invalid_token")


# --- the mirror survives Redis losing its data -------------------------------

@pytest.fixture
def own_stack(migrated, tmp_path):
    """A Redis, a worker (1 process) and a gateway of this test's own, so
    it may flush or restart Redis without touching the session's."""
    key = openssl_key(tmp_path / "jwt.pem", *RSA_ARGS)
    redis = stack.Redis().start()
    worker = nginx = None
    report = None
    try:
        worker = stack.Worker(migrated, redis, workers=1,
                              env={"OMNI_JWT_PRIVATE_KEY": key})
        worker.start()
        nginx = stack.Nginx(worker_socket=worker.socket_path,
                            redis_addr=redis.addr, api_rate="1000r/s",
                            extra={"AUTH_RATE": "6000r/m"}).start()
        yield redis, worker, nginx
    finally:
        if nginx is not None:
            nginx.destroy()
        if worker is not None:
            worker.stop()
            report = worker.sanitizer_report()
            worker.destroy()
        redis.destroy()
    assert report is None, report


def _key_on(worker):
    """A registered user and an API key, made straight on the worker's
    socket (the identity headers are the gateway's to set)."""
    email = "flush-%s@example.com" % uuid.uuid4().hex
    r = direct_json(worker, "POST", "/auth/register",
                    {"email": email, "password": PASSWORD})
    assert r.status == 201, r
    uid = r.json()["id"]
    r = direct_json(worker, "POST", "/api/v1/api-keys", {"name": "flush"},
                    {"X-User-Id": uid, "X-User-Username": email,
                     "X-User-Role": "user"})
    assert r.status == 201, r
    return r.json()["key"]


def _works(client, key):
    return client.get("/api/v1/api-keys", apikey=key).status_code == 200


def test_key_works_again_within_seconds_of_a_flushall(own_stack):
    redis, worker, nginx = own_stack
    key = _key_on(worker)
    client = Client(nginx)
    try:
        assert _works(client, key)
        redis.client().flushall()
        start = time.monotonic()
        wait_for(lambda: _works(client, key), 15,
                 "the API key to work again after FLUSHALL")
        print("re-synced after %.1fs" % (time.monotonic() - start))
        assert redis.client().exists("omni:apikey:synced")
    finally:
        client.close()


def test_key_works_again_after_redis_restarts_empty(own_stack):
    redis, worker, nginx = own_stack
    key = _key_on(worker)
    client = Client(nginx)
    try:
        assert _works(client, key)
        port = redis.port
        redis.destroy()
        again = stack.Redis(port=port).start()
        try:
            wait_for(lambda: _works(client, key), 20,
                     "the API key to work again after Redis restarted")
        finally:
            again.destroy()
    finally:
        client.close()


def test_deleted_key_stays_deleted_after_a_resync(own_stack):
    redis, worker, nginx = own_stack
    live, dead = _key_on(worker), _key_on(worker)
    client = Client(nginx)
    try:
        uid = client.get("/api/v1/api-keys", apikey=dead)
        assert uid.status_code == 200, uid.text
        dead_id = uid.json()["items"][0]["id"]
        r = client.request("DELETE", "/api/v1/api-keys/" + dead_id,
                           apikey=dead)
        assert r.status_code == 204, r.text
        redis.client().flushall()
        wait_for(lambda: _works(client, live), 15,
                 "the live API key to work again after FLUSHALL")
        assert client.get("/api/v1/api-keys",
                          apikey=dead).status_code == 401
    finally:
        client.close()
