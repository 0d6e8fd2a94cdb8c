"""The built-in MCP server "omni" (contexts and memories, SPEC 6): its
tools on /mcp as omni__<tool>, merged into the listing every role gets,
and on /mcp/omni unprefixed; each call acts as the caller, on the
caller's data only. Driven through nginx with bearer tokens, by the
official TypeScript SDK client (fixtures/mcp/sdk_steps.cjs) and by plain
JSON-RPC."""

import json
import shutil
import subprocess
import uuid

import pytest

from mcp_support import FIXTURES, NODE_DIR, Upstream, call, mcp_stack, unique

SERVERS = "/api/v1/mcp/servers"
TOOLS = ["context_delete", "context_get", "context_list", "context_put",
         "memory_add", "memory_delete", "memory_search"]
MODERN = "2026-07-28"


@pytest.fixture(scope="module")
def gateway(migrated, redis_server):
    with mcp_stack(migrated, redis_server,
                   nginx={"api_rate": "100r/s"}) as wn:
        yield wn


@pytest.fixture(scope="module")
def everything(gateway):
    """server-everything registered: the built-in tools are merged with an
    upstream's"""
    w, _ = gateway
    u = Upstream("everything").start()
    r = call(w, "POST", SERVERS, {"name": unique(), "url": u.url,
                                  "timeout_ms": 30000})
    assert r.status == 201, r.body
    s = r.json()
    r = call(w, "POST", SERVERS + "/" + s["id"] + "/health")
    assert r.status == 200 and r.json()["ok"], r.body
    yield s
    u.stop()


