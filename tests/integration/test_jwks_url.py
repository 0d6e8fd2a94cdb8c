"""omni_jwt_jwks URL (SPEC 4): one nginx worker fetches the JWKS in the
background (https with the certificate and host name checked, or http to
loopback), the others take it up from shared memory; a rotation is seen
within `refresh`, an unknown kid asks for a fetch no sooner than
`min_refresh` after the last; a failed fetch (500, garbage, a stall, a
certificate that does not verify or names another host) keeps the last
good keys and is counted, and no request waits for a fetch."""

import http.server
import json
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from pathlib import Path

import pytest

import jwt_support
import stack
from jwt_support import assert_401, passed, sign

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import outbound_servers  # noqa: E402

TEMPLATE = jwt_support.FIXTURES / "nginx-jwks-rotate.conf.in"

# kid -> (key, alg)
KIDS = {"a": ("rsa", "RS256"), "b": ("p256", "ES256"),
        "c": ("ed25519", "EdDSA")}


class Pki:
    """A test CA with a certificate for localhost and 127.0.0.1, one from
    the same CA for another name, and another CA."""

    def __init__(self):
        self.dir = stack.make_tmpdir("omni-test-jwks-pki-")
        outbound_servers.make_ca(self.dir, "ca")
        outbound_servers.make_ca(self.dir, "other-ca")
        outbound_servers.make_cert(self.dir, "good", "ca",
                                   "DNS:localhost,IP:127.0.0.1")
        outbound_servers.make_cert(self.dir, "wrong-name", "ca",
                                   "DNS:jwks.elsewhere.test")
        for p in self.dir.iterdir():
            p.chmod(0o644)

    def path(self, name):
        return self.dir / name


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        srv = self.server.owner
        srv.fetches.append(time.monotonic())
        mode = srv.mode
        if mode == "stall":
            srv.unstall.wait(30)
            return
        length = True
        if mode == "500":
            body, status = b'{"error":"down"}', 500
        elif mode == "garbage":
            body, status = b"<html>not a JWKS</html>", 200
        elif mode == "huge":
            # a valid JWKS padded past 64 KiB, up to the close
            body, status = srv.body[:-1] + b" " * 100000 + b"}", 200
            length = False
        elif mode == "no-length":
            body, status, length = srv.body, 200, False
        else:
            body, status = srv.body, 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, fmt, *args):
        pass


class JwksServer:
    """Serves `body` at /jwks.json over https with cert (from pki) or over
    plain http; records when each GET came; `mode` makes it answer 500,
    garbage, or stall until stopped."""

    def __init__(self, pki=None, cert="good", port=0, host="127.0.0.1"):
        self.body = b'{"keys": []}'
        self.mode = "ok"
        self.fetches = []
        self.unstall = threading.Event()
        self.httpd = http.server.ThreadingHTTPServer((host, port),
                                                     _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.https = pki is not None
        if self.https:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pki.path(cert + ".pem"),
                                pki.path(cert + ".key"))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                                server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self, host="localhost"):
        return "%s://%s:%d/jwks.json" % ("https" if self.https else "http",
                                         host, self.port)

    def serve(self, keys, *kids):
        self.body = json.dumps(keys.jwks({k: KIDS[k] for k in kids})).encode()
        self.mode = "ok"

    def stop(self):
        self.unstall.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeDns(threading.Thread):
    """A DNS server on UDP 127.0.0.1 answering every A query with
    `address` (TTL 1s) and any other with no records; keeps the names
    asked for."""

    def __init__(self, address):
        super().__init__(daemon=True)
        self.address = address
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.start()

    def run(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(512)
            except OSError:
                return
            self.sock.sendto(self.answer(data), peer)

    def answer(self, data):
        ident = struct.unpack(">H", data[:2])[0]
        i, labels = 12, []
        while data[i]:
            labels.append(data[i + 1:i + 1 + data[i]].decode())
            i += 1 + data[i]
        qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
        question = data[12:i + 5]
        self.queries.append((".".join(labels), qtype))
        records = b""
        if qtype == 1:
            records = (b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 1, 4)
                       + socket.inet_aton(self.address))
        return (struct.pack(">HHHHHH", ident, 0x8180, 1,
                            1 if records else 0, 0, 0)
                + question + records)

    def stop(self):
        self.sock.close()


