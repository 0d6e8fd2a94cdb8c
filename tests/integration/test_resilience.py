"""Slow Postgres, Redis outages and crashed processes behind the gateway."""

import os
import re
import signal
import threading
import time

import pytest

import stack

CONFIG_PATH = "/api/v1/config/refresh_interval"


def test_query_past_its_timeout_gets_503_database_timeout(migrated,
                                                          worker_factory):
    w = worker_factory(workers=1, env={"OMNI_PG_QUERY_TIMEOUT_MS": 300})
    assert w.request("GET", CONFIG_PATH).status == 200
    conn = migrated.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLE omni2_dashboard.dashboard_config"
                        " IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            r = w.request("GET", CONFIG_PATH)
            elapsed = time.monotonic() - started
    finally:
        conn.rollback()
        conn.close()
    assert r.status == 503, r.body
    assert r.json()["error"] == "database_timeout"
    assert 0.25 < elapsed < 2.0
    # the connection that timed out is replaced: later reads are served
    stack.wait_until(lambda: w.request("GET", CONFIG_PATH).status == 200, 5,
                     "a 200 after the timeout")


def test_full_wait_queue_gets_503_at_once(migrated, worker_factory):
    # no metrics flush may take the one queue slot meanwhile
    w = worker_factory(workers=1, env={"OMNI_PG_POOL_SIZE": 1,
                                       "OMNI_PG_QUEUE_MAX": 1,
                                       "OMNI_PG_QUERY_TIMEOUT_MS": 5000,
                                       "OMNI_METRICS_FLUSH_MS": 3600000})
    assert w.request("GET", CONFIG_PATH).status == 200
    conn = migrated.connect()
    results = []

    def blocked():
        results.append(w.request("GET", CONFIG_PATH, timeout=20).status)
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLE omni2_dashboard.dashboard_config"
                        " IN ACCESS EXCLUSIVE MODE")
            # one query holds the only connection, one waits in the queue
            threads = [threading.Thread(target=blocked) for _ in range(2)]
            for t in threads:
                t.start()
                time.sleep(0.2)
            started = time.monotonic()
            r = w.request("GET", CONFIG_PATH)
            elapsed = time.monotonic() - started
    finally:
        conn.rollback()
        conn.close()
    for t in threads:
        t.join(20)
    assert r.status == 503, r.body
    assert r.json()["error"] == "database_unavailable"
    assert elapsed < 0.5
    assert results == [200, 200]


@pytest.fixture
def own_redis():
    server = stack.Redis()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def test_redis_down_is_reported_and_recovered_without_restart(migrated,
                                                              own_redis):
    w = stack.Worker(migrated, own_redis, workers=1)
    try:
        w.start()
        assert w.request("GET", "/health").json()["redis"] == "up"
        pid = w.children()
        port = own_redis.port
        own_redis.destroy()

        def degraded():
            r = w.request("GET", "/health")
            return r if r.json()["redis"] == "down" else None
        r = stack.wait_until(degraded, 5, "/health to report redis down")
        # Postgres still serves: the process is degraded, not unready
        assert r.status == 200
        assert r.json()["status"] == "degraded"

        again = stack.Redis(port=port)
        try:
            again.start()
            stack.wait_until(
                lambda: w.request("GET", "/health").json()["redis"] == "up",
                10, "/health to report redis up again", interval=0.2)
            assert w.children() == pid
        finally:
            again.destroy()
    finally:
        w.destroy()


def test_gateway_retries_idempotent_requests_when_a_process_is_killed(
        migrated, redis_server):
    w = stack.Worker(migrated, redis_server, workers=2)
    gw = None
    try:
        w.start()
        # the load is one user's: keep the API limit out of the way
        gw = stack.Nginx(w.socket_path, redis_addr=redis_server.addr,
                         api_rate="1000000r/s").start()
        failures, done = [], threading.Event()
        auth = gw.bearer(role="user")

        def load():
            while not done.is_set():
                try:
                    r = gw.request("GET", CONFIG_PATH, timeout=5,
                                   headers=auth)
                    if r.status_code != 200:
                        failures.append((r.status_code, r.text))
                except Exception as e:
                    failures.append(repr(e))
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        victim = w.children()[0]
        os.kill(victim, signal.SIGKILL)
        stack.wait_until(lambda: victim not in w.children()
                         and len(w.children()) == 2, 10,
                         "a replacement process")
        time.sleep(0.5)
        done.set()
        for t in threads:
            t.join(10)
        assert failures == []
    finally:
        if gw is not None:
            gw.destroy()
        w.destroy()


def _per_process(text, name):
    """A per-process metric from /metrics: {pid: value}."""
    return {int(pid): int(v) for pid, v in re.findall(
        r'^%s\{pid="(\d+)"\} (\d+)$' % re.escape(name), text, re.M)}


def test_stalled_redis_fails_commands_fast_and_is_reconnected(migrated,
                                                              own_redis):
    """SIGSTOP: the connection stays open and nothing answers. Commands
    waiting past OMNI_REDIS_TIMEOUT_MS tear it down; no more than
    OMNI_REDIS_PENDING_MAX wait at once (the rest fail at once); after
    SIGCONT the same process talks to Redis again."""
    w = stack.Worker(migrated, own_redis, workers=1,
                     env={"OMNI_REDIS_TIMEOUT_MS": 500,
                          "OMNI_REDIS_PENDING_MAX": 8})
    redis_pid = own_redis.proc.pid
    try:
        w.start()
        assert w.request("GET", "/health").json()["redis"] == "up"
        process = w.children()
        stop, answers, pending = threading.Event(), [], []

        def probe():
            while not stop.is_set():
                started = time.monotonic()
                r = w.request("GET", "/health", timeout=10)
                answers.append((time.monotonic() - started,
                                r.json()["redis"]))
        threads = [threading.Thread(target=probe) for _ in range(12)]
        os.kill(redis_pid, signal.SIGSTOP)
        try:
            for t in threads:
                t.start()
            deadline = time.monotonic() + 3.5
            while time.monotonic() < deadline:
                pending += _per_process(w.request("GET", "/metrics").text,
                                        "omni_worker_redis_pending").values()
                time.sleep(0.1)
            stop.set()
            for t in threads:
                t.join(15)
            stalled = w.request("GET", "/metrics").text
        finally:
            os.kill(redis_pid, signal.SIGCONT)

        # every probe answered promptly, saying Redis is down
        assert len(answers) > 50, len(answers)
        assert max(a[0] for a in answers) < 2.0, max(answers)
        assert {a[1] for a in answers[len(answers) // 2:]} == {"down"}
        # the bound held, was reached, and stalls tore the connection down
        assert pending and max(pending) <= 8, pending
        assert sum(_per_process(stalled, "omni_worker_redis_rejected_total")
                   .values()) > 0, stalled
        assert sum(_per_process(stalled, "omni_worker_redis_timeouts_total")
                   .values()) >= 2, stalled
        assert w.log_contains("redis did not answer in time; reconnecting")
        assert w.log_contains("OMNI_REDIS_PENDING_MAX")

        stack.wait_until(
            lambda: w.request("GET", "/health").json()["redis"] == "up",
            10, "/health to report redis up after SIGCONT", interval=0.2)
        assert w.children() == process
        assert w.sanitizer_report() is None, w.sanitizer_report()
    finally:
        os.kill(redis_pid, signal.SIGCONT)
        w.destroy()
