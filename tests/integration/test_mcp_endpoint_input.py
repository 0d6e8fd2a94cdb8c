"""2026-07-28 multi round-trip requests through /mcp: an upstream's
InputRequiredResult reaches a 2026-07-28 client whole but for its
requestState, which Omni wraps (signed for the caller, the server and the
tool, 10 minutes); the client's retry reaches the same upstream, on any
process or replica, with the inputResponses as sent and the upstream's own
state, decided by the tool name and the caller's role. A state that is
another user's, another tool's or server's, or altered is refused before
the upstream hears of it. A
legacy (2025-11-25) session is asked the upstream's input requests on the
call's stream, as an upstream's own requests are relayed, and Omni makes
the call again with the answers. The upstream is the hand-written
stateless fixture (fixtures/mcp/modern.cjs with its input tools)."""

import json
import re
import shutil
import subprocess
import time
import urllib.request

import pytest

import stack
from mcp_support import (FIXTURES, NODE_DIR, Upstream, auth_proxy, call,
                         key_file, mcp_stack, unique, who)
from test_mcp_endpoint import Client
from test_mcp_endpoint_relay import CallStream

SERVERS = "/api/v1/mcp/servers"
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"
YES = {"action": "accept", "content": {"confirmed": True}}


@pytest.fixture(scope="module")
def key(migrated):
    return key_file(stack.make_tmpdir("omni-test-mcp-input-"))


@pytest.fixture(scope="module")
def gateway(migrated, redis_server, key):
    with mcp_stack(migrated, redis_server, key=key,
                   nginx={"api_rate": "100r/s"}) as wn:
        yield wn


@pytest.fixture(scope="module")
def replica(migrated, redis_server, key, gateway):
    """A second worker (its own processes) on the same database and
    Redis: another replica of the first"""
    with mcp_stack(migrated, redis_server, key=key) as w:
        yield w


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
    assert res["requestState"].startswith("omni1."), res
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
    # the retry reached the upstream's own tool with the answers as sent
    # and its own state, which the client never saw
    last = heard(upstream)["lastRetry"]
    assert last["name"] == "confirm_action"
    assert last["inputResponses"] == {"confirm": YES}
    assert last["requestState"] != res["requestState"]
    assert last["requestState"] not in json.dumps(first)


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


def refused_state(msg):
    assert msg["error"]["code"] == -32602, msg
    assert msg["error"]["message"].startswith("params.requestState:"), msg


def test_a_tampered_state_is_refused_by_omni_before_the_upstream(
        gateway, upstream, server):
    """Before the state was wrapped, a tampered one reached the upstream,
    which refused it; now Omni refuses it first, and the upstream's own
    checks remain for what Omni cannot know (the arguments, a missing
    state)."""
    w, _ = gateway
    user = unique("u")
    name = server + "__confirm_action"
    res = asks_to_confirm(direct(w, "developer", {
        "name": name, "arguments": {"action": "pay"}}, user=user), "pay")
    before = heard(upstream)["retries"]
    wrapped = res["requestState"]
    flipped = wrapped[:-3] + ("A" if wrapped[-3] != "A" else "B") + \
        wrapped[-2:]
    for forged in [wrapped + "-TAMPERED", flipped, "omni1." + "A" * 80,
                   wrapped[len("omni1."):], "not a state"]:
        refused_state(direct(w, "developer", {
            "name": name, "arguments": {"action": "pay"},
            "inputResponses": {"confirm": YES}, "requestState": forged},
            user=user))
    assert heard(upstream)["retries"] == before, "a forged state went out"
    # a state issued for another action is the upstream's to refuse
    msg = direct(w, "developer", {"name": name,
                                  "arguments": {"action": "pay twice"},
                                  "inputResponses": {"confirm": YES},
                                  "requestState": res["requestState"]},
                 user=user)
    assert msg["error"]["message"] == \
        "Invalid requestState: it was issued for another action"
    msg = direct(w, "developer", {"name": name, "arguments": {"action": "pay"},
                                  "inputResponses": {"confirm": YES}},
                 user=user)
    assert msg["error"] == {"code": -32602, "message":
                            "Missing requestState: retry with the "
                            "requestState of the InputRequiredResult"}


