"""How the worker's answers leave: written to the socket as soon as they are
ready (http/http.c, omni_http_flush), the rest left to evhttp. Whatever
the size of an answer and whatever the client asked of the connection,
the answer arrives whole and the connection goes on, or closes, as
HTTP/1.1 says."""
import json
import socket
import uuid

import pytest

import stack


@pytest.fixture
def big_setting(migrated):
    """A configuration value of about 600 KB: more than a unix socket takes
    in one write, so its answer goes out in several."""
    key = "big_%s" % uuid.uuid4().hex[:12]
    value = {"items": ["%06d-%s" % (i, "x" * 40) for i in range(12000)]}
    migrated.sql("INSERT INTO omni2_dashboard.dashboard_config (key, value)"
                 " VALUES (%s, %s::jsonb)", (key, json.dumps(value)),
                 dbname="omni")
    yield key, value
    migrated.sql("DELETE FROM omni2_dashboard.dashboard_config"
                 " WHERE key = %s", (key,), dbname="omni")


def _read_all(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_a_large_answer_arrives_whole_and_the_connection_serves_on(
        worker, big_setting):
    key, value = big_setting
    conn = worker.connection()
    try:
        for _ in range(3):
            res = stack.http_request(conn, "GET", "/api/v1/config/" + key)
            assert res.status == 200, res
            assert res.json()["value"] == value
            res = stack.http_request(conn, "GET", "/health/live")
            assert res.status == 200, res
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(worker):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(worker.socket_path))
    try:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: w\r\n"
                     b"X-Request-Id: first\r\n\r\n"
                     b"GET /nowhere HTTP/1.1\r\nHost: w\r\n"
                     b"X-Request-Id: second\r\n\r\n"
                     b"GET /health/live HTTP/1.1\r\nHost: w\r\n"
                     b"X-Request-Id: third\r\nConnection: close\r\n\r\n")
        data = _read_all(sock)
    finally:
        sock.close()
    heads = [part.split(b"\r\n\r\n")[0] for part in data.split(b"HTTP/1.1 ")
             if part]
    assert [h.split(b" ", 1)[0] for h in heads] == [b"200", b"404", b"200"]
    assert [h.split(b"X-Request-Id: ")[1].split(b"\r\n")[0]
            for h in heads] == [b"first", b"second", b"third"]


@pytest.mark.parametrize("head", [
    b"GET /health/live HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n",
    b"GET /health/live HTTP/1.0\r\n\r\n",
])
def test_a_connection_the_client_closes_ends_after_the_answer(worker, head):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(worker.socket_path))
    try:
        sock.sendall(head)
        data = _read_all(sock)     # returns only when the worker closes
    finally:
        sock.close()
    # HTTP/1.0 is answered in kind, without a length: the close ends it
    assert data.startswith(head[head.index(b"HTTP/"):][:8] + b" 200 "), data
    assert data.count(b" 200 OK\r\n") == 1
    assert data.endswith(b'}\n'), data


def test_keepalive_connection_serves_many_answers(worker):
    conn = worker.connection()
    try:
        for i in range(50):
            res = stack.http_request(conn, "GET", "/health/live",
                                     {"X-Request-Id": "n%d" % i})
            assert res.status == 200
            assert res.headers["X-Request-Id"] == "n%d" % i
    finally:
        conn.close()
