"""The worker's Postgres pool with a libpq multi-host OMNI_DATABASE_URL
(SPEC 11, issue 19): it skips a host that refuses connections and, with
target_session_attrs=read-write, a read-only standby, by itself. The
measured primary switch under load is tests/drills/
test_drills_pg_failover.py."""

import json
import uuid

import pytest

import stack

ADMIN = {"Content-Type": "application/json", "X-User-Id": "multihost-test",
         "X-User-Role": "admin"}
READY_WITHIN = 10.0     # s; a pool that cannot reach the host never is


@pytest.fixture(scope="module")
def standby(migrated):
    """A hot standby of the session's Postgres (asynchronous)."""
    migrated.ensure_running()
    server = stack.PostgresStandby(migrated)
    try:
        server.init()
        yield server
    finally:
        server.destroy()


def postgres_up(w):
    r = w.request("GET", "/health")
    return r.status == 200 and r.json()["postgres"] == "up"


def put(w, key, value):
    return w.request("PUT", "/api/v1/config/" + key, ADMIN,
                     json.dumps(value))


def test_a_refusing_host_first_is_skipped(migrated, worker_factory):
    """libpq tries the next host on a new socket that often gets the
    closed one's number: the pool must watch the new socket."""
    dead = stack.free_port()
    url = "postgresql://%s:%s@127.0.0.1:%d,127.0.0.1:%d/%s" % (
        migrated.user, migrated.password, dead, migrated.port,
        migrated.dbname)
    w = worker_factory(env={"OMNI_DATABASE_URL": url})
    stack.wait_until(lambda: postgres_up(w), READY_WITHIN,
                     "the worker connected past the refusing host")
    key = "multihost_" + uuid.uuid4().hex[:12]
    r = put(w, key, {"n": 1})
    assert r.status == 200, r


def test_writes_reach_the_primary_with_a_standby_listed_first(
        migrated, standby, worker_factory):
    assert standby.in_recovery()
    url = stack.multi_host_url([standby, migrated],
                               target_session_attrs="read-write")
    w = worker_factory(env={"OMNI_DATABASE_URL": url})
    stack.wait_until(lambda: postgres_up(w), READY_WITHIN,
                     "the worker connected to the primary")
    key = "multihost_" + uuid.uuid4().hex[:12]
    for n in range(1, 21):      # each pool connection serves some
        r = put(w, key, {"n": n})
        assert r.status == 200, r
    # written on the primary, replicated to the standby
    stack.wait_until(
        lambda: standby.sql(
            "SELECT value FROM omni2_dashboard.dashboard_config "
            "WHERE key = %s", (key,), dbname="omni") == [({"n": 20},)],
        10, "the write replicated to the standby")


def test_without_read_write_the_standby_listed_first_is_used(
        migrated, standby, worker_factory):
    """The contrast: without target_session_attrs the pool stays on the
    first host that answers, the read-only standby, and writes fail."""
    url = stack.multi_host_url([standby, migrated])
    w = worker_factory(env={"OMNI_DATABASE_URL": url})
    stack.wait_until(lambda: postgres_up(w), READY_WITHIN,
                     "the worker connected to the standby")
    r = put(w, "multihost_" + uuid.uuid4().hex[:12], {"n": 1})
    assert r.status == 500, r
