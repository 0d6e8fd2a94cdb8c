"""2026-07-28 multi round-trip requests through /mcp: an upstream's
InputRequiredResult reaches a 2026-07-28 client whole, and the client's
retry (inputResponses, requestState) reaches the same upstream unchanged,
on any process, decided by the tool name and the caller's role alone. A
legacy session cannot receive one: it gets an error naming it. The
upstream is the hand-written stateless fixture (fixtures/mcp/modern.cjs
with its input tools)."""

import json
import urllib.request

import pytest

import stack
from mcp_support import Upstream, call, key_file, unique, who

SERVERS = "/api/v1/mcp/servers"
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"
YES = {"action": "accept", "content": {"confirmed": True}}


@pytest.fixture(scope="module")
def key(migrated):
    return key_file(stack.make_tmpdir("omni-test-mcp-input-"))


@pytest.fixture(scope="module")
def gateway(migrated, redis_server, key):
    w = stack.Worker(migrated, redis_server,
                     env={"OMNI_MCP_SECRET_KEY_FILE": key})
    w.start()
    n = stack.Nginx(worker_socket=w.socket_path,
                    redis_addr=redis_server.addr, api_rate="100r/s")
    n.start()
    yield w, n
    n.destroy()
    w.stop()
    report = w.sanitizer_report()
    w.destroy()
    assert not report, report


@pytest.fixture(scope="module")
def replica(migrated, redis_server, key, gateway):
    """A second worker (its own processes) on the same database and
    Redis: another replica of the first"""
    w = stack.Worker(migrated, redis_server,
                     env={"OMNI_MCP_SECRET_KEY_FILE": key})
    w.start()
    yield w
    w.stop()
    report = w.sanitizer_report()
    w.destroy()
    assert not report, report


@pytest.fixture(scope="module")
def upstream():
    u = Upstream("modern.cjs", args=["input"]).start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def server(gateway, upstream):
    """The fixture for developers and admins; batch_job for admins only."""
    w, _ = gateway
    body = {"name": unique("in"), "url": upstream.url, "timeout_ms": 10000,
            "roles": ["developer"], "tool_roles": {"batch_job": ["admin"]}}
    r = call(w, "POST", SERVERS, body)
    assert r.status == 201, r.body
    s = r.json()
    r = call(w, "POST", SERVERS + "/" + s["id"] + "/health")
    assert r.status == 200 and r.json()["ok"], r.body
    return s["name"]


def heard(upstream):
    with urllib.request.urlopen("http://127.0.0.1:%d/ctl/heard"
                                % upstream.port, timeout=5) as r:
        return json.loads(r.read())


def modern_params(params, caps):
    p = dict(params)
    p["_meta"] = {"io.modelcontextprotocol/protocolVersion": MODERN,
                  "io.modelcontextprotocol/clientCapabilities": caps,
                  "io.modelcontextprotocol/clientInfo": {"name": "t",
                                                         "version": "1"}}
    return p


def modern_headers(params):
    return {"Content-Type": "application/json", "Accept": ACCEPT,
            "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call",
            "Mcp-Name": params["name"]}


def via_nginx(n, token, params, path="/mcp", caps=None, rid=1):
    """A 2026-07-28 tools/call through the gateway with a bearer token."""
    h = modern_headers(params)
    h["Authorization"] = "Bearer " + token
    r = n.request("POST", path, headers=h, data=json.dumps(
        {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
         "params": modern_params(params, caps or {"elicitation": {}})}))
    assert r.status_code == 200, r.text
    return r.json()


def direct(w, role, params, caps=None, user=None, rid=1):
    """The same straight to a worker, as the gateway would send it."""
    h = who(role)
    if user is not None:
        h["X-User-Id"] = user
    h.update(modern_headers(params))
    r = w.request("POST", "/mcp", h, json.dumps(
        {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
         "params": modern_params(params, caps or {"elicitation": {}})}),
        timeout=30)
    assert r.status == 200, r.body
    return r.json()


