"""Redis in the gateway (SPEC 4, 5): GCRA limits, revocation and API keys
in one script call per request (FCALL of the limit library, EVALSHA
where Redis has no functions), and what happens when Redis fails."""

import hashlib
import json
import os
import signal
import subprocess
import time

import pytest

import limit_support
import stack

SECRET = b"limits-test-secret-of-at-least-32-bytes!"

# Locations proxy to /echo/: "return" runs in nginx's rewrite phase,
# before any access check, as it does with auth_request or auth_basic.
CONF = """
load_module {module};
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 512; }}
http {{
    {preamble}
    omni_redis {redis} password={redis_password} timeout=200ms;
    omni_jwt_key file={prefix}/hs.secret alg=HS256;
    omni_limit_zone per_user rate=10r/m burst=4;
    omni_limit_zone per_ip rate=1r/s burst=2 key=$remote_addr;
    omni_limit_zone wide rate=100r/s burst=50;
    omni_limit_zone slow rate=1r/m burst=2 key=$remote_addr;
    omni_limit_zone shared rate=1r/m burst=99;
    omni_limit_zone slow2 rate=1r/m burst=2 key=$remote_addr;
    omni_limit_zone hdr rate=1r/m burst=1 key=$http_x_client;
    server {{
        listen 127.0.0.1:{port};
        default_type application/json;

        location = /omni/metrics {{ omni_metrics; }}

        location /one/ {{
            omni_auth jwt;
            omni_limit zone=per_user;
            add_header X-Omni-Remaining $omni_limit_remaining;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /two/ {{
            omni_auth jwt;
            omni_limit zone=per_user;
            omni_limit zone=per_ip;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /cost/ {{
            omni_auth jwt;
            omni_limit zone=per_user cost=3;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /nolimit/ {{
            omni_auth jwt;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /apikey/ {{
            omni_auth jwt apikey;
            omni_limit zone=wide;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /echo/ {{
            omni_auth off;
            return 200 '{{"id":"$http_x_user_id","name":"$http_x_user_username","role":"$http_x_user_role"}}';
        }}
        location /closed/ {{
            omni_auth jwt;
            omni_redis_fail closed;
            omni_limit zone=wide;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /open/ {{
            omni_auth jwt;
            omni_redis_fail open;
            omni_limit zone=wide;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /local1/ {{
            omni_auth jwt;
            omni_redis_fail local;
            omni_limit zone=slow;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /local2/ {{
            omni_auth jwt;
            omni_redis_fail local nodes=2;
            omni_limit zone=slow2;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /shared/ {{
            omni_auth jwt;
            omni_limit zone=shared;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /anon/ {{
            omni_auth off;
            omni_limit zone=per_ip;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /hdr/ {{
            omni_auth jwt apikey;
            omni_limit zone=hdr;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /hdr-anon/ {{
            omni_auth off;
            omni_limit zone=hdr;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
    }}
}}
"""


def token(sub="user-1", jti=None, role="user", lifetime=300):
    import jwt
    now = int(time.time())
    claims = {"sub": sub, "role": role, "iat": now, "exp": now + lifetime,
              "preferred_username": sub}
    if jti:
        claims["jti"] = jti
    return jwt.encode(claims, SECRET, algorithm="HS256")


class Gateway(stack.NginxConf):
    def __init__(self, redis_addr):
        super().__init__(CONF, "limits", redis=redis_addr)
        (self.prefix / "hs.secret").write_bytes(SECRET)
        self.start("/omni/metrics")

    def bearer(self, path, tok, extra=None):
        h = {"Authorization": "Bearer " + tok}
        h.update(extra or {})
        return self.get(path, h)


@pytest.fixture
def own_redis():
    server = stack.Redis()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def gw(own_redis):
    g = Gateway(own_redis.addr)
    try:
        stack.wait_until(lambda: g.bearer("/nolimit/", token())[0] == 200, 5,
                         "gateway ready")
        yield g
    finally:
        g.destroy()


