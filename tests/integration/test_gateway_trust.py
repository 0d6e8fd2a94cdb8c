"""The worker believes only the gateway (SPEC rule 1): on TCP, requests
without OMNI_GATEWAY_SECRET lose their identity headers and protected
routes answer 401; on its unix socket, a peer that is not root, the
worker's user or OMNI_GATEWAY_USER is refused."""

import http.client
import re
import secrets
import signal
import subprocess
import time
import uuid

import pytest

import stack

SECRET = secrets.token_hex(24)
FORGED = {"X-User-Id": str(uuid.uuid4()), "X-User-Username": "mallory",
          "X-User-Role": "admin"}
HEADER = "X-Omni-Gateway-Secret"


def tcp_request(w, method, path, headers=None, body=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=timeout)
    try:
        return stack.http_request(conn, method, path, headers, body)
    finally:
        conn.close()


def start_tcp_worker(worker_factory, secret=SECRET, host="127.0.0.1",
                     env=None):
    """A worker listening on host:port (as in Kubernetes), managed by
    worker_factory; .port is where to reach it on 127.0.0.1."""
    port = stack.free_port()
    settings = {"OMNI_LISTEN": "%s:%d" % (host, port)}
    if secret is not None:
        settings["OMNI_GATEWAY_SECRET"] = secret
    settings.update(env or {})
    w = worker_factory(workers=1, env=settings, wait=False)
    w.port = port

    def live():
        if w.proc.poll() is not None:
            raise RuntimeError("omni-worker exited %d:\n%s"
                               % (w.proc.returncode, stack.tail(w.log_path)))
        try:
            return tcp_request(w, "GET", "/health/live", timeout=2).status \
                == 200
        except (OSError, http.client.HTTPException):
            return False
    stack.wait_until(live, 30, "omni-worker on 127.0.0.1:%d" % port,
                     interval=0.1)
    return w


def metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    assert m, "no %s in /metrics" % name
    return int(m.group(1))


@pytest.fixture
def tcp_worker(worker_factory):
    return start_tcp_worker(worker_factory)


# --- TCP: the shared secret --------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/config", "/auth/me",
                                  "/api/v1/users"])
def test_forged_identity_without_the_secret_gets_401(tcp_worker, path):
    r = tcp_request(tcp_worker, "GET", path, FORGED)
    assert r.status == 401, r
    assert r.json()["error"] == "missing_credentials"
    assert HEADER in r.json()["message"]


def test_forged_identity_with_a_wrong_secret_of_equal_length_gets_401(
        tcp_worker):
    wrong = secrets.token_hex(24)
    assert len(wrong) == len(SECRET) and wrong != SECRET
    r = tcp_request(tcp_worker, "GET", "/api/v1/config",
                    dict(FORGED, **{HEADER: wrong}))
    assert r.status == 401, r
    assert r.json()["error"] == "missing_credentials"


def test_the_secret_with_a_prefix_or_suffix_gets_401(tcp_worker):
    for value in (SECRET[:-1], SECRET + "0", " " + SECRET + "x"):
        r = tcp_request(tcp_worker, "GET", "/api/v1/config",
                        dict(FORGED, **{HEADER: value}))
        assert r.status == 401, (value, r)


def test_identity_with_the_right_secret_is_believed(tcp_worker):
    r = tcp_request(tcp_worker, "GET", "/api/v1/config",
                    dict(FORGED, **{HEADER: SECRET}))
    assert r.status == 200, r
    assert isinstance(r.json()["items"], list)
    # admin-only: the role header was believed
    r = tcp_request(tcp_worker, "GET", "/api/v1/users",
                    dict(FORGED, **{HEADER: SECRET}))
    assert r.status == 200, r


def test_public_routes_answer_without_the_secret(tcp_worker):
    assert tcp_request(tcp_worker, "GET", "/health").status == 200
    r = tcp_request(tcp_worker, "GET", "/.well-known/jwks.json")
    assert r.status == 200 and r.json()["keys"], r
    # a login's outcome does not depend on identity headers
    r = tcp_request(tcp_worker, "POST", "/auth/login",
                    dict(FORGED, **{"Content-Type": "application/json"}),
                    '{"username": "nobody-here", "password": "x"}')
    assert r.status == 401 and r.json()["error"] == "invalid_credentials", r


