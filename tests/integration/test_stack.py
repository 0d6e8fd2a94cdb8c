"""The test stack itself: services start, answer, and leave nothing behind."""

import os
import shutil

import pytest

import stack


def test_postgres_accepts_the_omni_role_with_its_password_over_tcp(pg):
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, current_database(), "
                        "inet_server_port()")
            assert cur.fetchone() == ("omni", "omni", pg.port)
    finally:
        conn.close()


def test_postgres_rejects_a_wrong_password(pg):
    import psycopg2
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(host="127.0.0.1", port=pg.port, user="omni",
                         password="wrong", dbname="omni", connect_timeout=5)


def test_postgres_restart_keeps_port_and_data():
    server = stack.Postgres()
    try:
        server.init()
        server.sql("CREATE TABLE kept (v int)", dbname="omni")
        server.sql("INSERT INTO kept VALUES (42)", dbname="omni")
        server.stop()
        assert not server.is_running()
        server.start()
        assert server.sql("SELECT v FROM kept", dbname="omni") == [(42,)]
    finally:
        server.destroy()
    assert not server.is_running()
    assert not server.base.exists()


def test_redis_answers_ping(redis_server):
    assert redis_server.client().ping()


def test_destroyed_redis_leaves_no_process_or_dir():
    server = stack.Redis().start()
    pid = server.proc.pid
    server.destroy()
    assert not stack.pid_alive(pid)
    assert not os.path.exists(server.dir)


def test_gateway_without_a_worker_answers_502_json():
    server = stack.Nginx(worker_socket=stack.make_tmpdir("omni-test-none-")
                         / "absent.sock")
    try:
        server.start()
        r = server.request("GET", "/health")
        assert r.status_code == 502
        assert r.json()["error"] == "upstream_unavailable"
    finally:
        server.destroy()
        shutil.rmtree(server.worker_socket.parent, ignore_errors=True)
    assert not stack.pid_alive(server.proc.pid)
