"""The MCP server registry (/api/v1/mcp/servers): validation, admin-only
writes, sealed headers that never come back, audit and activity."""

import json

import pytest

import stack
from mcp_support import call, mcp_stack, unique

SERVERS = "/api/v1/mcp/servers"


@pytest.fixture(scope="module")
def mcp_worker(migrated, redis_server):
    with mcp_stack(migrated, redis_server) as w:
        yield w


def create(w, **fields):
    body = {"name": unique(), "url": "http://127.0.0.1:9/mcp"}
    body.update(fields)
    return call(w, "POST", SERVERS, body)


def test_admin_registers_a_server_and_every_role_reads_it(mcp_worker):
    r = create(mcp_worker, timeout_ms=5000, roles=["developer"])
    assert r.status == 201, r.body
    s = r.json()
    assert s["timeout_ms"] == 5000 and s["roles"] == ["developer"]
    assert s["transport"] == "streamable-http" and s["enabled"] is True
    assert s["health"] == {"interval_ms": 10000, "failure_threshold": 3,
                           "cooldown_ms": 30000}
    for role in ("viewer", "user", "developer", "admin"):
        g = call(mcp_worker, "GET", SERVERS + "/" + s["id"], role=role)
        assert g.status == 200 and g.json()["name"] == s["name"]
    by_name = call(mcp_worker, "GET", SERVERS + "/" + s["name"], role="viewer")
    assert by_name.status == 200 and by_name.json()["id"] == s["id"]


@pytest.mark.parametrize("role", ["viewer", "user", "developer"])
def test_only_admins_write(mcp_worker, role):
    r = call(mcp_worker, "POST", SERVERS,
             {"name": unique(), "url": "https://mcp.example.com/mcp"},
             role=role)
    assert r.status == 403 and r.json()["error"] == "forbidden"
    s = create(mcp_worker).json()
    assert call(mcp_worker, "PATCH", SERVERS + "/" + s["id"],
                {"enabled": False}, role=role).status == 403
    assert call(mcp_worker, "DELETE", SERVERS + "/" + s["id"],
                role=role).status == 403


@pytest.mark.parametrize("field,value,status", [
    ("name", "Upper", 422), ("name", "-dash", 422), ("name", "a" * 33, 422),
    ("name", 7, 400),
    ("url", "ftp://x/mcp", 422), ("url", "http://mcp.example.com/mcp", 422),
    ("url", "https://user:pw@mcp.example.com/", 422), ("url", "https://", 422),
    ("timeout_ms", 50, 422), ("timeout_ms", 300001, 422),
    ("timeout_ms", "100", 400), ("timeout_ms", 1.5, 422),
    ("transport", "stdio", 422), ("enabled", "yes", 400),
    ("roles", ["root"], 422), ("roles", "admin", 400),
    ("tool_roles", {"echo": ["nobody"]}, 422), ("tool_roles", [], 400),
    ("headers", {"Bad Name": "x"}, 422), ("headers", {"Host": "x"}, 422),
    ("headers", {"X-Key": "a\r\nb"}, 422), ("headers", {"X-Key": 1}, 400),
    ("headers", "Authorization: x", 400),
    ("health", {"interval_ms": 10}, 422),
    ("health", {"failure_threshold": 0}, 422),
    ("health", {"bogus": 1}, 422), ("bogus", 1, 422),
])
def test_invalid_fields_are_refused_naming_the_field(mcp_worker, field, value,
                                                     status):
    r = create(mcp_worker, **{field: value})
    assert r.status == status, r.body
    assert field.split(".")[0] in r.json()["message"]
    assert r.json()["field"].split(".")[0] == field


@pytest.mark.parametrize("url", [
    "https://mcp.example.com/mcp", "http://localhost:8000/mcp",
    "http://[::1]:8000/mcp", "http://tools.default.svc/mcp",
    "http://tools.default.svc.cluster.local:80/mcp", "http://tools:80/mcp",
])
def test_https_anywhere_and_http_only_to_loopback_or_cluster(mcp_worker, url):
    assert create(mcp_worker, url=url).status == 201