@pytest.fixture(scope="module")
def pki():
    p = Pki()
    yield p
    import shutil
    shutil.rmtree(p.dir, ignore_errors=True)


@pytest.fixture
def servers():
    made = []

    def make(*args, **kwargs):
        s = JwksServer(*args, **kwargs)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


@pytest.fixture
def gateways(jwt_keys, echo_upstream):
    made = []

    def make(url, params="", workers=2):
        gw = jwt_support.JwtGateway(jwt_keys, echo_upstream.port,
                                    workers=workers, template=TEMPLATE,
                                    values={"JWKS": url,
                                            "JWKS_PARAMS": params})
        made.append(gw)
        return gw.start()
    yield make
    for gw in made:
        gw.destroy()


def token(keys, kid):
    name, alg = KIDS[kid]
    return sign(keys, alg, key=keys.private_pem(name), headers={"kid": kid})


def fetches(gw, result):
    return sum(v for n, l, v in gw.metrics().samples
               if n == "omni_gateway_jwks_fetches_total"
               and l.get("result") == result)


def timed_get(gw, tok):
    start = time.monotonic()
    r = gw.get("/api/x", tok)
    return r, time.monotonic() - start


def wait_pass(gw, tok, timeout, what):
    start = time.monotonic()
    stack.wait_until(lambda: gw.get("/api/x", tok).status_code == 200,
                     timeout, what, interval=0.1)
    return time.monotonic() - start


def every_worker_passes(gw, tok):
    """Enough requests that both workers answer one (no keep-alive), once
    the workers that did not fetch took the set up (their timers look at
    shared memory every second)."""
    time.sleep(1.1)
    for _ in range(20):
        passed(gw.get("/api/x", tok))


def test_tokens_verify_after_the_first_fetch_by_one_worker(
        jwt_keys, pki, servers, gateways):
    srv = servers(pki)
    srv.serve(jwt_keys, "a")
    gw = gateways(srv.url(), "ca=%s refresh=60s" % pki.path("ca.pem"))
    wait_pass(gw, token(jwt_keys, "a"), 5, "the first fetch")
    every_worker_passes(gw, token(jwt_keys, "a"))
    time.sleep(1.5)
    # two workers, one fetch: the other took the set from shared memory
    assert len(srv.fetches) == 1, srv.fetches
    assert fetches(gw, "ok") == 1 and fetches(gw, "failed") == 0
    assert_401(gw.get("/api/x", token(jwt_keys, "b")))
    log = gw.error_log.read_text()
    assert 'fetched "%s": 1 keys' % srv.url() in log, log[-2000:]
    assert "took up 1 keys another worker fetched" in log, log[-2000:]


def test_certificate_for_the_address_verifies_an_address_url(
        jwt_keys, pki, servers, gateways):
    srv = servers(pki)
    srv.serve(jwt_keys, "a")
    gw = gateways(srv.url("127.0.0.1"), "ca=%s" % pki.path("ca.pem"))
    wait_pass(gw, token(jwt_keys, "a"), 5, "the first fetch by address")


def test_body_up_to_the_close_without_content_length_is_taken(
        jwt_keys, pki, servers, gateways):
    srv = servers(pki)
    srv.serve(jwt_keys, "a")
    srv.mode = "no-length"
    gw = gateways(srv.url(), "ca=%s" % pki.path("ca.pem"))
    wait_pass(gw, token(jwt_keys, "a"), 5, "a body ended by the close")
    assert fetches(gw, "failed") == 0


