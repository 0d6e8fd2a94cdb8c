"""How the worker's answers leave and its requests are framed (http/conn.c
over lib/httpwire.c): whatever the size of an answer and whatever the
client asked of the connection, the answer arrives whole and the
connection goes on, or closes, as HTTP/1.1 says; a request it cannot frame
gets a JSON error naming the problem, and the connection ends."""
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


# --- how requests are framed (http/conn.c over lib/httpwire.c) -------------

PUT_HEAD = ("PUT /api/v1/config/%s HTTP/1.1\r\nHost: w\r\n"
            "X-User-Role: admin\r\nContent-Type: application/json\r\n")


def _exchange(worker, data):
    """data on a new connection; everything the worker sends back until it
    closes or goes quiet for a second."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1)
    sock.connect(str(worker.socket_path))
    out = b""
    try:
        sock.sendall(data)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    finally:
        sock.close()
    return out


def test_a_chunked_request_body_is_read_whole(worker):
    key = "chunked_%s" % uuid.uuid4().hex[:8]
    body = json.dumps({"parts": ["a" * 300, "b" * 5]}).encode()
    coded = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p)
                     for p in (body[:100], body[100:101], body[101:]))
    r = worker.raw((PUT_HEAD % key + "Transfer-Encoding: chunked\r\n\r\n")
                   .encode(), coded + b"0\r\nX-Trailer: t\r\n\r\n")
    assert r.status == 200, r
    got = stack.http_request(worker.connection(), "GET",
                             "/api/v1/config/" + key)
    assert got.json()["value"] == {"parts": ["a" * 300, "b" * 5]}


def test_expect_100_continue_is_answered_before_the_body(worker):
    key = "continue_%s" % uuid.uuid4().hex[:8]
    body = json.dumps({"value": 7}).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(worker.socket_path))
    try:
        sock.sendall((PUT_HEAD % key + "Expect: 100-continue\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n"
                      % len(body)).encode())
        interim = sock.recv(4096)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
        sock.sendall(body)
        final = _read_all(sock)
    finally:
        sock.close()
    assert final.startswith(b"HTTP/1.1 200 OK\r\n"), final


@pytest.mark.parametrize("head, status, problem", [
    (b"GET /health/live HTTP/1.1\r\nHost : w\r\n\r\n", 400,
     "malformed header field"),
    (b"GET /health/live HTTP/1.1\r\nHost: w\r\n folded\r\n\r\n", 400,
     "obsolete line folding"),
    (b"POST /health/live HTTP/1.1\r\nHost: w\r\nContent-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", 400,
     "both Content-Length and Transfer-Encoding"),
    (b"POST /health/live HTTP/1.1\r\nHost: w\r\nContent-Length: 3\r\n"
     b"Content-Length: 4\r\n\r\n", 400, "conflicting Content-Length values"),
    (b"POST /health/live HTTP/1.1\r\nHost: w\r\n"
     b"Transfer-Encoding: gzip\r\n\r\n", 501,
     "unsupported Transfer-Encoding"),
    (b"GET /health/live HTTP/2.0\r\nHost: w\r\n\r\n", 505,
     "HTTP version not supported"),
    (b"GET /health/live HTTP/1.1\r\nHost: w\r\n" + b"X-Big: "
     + b"x" * 40000 + b"\r\n\r\n", 431,
     "the request's head is larger than 32 KiB"),
])
def test_a_request_that_cannot_be_framed_gets_a_json_error_and_a_close(
        worker, head, status, problem):
    # a request pipelined after it is never answered: the connection ends
    data = _exchange(worker, head + b"GET /health/live HTTP/1.1\r\n"
                     b"Host: w\r\n\r\n")
    answer_head, _, body = data.partition(b"\r\n\r\n")
    assert answer_head.startswith(b"HTTP/1.1 %d " % status), data[:200]
    assert b"\r\nConnection: close" in answer_head
    assert json.loads(body)["message"] == problem
    assert data.count(b"HTTP/1.1 ") == 1


def test_a_chunked_body_over_the_limit_is_413(worker):
    chunk = b"x" * 65536
    coded = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk)
                     for _ in range(20))           # 1.25 MiB > 1 MiB
    r = worker.raw((PUT_HEAD % "too_big" +
                    "Transfer-Encoding: chunked\r\n\r\n").encode(), coded)
    assert r.status == 413
    assert r.json()["error"] == "payload_too_large"


def test_an_unknown_method_is_501_and_head_has_the_length_without_body(
        worker):
    data = _exchange(worker, b"BREW /health/live HTTP/1.1\r\nHost: w\r\n"
                     b"\r\nHEAD /health/live HTTP/1.1\r\nHost: w\r\n\r\n"
                     b"GET /health/live HTTP/1.1\r\nHost: w\r\n"
                     b"Connection: close\r\n\r\n")
    first, rest = data.split(b"HTTP/1.1 200 OK\r\n", 1)
    assert first.startswith(b"HTTP/1.1 501 Not Implemented\r\n"), data
    assert b'"error":"not_implemented"' in first
    # HEAD: the GET's Content-Length, and the GET's answer right after
    head_answer, get_answer = rest.split(b"HTTP/1.1 200 OK\r\n", 1)
    length = int(head_answer.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert head_answer.endswith(b"\r\n\r\n")
    assert get_answer.endswith(b"}\n")
    assert len(get_answer.partition(b"\r\n\r\n")[2]) == length


def test_a_body_of_tiny_chunks_needs_no_more_room_than_its_data(worker):
    # 300 KB of data in 1-byte chunks is 1.8 MB on the wire, more than the
    # worker's buffer could hold (1 MiB + head): the framing is given back
    # as it is read, and only the data counts against OMNI_MAX_BODY_BYTES
    key = "tiny_chunks_%s" % uuid.uuid4().hex[:8]
    body = json.dumps({"s": "x" * 300000}).encode()
    coded = b"".join(b"1\r\n%c\r\n" % b for b in body) + b"0\r\n\r\n"
    assert len(coded) > 1024 * 1024 + 32768
    r = worker.raw((PUT_HEAD % key + "Transfer-Encoding: chunked\r\n\r\n")
                   .encode(), coded)
    assert r.status == 200, r
    got = stack.http_request(worker.connection(), "GET",
                             "/api/v1/config/" + key)
    assert got.json()["value"] == {"s": "x" * 300000}
