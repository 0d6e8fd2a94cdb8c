"""/mcp on the worker (identity headers as the gateway sends them): both
protocol generations, sessions any process serves, the aggregated and
filtered tool list with signed cursors, calls, and the refusals."""

import json
import re
import select
import socket
import threading
import time

import pytest

import stack
from mcp_support import Upstream, call, key_file, mcp_stack, unique, who

SERVERS = "/api/v1/mcp/servers"
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MODERN = "2026-07-28"


@pytest.fixture(scope="module")
def redis(redis_server):
    return redis_server.client()


@pytest.fixture(scope="module")
def mcp_worker(migrated, redis_server):
    with mcp_stack(migrated, redis_server, env={
            "OMNI_MCP_ALLOWED_ORIGINS": "https://ide.example"}) as w:
        yield w


@pytest.fixture(scope="module")
def everything():
    u = Upstream("everything").start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def modern():
    u = Upstream("modern.cjs").start()
    yield u
    u.stop()


def register(w, upstream, **fields):
    body = {"name": unique(), "url": upstream.url, "timeout_ms": 5000}
    body.update(fields)
    r = call(w, "POST", SERVERS, body)
    assert r.status == 201, r.body
    s = r.json()
    r = call(w, "POST", SERVERS + "/" + s["id"] + "/health")
    assert r.status == 200 and r.json()["ok"], r.body
    return s


@pytest.fixture(scope="module")
def servers(mcp_worker, everything, modern):
    """server-everything open to every role; the modern fixture for
    developers only, its count tool for admins only."""
    return {
        "everything": register(mcp_worker, everything),
        "modern": register(mcp_worker, modern, roles=["developer"],
                           tool_roles={"count": ["admin"]}),
    }


class Client:
    """One caller speaking to /mcp: a user id and role kept across
    requests (a session belongs to its user)."""

    def __init__(self, w, role="user"):
        self.w = w
        self.h = who(role)
        self.h["Accept"] = "application/json, text/event-stream"
        self.session = None
        self.next_id = 1

    def post(self, msg, headers=None, raw=None):
        h = dict(self.h)
        if self.session:
            h["Mcp-Session-Id"] = self.session
            h["MCP-Protocol-Version"] = "2025-11-25"
        h.update(headers or {})
        body = raw if raw is not None else json.dumps(msg)
        return self.w.request("POST", "/mcp", h, body, timeout=30)

    def rpc(self, method, params=None, headers=None):
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        self.next_id += 1
        if params is not None:
            msg["params"] = params
        return self.post(msg, headers)

    def initialize(self, version="2025-11-25"):
        r = self.rpc("initialize", {"protocolVersion": version,
                                    "capabilities": {},
                                    "clientInfo": {"name": "t",
                                                   "version": "1"}})
        assert r.status == 200, r.body
        self.session = r.headers["Mcp-Session-Id"]
        assert self.post({"jsonrpc": "2.0",
                          "method": "notifications/initialized"}).status \
            == 202
        return r.json()["result"]

    def modern(self, method, params=None, name=None, headers=None):
        p = dict(params or {})
        p["_meta"] = {"io.modelcontextprotocol/protocolVersion": MODERN,
                      "io.modelcontextprotocol/clientCapabilities": {}}
        h = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
        if name is not None:
            h["Mcp-Name"] = name
        h.update(headers or {})
        return self.rpc(method, p, h)

    def tools(self):
        names, cursor = [], None
        while True:
            r = self.rpc("tools/list", {"cursor": cursor} if cursor else {})
            assert r.status == 200, r.body
            res = r.json()["result"]
            names += [t["name"] for t in res["tools"]]
            cursor = res.get("nextCursor")
            if not cursor:
                return names