def test_reload_keeps_the_fetched_keys_without_fetching_again(
        jwt_keys, pki, servers, gateways):
    srv = servers(pki)
    srv.serve(jwt_keys, "a")
    params = "ca=%s refresh=60s" % pki.path("ca.pem")
    gw = gateways(srv.url(), params)
    wait_pass(gw, token(jwt_keys, "a"), 5, "the first fetch")
    gw.reload(JWKS_PARAMS=params + " ")
    # the new workers took the set from the zone the reload kept
    for _ in range(20):
        passed(gw.get("/api/x", token(jwt_keys, "a")))
    assert len(srv.fetches) == 1, srv.fetches


def test_with_a_resolver_the_host_is_resolved_again_for_every_fetch(
        jwt_keys, pki, servers, gateways):
    # localhost is 127.0.0.1 to nginx -t; the DNS server says 127.0.0.2,
    # where the only server listens
    first = servers(pki, host="127.0.0.2")
    first.serve(jwt_keys, "a")
    dns = FakeDns("127.0.0.2")
    try:
        gw = gateways(first.url(), "ca=%s refresh=1s min_refresh=1s; "
                      "resolver 127.0.0.1:%d ipv6=off valid=1s"
                      % (pki.path("ca.pem"), dns.port))
        wait_pass(gw, token(jwt_keys, "a"), 5, "a fetch from the address "
                  "the resolver gave")
        assert ("localhost", 1) in dns.queries

        # the name moves to another address with the next key set
        second = servers(pki, port=first.port, host="127.0.0.3")
        second.serve(jwt_keys, "b")
        dns.address = "127.0.0.3"
        wait_pass(gw, token(jwt_keys, "b"), 6, "a fetch from the new address")
        assert second.fetches
    finally:
        dns.stop()


def test_plain_http_to_loopback_is_fetched(jwt_keys, servers, gateways):
    srv = servers()
    srv.serve(jwt_keys, "c")
    gw = gateways(srv.url("127.0.0.1"), "refresh=60s")
    wait_pass(gw, token(jwt_keys, "c"), 5, "the first fetch over http")
    every_worker_passes(gw, token(jwt_keys, "c"))


def test_rotated_jwks_is_accepted_within_refresh_one_fetch_per_cycle(
        jwt_keys, pki, servers, gateways):
    srv = servers(pki)
    srv.serve(jwt_keys, "a")
    gw = gateways(srv.url(), "ca=%s refresh=2s min_refresh=60s"
                  % pki.path("ca.pem"))
    old, new = token(jwt_keys, "a"), token(jwt_keys, "b")
    wait_pass(gw, old, 5, "the first fetch")
    assert_401(gw.get("/api/x", new))

    srv.serve(jwt_keys, "a", "b")
    took = wait_pass(gw, new, 5, "the rotated key")
    assert took < 2 + 1 + 1.5       # refresh, a worker's tick, load
    every_worker_passes(gw, new)
    every_worker_passes(gw, old)

    # a steady run: one fetch per refresh, not one per worker
    time.sleep(0.5)
    n0 = len(srv.fetches)
    time.sleep(6.1)
    assert 2 <= len(srv.fetches) - n0 <= 4, srv.fetches
    times = srv.fetches[n0 - 1:]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) > 1.5, gaps


def test_unknown_kid_fetches_early_but_not_before_min_refresh(
        jwt_keys, pki, servers, gateways):
    srv = servers(pki)
    srv.serve(jwt_keys, "a")
    gw = gateways(srv.url(), "ca=%s refresh=1h min_refresh=3s"
                  % pki.path("ca.pem"))
    wait_pass(gw, token(jwt_keys, "a"), 5, "the first fetch")
    assert len(srv.fetches) == 1
    first = srv.fetches[0]

    srv.serve(jwt_keys, "a", "b")
    new = token(jwt_keys, "b")
    # the request that asks for the fetch does not wait for it
    r, took = timed_get(gw, new)
    assert_401(r)
    assert took < 1
    wait_pass(gw, new, 6, "the early fetch after an unknown kid")
    every_worker_passes(gw, new)
    assert len(srv.fetches) == 2, srv.fetches
    assert srv.fetches[1] - first >= 3 - 0.2, srv.fetches

    # a stream of unknown kids: at most one fetch per min_refresh
    stranger = token(jwt_keys, "c")
    n0 = len(srv.fetches)
    start = time.monotonic()
    while time.monotonic() - start < 7:
        assert_401(gw.get("/api/x", stranger))
    assert 1 <= len(srv.fetches) - n0 <= 3, srv.fetches
    times = srv.fetches[n0 - 1:]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 3 - 0.2, gaps


