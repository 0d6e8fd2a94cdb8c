"""What conf/nginx.conf.in lets reach omni-worker: every header the gateway
owns (X-User-*, X-Token-*, the omni_claim headers) comes from the gateway
only, on every location, and the API key stays at the gateway. The worker's
socket is served here by an echo upstream that answers with every header
line it received (jwt_upstream.py), so the test sees what the worker would.
"""

import hashlib
import http.client
import socketserver
import threading

import jwt
import pytest

import jwt_upstream
import stack
from jwt_support import passed
from jwt_upstream import Echo

FORGED = [("X-Token-Id", "forged-jti"), ("x-token-expires", "1"),
          ("X-TOKEN-ID", "forged-jti-2"), ("X-Token-Anything", "forged")]


class _UnixHandler(jwt_upstream._Handler):
    def setup(self):
        # no TCP_NODELAY on a unix socket
        socketserver.StreamRequestHandler.setup(self)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture(scope="module")
def echo_socket():
    """The echo upstream on the unix socket nginx takes for the worker's."""
    d = stack.make_tmpdir("omni-test-echo-")
    path = d / "worker.sock"
    server = _UnixServer(str(path), _UnixHandler)
    path.chmod(0o666)       # nginx's workers run as www-data under root
    thread = threading.Thread(target=server.serve_forever, daemon=True,
                              name="unix-echo-upstream")
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        import shutil
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def product_gateway(echo_socket, redis_server):
    gw = stack.Nginx(worker_socket=echo_socket, redis_addr=redis_server.addr,
                     workers=1)
    try:
        gw.start()
        yield gw
    finally:
        gw.destroy()


def send(gw, method, path, lines):
    """One request with header lines sent exactly as given."""
    conn = gw.connection()
    try:
        conn.putrequest(method, path)
        for name, value in lines:
            conn.putheader(name, value)
        conn.putheader("Content-Length", "0")
        conn.endheaders()
        return passed(_Raw.read_from(conn.getresponse()))
    finally:
        conn.close()


class _Raw(stack.Response):
    @property
    def status_code(self):
        return self.status


def _token_headers(echo):
    return [(k, v) for k, v in echo.headers if k.lower().startswith("x-token-")]


def test_forged_token_headers_never_reach_an_api_location(product_gateway):
    """/api/ names no X-Token-* claim; they are the gateway's all the same
    (the worker's logout believes X-Token-Id)."""
    lines = [("Authorization", "Bearer " + product_gateway.token())] + FORGED
    echo = send(product_gateway, "GET", "/api/v1/config", lines)
    assert echo.one("X-User-Id") == "test-user"
    assert not _token_headers(echo), echo


def test_forged_token_headers_never_reach_an_open_location(product_gateway):
    echo = send(product_gateway, "GET", "/health", FORGED)
    assert not _token_headers(echo), echo


def test_logout_gets_the_presented_tokens_jti_and_exp_only(product_gateway):
    tok = product_gateway.token()
    claims = jwt.decode(tok, options={"verify_signature": False})
    lines = FORGED + [("Authorization", "Bearer " + tok)]
    echo = send(product_gateway, "POST", "/auth/logout", lines)
    assert echo.one("X-Token-Id") == claims["jti"]
    assert echo.one("X-Token-Expires") == str(claims["exp"])
    assert echo.absent("X-Token-Anything"), echo


def test_api_key_is_not_forwarded_to_the_worker(product_gateway,
                                                redis_server):
    key = "omni_live_fwd_" + "a" * 20
    digest = hashlib.sha256(key.encode()).hexdigest()
    client = redis_server.client()
    client.hset("omni:apikey:" + digest, mapping={
        "key_id": "k-fwd", "user_id": "u-fwd", "username": "fwd",
        "role": "viewer", "expires_at": "0"})
    try:
        echo = send(product_gateway, "GET", "/api/v1/config",
                    [("X-API-Key", key), ("x-api-key", key + "-copy")])
        assert echo.one("X-User-Id") == "u-fwd"
        assert echo.absent("X-API-Key"), echo
        # a JWT wins over a key sent alongside; the key stays here too
        echo = send(product_gateway, "GET", "/api/v1/config",
                    [("Authorization", "Bearer " + product_gateway.token()),
                     ("X-API-Key", key)])
        assert echo.one("X-User-Id") == "test-user"
        assert echo.absent("X-API-Key"), echo
    finally:
        client.delete("omni:apikey:" + digest)


def _mirror_key(client, key, user):
    digest = hashlib.sha256(key.encode()).hexdigest()
    client.hset("omni:apikey:" + digest, mapping={
        "key_id": "k-" + user, "user_id": user, "username": user,
        "role": "viewer", "expires_at": "0"})
    return "omni:apikey:" + digest


def test_api_key_as_a_bearer_credential_is_a_key_and_stays_here(
        product_gateway, redis_server):
    """The OpenAI SDK sends its key as "Authorization: Bearer omk_...":
    where keys are accepted that is an API key, never taken for a JWT, and
    the key does not reach the upstream."""
    client = redis_server.client()
    key = "omk_bearer_" + "b" * 24
    other = "omk_header_" + "h" * 24
    mirrored = [_mirror_key(client, key, "u-bearer"),
                _mirror_key(client, other, "u-header")]
    try:
        echo = send(product_gateway, "GET", "/api/v1/config",
                    [("Authorization", "Bearer " + key)])
        assert echo.one("X-User-Id") == "u-bearer"
        assert echo.absent("Authorization"), echo
        # the scheme is case-insensitive (RFC 7235)
        echo = send(product_gateway, "GET", "/api/v1/config",
                    [("Authorization", "bearer " + key)])
        assert echo.one("X-User-Id") == "u-bearer"
        # the key header wins over a bearer key; neither is forwarded
        echo = send(product_gateway, "GET", "/api/v1/config",
                    [("Authorization", "Bearer " + key),
                     ("X-API-Key", other)])
        assert echo.one("X-User-Id") == "u-header"
        assert echo.absent("Authorization") and echo.absent("X-API-Key")
    finally:
        client.delete(*mirrored)
    # once the key is gone, the bearer key is refused as a key
    conn = product_gateway.connection()
    conn.request("GET", "/api/v1/config",
                 headers={"Authorization": "Bearer " + key})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 401, body
    assert b"unknown API key" in body, body


def test_bearer_key_is_refused_where_only_tokens_are_taken(product_gateway,
                                                          redis_server):
    client = redis_server.client()
    key = "omk_jwtonly_" + "c" * 24
    mirrored = _mirror_key(client, key, "u-jwtonly")
    try:
        conn = product_gateway.connection()
        conn.request("POST", "/auth/logout",
                     headers={"Authorization": "Bearer " + key})
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        assert resp.status == 401, body
        assert b"invalid_token" in body, body
    finally:
        client.delete(mirrored)


def test_api_key_passes_where_the_gateway_does_not_read_it(product_gateway):
    """Only where omni_auth takes API keys is the header the gateway's."""
    echo = send(product_gateway, "GET", "/health", [("X-API-Key", "k")])
    assert echo.one("X-API-Key") == "k"
