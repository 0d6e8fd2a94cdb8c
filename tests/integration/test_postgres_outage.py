"""Postgres down: the worker answers 503 fast and recovers by itself."""

import time

import pytest

import stack

CONFIG_PATH = "/api/v1/config/refresh_interval"


@pytest.fixture
def pg_down(migrated, own_worker):
    """own_worker, warmed up, with Postgres stopped; Postgres is started
    again afterwards whatever the test did."""
    r = own_worker.request("GET", CONFIG_PATH)
    assert r.status == 200, r.body
    own_worker.wait_children()
    migrated.stop("fast")
    try:
        yield own_worker
    finally:
        migrated.ensure_running()


def test_config_read_gets_503_database_unavailable_in_under_a_second(pg_down):
    started = time.monotonic()
    r = pg_down.request("GET", CONFIG_PATH)
    elapsed = time.monotonic() - started
    assert r.status == 503, r.body
    assert r.json()["error"] == "database_unavailable"
    assert elapsed < 1.0


def test_health_reports_postgres_down_with_503(pg_down):
    def down():
        r = pg_down.request("GET", "/health")
        return r if r.status == 503 else None
    r = stack.wait_until(down, 2, "/health to answer 503")
    doc = r.json()
    assert doc["postgres"] == "down"
    assert doc["redis"] == "up"
    assert doc["status"] != "ok"


def test_worker_serves_again_within_10s_of_postgres_coming_back(migrated,
                                                                 pg_down):
    children = pg_down.children()
    assert pg_down.request("GET", CONFIG_PATH).status == 503
    migrated.start()

    def served():
        return pg_down.request("GET", CONFIG_PATH).status == 200
    stack.wait_until(served, 10, "a 200 after Postgres restarted",
                     interval=0.2)
    # the same processes recovered: nothing was restarted
    assert pg_down.children() == children
