"""/mcp relaying an upstream's requests to the client (2025-11-25): during
a tools/call the SDK fixture (fixtures/mcp/conformance.cjs) asks for
sampling, elicitation or roots on the call's stream; Omni sends it on to
a client that declared the capability, under an id of its own, and the
client's answer (a POST any process may receive: through Redis) goes back
to the upstream. Spoken to by the official TypeScript SDK client through
nginx (fixtures/mcp/sdk_steps.cjs), and on the worker's socket."""

import json
import re
import shutil
import socket
import select
import subprocess
import time
import urllib.request

import pytest

from mcp_support import FIXTURES, NODE_DIR, Upstream, call, mcp_stack, unique
from test_mcp_endpoint import Client

SERVERS = "/api/v1/mcp/servers"
UPSTREAM = {}  # the fixture upstream's port, for its /ctl/touch


@pytest.fixture(scope="module")
def relay(migrated, redis_server):
    with mcp_stack(migrated, redis_server,
                   nginx={"api_rate": "100r/s"}) as (w, n):
        up = Upstream("conformance.cjs").start()
        try:
            UPSTREAM["port"] = up.port
            UPSTREAM["url"] = up.url
            r = call(w, "POST", SERVERS, {"name": unique("fx"),
                                          "url": up.url,
                                          "timeout_ms": 20000})
            assert r.status == 201, r.body
            fx = r.json()["name"]
            r = call(w, "POST", SERVERS + "/" + r.json()["id"] + "/health")
            assert r.status == 200 and r.json()["ok"], r.body
            yield w, n, fx
        finally:
            up.stop()


def steps(n, plan, offers):
    t = time.monotonic()
    p = subprocess.run(
        [shutil.which("node"), str(FIXTURES / "sdk_steps.cjs"),
         n.http_url("/mcp"), n.token(sub="relay-user", role="developer"),
         json.dumps(plan), json.dumps(offers)],
        cwd=str(NODE_DIR), env={"PATH": "/usr/bin:/bin",
                                "NODE_PATH": str(NODE_DIR / "node_modules")},
        capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1]), \
        time.monotonic() - t


def text(result):
    assert "content" in result, result
    return result["content"][0]["text"]


def test_the_sdk_client_answers_an_upstreams_sampling_request(relay):
    w, n, fx = relay
    out, _ = steps(n, [{"call": fx + "__test_sampling",
                        "arguments": {"prompt": "Why is the sky blue?"}}],
                   {"sampling": "Rayleigh scattering"})
    assert text(out[0]) == "LLM response: Rayleigh scattering"
    asked = out[-1]["asked"]
    assert [a["method"] for a in asked] == ["sampling/createMessage"]
    assert asked[0]["params"]["maxTokens"] == 100
    assert asked[0]["params"]["messages"][0]["content"]["text"] \
        == "Why is the sky blue?"


def test_only_declared_capabilities_are_relayed_the_rest_fail_fast(relay):
    """Elicitation and roots declared, sampling not: the upstream hears
    -32601 at once for sampling (not after its 20 s timeout), and the
    client is never asked for it."""
    w, n, fx = relay
    out, took = steps(
        n, [{"call": fx + "__test_elicitation",
             "arguments": {"message": "Who are you?"}},
            {"call": fx + "__test_roots", "arguments": {}},
            {"call": fx + "__test_sampling", "arguments": {"prompt": "x"}}],
        {"elicitation": {"username": "ada", "email": "ada@example.com"},
         "roots": ["file:///work/project"]})
    assert json.loads(text(out[0])[len("User response: "):]) == {
        "action": "accept",
        "content": {"username": "ada", "email": "ada@example.com"}}
    assert text(out[1]) == "Roots: file:///work/project"
    refused = out[2]
    assert "thrown" in refused or refused.get("isError") is True, refused
    assert [a["method"] for a in out[-1]["asked"]] == [
        "elicitation/create", "roots/list"]
    assert out[-1]["asked"][0]["params"]["message"] == "Who are you?"
    assert took < 12, took