def test_limit_admits_burst_plus_one_then_429_with_retry_after(gw):
    tok = token("burst-user")
    statuses = [gw.bearer("/one/", tok)[0] for _ in range(5)]
    assert statuses == [200] * 5
    status, headers, body = gw.bearer("/one/", tok)
    assert status == 429
    assert json.loads(body)["error"] == "rate_limited"
    # 10r/m: the next request is allowed within 6 s of the last one
    assert 1 <= int(headers["Retry-After"]) <= 6
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Limit"] == "5"
    assert headers["RateLimit-Policy"] == "5;w=30"
    assert "WWW-Authenticate" not in headers


def test_successful_responses_carry_rate_limit_headers(gw):
    status, headers, body = gw.bearer("/one/", token("hdr-user"))
    assert status == 200
    assert headers["X-RateLimit-Limit"] == "5"
    assert headers["X-RateLimit-Remaining"] == "4"
    assert headers["RateLimit"].startswith("limit=5, remaining=4, reset=")
    assert headers["X-Omni-Remaining"] == "4"


def test_limits_are_per_user(gw):
    for _ in range(5):
        gw.bearer("/one/", token("alice"))
    assert gw.bearer("/one/", token("alice"))[0] == 429
    assert gw.bearer("/one/", token("bob"))[0] == 200


def test_cost_spends_several_units(gw):
    tok = token("cost-user")
    assert gw.bearer("/cost/", tok)[0] == 200      # 3 of 5
    assert gw.bearer("/cost/", tok)[0] == 429      # 3 more do not fit


def _monitor(redis_server, action):
    """Runs action() while MONITOR records what clients (not scripts)
    send; returns those commands' names."""
    import threading
    seen, ready = [], threading.Event()
    client = redis_server.client()
    # connected (and its AUTH sent) before MONITOR starts
    stopper = redis_server.client()
    stopper.ping()

    def watch():
        with client.monitor() as m:
            ready.set()
            for cmd in m.listen():
                if cmd["command"] == "PING stop":
                    return
                if cmd.get("client_type") != "lua":
                    seen.append(cmd["command"].split()[0].upper())

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    ready.wait(5)
    time.sleep(0.1)
    action()
    stopper.execute_command("PING", "stop")
    t.join(5)
    return seen


def test_several_limits_are_checked_in_one_call(gw, own_redis):
    tok = token("multi-user")
    statuses = []

    def four():
        for _ in range(4):
            statuses.append(gw.bearer("/two/", tok)[0])

    seen = _monitor(own_redis, four)
    # the per-ip zone (burst 2) denies the 4th; per_user would allow it
    assert statuses == [200, 200, 200, 429]
    # exactly one command per request, both limits inside it
    assert [c for c in seen if c != "PING"] == ["FCALL"] * 4, seen


def _together(gw, raws):
    """Sends each raw request on a connection of its own while the one
    nginx worker is stopped, so that they arrive together however loaded
    the machine is (a paced sender made this flaky); returns each answer,
    read to the end (the requests say Connection: close)."""
    import socket
    socks = [socket.create_connection(("127.0.0.1", gw.port), timeout=10)
             for _ in raws]
    [worker] = stack.children_of(gw.proc.pid)
    time.sleep(0.2)     # every connection accepted before the stop
    os.kill(worker, signal.SIGSTOP)
    try:
        for s, raw in zip(socks, raws):
            s.sendall(raw)
    finally:
        os.kill(worker, signal.SIGCONT)
    answers = []
    for s in socks:
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        answers.append(data)
    return answers


