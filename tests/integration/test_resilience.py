"""Slow Postgres, Redis outages and crashed processes behind the gateway."""

import os
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