def events(resp):
    """The JSON-RPC messages of an SSE body (or of a JSON one)."""
    if resp.headers.get("Content-Type", "").startswith("application/json"):
        return [resp.json()]
    out = []
    for block in resp.text.split("\n\n"):
        data = [ln[5:].strip() for ln in block.split("\n")
                if ln.startswith("data:")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out


def test_legacy_session_lists_both_servers_tools_and_calls_one(
        mcp_worker, servers):
    c = Client(mcp_worker, role="developer")
    init = c.initialize()
    assert init["protocolVersion"] == "2025-11-25"
    assert "tools" in init["capabilities"]
    names = c.tools()
    ev = servers["everything"]["name"]
    mo = servers["modern"]["name"]
    assert ev + "__echo" in names and mo + "__echo" in names
    # count is admin-only: never listed for a developer
    assert mo + "__count" not in names
    assert all(NAME_RE.match(n) for n in names)
    assert len(names) == len(set(names))
    r = c.rpc("tools/call", {"name": ev + "__echo",
                             "arguments": {"message": "through omni"}})
    assert r.status == 200, r.body
    assert "through omni" in r.json()["result"]["content"][0]["text"]
    r = c.rpc("tools/call", {"name": mo + "__echo",
                             "arguments": {"text": "modern"}})
    assert r.json()["result"]["content"][0]["text"] == "Echo: modern"


def test_a_role_without_access_sees_none_of_a_servers_tools(
        mcp_worker, servers):
    c = Client(mcp_worker, role="user")
    c.initialize()
    mo = servers["modern"]["name"]
    names = c.tools()
    assert servers["everything"]["name"] + "__echo" in names
    assert not [n for n in names if n.startswith(mo + "__")]
    r = c.rpc("tools/call", {"name": mo + "__echo",
                             "arguments": {"text": "x"}})
    assert r.status == 200
    assert r.json()["error"]["code"] == -32602
    # a developer may use the server but not its admin-only tool
    d = Client(mcp_worker, role="developer")
    d.initialize()
    r = d.rpc("tools/call", {"name": mo + "__count"})
    assert r.json()["error"]["code"] == -32602


def test_a_sessions_next_call_meets_a_role_taken_away(mcp_worker, modern):
    """The generation a call's kept row depends on is read with the
    session: a role taken away refuses the session's very next call on
    either process, and given back, the next call passes."""
    s = register(mcp_worker, modern, roles=["user"])
    path = SERVERS + "/" + s["id"]
    c = Client(mcp_worker, role="user")
    c.initialize()
    tool = {"name": s["name"] + "__echo", "arguments": {"text": "x"}}
    try:
        for roles, ok in ((["user"], True), (["admin"], False),
                          (["user"], True)):
            r = call(mcp_worker, "PATCH", path, {"roles": roles})
            assert r.status == 200, r.body
            for _ in range(6):      # both processes, rows warm after one
                msg = c.rpc("tools/call", tool).json()
                assert ("result" in msg) == ok, msg
                if not ok:
                    assert msg["error"]["code"] == -32602, msg
    finally:
        call(mcp_worker, "DELETE", path)


def test_any_process_serves_a_session_and_delete_ends_it(mcp_worker,
                                                         servers):
    c = Client(mcp_worker)
    c.initialize()
    # new connections each time: the worker's processes take turns
    for _ in range(6):
        r = c.rpc("ping")
        assert r.status == 200 and r.json()["result"] == {}, r.body
    h = dict(c.h, **{"Mcp-Session-Id": c.session})
    assert mcp_worker.request("DELETE", "/mcp", h).status == 204
    r = c.rpc("ping")
    assert r.status == 404, r.body
    assert mcp_worker.request("DELETE", "/mcp", h).status == 404


def test_a_session_belongs_to_its_user(mcp_worker, servers):
    c = Client(mcp_worker)
    c.initialize()
    thief = Client(mcp_worker)
    thief.session = c.session
    assert thief.rpc("ping").status == 404


def test_requests_without_a_session_or_with_a_bad_version_get_400(
        mcp_worker, servers):
    c = Client(mcp_worker)
    r = c.rpc("tools/list")
    assert r.status == 400
    assert r.json()["error"]["code"] == -32600
    c.initialize()
    r = c.rpc("ping", headers={"MCP-Protocol-Version": "2024-01-01"})
    assert r.status == 400, r.body
    err = r.json()["error"]
    assert "2025-11-25" in err["data"]["supported"]
    assert MODERN in err["data"]["supported"]
    assert err["data"]["requested"] == "2024-01-01"


def test_modern_requests_are_stateless_and_headers_must_agree(
        mcp_worker, servers):
    c = Client(mcp_worker, role="developer")
    r = c.modern("server/discover")
    assert r.status == 200, r.body
    res = r.json()["result"]
    assert MODERN in res["supportedVersions"]
    assert "Mcp-Session-Id" not in r.headers
    mo = servers["modern"]["name"]
    r = c.modern("tools/call", {"name": mo + "__echo",
                                "arguments": {"text": "m"}},
                 name=mo + "__echo")
    assert r.status == 200, r.body
    assert r.json()["result"]["content"][0]["text"] == "Echo: m"
    # Mcp-Name disagreeing with the body
    r = c.modern("tools/call", {"name": mo + "__echo",
                                "arguments": {"text": "m"}},
                 name=servers["everything"]["name"] + "__echo")
    assert r.status == 400, r.body
    assert "HeaderMismatch" in r.json()["error"]["message"]
    # Mcp-Method disagreeing with the body
    r = c.modern("tools/list", headers={"Mcp-Method": "ping"})
    assert r.status == 400
    assert "HeaderMismatch" in r.json()["error"]["message"]
    # Mcp-Method missing
    msg = {"jsonrpc": "2.0", "id": 9, "method": "tools/list",
           "params": {"_meta": {
               "io.modelcontextprotocol/protocolVersion": MODERN}}}
    r = c.post(msg, {"MCP-Protocol-Version": MODERN})
    assert r.status == 400


def test_a_forged_or_tampered_cursor_is_refused(mcp_worker, servers):
    c = Client(mcp_worker)
    c.initialize()
    for cursor in ("abc", "00000000" + "0" * 32, "x" * 40):
        r = c.rpc("tools/list", {"cursor": cursor})
        assert r.status == 200
        assert r.json()["error"]["code"] == -32602, r.body


def test_a_batch_is_refused_with_a_json_rpc_error(mcp_worker, servers):
    c = Client(mcp_worker)
    c.initialize()
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "ping"},
             {"jsonrpc": "2.0", "id": 2, "method": "ping"}]
    r = c.post(None, raw=json.dumps(batch))
    assert r.status == 400
    body = r.json()
    assert isinstance(body, dict) and body["error"]["code"] == -32600
    assert "batch" in body["error"]["message"]