def test_concurrent_requests_share_script_calls_and_decide_exactly(
        gw, own_redis):
    """40 requests arriving together at the one worker (_together()):
    fewer script calls than requests, and the limit (burst 4) admits
    exactly 5 of them. They are identical, so they go as one group that Redis answers once: each
    still gets its own decision, as 40 calls one after the other would
    give it (remaining 4, 3, 2, 1, 0, then the same wait for each)."""
    tok = token("together-user")
    raw = ("GET /one/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           "Authorization: Bearer %s\r\n\r\n" % tok).encode()
    c = own_redis.client()
    c.config_resetstat()
    statuses, remaining, retry = [], [], set()
    for data in _together(gw, [raw] * 40):
        statuses.append(int(data.split(b" ", 2)[1]))
        head = data.split(b"\r\n\r\n", 1)[0].decode().lower()
        fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:])
        if statuses[-1] == 200:
            remaining.append(int(fields["x-ratelimit-remaining"]))
        else:
            assert fields["x-ratelimit-remaining"] == "0"
            retry.add(fields["retry-after"])
    assert sorted(statuses) == [200] * 5 + [429] * 35
    assert sorted(remaining) == [0, 1, 2, 3, 4]
    # 10r/m: the sixth waits for the first unit back, 6 s at most
    assert len(retry) == 1 and 1 <= int(retry.pop()) <= 6
    calls = c.info("commandstats")["cmdstat_fcall"]["calls"]
    # arrived in one pass: one batch (two when a pass splits them)
    assert calls <= 4, calls


def test_requests_without_limits_or_jti_do_not_touch_redis(gw, own_redis):
    def five():
        for _ in range(5):
            assert gw.bearer("/nolimit/", token("quiet-user"))[0] == 200

    assert [c for c in _monitor(own_redis, five) if c != "PING"] == []


def test_revoked_jti_gets_401_token_revoked(gw, own_redis):
    own_redis.client().set("omni:revoked:jti-123", "1", ex=60)
    status, headers, body = gw.bearer("/nolimit/", token(jti="jti-123"))
    assert status == 401
    assert json.loads(body)["error"] == "token_revoked"
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert gw.bearer("/nolimit/", token(jti="jti-456"))[0] == 200


def test_concurrent_revocation_checks_go_to_redis_in_one_write(
        gw, own_redis):
    """40 requests with a jti and no limit arriving together
    (_together()): each is still checked on its
    own (one EXISTS each, a revoked jti refused among them), but the pass
    writes their checks at its end, together, so Redis reads them in a
    few reads, not 40. One write per request cost Redis a wake-up each:
    6 µs a request in the gateway bench, 1.6 µs since."""
    c = own_redis.client()
    for i in range(0, 40, 8):
        c.set("omni:revoked:tg-%d" % i, "1", ex=60)
    raws = [("GET /nolimit/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
             "Authorization: Bearer %s\r\n\r\n"
             % token("tg-user", jti="tg-%d" % i)).encode()
            for i in range(40)]
    c.config_resetstat()
    reads = c.info("stats")["total_reads_processed"]
    statuses = [int(data.split(b" ", 2)[1]) for data in _together(gw, raws)]
    reads = c.info("stats")["total_reads_processed"] - reads
    assert statuses == [401 if i % 8 == 0 else 200 for i in range(40)]
    assert c.info("commandstats")["cmdstat_exists"]["calls"] == 40
    # the 40 EXISTS in one write (two if a pass splits them), plus the
    # INFO and CONFIG calls of this test
    assert reads <= 6, reads


BATCH_LUA = (stack.REPO / "ngx_omni_module" / "omni_limit_batch.lua"
             ).read_bytes()
LIBRARY = limit_support.function_name(BATCH_LUA)


def _libraries(c):
    """FUNCTION LIST as {library: [its functions]} (RESP2's flat pairs)."""
    out = {}
    for flat in c.function_list():
        lib = dict(zip(flat[::2], flat[1::2]))
        out[lib[b"library_name"].decode()] = [
            dict(zip(f[::2], f[1::2]))[b"name"].decode()
            for f in lib[b"functions"]]
    return out


def _calls(c, command):
    return c.info("commandstats").get("cmdstat_" + command,
                                      {}).get("calls", 0)