@pytest.mark.parametrize("mode", ["500", "garbage", "huge", "refused"])
def test_failed_fetch_keeps_the_last_good_keys_and_is_counted(
        jwt_keys, pki, servers, gateways, mode):
    srv = servers(pki)
    srv.serve(jwt_keys, "a")
    gw = gateways(srv.url(), "ca=%s refresh=1s min_refresh=1s"
                  % pki.path("ca.pem"))
    old = token(jwt_keys, "a")
    wait_pass(gw, old, 5, "the first fetch")

    if mode == "refused":
        port = srv.port
        srv.stop()
    else:
        srv.mode = mode
    stack.wait_until(lambda: fetches(gw, "failed") >= 2, 8,
                     "failed fetches to be counted")
    for _ in range(20):
        r, took = timed_get(gw, old)
        passed(r)
        assert took < 1
    log = gw.error_log.read_text()
    why = {"500": "the response status is not 200",
           "garbage": "not valid JSON",
           "huge": "the response is too large",
           "refused": "cannot connect"}[mode]
    assert why in log, log[-2000:]
    assert "keeping the 1 keys fetched before" in log

    # the source back: its next set is taken
    if mode == "refused":
        srv = servers(pki, port=port)
    srv.serve(jwt_keys, "b")
    wait_pass(gw, token(jwt_keys, "b"), 5, "the set after the outage")
    every_worker_passes(gw, token(jwt_keys, "b"))


def test_stalled_source_times_out_and_no_request_waits(
        jwt_keys, pki, servers, gateways):
    srv = servers(pki)
    srv.serve(jwt_keys, "a")
    gw = gateways(srv.url(), "ca=%s refresh=1s min_refresh=1s timeout=2s"
                  % pki.path("ca.pem"))
    old = token(jwt_keys, "a")
    wait_pass(gw, old, 5, "the first fetch")

    srv.mode = "stall"
    n0 = len(srv.fetches)
    stack.wait_until(lambda: len(srv.fetches) > n0, 5, "a stalled fetch")
    start = time.monotonic()
    worst = 0
    while time.monotonic() - start < 3:
        r, took = timed_get(gw, old)
        passed(r)
        worst = max(worst, took)
        # an unknown kid during the stall is refused at once too
        r, took = timed_get(gw, token(jwt_keys, "b"))
        assert_401(r)
        worst = max(worst, took)
    assert worst < 1, worst
    stack.wait_until(lambda: fetches(gw, "failed") >= 1, 5,
                     "the stalled fetch to time out")
    assert "timed out" in gw.error_log.read_text()


def test_a_fetching_worker_killed_loses_the_lease_to_the_new_workers(
        jwt_keys, pki, servers, gateways):
    srv = servers(pki)
    srv.serve(jwt_keys, "a")
    gw = gateways(srv.url(), "ca=%s refresh=1s min_refresh=1s timeout=2s"
                  % pki.path("ca.pem"))
    wait_pass(gw, token(jwt_keys, "a"), 5, "the first fetch")

    srv.mode = "stall"
    n0 = len(srv.fetches)
    stack.wait_until(lambda: len(srv.fetches) > n0, 5, "a stalled fetch")
    old = set(gw.workers_pids())
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    stack.wait_until(lambda: len(set(gw.workers_pids()) - old) == 2, 10,
                     "the master to start new workers")
    # the new workers take the set from the zone at once
    passed(gw.get("/api/x", token(jwt_keys, "a")))

    # the dead worker's lease runs out (timeout + 1s) and one of them
    # fetches: the next set is taken
    srv.serve(jwt_keys, "b")
    srv.unstall.set()
    wait_pass(gw, token(jwt_keys, "b"), 8, "a fetch after the lease ran out")
    assert gw.alive()