def test_missing_name_and_url_are_400(mcp_worker):
    r = call(mcp_worker, "POST", SERVERS, {"url": "https://a.example/"})
    assert r.status == 400 and "name" in r.json()["message"]
    r = call(mcp_worker, "POST", SERVERS, {"name": unique()})
    assert r.status == 400 and "url" in r.json()["message"]
    r = call(mcp_worker, "POST", SERVERS, "[1]")
    assert r.status == 400


def test_a_taken_name_is_409(mcp_worker):
    s = create(mcp_worker).json()
    r = create(mcp_worker, name=s["name"])
    assert r.status == 409 and r.json()["error"] == "conflict"
    other = create(mcp_worker).json()
    r = call(mcp_worker, "PATCH", SERVERS + "/" + other["id"],
             {"name": s["name"]})
    assert r.status == 409


def test_headers_are_sealed_and_never_returned(mcp_worker, migrated):
    secret = "Bearer sk-" + unique("secret")
    r = create(mcp_worker, headers={"Authorization": secret, "X-Team": "t1"})
    assert r.status == 201, r.body
    s = r.json()
    assert s["headers"] == {"Authorization": "[redacted]",
                            "X-Team": "[redacted]"}
    for path in (SERVERS + "/" + s["id"], SERVERS + "?limit=500"):
        assert secret.encode() not in call(mcp_worker, "GET", path).body
    enc, names = migrated.sql(
        "SELECT headers_enc, header_names FROM omni2.mcp_servers"
        " WHERE id = %s", (s["id"],), dbname="omni")[0]
    assert names == ["Authorization", "X-Team"]
    assert secret.encode() not in bytes(enc) and len(bytes(enc)) > 29
    dump = json.dumps(migrated.sql(
        "SELECT detail::text FROM omni2.mcp_audit WHERE server_id = %s",
        (s["id"],), dbname="omni")) + json.dumps(migrated.sql(
            "SELECT summary || detail::text FROM omni2_dashboard.activity"
            " WHERE detail->>'server_id' = %s", (s["id"],), dbname="omni"))
    assert "sk-" not in dump and "Authorization" in dump
    assert secret not in mcp_worker.log_text()


def test_headers_without_a_key_answer_503_naming_the_setting(worker_factory):
    w = worker_factory(workers=1)
    r = call(w, "POST", SERVERS, {"name": unique(), "url":
                                  "https://a.example/mcp",
                                  "headers": {"X-Api-Key": "k"}})
    assert r.status == 503 and "OMNI_MCP_SECRET_KEY_FILE" in r.json()["message"]
    # without headers a server registers all the same
    assert call(w, "POST", SERVERS, {"name": unique(), "url":
                                     "https://a.example/mcp"}).status == 201


def test_a_bad_key_file_stops_the_worker_naming_the_setting(tmp_path):
    bad = tmp_path / "key"
    bad.write_text("not a key")
    code, out, err = stack.run_worker({
        "OMNI_MCP_SECRET_KEY_FILE": bad, "OMNI_DATABASE_URL": "postgres://x",
        "OMNI_REDIS_ADDR": "127.0.0.1:1", "OMNI_LISTEN":
        "unix:%s" % (tmp_path / "s")})
    assert code != 0 and "OMNI_MCP_SECRET_KEY_FILE" in out + err


def test_patch_changes_only_the_given_fields_and_audits(mcp_worker, migrated):
    s = create(mcp_worker, headers={"X-Key": "v1"}).json()
    r = call(mcp_worker, "PATCH", SERVERS + "/" + s["id"],
             {"timeout_ms": 1234, "health": {"failure_threshold": 5}})
    assert r.status == 200, r.body
    p = r.json()
    assert p["timeout_ms"] == 1234 and p["url"] == s["url"]
    assert p["health"] == {"interval_ms": 10000, "failure_threshold": 5,
                           "cooldown_ms": 30000}
    assert p["headers"] == {"X-Key": "[redacted]"}
    r = call(mcp_worker, "PATCH", SERVERS + "/" + s["id"], {"headers": None})
    assert r.json()["headers"] == {}
    actions = [a for (a,) in migrated.sql(
        "SELECT action FROM omni2.mcp_audit WHERE server_id = %s ORDER BY id",
        (s["id"],), dbname="omni")]
    assert actions == ["created", "updated", "updated"]
    assert call(mcp_worker, "PATCH", SERVERS + "/" + s["id"], {}).status == 400