def _decided_by(gw, c, user, command):
    """Six requests of a fresh user on /one/ (burst 4): five pass and
    the sixth is refused, each decided by one call of `command`, no
    other script command used."""
    c.config_resetstat()
    tok = token(user)
    assert [gw.bearer("/one/", tok)[0] for _ in range(6)] == \
        [200] * 5 + [429]
    assert {cmd: _calls(c, cmd) for cmd in ("fcall", "evalsha", "eval")} \
        == {"fcall": 0, "evalsha": 0, "eval": 0, command: 6}


def test_the_limit_script_is_a_function_library_called_by_fcall(
        gw, own_redis):
    """Loaded once per connection as omni_limit_<its text's hash> (two
    gateway versions sharing a Redis call each their own), then called
    by FCALL: nothing of the script is built again per call."""
    c = own_redis.client()
    assert _libraries(c) == {LIBRARY: [LIBRARY]}
    _decided_by(gw, c, "fn-user", "fcall")


@pytest.mark.parametrize("lost", ["script", "function", "both"])
def test_a_flushed_script_or_library_is_survived(gw, own_redis, lost):
    """SCRIPT FLUSH, FUNCTION FLUSH (a restart without persistence):
    the next call goes as EVAL with the text and is decided; the library
    is loaded again and FCALL resumes."""
    c = own_redis.client()
    tok = token("flush-user-" + lost)
    assert gw.bearer("/one/", tok)[0] == 200
    if lost in ("script", "both"):
        c.script_flush()
    if lost in ("function", "both"):
        c.function_flush()
    c.config_resetstat()
    statuses = [gw.bearer("/one/", tok)[0] for _ in range(6)]
    # burst 4: four more (a unit comes back every 6 s), then refused
    assert statuses[:4] == [200] * 4 and 429 in statuses, statuses
    assert _libraries(c) == {LIBRARY: [LIBRARY]}
    if lost == "script":
        assert _calls(c, "eval") == 0 and _calls(c, "fcall") == 6
    else:
        # the first after the flush went again as EVAL, the rest by FCALL
        assert _calls(c, "eval") == 1 and _calls(c, "fcall") == 6


def test_a_library_another_gateway_loaded_is_called_as_its_own(gw,
                                                               own_redis):
    """Another gateway of the same version loaded the library first:
    this one's FUNCTION LOAD answers that it exists, which is as good as
    loading it (the name is the text's hash), and it calls FCALL."""
    c = own_redis.client()
    c.function_flush()
    c.function_load(limit_support.function_library(BATCH_LUA))
    c.config_resetstat()
    c.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    stack.wait_until(lambda: _calls(c, "function|load"), 5,
                     "the gateway's FUNCTION LOAD after the reconnect",
                     interval=0.05)
    _decided_by(gw, c, "shared-lib-user", "fcall")
    assert "FUNCTION LOAD failed" not in gw.error_log.read_text()


def test_a_redis_without_functions_runs_the_script_by_evalsha(gw,
                                                              own_redis):
    """A Redis before 7.0 has no FUNCTION; a Redis user may be refused
    it: the gateway reconnects, FUNCTION LOAD fails, and the same limits
    are decided by EVALSHA."""
    c = own_redis.client()
    c.function_flush()
    _refuse(c, "function")
    c.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    stack.wait_until(lambda: "FUNCTION LOAD failed" in
                     gw.error_log.read_text(), 5,
                     "the gateway's FUNCTION LOAD refused", interval=0.1)
    _decided_by(gw, c, "nofn-user", "evalsha")


def test_fcall_taken_away_goes_by_evalsha(gw, own_redis):
    """FCALL refused to the gateway's Redis user (NOPERM) with the
    library loaded: that call is sent again as EVAL, and the connection
    calls EVALSHA from then on."""
    c = own_redis.client()
    tok = token("noperm-user")
    assert gw.bearer("/one/", tok)[0] == 200
    _refuse(c, "fcall")
    c.config_resetstat()
    assert [gw.bearer("/one/", tok)[0] for _ in range(5)] == \
        [200] * 4 + [429]
    assert _calls(c, "eval") == 1 and _calls(c, "evalsha") == 4


