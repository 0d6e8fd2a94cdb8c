"""/mcp through nginx and the module, spoken to by the official TypeScript
SDK client (fixtures/mcp/sdk_client.cjs) with a bearer token, in front of
two upstreams: server-everything and an SDK fixture (fixtures/mcp/
conformance.cjs)."""

import json
import re
import shutil
import subprocess
import time
import urllib.request

import pytest

import stack
from mcp_support import FIXTURES, NODE_DIR, Upstream, call, mcp_stack, unique

SERVERS = "/api/v1/mcp/servers"


@pytest.fixture(scope="module")
def mcp_gateway(migrated, redis_server):
    with mcp_stack(migrated, redis_server,
                   nginx={"api_rate": "100r/s"}) as wn:
        yield wn


@pytest.fixture(scope="module")
def everything():
    u = Upstream("everything").start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def fixture_up():
    u = Upstream("conformance.cjs").start()
    yield u
    u.stop()


def register(w, upstream, **fields):
    body = {"name": unique(), "url": upstream.url, "timeout_ms": 30000}
    body.update(fields)
    r = call(w, "POST", SERVERS, body)
    assert r.status == 201, r.body
    s = r.json()
    r = call(w, "POST", SERVERS + "/" + s["id"] + "/health")
    assert r.status == 200 and r.json()["ok"], r.body
    return s


@pytest.fixture(scope="module")
def servers(mcp_gateway, everything, fixture_up):
    w, _ = mcp_gateway
    return {"everything": register(w, everything),
            "fixture": register(w, fixture_up),
            "admins": register(w, fixture_up, roles=["admin"])}


def sdk_client(n, token, ev, fx):
    p = subprocess.run(
        [shutil.which("node"), str(FIXTURES / "sdk_client.cjs"),
         n.http_url("/mcp"), token, ev, fx],
        cwd=str(NODE_DIR), env={"PATH": "/usr/bin:/bin",
                                "NODE_PATH": str(NODE_DIR / "node_modules")},
        capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_the_sdk_client_lists_calls_gets_progress_and_cancels(
        mcp_gateway, servers, fixture_up):
    w, n = mcp_gateway
    ev = servers["everything"]["name"]
    fx = servers["fixture"]["name"]
    out = sdk_client(n, n.token(sub="sdk-user", role="developer"), ev, fx)
    assert out["protocol"] == "2025-11-25"
    assert ev + "__echo" in out["tools"] and fx + "__echo" in out["tools"]
    # the admins-only server's tools are not offered to a developer
    adm = servers["admins"]["name"]
    assert not [t for t in out["tools"] if t.startswith(adm + "__")]
    assert "hello everything" in out["echo_everything"]
    assert out["echo_fixture"] == "Echo: hello fixture"
    assert [p["progress"] for p in out["progress"]] == [0, 50, 100]
    assert out["cancel"] == "rejected"
    with urllib.request.urlopen("http://127.0.0.1:%d/ctl/cancelled"
                                % fixture_up.port, timeout=5) as r:
        seen = json.loads(r.read())
    assert seen["cancelled_at"] > 0, "the upstream never heard of it"
    lag = seen["cancelled_at"] - out["aborted_at"]
    assert 0 <= lag < 100, "cancellation reached the upstream after %d ms" \
        % lag
    assert out["terminated"] is True


def rpc(n, token, msg, session=None, headers=None):
    h = {"Authorization": "Bearer " + token,
         "Content-Type": "application/json",
         "Accept": "application/json, text/event-stream"}
    if session:
        h["Mcp-Session-Id"] = session
        h["MCP-Protocol-Version"] = "2025-11-25"
    h.update(headers or {})
    return n.request("POST", "/mcp", data=json.dumps(msg), headers=h)


def session(n, token):
    r = rpc(n, token, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25",
                                  "capabilities": {},
                                  "clientInfo": {"name": "t",
                                                 "version": "1"}}})
    assert r.status_code == 200, r.text
    return r.headers["Mcp-Session-Id"]


def test_a_tool_whose_name_needs_hashing_is_listed_and_called(
        mcp_gateway, servers):
    _, n = mcp_gateway
    tok = n.token(sub="hash-user", role="developer")
    sid = session(n, tok)
    fx = servers["fixture"]["name"]
    r = rpc(n, tok, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, sid)
    names = [t["name"] for t in r.json()["result"]["tools"]]
    hashed = [x for x in names if x.startswith(fx + "__omni_dotted_name_")]
    assert len(hashed) == 1, names
    assert re.match(r"^[A-Za-z0-9_-]{1,64}$", hashed[0])
    r = rpc(n, tok, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                     "params": {"name": hashed[0], "arguments": {}}}, sid)
    assert r.json()["result"]["content"][0]["text"] == "dotted", r.text
    # the name as the upstream spells it is not a /mcp name
    r = rpc(n, tok, {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                     "params": {"name": fx + "__omni.dotted/name"}}, sid)
    assert r.json()["error"]["code"] == -32602