def test_untrusted_requests_are_counted_and_the_secret_never_logged(
        tcp_worker):
    before = metric(tcp_request(tcp_worker, "GET", "/metrics").text,
                    "omni_worker_gateway_untrusted_total")
    for _ in range(3):
        tcp_request(tcp_worker, "GET", "/auth/me", FORGED)
    tcp_request(tcp_worker, "GET", "/auth/me",
                dict(FORGED, **{HEADER: SECRET}))
    after = metric(tcp_request(tcp_worker, "GET", "/metrics").text,
                   "omni_worker_gateway_untrusted_total")
    # the /metrics request itself is untrusted too
    assert after - before == 4
    assert SECRET not in tcp_worker.log_text()


def test_worker_on_all_interfaces_with_a_secret_serves(worker_factory):
    w = start_tcp_worker(worker_factory, host="0.0.0.0")
    r = tcp_request(w, "GET", "/api/v1/config",
                    dict(FORGED, **{HEADER: SECRET}))
    assert r.status == 200, r
    assert tcp_request(w, "GET", "/api/v1/config", FORGED).status == 401


def test_loopback_without_a_secret_warns_and_believes_local_callers(
        worker_factory):
    w = start_tcp_worker(worker_factory, secret=None)
    assert w.log_contains("no OMNI_GATEWAY_SECRET")
    r = tcp_request(w, "GET", "/api/v1/config", FORGED)
    assert r.status == 200, r


def reload_secret_file(w, headers, status, what):
    """SIGHUP w (one process), wait for its replacement, then until a
    request with headers gets status."""
    before = set(w.children())
    w.kill(signal.SIGHUP)
    stack.wait_until(lambda: (lambda now: len(now) == 1 and not now & before)(
        set(w.children())), 20, "the processes replaced after SIGHUP")
    stack.wait_until(
        lambda: tcp_request(w, "GET", "/api/v1/config",
                            headers).status == status, 10, what)


def test_secret_file_is_read_again_on_sighup(worker_factory, tmp_path):
    path = tmp_path / "gateway-secret"
    old, new = secrets.token_hex(24), secrets.token_hex(24)
    path.write_text(old + "\n")
    w = start_tcp_worker(worker_factory, secret=None, host="0.0.0.0",
                         env={"OMNI_GATEWAY_SECRET_FILE": path})
    with_old = dict(FORGED, **{HEADER: old})
    with_new = dict(FORGED, **{HEADER: new})
    assert tcp_request(w, "GET", "/api/v1/config", with_old).status == 200
    assert tcp_request(w, "GET", "/api/v1/config", with_new).status == 401

    path.write_text(new + "\n")
    reload_secret_file(w, with_new, 200, "the new secret believed")
    assert tcp_request(w, "GET", "/api/v1/config", with_old).status == 401


def test_rotation_accepts_both_secrets_while_the_gateway_moves(
        worker_factory, tmp_path):
    """The rotation without a 401 window: the worker's file holds the old
    and the new secret while the gateway switches, then only the new."""
    path = tmp_path / "gateway-secret"
    old, new = secrets.token_hex(24), secrets.token_hex(24)
    path.write_text(old + "\n" + new + "\n")
    w = start_tcp_worker(worker_factory, secret=None, host="0.0.0.0",
                         env={"OMNI_GATEWAY_SECRET_FILE": path})
    with_old = dict(FORGED, **{HEADER: old})
    with_new = dict(FORGED, **{HEADER: new})
    with_other = dict(FORGED, **{HEADER: secrets.token_hex(24)})
    assert tcp_request(w, "GET", "/api/v1/config", with_old).status == 200
    assert tcp_request(w, "GET", "/api/v1/config", with_new).status == 200
    assert tcp_request(w, "GET", "/api/v1/config", with_other).status == 401

    path.write_text(new + "\n")
    reload_secret_file(w, with_old, 401, "the old secret retired")
    assert tcp_request(w, "GET", "/api/v1/config", with_new).status == 200


# --- TCP through the gateway -------------------------------------------------

def gateway_to(w, redis_server, **extra):
    values = {"WORKER_ADDR": "127.0.0.1:%d" % w.port}
    values.update(extra)
    return stack.Nginx(worker_socket=w.dir / "unused.sock",
                       redis_addr=redis_server.addr, extra=values).start()


def test_gateway_sending_the_secret_reaches_protected_routes(
        tcp_worker, redis_server):
    nginx = gateway_to(tcp_worker, redis_server, GATEWAY_SECRET=SECRET)
    try:
        r = nginx.request("GET", "/api/v1/config",
                          headers=nginx.bearer(role="admin"))
        assert r.status_code == 200, r.text
        # a client's own copy of the header does not get through
        r = nginx.request("GET", "/api/v1/config",
                          headers=dict(nginx.bearer(role="viewer"),
                                       **{HEADER: "x" * 48}))
        assert r.status_code == 200, r.text
        # without a token the gateway answers; the worker is never asked
        assert nginx.request("GET", "/api/v1/config").status_code == 401
        # the secret sits in a file of its own, readable by its owner only
        assert SECRET not in nginx.conf_path.read_text()
        secret_conf = nginx.conf_path.parent / "gateway-secret.conf"
        assert SECRET in secret_conf.read_text()
        assert secret_conf.stat().st_mode & 0o077 == 0
    finally:
        nginx.destroy()