def _add_key(redis_client, key, user="u-42", name="kim", role="developer",
             expires_at=0):
    digest = hashlib.sha256(key.encode()).hexdigest()
    redis_client.hset("omni:apikey:" + digest, mapping={
        "key_id": "k-1", "user_id": user, "username": name, "role": role,
        "expires_at": str(expires_at)})
    return digest


def test_api_key_authenticates_and_its_identity_reaches_the_upstream(
        gw, own_redis):
    _add_key(own_redis.client(), "omni_live_abc")
    status, _, body = gw.get("/apikey/", {"X-API-Key": "omni_live_abc",
                                          "X-User-Id": "forged"})
    assert status == 200, body
    assert json.loads(body) == {"id": "u-42", "name": "kim",
                                "role": "developer"}


def test_deleted_api_key_is_rejected_at_once(gw, own_redis):
    digest = _add_key(own_redis.client(), "omni_live_del")
    assert gw.get("/apikey/", {"X-API-Key": "omni_live_del"})[0] == 200
    own_redis.client().delete("omni:apikey:" + digest)
    status, _, body = gw.get("/apikey/", {"X-API-Key": "omni_live_del"})
    assert status == 401
    assert json.loads(body)["error"] == "invalid_token"


def test_expired_api_key_is_rejected(gw, own_redis):
    _add_key(own_redis.client(), "omni_live_old",
             expires_at=int(time.time()) - 10)
    assert gw.get("/apikey/", {"X-API-Key": "omni_live_old"})[0] == 401


def test_unknown_api_key_is_rejected(gw):
    assert gw.get("/apikey/", {"X-API-Key": "nope"})[0] == 401