def test_a_foreign_origin_is_refused_and_allowed_ones_pass(mcp_worker,
                                                          servers):
    c = Client(mcp_worker)
    r = c.rpc("ping", headers={"Origin": "https://evil.example"})
    assert r.status == 403
    c.initialize()
    r = c.rpc("ping", headers={"Origin": "https://ide.example"})
    assert r.status == 200, r.body
    r = c.rpc("ping", headers={"Origin": "http://127.0.0.1:8080",
                               "Host": "127.0.0.1:8080"})
    assert r.status == 200, r.body
    # DNS rebinding: a foreign name in both Host and Origin
    r = c.rpc("ping", headers={"Origin": "http://evil.example:8080",
                               "Host": "evil.example:8080"})
    assert r.status == 403


def test_an_oversized_body_and_bad_json_are_refused(mcp_worker, servers):
    c = Client(mcp_worker)
    c.initialize()
    r = c.post(None, raw="{not json")
    assert r.status == 400 and r.json()["error"]["code"] == -32700
    r = c.post(None, raw='{"jsonrpc":"1.0","id":1,"method":"ping"}')
    assert r.status == 400 and r.json()["error"]["code"] == -32600


def test_progress_is_relayed_with_the_clients_token(mcp_worker, servers):
    c = Client(mcp_worker)
    c.initialize()
    ev = servers["everything"]["name"]
    names = c.tools()
    tool = next(n for n in names if n.startswith(ev + "__")
                and "long" in n.lower())
    r = c.rpc("tools/call", {"name": tool,
                             "arguments": {"duration": 1, "steps": 3},
                             "_meta": {"progressToken": "tok-1"}})
    assert r.status == 200, r.body
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert r.headers["X-Accel-Buffering"] == "no"
    msgs = events(r)
    progress = [m for m in msgs
                if m.get("method") == "notifications/progress"]
    assert len(progress) >= 2
    assert all(m["params"]["progressToken"] == "tok-1" for m in progress)
    assert msgs[-1]["id"] == c.next_id - 1 and "result" in msgs[-1]