def test_delete_removes_it_and_leaves_the_audit(mcp_worker, migrated):
    s = create(mcp_worker).json()
    assert call(mcp_worker, "DELETE", SERVERS + "/" + s["id"]).status == 204
    assert call(mcp_worker, "GET", SERVERS + "/" + s["id"]).status == 404
    assert call(mcp_worker, "DELETE", SERVERS + "/" + s["id"]).status == 404
    assert migrated.sql("SELECT count(*) FROM omni2.mcp_audit WHERE"
                        " server_id = %s AND action = 'deleted'",
                        (s["id"],), dbname="omni")[0][0] == 1


def test_changes_reach_the_activity_feed(mcp_worker):
    s = create(mcp_worker).json()
    call(mcp_worker, "PATCH", SERVERS + "/" + s["id"], {"enabled": False})
    call(mcp_worker, "DELETE", SERVERS + "/" + s["id"])
    feed = call(mcp_worker, "GET", "/api/v1/dashboard/activity?limit=500",
                role="viewer").json()["items"]
    mine = [e["type"] for e in feed
            if (e.get("detail") or {}).get("server_id") == s["id"]]
    assert sorted(mine) == ["mcp.server.created", "mcp.server.deleted",
                            "mcp.server.updated"]


def test_list_pages_by_name(mcp_worker):
    names = sorted(create(mcp_worker, name="pg-" + unique()).json()["name"]
                   for _ in range(3))
    seen, cursor = [], None
    while True:
        path = SERVERS + "?limit=2" + ("&cursor=" + cursor if cursor else "")
        page = call(mcp_worker, "GET", path, role="user").json()
        seen += [i["name"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [n for n in seen if n in names] == names
    assert seen == sorted(seen)


@pytest.mark.parametrize("value,status,says", [
    ({"secret_env": "OMNI_DATABASE_URL"}, 422, "MCP_SECRET_"),
    ({"secret_env": "MCP_SECRET_"}, 422, "MCP_SECRET_"),
    ({"secret_env": "MCP_SECRET_a"}, 422, "MCP_SECRET_"),
    ({"secret_file": "../jwt-private.pem"}, 422, "file name"),
    ({"secret_file": ".hidden"}, 422, "file name"),
    ({"secret_file": "a/b"}, 422, "file name"),
    ({"secret_file": "x" * 129}, 422, "file name"),
    ({"secret_file": 5}, 400, "secret_file"),
    ({"secret_vault": "x"}, 400, "secret_file"),
    ({}, 400, "secret_file"),
    ({"secret_file": "a", "secret_env": "MCP_SECRET_A"}, 400, "secret_file"),
    (["x"], 400, "string"),
])
def test_bad_header_secret_references_are_refused(mcp_worker, value, status,
                                                  says):
    r = create(mcp_worker, headers={"Authorization": value})
    assert r.status == status, r.body
    assert r.json()["field"] == "headers"
    assert "Authorization" in r.json()["message"]
    assert says in r.json()["message"]


def test_a_secret_file_needs_the_secrets_directory(mcp_worker):
    # this module's worker has no OMNI_MCP_SECRETS_DIR
    r = create(mcp_worker, headers={"Authorization": {"secret_file": "tok"}})
    assert r.status == 422, r.body
    assert r.json()["field"] == "headers"
    assert "OMNI_MCP_SECRETS_DIR" in r.json()["message"]
    r = create(mcp_worker,
               headers={"Authorization": {"secret_env": "MCP_SECRET_TOK"}})
    assert r.status == 201, r.body
    assert r.json()["headers"] == {"Authorization": "[redacted]"}