def steps(n, token, plan, path="/mcp"):
    p = subprocess.run(
        [shutil.which("node"), str(FIXTURES / "sdk_steps.cjs"),
         n.http_url(path), token, json.dumps(plan)],
        cwd=str(NODE_DIR), env={"PATH": "/usr/bin:/bin",
                                "NODE_PATH": str(NODE_DIR / "node_modules")},
        capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def rest(result):
    """The REST answer a CallToolResult carries (as text and, for an
    object, as structuredContent: both the same)."""
    assert result["content"][0]["type"] == "text", result
    body = json.loads(result["content"][0]["text"])
    if isinstance(body, dict):
        assert result["structuredContent"] == body
    return body


def user_token(n, role="developer"):
    return n.token(sub=str(uuid.uuid4()), role=role)


def rpc(n, token, method, params=None, path="/mcp"):
    """A stateless (2026-07-28) request: no session needed."""
    params = dict(params or {})
    params["_meta"] = {"io.modelcontextprotocol/protocolVersion": MODERN,
                       "io.modelcontextprotocol/clientCapabilities": {}}
    h = {"Authorization": "Bearer " + token,
         "Content-Type": "application/json",
         "Accept": "application/json, text/event-stream",
         "MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if method == "tools/call":
        h["Mcp-Name"] = params["name"]
    r = n.request("POST", path, data=json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
        headers=h)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_sdk_client_lists_and_uses_the_builtin_server(gateway,
                                                          everything):
    _, n = gateway
    tok = user_token(n)
    ns = unique("ns")
    out = steps(n, tok, [
        {"list": True},
        {"call": "omni__context_put",
         "arguments": {"namespace": ns, "key": "theme",
                       "value": {"color": "blue"}, "tags": ["ui"]}},
        {"call": "omni__context_get",
         "arguments": {"namespace": ns, "key": "theme"}},
        {"call": "omni__memory_add",
         "arguments": {"namespace": ns,
                       "content": "the gateway speaks MCP to zebras"}},
        {"call": "omni__memory_search",
         "arguments": {"query": "zebras", "namespace": ns, "mode": "text"}},
        {"call": "omni__context_list", "arguments": {"namespace": ns}},
    ])
    tools = out[0]["tools"]
    for t in TOOLS:
        assert "omni__" + t in tools, tools
    # merged with the upstream's, in one sorted listing
    assert everything["name"] + "__echo" in tools
    assert tools == sorted(tools)
    put, got, added, found, listed = out[1:]
    assert put["isError"] is False
    assert rest(put)["value"] == {"color": "blue"}
    assert got["isError"] is False
    body = rest(got)
    assert body["value"] == {"color": "blue"} and body["tags"] == ["ui"]
    assert body["namespace"] == ns and body["key"] == "theme"
    assert added["isError"] is False
    assert found["isError"] is False
    hits = rest(found)["items"]
    assert [h["content"] for h in hits] == ["the gateway speaks MCP to zebras"]
    assert [c["key"] for c in rest(listed)["items"]] == ["theme"]


def test_a_context_put_through_the_tool_is_the_one_rest_reads(gateway):
    _, n = gateway
    tok = user_token(n)
    ns = unique("ns")
    out = steps(n, tok, [{"call": "omni__context_put",
                          "arguments": {"namespace": ns, "key": "k",
                                        "value": [1, 2, 3]}}])
    assert out[0]["isError"] is False, out
    r = n.request("GET", "/api/v1/contexts/%s/k" % ns,
                  headers={"Authorization": "Bearer " + tok})
    assert r.status_code == 200, r.text
    assert r.json()["value"] == [1, 2, 3]


def test_another_user_cannot_read_the_first_users_data_through_the_tools(
        gateway):
    _, n = gateway
    alice, bob = user_token(n), user_token(n)
    ns = unique("ns")
    out = steps(n, alice, [
        {"call": "omni__context_put",
         "arguments": {"namespace": ns, "key": "secret",
                       "value": "alice's"}},
        {"call": "omni__memory_add",
         "arguments": {"namespace": ns, "content": "alice owns narwhals"}}])
    assert out[0]["isError"] is False and out[1]["isError"] is False, out
    out = steps(n, bob, [
        {"call": "omni__context_get",
         "arguments": {"namespace": ns, "key": "secret"}},
        {"call": "omni__context_list", "arguments": {"namespace": ns}},
        {"call": "omni__memory_search",
         "arguments": {"query": "narwhals", "mode": "text"}},
        {"call": "omni__context_delete",
         "arguments": {"namespace": ns, "key": "secret"}}])
    got, listed, found, deleted = out
    assert got["isError"] is True and rest(got)["error"] == "not_found"
    assert "alice's" not in json.dumps(got)
    assert rest(listed)["items"] == []
    assert rest(found)["items"] == []
    assert deleted["isError"] is True
    # and alice still has it
    out = steps(n, alice, [{"call": "omni__context_get",
                            "arguments": {"namespace": ns, "key": "secret"}}])
    assert rest(out[0])["value"] == "alice's"


def test_bad_arguments_are_a_tool_error_naming_the_field(gateway):
    _, n = gateway
    tok = user_token(n)
    out = steps(n, tok, [
        {"call": "omni__context_put",
         "arguments": {"namespace": 5, "key": "k", "value": 1}},
        {"call": "omni__context_put",
         "arguments": {"namespace": "bad ns", "key": "k", "value": 1}},
        {"call": "omni__context_put",
         "arguments": {"namespace": "ns", "key": "k"}},
        {"call": "omni__memory_search",
         "arguments": {"query": "x", "mode": "sideways"}},
        {"call": "omni__context_list", "arguments": {"limit": 0}},
        {"call": "omni__nope", "arguments": {}},
    ])
    fields = []
    for res in out[:5]:
        assert res.get("isError") is True, res
        body = rest(res)
        assert body["message"].startswith(body["field"]), body
        fields.append(body["field"])
    assert fields == ["namespace", "namespace", "value", "mode", "limit"]
    # an unknown tool is the protocol's error, as for any server
    assert "thrown" in out[5] and "Unknown tool" in out[5]["thrown"]


def test_mcp_omni_serves_the_builtin_tools_unprefixed(gateway, everything):
    _, n = gateway
    tok = user_token(n)
    ns = unique("ns")
    out = steps(n, tok, [
        {"list": True},
        {"call": "context_put",
         "arguments": {"namespace": ns, "key": "k", "value": "v"}},
        {"call": "context_get", "arguments": {"namespace": ns, "key": "k"}},
        {"call": "omni__context_get",
         "arguments": {"namespace": ns, "key": "k"}},
    ], path="/mcp/omni")
    assert out[0]["tools"] == TOOLS
    assert out[1]["isError"] is False
    assert rest(out[2])["value"] == "v"
    assert "thrown" in out[3] and "Unknown tool" in out[3]["thrown"]
    # the same context through /mcp
    out = steps(n, tok, [{"call": "omni__context_get",
                          "arguments": {"namespace": ns, "key": "k"}}])
    assert rest(out[0])["value"] == "v"
    # tools only: no upstream to pass resources or prompts to
    res = rpc(n, tok, "server/discover", path="/mcp/omni")["result"]
    assert "resources" not in res["capabilities"]
    assert "tools" in res["capabilities"]


@pytest.mark.parametrize("role", ["admin", "developer", "user", "viewer"])
def test_every_role_is_offered_the_builtin_tools(gateway, role):
    _, n = gateway
    tok = user_token(n, role)
    res = rpc(n, tok, "tools/list")["result"]
    names = [t["name"] for t in res["tools"]]
    assert [x for x in names if x.startswith("omni__")] == \
        ["omni__" + t for t in TOOLS]
    tool = [t for t in res["tools"] if t["name"] == "omni__context_put"][0]
    assert tool["inputSchema"].get("required") == ["namespace", "key", "value"], tool
    ns = unique("ns")
    res = rpc(n, tok, "tools/call", {
        "name": "omni__context_put",
        "arguments": {"namespace": ns, "key": "k", "value": role}})["result"]
    assert res["isError"] is False and res["resultType"] == "complete"
    assert res["structuredContent"]["value"] == role


def test_the_registry_refuses_the_builtin_servers_name(gateway, everything):
    w, _ = gateway
    r = call(w, "POST", SERVERS, {"name": "omni",
                                  "url": "http://127.0.0.1:9/mcp"})
    assert r.status == 422, r.body
    assert r.json()["field"] == "name" and "reserved" in r.json()["message"]
    r = call(w, "PATCH", SERVERS + "/" + everything["id"], {"name": "omni"})
    assert r.status == 422, r.body
    assert r.json()["field"] == "name"
    r = call(w, "GET", SERVERS + "/" + everything["id"])
    assert r.json()["name"] == everything["name"]


def test_the_builtin_tools_are_paged_with_the_others(gateway, everything):
    """An upstream of 123 tools named to sort before "omni": the built-in
    ones land on the second page, each name once, in order. (The tools
    come from a real upstream: rows written straight into the catalog
    are undone by the next periodic health probe's sync.)"""
    w, n = gateway
    u = Upstream("legacy.cjs", env={"PAGES": "60"}).start()
    r = call(w, "POST", SERVERS, {"name": "a-" + unique(), "url": u.url,
                                  "timeout_ms": 30000})
    assert r.status == 201, r.body
    s = r.json()
    try:
        r = call(w, "POST", SERVERS + "/" + s["id"] + "/health")
        assert r.status == 200 and r.json()["ok"], r.body
        tok = user_token(n)
        pages, cursor = [], None
        while True:
            res = rpc(n, tok, "tools/list",
                      {"cursor": cursor} if cursor else {})["result"]
            pages.append([t["name"] for t in res["tools"]])
            cursor = res.get("nextCursor")
            if not cursor:
                break
        names = [x for p in pages for x in p]
        assert len(pages) >= 2 and len(pages[0]) == 100
        assert names == sorted(set(names))
        mine = [x for x in names if x.startswith(s["name"] + "__")]
        assert len(mine) == 123
        assert [x for x in pages[1] if x.startswith("omni__")] == \
            ["omni__" + t for t in TOOLS]
        assert not [x for x in pages[0] if x.startswith("omni__")]
    finally:
        r = call(w, "DELETE", SERVERS + "/" + s["id"])
        u.stop()
        assert r.status == 204, r.body