def test_without_credentials_mcp_answers_401(mcp_gateway, servers):
    _, n = mcp_gateway
    r = n.request("POST", "/mcp", data="{}",
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 401


def test_a_role_without_access_cannot_call_a_servers_tool_by_name(
        mcp_gateway, servers):
    _, n = mcp_gateway
    tok = n.token(sub="plain-user", role="user")
    sid = session(n, tok)
    adm = servers["admins"]["name"]
    r = rpc(n, tok, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                     "params": {"name": adm + "__echo",
                                "arguments": {"text": "x"}}}, sid)
    assert r.status_code == 200
    assert r.json()["error"]["code"] == -32602
    # the same name works for an admin: the refusal is the role's
    atok = n.token(sub="admin-user", role="admin")
    asid = session(n, atok)
    r = rpc(n, atok, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": adm + "__echo",
                                 "arguments": {"text": "x"}}}, asid)
    assert r.json()["result"]["content"][0]["text"] == "Echo: x"


def test_a_stalled_upstream_does_not_slow_tools_list(mcp_gateway, servers,
                                                     everything):
    _, n = mcp_gateway
    tok = n.token(sub="stall-user", role="developer")
    sid = session(n, tok)
    everything.pause()
    try:
        t = time.monotonic()
        r = rpc(n, tok, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
                sid)
        took = time.monotonic() - t
    finally:
        everything.resume()
    assert r.status_code == 200, r.text
    names = [x["name"] for x in r.json()["result"]["tools"]]
    assert servers["fixture"]["name"] + "__echo" in names
    assert took < 0.3, "tools/list took %.3f s" % took


def test_sse_answers_are_not_buffered_and_say_so(mcp_gateway, servers):
    _, n = mcp_gateway
    tok = n.token(sub="sse-user", role="developer")
    sid = session(n, tok)
    fx = servers["fixture"]["name"]
    r = rpc(n, tok, {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                     "params": {"name": fx + "__test_tool_with_progress",
                                "arguments": {},
                                "_meta": {"progressToken": 7}}}, sid)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert r.headers.get("X-Accel-Buffering") == "no"
    assert r.text.count("notifications/progress") == 3


def test_a_bad_origin_gets_403_through_the_gateway(mcp_gateway, servers):
    _, n = mcp_gateway
    tok = n.token(sub="origin-user", role="developer")
    r = rpc(n, tok, {"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    # the gateway's own origin passes
    sid = session(n, tok)
    r = rpc(n, tok, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, sid,
            headers={"Origin": "http://127.0.0.1:%d" % n.http_port})
    assert r.status_code == 200, r.text


def test_a_modern_client_closing_its_stream_cancels_the_upstream_call(
        mcp_gateway, servers, fixture_up):
    import socket
    _, n = mcp_gateway
    tok = n.token(sub="modern-user", role="developer")
    fx = servers["fixture"]["name"]
    name = fx + "__wait"
    body = json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": name, "arguments": {},
                   "_meta": {"progressToken": 1,
                             "io.modelcontextprotocol/protocolVersion":
                                 "2026-07-28",
                             "io.modelcontextprotocol/clientCapabilities":
                                 {}}}}).encode()
    head = ("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
            "Accept: application/json, text/event-stream\r\n"
            "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\n"
            "Mcp-Name: %s\r\nContent-Length: %d\r\n\r\n"
            % (tok, name, len(body))).encode()

    def seen():
        with urllib.request.urlopen("http://127.0.0.1:%d/ctl/cancelled"
                                    % fixture_up.port, timeout=5) as r:
            return json.loads(r.read())

    before = seen()
    s = socket.create_connection(("127.0.0.1", n.http_port), 5)
    s.sendall(head + body)
    stack.wait_until(lambda: seen()["waits"] > before["waits"], 10,
                     "the upstream to start the call")
    closed_at = time.time()
    s.close()
    stack.wait_until(
        lambda: seen()["cancelled_at"] > before["cancelled_at"], 5,
        "the upstream to hear of the cancellation")
    lag = seen()["cancelled_at"] / 1000.0 - closed_at
    assert lag < 0.1, "cancellation reached the upstream after %.3f s" % lag