def test_anonymous_requests_are_limited_by_client_address(gw):
    statuses = [gw.get("/anon/")[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_fail_closed_answers_503_and_fail_open_allows(gw, own_redis):
    tok = token("fail-user")
    own_redis.destroy()
    status, _, body = gw.bearer("/closed/", tok)
    assert status == 503
    assert json.loads(body)["error"] == "limiter_unavailable"
    assert gw.bearer("/open/", tok)[0] == 200
    # an API key cannot be resolved without Redis, whatever the mode
    assert gw.get("/apikey/", {"X-API-Key": "omni_live_abc"})[0] == 503
    _, _, metrics = gw.get("/omni/metrics")
    text = metrics.decode()
    assert 'omni_gateway_fail_mode_total{mode="closed"} 1' in text
    assert 'omni_gateway_redis_failures_total{reason="down"}' in text


def test_a_stalled_redis_is_given_up_within_the_timeout(gw, own_redis):
    tok = token("stall-user")
    assert gw.bearer("/closed/", tok)[0] == 200
    pid = own_redis.proc.pid
    subprocess.run(["kill", "-STOP", str(pid)], check=True)
    try:
        started = time.monotonic()
        status = gw.bearer("/closed/", tok)[0]
        elapsed = time.monotonic() - started
    finally:
        subprocess.run(["kill", "-CONT", str(pid)], check=True)
    assert status == 503
    assert elapsed < 1.0          # timeout=200ms
    # it comes back by itself, without a reload
    stack.wait_until(lambda: gw.bearer("/closed/", tok)[0] == 200, 10,
                     "redis again", interval=0.2)


def test_fail_local_enforces_each_limit_on_this_node(gw, own_redis):
    tok = token("local-user")
    port = own_redis.port
    own_redis.destroy()
    # burst 2: three at once on one node
    assert [gw.bearer("/local1/", tok)[0] for _ in range(4)] == \
        [200, 200, 200, 429]
    # nodes=2: this node's share is burst 2 / 2 = 1, so two at once
    assert [gw.bearer("/local2/", tok)[0] for _ in range(3)] == \
        [200, 200, 429]
    _, _, metrics = gw.get("/omni/metrics")
    assert 'omni_gateway_fail_mode_total{mode="local"} 7' in metrics.decode()

    # Redis back: the limits are Redis's again, without a reload
    again = stack.Redis(port=port)
    try:
        again.start()
        stack.wait_until(lambda: gw.bearer("/local1/", tok)[0] == 200, 10,
                         "limits served by Redis again", interval=0.2)
        assert again.client().keys("omni:rl:slow:*")
    finally:
        again.destroy()


def test_two_gateways_sharing_redis_admit_the_limit_together(own_redis):
    """burst 99 at 1r/m: 100 requests fit in the test's few seconds, whoever
    serves them; 300 concurrent requests over two nginx instances."""
    from concurrent.futures import ThreadPoolExecutor
    gws = [Gateway(own_redis.addr), Gateway(own_redis.addr)]
    try:
        tok = token("shared-user")
        for g in gws:
            stack.wait_until(lambda: g.bearer("/nolimit/", tok)[0] == 200,
                             5, "gateway ready")
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(
                lambda i: gws[i % 2].bearer("/shared/", tok)[0], range(300)))
        assert set(statuses) <= {200, 429}
        assert statuses.count(200) == 100
    finally:
        for g in gws:
            g.destroy()


def test_a_redis_on_its_unix_socket_limits_and_revokes(own_redis):
    """omni_redis unix:/path, for a Redis on the gateway's host: the same
    limits and revocation as over TCP, and the connection is the
    socket's."""
    g = Gateway(own_redis.unix_addr)
    try:
        stack.wait_until(lambda: g.bearer("/nolimit/", token())[0] == 200, 5,
                         "gateway ready")
        tok = token("unix-user")
        assert [g.bearer("/one/", tok)[0] for _ in range(6)] \
            == [200] * 5 + [429]
        own_redis.client().set("omni:revoked:unix-jti", "1", ex=60)
        status, _, body = g.bearer("/nolimit/", token(jti="unix-jti"))
        assert status == 401 and _error(body) == "token_revoked"
        socket_path = own_redis.unix_addr[len("unix:"):]
        clients = [c for c in own_redis.client().client_list()
                   if c["cmd"] != "client|list"]
        assert clients and all(c["addr"].startswith(socket_path)
                               for c in clients), clients
    finally:
        g.destroy()


# --- revocation is never a limiter's casualty --------------------------------
#
# A Redis that answers, even with an error, is asked about the jti: only a
# Redis out of reach (down, or slower than the timeout) leaves a token's
# revocation to omni_redis_fail.

def _wrong_type(redis_client, key):
    """A limit state that is a hash: the script's GET fails (WRONGTYPE)."""
    redis_client.delete(key)
    redis_client.hset(key, "not", "a TAT")


def _refuse(redis_client, *commands):
    """Takes commands away from the Redis user the gateway logs in as: it
    still answers, with a NOPERM error."""
    redis_client.execute_command("ACL", "SETUSER", "default",
                                 *("-" + c for c in commands))


def _error(body):
    return json.loads(body).get("error")


@pytest.mark.parametrize("path,state", [
    ("/open/", "omni:rl:wide:wt-user"),
    ("/closed/", "omni:rl:wide:wt-user"),
    ("/local1/", "omni:rl:slow:127.0.0.1"),
])
def test_revoked_token_is_refused_when_its_limit_key_has_the_wrong_type(
        gw, own_redis, path, state):
    c = own_redis.client()
    _wrong_type(c, state)
    c.set("omni:revoked:wt-jti", "1", ex=60)
    status, _, body = gw.bearer(path, token("wt-user", jti="wt-jti"))
    assert status == 401, body
    assert _error(body) == "token_revoked"


def test_live_token_with_a_broken_limit_key_is_checked_then_fail_mode(
        gw, own_redis):
    c = own_redis.client()
    _wrong_type(c, "omni:rl:wide:bk-user")
    _wrong_type(c, "omni:rl:slow:127.0.0.1")
    tok = token("bk-user", jti="bk-jti")
    statuses = []
    seen = _monitor(own_redis,
                    lambda: statuses.append(gw.bearer("/open/", tok)[0]))
    assert statuses == [200]
    # the script failed: the jti alone, then omni_redis_fail for the limits
    assert [cmd for cmd in seen if cmd != "PING"] == ["FCALL", "EXISTS"]
    status, _, body = gw.bearer("/closed/", tok)
    assert status == 503 and _error(body) == "limiter_unavailable"
    # local: burst 2 on this node
    assert [gw.bearer("/local1/", tok)[0] for _ in range(4)] == \
        [200, 200, 200, 429]
    _, _, metrics = gw.get("/omni/metrics")
    assert 'omni_gateway_redis_failures_total{reason="error"} 6' in \
        metrics.decode()


def test_revoked_token_is_refused_when_redis_refuses_the_script(gw,
                                                                own_redis):
    c = own_redis.client()
    c.set("omni:revoked:ns-jti", "1", ex=60)
    _refuse(c, "fcall", "evalsha", "eval")
    for path in ("/open/", "/closed/", "/local1/", "/hdr/"):
        status, _, body = gw.bearer(path, token("ns-user", jti="ns-jti"))
        assert (status, _error(body)) == (401, "token_revoked"), path
    live = token("ns-user", jti="ns-live")
    assert gw.bearer("/open/", live)[0] == 200
    assert gw.bearer("/closed/", live)[0] == 503


def test_a_redis_that_refuses_script_load_still_answers_for_revocation(
        gw, own_redis):
    """The gateway reconnects to a Redis that refuses SCRIPT LOAD: it
    stays connected (without the script) instead of giving up the link,
    which would leave every token to the fail mode."""
    c = own_redis.client()
    c.set("omni:revoked:sl-jti", "1", ex=60)
    _refuse(c, "script", "function", "fcall", "evalsha", "eval")
    c.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    revoked = token("sl-user", jti="sl-jti")
    stack.wait_until(lambda: gw.bearer("/open/", revoked)[0] == 401, 5,
                     "the revoked token refused after the reconnect",
                     interval=0.2)
    time.sleep(0.5)         # past a reconnect's first backoff
    status, _, body = gw.bearer("/open/", revoked)
    assert (status, _error(body)) == (401, "token_revoked")
    log = gw.error_log.read_text()
    assert "SCRIPT LOAD failed" in log and "FUNCTION LOAD failed" in log


def test_revoked_token_is_refused_when_the_script_is_flushed_and_eval_refused(
        gw, own_redis):
    c = own_redis.client()
    c.set("omni:revoked:fl-jti", "1", ex=60)
    c.script_flush()
    c.function_flush()
    _refuse(c, "eval")
    status, _, body = gw.bearer("/open/", token("fl-user", jti="fl-jti"))
    assert (status, _error(body)) == (401, "token_revoked")
    assert gw.bearer("/open/", token("fl-user", jti="fl-live"))[0] == 200


def test_token_is_refused_when_redis_cannot_say_whether_it_is_revoked(
        gw, own_redis):
    """Redis answers, but refuses even EXISTS: no fail mode passes a
    token whose revocation is unknown; a request without a jti still
    gets the fail mode."""
    _refuse(own_redis.client(), "fcall", "evalsha", "eval", "exists")
    tok = token("nx-user", jti="nx-jti")
    for path in ("/open/", "/local1/", "/nolimit/"):
        status, _, body = gw.bearer(path, tok)
        assert (status, _error(body)) == (503, "limiter_unavailable"), path
        assert "revocation" in json.loads(body)["message"]
    assert gw.bearer("/open/", token("nx-user"))[0] == 200


def test_revoked_token_is_refused_whatever_its_limit_key_holds(gw,
                                                              own_redis):
    own_redis.client().set("omni:revoked:mk-jti", "1", ex=60)
    status, _, body = gw.bearer("/hdr/", token("mk-user", jti="mk-jti"),
                                {"X-Client": "a\x01user"})
    assert (status, _error(body)) == (401, "token_revoked")


# --- limit keys are only key bytes --------------------------------------------

def test_client_key_ending_in_the_old_user_marker_is_an_ordinary_key(
        gw, own_redis):
    """The API-key user marker was the bytes 0x01 'user' at the end of a
    key; a client that sent them got the script's error and fail open."""
    tok = token("mk-user")
    statuses = [gw.bearer("/hdr/", tok, {"X-Client": "a\x01user"})[0]
                for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert own_redis.client().exists(b"omni:rl:hdr:a\x01user")


def test_api_key_request_keeps_a_client_header_key_as_sent(gw, own_redis):
    c = own_redis.client()
    _add_key(c, "omni_live_mk", user="u-42")
    status, _, body = gw.get("/hdr/", {"X-API-Key": "omni_live_mk",
                                       "X-Client": "k\x01user"})
    assert status == 200, body
    assert c.exists(b"omni:rl:hdr:k\x01user")
    assert not c.exists(b"omni:rl:hdr:ku-42")


def test_empty_limit_key_counts_by_client_address_not_one_shared_bucket(
        gw, own_redis):
    """key=$http_x_client without the header: the client's own address
    bucket ($binary_remote_addr), not 'omni:rl:hdr:' shared by everyone
    who leaves the header out, and not unlimited."""
    c = own_redis.client()
    assert [gw.get("/hdr-anon/")[0] for _ in range(3)] == [200, 200, 429]
    assert c.keys("omni:rl:hdr:*") == [b"omni:rl:hdr:\x7f\x00\x00\x01"]
    # a token does not change what an empty key= counts by
    assert gw.bearer("/hdr/", token("ek-user"))[0] == 429
    assert gw.get("/hdr-anon/", {"X-Client": "ek"})[0] == 200


def test_one_call_with_api_keys_tokens_and_refusals_answers_each(
        gw, own_redis):
    """Requests of every answer shape in one script call (the reply is one
    flat array: a decision with an API key is 9 elements, with a token 5,
    a revoked token or an unknown key 1): each gets its own answer and
    identity, whatever came before it in the call."""
    import socket
    c = own_redis.client()
    _add_key(c, "omni_live_mix", user="u-mix", name="mia", role="admin")
    c.set("omni:revoked:mix-bad", "1", ex=60)
    kinds = ["key", "jwt", "revoked", "unknown", "key", "jwt", "key",
             "revoked", "jwt", "unknown"]
    heads = {
        "key": "X-API-Key: omni_live_mix",
        "unknown": "X-API-Key: omni_live_nope",
        "revoked": "Authorization: Bearer " + token("rev", jti="mix-bad"),
    }
    reqs = []
    for i, kind in enumerate(kinds):
        head = heads.get(kind) or "Authorization: Bearer " + token(
            "mix-%d" % i, jti="mix-ok-%d" % i)
        reqs.append(("GET /apikey/ HTTP/1.1\r\nHost: x\r\n"
                     "Connection: close\r\n%s\r\n\r\n" % head).encode())
    c.config_resetstat()
    socks = [socket.create_connection(("127.0.0.1", gw.port), timeout=10)
             for _ in reqs]
    [worker] = stack.children_of(gw.proc.pid)
    time.sleep(0.2)     # every connection accepted before the stop
    os.kill(worker, signal.SIGSTOP)
    try:
        for s, raw in zip(socks, reqs):
            s.sendall(raw)
    finally:
        os.kill(worker, signal.SIGCONT)
    for i, (s, kind) in enumerate(zip(socks, kinds)):
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if kind == "key":
            assert status == 200, (i, data)
            assert json.loads(body) == {"id": "u-mix", "name": "mia",
                                        "role": "admin"}, i
        elif kind == "jwt":
            assert status == 200, (i, data)
            assert json.loads(body)["id"] == "mix-%d" % i
        elif kind == "revoked":
            assert status == 401, (i, data)
            assert json.loads(body)["error"] == "token_revoked"
        else:
            assert status == 401, (i, data)
        assert b"ratelimit" in head.lower() or status != 200, (i, head)
    calls = c.info("commandstats")["cmdstat_fcall"]["calls"]
    assert calls <= 4, calls