def asks_to_confirm(msg, action):
    """The upstream's InputRequiredResult, checked as the client gets it;
    returns it."""
    assert "error" not in msg, msg
    res = msg["result"]
    assert res["resultType"] == "input_required", res
    ask = res["inputRequests"]["confirm"]
    assert ask["method"] == "elicitation/create"
    assert ask["params"]["message"] == "Confirm the action: " + action
    assert ask["params"]["requestedSchema"]["required"] == ["confirmed"]
    assert isinstance(res["requestState"], str) and res["requestState"]
    assert "content" not in res and "ttlMs" not in res
    return res


@pytest.mark.parametrize("scoped", [False, True])
def test_a_modern_client_round_trips_an_input_required_result_via_nginx(
        gateway, upstream, server, scoped):
    _, n = gateway
    tok = n.token(sub=unique("u"), role="developer")
    path, name = ("/mcp/" + server, "confirm_action") if scoped \
        else ("/mcp", server + "__confirm_action")
    first = via_nginx(n, tok, {"name": name,
                               "arguments": {"action": "deploy"}}, path)
    res = asks_to_confirm(first, "deploy")
    # the upstream was told the client can elicit, as the client said
    assert heard(upstream)["lastCapabilities"] == {"elicitation": {}}
    retry = {"name": name, "arguments": {"action": "deploy"},
             "inputResponses": {"confirm": YES},
             "requestState": res["requestState"]}
    done = via_nginx(n, tok, retry, path, rid=2)
    assert done["id"] == 2
    out = done["result"]
    assert out["resultType"] == "complete", out
    assert out["isError"] is False
    assert out["content"] == [{"type": "text", "text": "done: deploy"}]
    assert out["structuredContent"] == {"action": "deploy", "answer": YES,
                                        "requestState": "verified"}
    # the retry reached the upstream's own tool exactly as sent
    assert heard(upstream)["lastRetry"] == {
        "name": "confirm_action", "inputResponses": {"confirm": YES},
        "requestState": res["requestState"]}


def test_the_retry_is_served_by_another_replica(gateway, replica, server):
    w, _ = gateway
    user = unique("u")
    name = server + "__confirm_action"
    res = asks_to_confirm(direct(w, "developer", {
        "name": name, "arguments": {"action": "rotate keys"}}, user=user),
        "rotate keys")
    # nothing of the first request is kept: the other replica's processes
    # (each on a new connection) all complete it
    for i in range(3):
        done = direct(replica, "developer", {
            "name": name, "arguments": {"action": "rotate keys"},
            "inputResponses": {"confirm": YES},
            "requestState": res["requestState"]}, user=user, rid=10 + i)
        assert done["result"]["resultType"] == "complete", done
        assert done["result"]["content"][0]["text"] == "done: rotate keys"


def test_a_retry_to_a_tool_the_caller_may_not_call_is_refused(
        gateway, upstream, server):
    w, _ = gateway
    res = asks_to_confirm(direct(w, "developer", {
        "name": server + "__confirm_action",
        "arguments": {"action": "wipe"}}), "wipe")
    before = heard(upstream)["retries"]
    retry = {"arguments": {"action": "wipe"},
             "inputResponses": {"confirm": YES},
             "requestState": res["requestState"]}
    # the state does not open the server to a role it is closed to
    msg = direct(w, "user", dict(retry, name=server + "__confirm_action"))
    assert msg["error"]["code"] == -32602, msg
    assert "Unknown tool" in msg["error"]["message"]
    # nor an admin-only tool of it to a developer
    msg = direct(w, "developer", dict(retry, name=server + "__batch_job"))
    assert msg["error"]["code"] == -32602, msg
    assert "Unknown tool" in msg["error"]["message"]
    assert heard(upstream)["retries"] == before, "a refused call went out"