class CallStream:
    """A tools/call POST on the worker's socket, read as events arrive."""

    def __init__(self, w, c, msg):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(w.socket_path))
        body = json.dumps(msg)
        h = dict(c.h, **{"Mcp-Session-Id": c.session,
                         "MCP-Protocol-Version": "2025-11-25",
                         "Content-Length": str(len(body))})
        head = "POST /mcp HTTP/1.1\r\nHost: localhost\r\n" + "".join(
            "%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        self.sock.sendall(head.encode() + body.encode())
        self.text = ""

    def read_until(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            data = self.sock.recv(65536)
            if not data:
                return None
            self.text += data.decode(errors="replace")
        return re.search(pattern, self.text)

    def close(self):
        self.sock.close()


def start(w, fx, caps):
    c = Client(w, role="developer")
    r = c.rpc("initialize", {"protocolVersion": "2025-11-25",
                             "capabilities": caps,
                             "clientInfo": {"name": "t", "version": "1"}})
    assert r.status == 200, r.body
    c.session = r.headers["Mcp-Session-Id"]
    st = CallStream(w, c, {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                           "params": {"name": fx + "__test_sampling",
                                      "arguments": {"prompt": "hi"}}})
    return c, st


ASK = r'data: (\{"jsonrpc":"2\.0","id":"(omni-[^"]+)",' \
      r'"method":"sampling/createMessage".*)\n'


def test_an_answer_stored_by_another_replica_reaches_the_call(
        relay, redis_server):
    """The process running the call polls Redis for the answer another
    process (or replica) received; the stored answer is then deleted."""
    w, _, fx = relay
    c, st = start(w, fx, {"sampling": {}})
    try:
        m = st.read_until(ASK, 10)
        assert m, st.text
        ask = json.loads(m.group(1))
        assert ask["params"]["messages"][0]["content"]["text"] == "hi"
        key = "omni:mcp:answer:%s:%s" % (c.session, m.group(2))
        red = redis_server.client()
        red.set(key, "r" + json.dumps({
            "role": "assistant", "model": "m", "stopReason": "endTurn",
            "content": {"type": "text", "text": "from elsewhere"}}), ex=60)
        assert st.read_until("LLM response: from elsewhere", 5), st.text
        assert red.get(key) is None
    finally:
        st.close()


def test_an_answer_posted_to_any_process_reaches_the_call(relay):
    w, _, fx = relay
    c, st = start(w, fx, {"sampling": {}})
    try:
        m = st.read_until(ASK, 10)
        assert m, st.text
        # an id Omni never gave out changes nothing
        r = c.post({"jsonrpc": "2.0", "id": "omni-forged", "result": {
            "role": "assistant", "model": "m",
            "content": {"type": "text", "text": "forged"}}})
        assert r.status == 202, r.body
        r = c.post({"jsonrpc": "2.0", "id": m.group(2), "result": {
            "role": "assistant", "model": "m",
            "content": {"type": "text", "text": "posted"}}})
        assert r.status == 202, r.body
        done = st.read_until(r'"id":7,"result".*\n', 5)
        assert done, st.text
        msgs = [json.loads(x) for x in re.findall(r"data: (.*)\n", st.text)]
        assert msgs[-1]["result"]["content"][0]["text"] \
            == "LLM response: posted"
        assert "forged" not in st.text
    finally:
        st.close()


def test_a_client_leaving_while_asked_cancels_the_upstream_call(relay):
    w, _, fx = relay
    c, st = start(w, fx, {"sampling": {}})
    try:
        assert st.read_until(ASK, 10), st.text
    finally:
        st.close()
    t0 = time.time() * 1000
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with urllib.request.urlopen("http://127.0.0.1:%d/ctl/cancelled"
                                    % UPSTREAM["port"], timeout=5) as r:
            at = json.loads(r.read())["cancelled_at"]
        if at >= t0 - 50:
            break
        time.sleep(0.05)
    assert at >= t0 - 50, (at, t0)
    assert at - t0 < 1000, at - t0


def test_a_client_without_the_capability_is_never_asked(relay):
    w, _, fx = relay
    c, st = start(w, fx, {})
    try:
        t = time.monotonic()
        done = st.read_until(r'"id":7,"error":\{"code":-32601', 10)
        assert done, st.text
        assert time.monotonic() - t < 5
        assert "sampling/createMessage" not in st.text
        assert "LLM response" not in st.text
    finally:
        st.close()


class Scoped(Client):
    """A client of /mcp/<server>."""

    def __init__(self, w, path):
        super().__init__(w, role="developer")
        self.path = path

    def post(self, msg, headers=None, raw=None):
        h = dict(self.h)
        if self.session:
            h["Mcp-Session-Id"] = self.session
            h["MCP-Protocol-Version"] = "2025-11-25"
        h.update(headers or {})
        return self.w.request("POST", self.path, h, json.dumps(msg),
                              timeout=30)


def touch(up_port, uri):
    import urllib.parse
    import urllib.request
    req = urllib.request.Request(
        "http://127.0.0.1:%d/ctl/touch?uri=%s"
        % (up_port, urllib.parse.quote(uri)), data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())["sent"]


def test_a_subscribed_resources_updates_reach_the_sessions_stream(relay):
    """resources/subscribe on /mcp/<server> is forwarded upstream and kept
    per session; the upstream's notifications/resources/updated (on the
    GET stream Omni opens to it) reaches the subscribed session's GET
    stream only, until it unsubscribes."""
    from test_mcp_endpoint import Stream
    w, _, fx = relay
    uri = "test://watched-resource"
    c = Scoped(w, "/mcp/" + fx)
    init = c.initialize()
    assert init["capabilities"]["resources"]["subscribe"] is True
    other = Scoped(w, "/mcp/" + fx)
    other.initialize()
    r = c.rpc("resources/subscribe", {"uri": uri})
    assert r.status == 200 and r.json()["result"] == {}, r.body
    st, st_other = Stream(w, c), Stream(w, other)
    port = UPSTREAM["port"]
    try:
        assert st.read_until("stream open", 5), st.text
        assert st_other.read_until("stream open", 5), st_other.text
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            touch(port, uri)
            if st.read_until("notifications/resources/updated", 0.3):
                break
        msgs = [json.loads(x) for x in re.findall(r"data: (.*)\n", st.text)]
        assert {"jsonrpc": "2.0", "method": "notifications/resources/updated",
                "params": {"uri": uri}} in msgs, st.text
        assert not st_other.read_until("resources/updated", 1.0)
        r = c.rpc("resources/unsubscribe", {"uri": uri})
        assert r.status == 200 and r.json()["result"] == {}, r.body
        seen = st.text.count("resources/updated")
        for _ in range(4):
            touch(port, uri)
            time.sleep(0.3)
        st.read_until("never sent", 0.5)
        assert st.text.count("resources/updated") == seen, st.text
    finally:
        st.close()
        st_other.close()


def test_subscriptions_need_a_legacy_session_of_one_server(relay):
    w, _, fx = relay
    c = Client(w, role="developer")
    c.initialize()
    r = c.rpc("resources/subscribe", {"uri": "test://watched-resource"})
    assert r.json()["error"]["code"] == -32601, r.body
    c = Scoped(w, "/mcp/" + fx)
    c.initialize()
    r = c.rpc("resources/subscribe", {})
    assert r.json()["error"]["code"] == -32602, r.body
    assert "params.uri" in r.json()["error"]["message"]


def test_list_changed_goes_only_to_sessions_whose_list_changed(relay):
    """A server only admins may use appears: an admin's session is told,
    a user's (whose tools/list is the same as before) is not."""
    from test_mcp_endpoint import Stream
    w, _, fx = relay
    # servers other modules left in the shared database (their upstreams
    # stopped) would be found down by a probe during the test, changing
    # the user's list too: they go first, before the streams open
    left = [s for s in call(w, "GET", SERVERS + "?limit=500").json()["items"]
            if s["name"] != fx]
    for s in left:
        assert call(w, "DELETE", SERVERS + "/" + s["id"]).status == 204
    if left:
        time.sleep(1.5)     # every process has heard (SPEC: within 1 s)
    admin, user = Client(w, role="admin"), Client(w, role="user")
    admin.initialize()
    user.initialize()
    before = user.tools()
    sa, su = Stream(w, admin), Stream(w, user)
    try:
        assert sa.read_until("stream open", 5), sa.text
        assert su.read_until("stream open", 5), su.text
        time.sleep(0.5)
        r = call(w, "POST", SERVERS, {"name": unique("adm"),
                                      "url": UPSTREAM["url"],
                                      "roles": ["admin"],
                                      "timeout_ms": 20000})
        assert r.status == 201, r.body
        r = call(w, "POST", SERVERS + "/" + r.json()["id"] + "/health")
        assert r.status == 200 and r.json()["ok"], r.body
        assert sa.read_until("notifications/tools/list_changed", 5), sa.text
        assert not su.read_until("list_changed", 1.5), su.text
        assert user.tools() == before
    finally:
        sa.close()
        su.close()