def test_another_users_state_is_refused_and_never_reaches_the_upstream(
        gateway, replica, upstream, server):
    """User B who got hold of user A's requestState (a log, a shared
    transcript) cannot continue A's operation with their own token: the
    upstream sees everyone as Omni and could not tell them apart."""
    w, n = gateway
    name = server + "__confirm_action"
    alice, bob = unique("alice"), unique("bob")
    res = asks_to_confirm(direct(w, "developer", {
        "name": name, "arguments": {"action": "transfer"}}, user=alice),
        "transfer")
    before = heard(upstream)["retries"]
    retry = {"name": name, "arguments": {"action": "transfer"},
             "inputResponses": {"confirm": YES},
             "requestState": res["requestState"]}
    for worker in (w, replica):
        refused_state(direct(worker, "developer", retry, user=bob))
    # through the gateway too, with Bob's own token
    refused_state(via_nginx(n, n.token(sub=bob, role="developer"), retry))
    assert heard(upstream)["retries"] == before, "Bob's replay went out"
    # Alice herself still completes it
    done = direct(replica, "developer", retry, user=alice)
    assert done["result"]["content"][0]["text"] == "done: transfer", done


def test_a_state_for_one_tool_or_server_is_refused_on_another(
        gateway, upstream, server):
    w, _ = gateway
    user = unique("u")
    # batch_job's state (an admin's), replayed on confirm_action
    first = direct(w, "admin", {"name": server + "__batch_job",
                                "arguments": {}}, user=user)
    state = first["result"]["requestState"]
    before = heard(upstream)["retries"]
    refused_state(direct(w, "admin", {
        "name": server + "__confirm_action", "arguments": {"action": "a"},
        "inputResponses": {"confirm": YES}, "requestState": state},
        user=user))
    # the same tool of another server (the very same upstream behind it)
    twin = unique("twin")
    r = call(w, "POST", SERVERS, {"name": twin, "url": upstream.url,
                                  "timeout_ms": 10000})
    assert r.status == 201, r.body
    r = call(w, "POST", SERVERS + "/" + r.json()["id"] + "/health")
    assert r.status == 200 and r.json()["ok"], r.body
    res = asks_to_confirm(direct(w, "admin", {
        "name": server + "__confirm_action",
        "arguments": {"action": "b"}}, user=user), "b")
    before = heard(upstream)["retries"]
    refused_state(direct(w, "admin", {
        "name": twin + "__confirm_action", "arguments": {"action": "b"},
        "inputResponses": {"confirm": YES},
        "requestState": res["requestState"]}, user=user))
    assert heard(upstream)["retries"] == before, "a misplaced state went out"
    # on its own tool and server it still completes
    done = direct(w, "admin", {"name": server + "__batch_job",
                               "arguments": {}, "requestState": state},
                  user=user)
    assert done["result"]["content"][0]["text"] == \
        "batch_job done after step 1", done


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