def test_a_tampered_or_absent_request_state_gets_the_upstreams_error(
        gateway, upstream, server):
    w, _ = gateway
    name = server + "__confirm_action"
    res = asks_to_confirm(direct(w, "developer", {
        "name": name, "arguments": {"action": "pay"}}), "pay")
    forged = res["requestState"] + "-TAMPERED"
    msg = direct(w, "developer", {"name": name, "arguments": {"action": "pay"},
                                  "inputResponses": {"confirm": YES},
                                  "requestState": forged})
    assert msg["error"] == {"code": -32602, "message":
                            "Invalid requestState: integrity check failed"}
    assert heard(upstream)["lastRetry"]["requestState"] == forged
    # a state issued for another action is the upstream's to refuse too
    msg = direct(w, "developer", {"name": name,
                                  "arguments": {"action": "pay twice"},
                                  "inputResponses": {"confirm": YES},
                                  "requestState": res["requestState"]})
    assert msg["error"]["message"] == \
        "Invalid requestState: it was issued for another action"
    msg = direct(w, "developer", {"name": name, "arguments": {"action": "pay"},
                                  "inputResponses": {"confirm": YES}})
    assert msg["error"] == {"code": -32602, "message":
                            "Missing requestState: retry with the "
                            "requestState of the InputRequiredResult"}


def test_input_members_of_the_wrong_type_are_refused_naming_them(
        gateway, upstream, server):
    w, _ = gateway
    name = server + "__confirm_action"
    before = heard(upstream)["retries"]
    msg = direct(w, "developer", {"name": name, "arguments": {"action": "x"},
                                  "requestState": 42})
    assert msg["error"]["code"] == -32602
    assert msg["error"]["message"].startswith("params.requestState:")
    msg = direct(w, "developer", {"name": name, "arguments": {"action": "x"},
                                  "inputResponses": [YES]})
    assert msg["error"]["code"] == -32602
    assert msg["error"]["message"].startswith("params.inputResponses:")
    assert heard(upstream)["retries"] == before


def legacy_session(w, h):
    r = w.request("POST", "/mcp", h, json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-11-25",
                    "capabilities": {"elicitation": {}},
                    "clientInfo": {"name": "t", "version": "1"}}}))
    assert r.status == 200, r.body
    sid = r.headers["Mcp-Session-Id"]
    h = dict(h, **{"Mcp-Session-Id": sid,
                   "MCP-Protocol-Version": "2025-11-25"})
    assert w.request("POST", "/mcp", h, json.dumps(
        {"jsonrpc": "2.0", "method": "notifications/initialized"})).status \
        == 202
    return h


def messages(resp):
    """The JSON-RPC messages of an SSE body (or of a JSON one)."""
    if resp.headers.get("Content-Type", "").startswith("application/json"):
        return [resp.json()]
    out = []
    for block in resp.body.decode().split("\n\n"):
        data = [ln[5:].strip() for ln in block.split("\n")
                if ln.startswith("data:")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out


def test_a_legacy_session_gets_an_error_naming_input_required(
        gateway, upstream, server):
    w, _ = gateway
    h = who("admin")
    h["Accept"] = ACCEPT
    h = legacy_session(w, h)
    r = w.request("POST", "/mcp", h, json.dumps(
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": server + "__batch_job", "arguments": {}}}),
        timeout=30)
    assert r.status == 200, r.body
    msg = [m for m in messages(r) if m.get("id") == 2][0]
    assert msg["error"]["code"] == -32603, msg
    text = msg["error"]["message"]
    assert "input_required" in text and "2026-07-28" in text, text
    assert server + "__batch_job" in text
    # Omni cannot carry an upstream's input requests to a legacy session,
    # so it does not declare that it can: the upstream does without
    r = w.request("POST", "/mcp", h, json.dumps(
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": server + "__confirm_action",
                    "arguments": {"action": "deploy"}}}), timeout=30)
    msg = [m for m in messages(r) if m.get("id") == 3][0]
    assert "resultType" not in msg["result"], msg
    assert msg["result"]["isError"] is True
    assert "supports elicitation" in msg["result"]["content"][0]["text"]
    assert heard(upstream)["lastCapabilities"] == {}