def test_startup_with_a_stalled_source_refuses_instead_of_waiting(
        jwt_keys, pki, servers, gateways):
    srv = servers(pki)
    srv.serve(jwt_keys, "a")
    srv.mode = "stall"
    gw = gateways(srv.url(), "ca=%s refresh=1s min_refresh=1s timeout=2s"
                  % pki.path("ca.pem"))
    for _ in range(5):
        r, took = timed_get(gw, token(jwt_keys, "a"))
        assert_401(r)
        assert took < 1
    srv.mode = "ok"
    srv.unstall.set()
    wait_pass(gw, token(jwt_keys, "a"), 6, "the fetch after the stall")


@pytest.mark.parametrize("case", ["other CA", "other name",
                                  "other address"])
def test_certificate_that_does_not_verify_loads_no_keys(
        jwt_keys, pki, servers, gateways, case):
    host = "127.0.0.1" if case == "other address" else "localhost"
    if case == "other CA":
        srv = servers(pki)
        ca, why = pki.path("other-ca.pem"), "the certificate does not verify"
    else:
        srv = servers(pki, cert="wrong-name")
        ca, why = pki.path("ca.pem"), "the certificate does not name the host"
    srv.serve(jwt_keys, "a")
    gw = gateways(srv.url(host), "ca=%s refresh=1s min_refresh=1s" % ca)
    stack.wait_until(lambda: fetches(gw, "failed") >= 2, 6,
                     "the failed fetches to be counted")
    assert fetches(gw, "ok") == 0
    assert_401(gw.get("/api/x", token(jwt_keys, "a")))
    log = gw.error_log.read_text()
    assert why in log, log[-2000:]


def nginx_t_with(jwt_keys, echo_upstream, url, params=""):
    gw = jwt_support.JwtGateway(jwt_keys, echo_upstream.port,
                                template=TEMPLATE,
                                values={"JWKS": url, "JWKS_PARAMS": params})
    try:
        gw.render()
        return jwt_support.nginx_t(gw.prefix, gw.conf_path)
    finally:
        gw.destroy()


def test_plain_http_to_another_host_is_refused_by_nginx_t(jwt_keys,
                                                          echo_upstream):
    res = nginx_t_with(jwt_keys, echo_upstream,
                       "http://192.0.2.10:8080/jwks.json")
    assert res.returncode != 0
    assert ("http:// is allowed only to a loopback address, and "
            "\"192.0.2.10\" is not one: use https://") in res.stderr, \
        res.stderr


def test_one_url_with_other_parameters_is_refused_by_nginx_t(
        jwt_keys, echo_upstream, tmp_path):
    gw = jwt_support.JwtGateway(
        jwt_keys, echo_upstream.port, template=TEMPLATE,
        values={"JWKS": "https://127.0.0.1:9/jwks.json",
                "JWKS_PARAMS": "refresh=5s; } location /b/ { omni_auth jwt; "
                               "omni_jwt_jwks https://127.0.0.1:9/jwks.json "
                               "refresh=10s"})
    try:
        gw.render()
        res = jwt_support.nginx_t(gw.prefix, gw.conf_path)
    finally:
        gw.destroy()
    assert res.returncode != 0
    assert ('"https://127.0.0.1:9/jwks.json" is fetched once for every '
            'location: give it the same parameters everywhere') \
        in res.stderr, res.stderr


def test_ca_that_cannot_be_read_is_refused_by_nginx_t(jwt_keys,
                                                      echo_upstream):
    res = nginx_t_with(jwt_keys, echo_upstream,
                       "https://127.0.0.1:9/jwks.json",
                       "ca=/nonexistent/ca.pem")
    assert res.returncode != 0
    assert ('"omni_jwt_jwks": the CA bundle "/nonexistent/ca.pem" for '
            '"https://127.0.0.1:9/jwks.json" cannot be read') in res.stderr, \
        res.stderr