def sdk_steps(n, plan, offers):
    """The official TypeScript SDK client (2025-11-25, a session) through
    the gateway as an admin (fixtures/mcp/sdk_steps.cjs)."""
    p = subprocess.run(
        [shutil.which("node"), str(FIXTURES / "sdk_steps.cjs"),
         n.http_url("/mcp"), n.token(sub=unique("sdk"), role="admin"),
         json.dumps(plan), json.dumps(offers)],
        cwd=str(NODE_DIR), env={"PATH": "/usr/bin:/bin",
                                "NODE_PATH": str(NODE_DIR / "node_modules")},
        capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_a_legacy_sdk_client_is_asked_and_the_call_completes(
        gateway, upstream, server):
    _, n = gateway
    out = sdk_steps(n, [
        {"call": server + "__confirm_action", "arguments": {"action": "ship"}},
        {"call": server + "__batch_job", "arguments": {}}],
        {"elicitation": {"confirmed": True}})
    assert out[0]["isError"] is False, out
    assert out[0]["content"] == [{"type": "text", "text": "done: ship"}]
    assert "resultType" not in out[0]
    asked = out[-1]["asked"]
    assert [a["method"] for a in asked] == ["elicitation/create"]
    assert asked[0]["params"]["message"] == "Confirm the action: ship"
    # a result that only hands a requestState back is retried at once
    assert out[1]["content"][0]["text"] == "batch_job done after step 1"
    last = heard(upstream)
    assert last["lastRetry"]["name"] == "batch_job"
    assert "inputResponses" not in last["lastRetry"]
    assert last["lastCapabilities"] == {"elicitation": {}}


ASK = r'data: (\{"jsonrpc":"2\.0","id":"(omni-[^"]+)",' \
      r'"method":"elicitation/create".*)\n'


def legacy(w, caps, role="admin"):
    c = Client(w, role=role)
    r = c.rpc("initialize", {"protocolVersion": "2025-11-25",
                             "capabilities": caps,
                             "clientInfo": {"name": "t", "version": "1"}})
    assert r.status == 200, r.body
    c.session = r.headers["Mcp-Session-Id"]
    return c


def test_a_legacy_answer_posted_to_another_replica_completes_the_call(
        gateway, replica, upstream, server):
    w, _ = gateway
    c = legacy(w, {"elicitation": {}})
    st = CallStream(w, c, {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                           "params": {"name": server + "__confirm_action",
                                      "arguments": {"action": "merge"}}})
    try:
        m = st.read_until(ASK, 10)
        assert m, st.text
        ask = json.loads(m.group(1))
        assert ask["params"]["message"] == "Confirm the action: merge"
        # the same user's session, answered on the other replica
        other = Client(replica)
        other.h = dict(c.h)
        other.session = c.session
        r = other.post({"jsonrpc": "2.0", "id": m.group(2), "result": {
            "action": "decline"}})
        assert r.status == 202, r.body
        assert st.read_until(r'"id":7,"result".*\n', 10), st.text
        msgs = [json.loads(x) for x in re.findall(r"data: (.*)\n", st.text)]
        res = msgs[-1]["result"]
        assert res["isError"] is True
        assert res["content"][0]["text"] == "not confirmed: merge"
        assert heard(upstream)["lastRetry"]["inputResponses"] == {
            "confirm": {"action": "decline"}}
    finally:
        st.close()


def test_a_legacy_client_leaving_while_asked_ends_the_call(
        gateway, upstream, server):
    w, _ = gateway
    c = legacy(w, {"elicitation": {}})
    before = heard(upstream)["retries"]
    st = CallStream(w, c, {"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                           "params": {"name": server + "__confirm_action",
                                      "arguments": {"action": "leave"}}})
    m = st.read_until(ASK, 10)
    st.close()
    assert m
    # an answer after it left goes nowhere: no retry reaches the upstream
    time.sleep(0.3)
    r = c.post({"jsonrpc": "2.0", "id": m.group(2),
                "result": {"action": "accept",
                           "content": {"confirmed": True}}})
    assert r.status == 202
    time.sleep(0.5)
    assert heard(upstream)["retries"] == before
    # and the worker still serves
    assert c.rpc("ping").json()["result"] == {}


def test_a_legacy_session_without_the_capability_is_not_asked(
        gateway, upstream, server):
    w, _ = gateway
    c = legacy(w, {})
    r = c.rpc("tools/call", {"name": server + "__confirm_action",
                             "arguments": {"action": "deploy"}})
    assert r.status == 200, r.body
    res = r.json()["result"]
    # the upstream was told the client cannot elicit, and did without
    assert heard(upstream)["lastCapabilities"] == {}
    assert res["isError"] is True
    assert "supports elicitation" in res["content"][0]["text"]
    # an upstream asking all the same: the session cannot be asked
    r = c.rpc("tools/call", {"name": server + "__confirm_action",
                             "arguments": {"action": "deploy",
                                           "ignoreCapabilities": True}})
    err = r.json()["error"]
    assert err["code"] == -32603, err
    assert "input_required" in err["message"]
    assert "2026-07-28" in err["message"]
    assert server + "__confirm_action" in err["message"]


INPUT_SCENARIOS = [
    "input-required-result-basic-elicitation",
    "input-required-result-basic-sampling",
    "input-required-result-basic-list-roots",
    "input-required-result-request-state",
    "input-required-result-multiple-input-requests",
    "input-required-result-multi-round",
    "input-required-result-missing-input-response",
    "input-required-result-non-tool-request",
    "input-required-result-result-type",
    "input-required-result-unsupported-methods",
    "input-required-result-tampered-state",
    "input-required-result-capability-check",
    "input-required-result-ignore-extra-params",
    "input-required-result-validate-input",
]