def test_notifications_cancelled_stops_a_long_call_quickly(mcp_worker,
                                                           servers):
    c = Client(mcp_worker)
    c.initialize()
    ev = servers["everything"]["name"]
    tool = next(n for n in c.tools() if n.startswith(ev + "__")
                and "long" in n.lower())
    call_id = c.next_id
    out = {}

    def long_call():
        t = time.monotonic()
        out["r"] = c.rpc("tools/call", {
            "name": tool, "arguments": {"duration": 20, "steps": 20},
            "_meta": {"progressToken": 5}})
        out["took"] = time.monotonic() - t

    th = threading.Thread(target=long_call)
    th.start()
    time.sleep(1.0)
    t0 = time.monotonic()
    r = c.post({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": call_id, "reason": "bored"}})
    assert r.status == 202
    th.join(10)
    assert not th.is_alive()
    assert time.monotonic() - t0 < 2.0
    msgs = events(out["r"])
    assert not [m for m in msgs if m.get("id") == call_id]


def test_a_cancellation_stored_by_another_replica_stops_the_call(
        mcp_worker, servers, redis):
    """The process running the call finds the cancellation another process
    (or replica) stored in Redis: polled every 25 ms."""
    c = Client(mcp_worker)
    c.initialize()
    ev = servers["everything"]["name"]
    tool = next(n for n in c.tools() if n.startswith(ev + "__")
                and "long" in n.lower())
    call_id = c.next_id
    out = {}

    def long_call():
        out["r"] = c.rpc("tools/call", {
            "name": tool, "arguments": {"duration": 20, "steps": 20}})

    th = threading.Thread(target=long_call)
    th.start()
    time.sleep(1.0)
    t0 = time.monotonic()
    redis.set("omni:mcp:cancel:%s:%d" % (c.session, call_id), "1", ex=60)
    th.join(10)
    assert not th.is_alive()
    assert time.monotonic() - t0 < 1.0
    assert not [m for m in events(out["r"]) if m.get("id") == call_id]


class Stream:
    """A GET /mcp on a raw socket, read as bytes arrive."""

    def __init__(self, w, c):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(w.socket_path))
        h = dict(c.h, **{"Mcp-Session-Id": c.session or "",
                         "MCP-Protocol-Version": "2025-11-25",
                         "Accept": "text/event-stream"})
        h.pop("Content-Type", None)
        head = "GET /mcp HTTP/1.1\r\nHost: localhost\r\n" + "".join(
            "%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        self.sock.sendall(head.encode())
        self.text = ""

    def _more(self, deadline):
        """Reads what arrives before deadline: False at it or at EOF."""
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.sock], [], [], left)[0]:
            return False
        data = self.sock.recv(65536)
        if not data:
            return False
        self.text += data.decode(errors="replace")
        return True

    def read_until(self, text, timeout):
        """True once text has arrived; False at the deadline or EOF."""
        return self.read_count(text, 1, timeout)

    def read_count(self, text, n, timeout):
        """True once text has arrived n times; False at the deadline or
        EOF."""
        deadline = time.monotonic() + timeout
        while self.text.count(text) < n:
            if not self._more(deadline):
                return False
        return True

    def close(self):
        self.sock.close()


def test_the_session_stream_says_list_changed_when_the_catalog_changes(
        mcp_worker, servers, modern):
    c = Client(mcp_worker)
    init = c.initialize()
    assert init["capabilities"]["tools"]["listChanged"] is True
    st = Stream(mcp_worker, c)
    try:
        assert st.read_until("stream open", 5), st.text
        assert st.text.startswith("HTTP/1.1 200")
        assert "Content-Type: text/event-stream" in st.text
        # nothing changed: no notification
        assert not st.read_until("list_changed", 1.5)
        register(mcp_worker, modern)
        assert st.read_until("notifications/tools/list_changed", 5), st.text
    finally:
        st.close()


def test_the_stream_says_list_changed_when_an_upstream_adds_or_drops_a_tool(
        mcp_worker, servers):
    """No breaker moves and nothing is quarantined: the upstream lists one
    tool more, then one less, and a probe stores it."""
    legacy = Upstream("legacy.cjs").start()
    s = register(mcp_worker, legacy, roles=["user"])
    c = Client(mcp_worker)
    c.initialize()
    st = Stream(mcp_worker, c)
    try:
        assert st.read_until("stream open", 5), st.text
        assert not st.read_until("list_changed", 1.5), st.text
        extra = s["name"] + "__extra"
        assert extra not in c.tools()
        for on, told in (("1", 1), ("0", 2)):
            legacy.ctl("extra?on=" + on)
            r = call(mcp_worker, "POST", SERVERS + "/" + s["id"] + "/health")
            assert r.status == 200 and r.json()["ok"], r.body
            assert st.read_count("notifications/tools/list_changed", told,
                                 5), st.text
            assert (extra in c.tools()) == (on == "1")
    finally:
        st.close()
        call(mcp_worker, "DELETE", SERVERS + "/" + s["id"])
        legacy.stop()