def test_gateway_without_the_secret_gets_401_from_the_worker(
        tcp_worker, redis_server):
    nginx = gateway_to(tcp_worker, redis_server)
    try:
        r = nginx.request("GET", "/api/v1/config",
                          headers=nginx.bearer(role="admin"))
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "missing_credentials"
        assert "X-Request-Id" in r.headers      # the worker's answer
        # and a client cannot supply the secret through the gateway either
        r = nginx.request("GET", "/api/v1/config",
                          headers=dict(nginx.bearer(role="admin"),
                                       **{HEADER: SECRET}))
        assert r.status_code == 401, r.text
    finally:
        nginx.destroy()


# --- the unix socket: the peer's uid -----------------------------------------

CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
try:
    s.sendall(b"GET /auth/me HTTP/1.1\r\nHost: w\r\nX-User-Id: %s\r\n"
              b"X-User-Role: admin\r\nConnection: close\r\n\r\n"
              % sys.argv[2].encode())
except (BrokenPipeError, ConnectionResetError):
    pass    # refused at accept: closed before the request was written
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except ConnectionResetError:
        break
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode("latin-1"))
"""


def ask_as(user, w):
    """GET /auth/me over w's socket from a process running as user;
    returns everything the worker sent back."""
    res = subprocess.run(["/usr/bin/python3", "-c", CLIENT,
                          str(w.socket_path), str(uuid.uuid4())],
                         user=user, group=user if user != "nobody"
                         else "nogroup", capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout


needs_root = pytest.mark.skipif(
    not stack.IS_ROOT, reason="switching to another uid needs root (CI)")


@needs_root
def test_unix_peer_that_is_not_the_gateway_is_refused(worker_factory):
    # anyone may connect: the uid check, not the file mode, refuses
    w = worker_factory(workers=1, env={"OMNI_LISTEN_MODE": "0666"})
    before = metric(w.request("GET", "/metrics").text,
                    "omni_worker_gateway_refused_total")
    assert ask_as("nobody", w) == ""
    assert ask_as("nobody", w) == ""
    after = metric(w.request("GET", "/metrics").text,
                   "omni_worker_gateway_refused_total")
    assert after - before == 2
    # logged once for the two refusals, naming the uid and the setting
    lines = w.wait_log(lambda l: l.get("msg", "").startswith(
        "connection refused"), what="the refusal logged")
    nobody = int(subprocess.run(["id", "-u", "nobody"], capture_output=True,
                                text=True, check=True).stdout)
    assert [l["peer_uid"] for l in lines] == [nobody], lines
    assert lines[0]["setting"] == "OMNI_GATEWAY_USER"
    # root and the gateway's user (www-data) are served
    assert w.request("GET", "/health/live").status == 200
    assert ask_as(stack.NGINX_USER, w).startswith("HTTP/1.1 404")


@needs_root
def test_unix_peer_is_checked_on_every_connection_however_they_alternate(
        migrated, redis_server):
    # the check runs once per connection and is remembered: a refused
    # peer's connection never inherits an allowed one's standing, neither
    # while that one is open nor after it closed and a new connection's
    # objects took its addresses. The release build: ASan's quarantine
    # never hands a freed address to the next connection.
    migrated.ensure_running()
    w = stack.Worker(migrated, redis_server, workers=1,
                     env={"OMNI_LISTEN_MODE": "0666"},
                     binary=stack.BUILD / "omni-worker")
    try:
        w.start()
        for _ in range(4):
            conn = w.connection()
            for _ in range(3):
                res = stack.http_request(conn, "GET", "/health/live")
                assert res.status == 200
            assert ask_as("nobody", w) == ""
            conn.close()
            time.sleep(0.3)     # the worker sees the close
            assert ask_as("nobody", w) == ""
        assert w.request("GET", "/health/live").status == 200
    finally:
        w.destroy()


@needs_root
def test_unix_peer_named_by_omni_gateway_user_is_served(worker_factory):
    w = worker_factory(workers=1, env={"OMNI_LISTEN_MODE": "0666",
                                       "OMNI_GATEWAY_USER": "nobody"})
    # believed: the unknown user id is looked up (404), not refused
    assert ask_as("nobody", w).startswith("HTTP/1.1 404")