def test_the_suites_input_required_scenarios_pass_through_omni(
        gateway, upstream, tmp_path):
    """The official conformance suite's 2026-07-28 input-required-result
    scenarios against /mcp/<server> through nginx (a proxy adds the
    token), fronting the fixture's suite tools and prompt: every check
    passes, none only warns."""
    from test_mcp_conformance import CLI, run_suite
    w, n = gateway
    name = unique("conf")
    r = call(w, "POST", SERVERS, {"name": name, "url": upstream.url,
                                  "timeout_ms": 10000})
    assert r.status == 201, r.body
    # its tools are read before the suite calls one (the registration
    # answers first and reads them in the background, as the fixture
    # `server` above waits for too)
    r = call(w, "POST", SERVERS + "/" + r.json()["id"] + "/health")
    assert r.status == 200 and r.json()["ok"], r.body
    assert CLI.exists(), "make mcp-conformance"
    bad = {}
    with auth_proxy(n) as base:
        for sc in INPUT_SCENARIOS:
            out = tmp_path / sc
            out.mkdir()
            p, results = run_suite("%s/mcp/%s" % (base, name),
                                   out, "--scenario", sc,
                                   "--spec-version", MODERN)
            checks = [c for v in results.values() for c in v]
            assert checks, sc + ": no results\n" + p.stdout[-2000:] \
                + p.stderr[-2000:]
            wrong = [(c["id"], c["status"], c.get("errorMessage"))
                     for c in checks if c["status"] != "SUCCESS"]
            if wrong:
                bad[sc] = wrong
    assert not bad, bad


def prompt_get(w, user, server, params, role="developer", rid=1):
    """A 2026-07-28 prompts/get on /mcp/<server>, straight to a worker."""
    h = who(role)
    h["X-User-Id"] = user
    h.update({"Content-Type": "application/json", "Accept": ACCEPT,
              "MCP-Protocol-Version": MODERN, "Mcp-Method": "prompts/get",
              "Mcp-Name": params["name"]})
    r = w.request("POST", "/mcp/" + server, h, json.dumps(
        {"jsonrpc": "2.0", "id": rid, "method": "prompts/get",
         "params": modern_params(params, {"elicitation": {}})}), timeout=30)
    assert r.status == 200, r.body
    return r.json()


def test_a_prompts_state_is_bound_to_its_caller_too(
        gateway, replica, upstream, server):
    """/mcp/<server> passes prompts/get through: its requestState is
    wrapped and opened as a tool's is."""
    w, _ = gateway
    alice, bob = unique("alice"), unique("bob")
    prompt = "test_input_required_result_prompt"
    first = prompt_get(w, alice, server, {"name": prompt})
    res = first["result"]
    assert res["resultType"] == "input_required", res
    assert res["requestState"].startswith("omni1."), res
    retry = {"name": prompt, "requestState": res["requestState"],
             "inputResponses": {"user_context": {
                 "action": "accept", "content": {"context": "ctx"}}}}
    before = heard(upstream)["promptRetries"]
    refused_state(prompt_get(w, bob, server, retry))
    refused_state(prompt_get(w, alice, server, dict(
        retry, requestState=res["requestState"] + "x")))
    assert heard(upstream)["promptRetries"] == before
    done = prompt_get(replica, alice, server, retry, rid=2)
    assert done["result"]["messages"][0]["content"]["text"] == \
        "Context: ctx", done
    own = heard(upstream)["lastPromptState"]
    assert own != res["requestState"] and own not in json.dumps(first)


def test_relayed_caching_hints_keep_the_ttl_but_never_a_public_scope(
        gateway, server):
    """SEP-2549: the upstream's prompts/list says ttlMs 60000 and
    cacheScope "public"; through /mcp/<server> the caller gets its ttlMs
    and "private" (what a caller may see depends on its role), and the
    aggregated tools/list is never cached (ttlMs 0)."""
    w, _ = gateway
    h = who("developer")
    h.update({"Content-Type": "application/json", "Accept": ACCEPT,
              "MCP-Protocol-Version": MODERN})
    for path, method in (("/mcp/" + server, "prompts/list"),
                         ("/mcp", "tools/list")):
        r = w.request("POST", path, dict(h, **{"Mcp-Method": method}),
                      json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                  "params": modern_params({}, {})}),
                      timeout=30)
        assert r.status == 200, r.body
        res = r.json()["result"]
        assert res["cacheScope"] == "private", res
        assert res["ttlMs"] == (60000 if method == "prompts/list" else 0), res
        assert r.body.count(b"cacheScope") == 1, r.body