def test_the_stream_needs_a_session_and_ends_with_it(mcp_worker, servers):
    c = Client(mcp_worker)
    r = mcp_worker.request("GET", "/mcp", dict(c.h, Accept="text/event-stream"))
    assert r.status == 405
    c.initialize()
    st = Stream(mcp_worker, c)
    try:
        assert st.read_until("stream open", 5), st.text
        # DELETE reaches this process or the other one; either way the
        # session is gone for good
        h = dict(c.h, **{"Mcp-Session-Id": c.session})
        assert mcp_worker.request("DELETE", "/mcp", h).status == 204
        again = Stream(mcp_worker, c)
        assert again.read_until("\r\n", 5)
        assert again.text.startswith("HTTP/1.1 404"), again.text
        again.close()
    finally:
        st.close()


def test_unknown_methods_get_method_not_found(mcp_worker, servers):
    c = Client(mcp_worker)
    c.initialize()
    r = c.rpc("resources/list")
    assert r.status == 200 and r.json()["error"]["code"] == -32601


def test_an_open_stream_does_not_hold_a_stopping_worker(worker_factory):
    d = stack.make_tmpdir("omni-test-mcp-drain-")
    w = worker_factory(env={"OMNI_MCP_SECRET_KEY_FILE": key_file(d)})
    c = Client(w)
    c.initialize()
    st = Stream(w, c)
    try:
        assert st.read_until("stream open", 5), st.text
        t = time.monotonic()
        assert w.stop() == 0
        assert time.monotonic() - t < 3.0
        # the stream was ended (the chunked body's last chunk), not cut
        assert st.read_until("0\r\n\r\n", 2), st.text[-200:]
    finally:
        st.close()


def test_a_call_waiting_for_a_session_opens_one_when_the_opener_is_cancelled(
        migrated, redis_server):
    """A worker process opens one upstream session at a time: a second
    call waits for the first one's initialize. When that first call is
    cancelled while its initialize hangs, the waiting call opens a session
    itself and is answered, long before its own deadline."""
    legacy = Upstream("legacy.cjs").start()
    try:
        with mcp_stack(migrated, redis_server,
                       env={"OMNI_WORKERS": "1"}) as w:
            s = register(w, legacy, timeout_ms=10000, health={
                "interval_ms": 3600000, "failure_threshold": 100})
            # the registration's background probe (a ping, as the manual
            # one) is over: none comes again within the test, to open the
            # session instead of the first call
            stack.wait_until(lambda: legacy.ctl("count")["pings"] >= 2, 10,
                             "the registration's background probe")
            legacy.stop()   # the process's session dies with it
            legacy.start()
            legacy.ctl("init?mode=stall")
            c = Client(w)
            c.initialize()
            echo = s["name"] + "__echo"
            first, out = c.next_id, {}

            def call(key, text):
                out[key] = c.rpc("tools/call", {"name": echo,
                                                "arguments": {"text": text}})
                out[key + "_at"] = time.monotonic()

            a = threading.Thread(target=call, args=("a", "first"))
            a.start()
            stack.wait_until(lambda: legacy.ctl("count")["inits"] == 1, 10,
                             "the first call's initialize")
            b = threading.Thread(target=call, args=("b", "second"))
            b.start()
            time.sleep(0.5)
            assert legacy.ctl("count")["inits"] == 1, "the second did not wait"
            legacy.ctl("init?mode=ok")
            t0 = time.monotonic()
            r = c.post({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": first, "reason": "bored"}})
            assert r.status == 202
            b.join(5)
            a.join(5)
            assert not a.is_alive() and not b.is_alive()
            assert out["b"].status == 200, out["b"].body
            msgs = events(out["b"])
            assert "second" in json.dumps(msgs[-1]["result"]), msgs
            assert out["b_at"] - t0 < 2.0
            assert legacy.ctl("count")["inits"] == 2
    finally:
        legacy.stop()
