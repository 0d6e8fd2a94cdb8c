"""The worker's Postgres pool sends the queries of one loop pass as one
pipeline on one connection: each query still stands alone (its own
result, its own transaction), whatever its batch-mates do."""

import json
import os
import re
import signal
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import stack

FAIL_KEY = "fail_in_pipeline"


@pytest.fixture
def failing_preferences(migrated):
    """A trigger that makes Postgres reject a preferences write holding
    FAIL_KEY (and only that one)."""
    migrated.sql("""
        CREATE FUNCTION omni2_dashboard.test_pipeline_fail() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.preferences ? '%s' THEN
                RAISE EXCEPTION 'rejected by the test trigger';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_pipeline_fail BEFORE INSERT OR UPDATE
            ON omni2_dashboard.user_preferences FOR EACH ROW
            EXECUTE FUNCTION omni2_dashboard.test_pipeline_fail();
    """ % FAIL_KEY, dbname="omni")
    yield
    migrated.sql("""
        DROP TRIGGER test_pipeline_fail ON omni2_dashboard.user_preferences;
        DROP FUNCTION omni2_dashboard.test_pipeline_fail();
    """, dbname="omni")


def _pipelined(worker):
    r = worker.request("GET", "/metrics")
    assert r.status == 200
    return sum(int(v) for v in re.findall(
        r'^omni_worker_pg_pipelined_total\{pid="\d+"\} (\d+)$',
        r.text, re.M))


def test_a_failing_query_leaves_its_batch_mates_answered_and_committed(
        worker_factory, migrated, failing_preferences):
    # one process, two connections, many clients at once: the queries
    # queue and go out in batches
    w = worker_factory(workers=1, env={"OMNI_PG_POOL_SIZE": 2})
    run = uuid.uuid4().hex[:8]
    users = ["pipe-%s-%02d" % (run, i) for i in range(48)]

    def put(i):
        prefs = {"n": i}
        if i % 3 == 0:
            prefs[FAIL_KEY] = True
        body = json.dumps(prefs).encode()
        r = w.request("PUT", "/api/v1/preferences", body=body, headers={
            "Content-Type": "application/json", "X-User-Id": users[i],
            "X-User-Role": "user"})
        return i, prefs, r

    before = _pipelined(w)
    with ThreadPoolExecutor(len(users)) as pool:
        answers = list(pool.map(put, range(len(users))))

    for i, prefs, r in answers:
        if FAIL_KEY in prefs:
            assert r.status == 500, (i, r.status, r.text)
            assert r.json()["error"] == "internal_error"
        else:
            # each answer is its own query's result, not a batch-mate's
            assert r.status == 200, (i, r.status, r.text)
            assert r.json()["preferences"] == prefs
    # the process publishes its pool's counters every second
    stack.wait_until(lambda: _pipelined(w) > before, 5,
                     "queries sent in a batch")

    rows = dict(migrated.sql(
        "SELECT user_id, preferences::text FROM"
        " omni2_dashboard.user_preferences WHERE user_id LIKE %s",
        ("pipe-%s-%%" % run,), dbname="omni"))
    # every write that was answered 200 stays, whatever failed beside it
    assert {u: json.loads(p) for u, p in rows.items()} == {
        users[i]: prefs for i, prefs, r in answers if FAIL_KEY not in prefs}


@pytest.fixture
def slow_config_write(migrated):
    """A trigger that makes writing the configuration key SLOW_KEY take a
    second."""
    migrated.sql("""
        CREATE FUNCTION omni2_dashboard.test_pipeline_slow() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.key = '%s' THEN
                PERFORM pg_sleep(1);
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_pipeline_slow BEFORE INSERT OR UPDATE
            ON omni2_dashboard.dashboard_config FOR EACH ROW
            EXECUTE FUNCTION omni2_dashboard.test_pipeline_slow();
    """ % SLOW_KEY, dbname="omni")
    yield
    migrated.sql("""
        DROP TRIGGER test_pipeline_slow ON omni2_dashboard.dashboard_config;
        DROP FUNCTION omni2_dashboard.test_pipeline_slow();
        DELETE FROM omni2_dashboard.dashboard_config WHERE key = '%s';
    """ % SLOW_KEY, dbname="omni")


SLOW_KEY = "test_pipeline_slow"


def _raw(method, path, body=b"", role="user"):
    return ("%s %s HTTP/1.1\r\nHost: w\r\nX-User-Id: pipe-reader\r\n"
            "X-User-Role: %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (method, path, role, len(body))
            ).encode() + body


def _answer(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(rest) < n:
        rest += sock.recv(65536)
    return int(head.split()[1]), time.monotonic()


def test_point_reads_never_wait_behind_a_slow_statement(
        worker_factory, slow_config_write):
    """A slow write and point reads that arrive in one loop pass: the
    write runs on a connection alone, the reads beside it answer at once
    (a pipeline shared with the write would hold them for its second)."""
    w = worker_factory(workers=1, env={"OMNI_PG_POOL_SIZE": 2})
    [proc] = stack.children_of(w.proc.pid)
    slow = _raw("PUT", "/api/v1/config/" + SLOW_KEY, b'{"n": 1}', "admin")
    read = _raw("GET", "/api/v1/config/refresh_interval")
    socks = []
    for _ in range(9):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(w.socket_path))
        s.settimeout(10)
        socks.append(s)
    time.sleep(0.2)     # every connection accepted before the stop
    os.kill(proc, signal.SIGSTOP)
    try:
        socks[0].sendall(slow)
        for s in socks[1:]:
            s.sendall(read)
    finally:
        start = time.monotonic()
        os.kill(proc, signal.SIGCONT)
    reads = [_answer(s) for s in socks[1:]]
    status, done = _answer(socks[0])
    for s in socks:
        s.close()
    assert status == 200 and done - start >= 1.0
    assert [st for st, _ in reads] == [200] * 8
    assert max(t for _, t in reads) - start < 0.5, \
        [round(t - start, 3) for _, t in reads]
