"""The test stack itself: services start, answer, and leave nothing behind."""

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import requests

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


def _stack_sh(repo, env, command):
    return subprocess.run(["bash", str(repo / "conf" / "stack.sh"), command],
                          env=env, cwd=repo, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=110)


def test_local_stack_starts_in_a_0700_home_directory():
    """`make up` in a clone inside a home directory other users cannot
    enter (mode 0700, as /root): the stack starts (as root, its run
    directory goes under /var/lib/omni, which the postgres and www-data
    users can reach, and .run links to it), the admin logs in through the
    gateway with .run/admin-password, the admin page is served at the URL
    `make up` prints (issue 21), Redis refuses a client without
    .run/redis-password, and `make down` stops everything."""
    home = stack.make_tmpdir("omni-test-home-")
    home.chmod(0o700)
    repo = home / "omni"
    (repo / "build").mkdir(parents=True)
    shutil.copytree(stack.CONF_DIR, repo / "conf")
    shutil.copytree(stack.SQL_DIR, repo / "sql")
    for name in ("omni-worker", "ngx_http_omni_module.so"):
        (repo / "build" / name).symlink_to(stack.BUILD / name)
    assert (stack.BUILD / "ui" / "index.html").exists(), "make ui"
    shutil.copytree(stack.BUILD / "ui", repo / "build" / "ui")

    ports = {v: stack.free_port() for v in (
        "OMNI_HTTP_PORT", "OMNI_HTTPS_PORT", "OMNI_PG_PORT",
        "OMNI_REDIS_PORT")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_")}
    env.update({k: str(v) for k, v in ports.items()}, OMNI_WORKERS="1")
    run = repo / ".run"
    pids = []
    try:
        up = _stack_sh(repo, env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        if stack.IS_ROOT:
            assert run.is_symlink()
            assert run.resolve().parent == Path("/var/lib/omni")
            assert "the run directory (Postgres' data too) is %s" \
                % run.resolve() in up.stdout
        pids = [int((run / (n + ".pid")).read_text())
                for n in ("postgres", "redis", "worker", "nginx")]

        password = (run / "admin-password").read_text()
        r = requests.post(
            "https://localhost:%d/auth/login" % ports["OMNI_HTTPS_PORT"],
            json={"email": "admin@localhost", "password": password},
            verify=str(run / "tls" / "cert.pem"), timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["access_token"]

        page = "https://localhost:%d/" % ports["OMNI_HTTPS_PORT"]
        assert page in up.stdout, up.stdout
        r = requests.get(page, verify=str(run / "tls" / "cert.pem"),
                         timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/html")
        assert "Content-Security-Policy" in r.headers
        script = re.search(r'src="(/assets/[^"]+\.js)"', r.text)
        assert script, r.text
        r = requests.get(page.rstrip("/") + script.group(1),
                         verify=str(run / "tls" / "cert.pem"), timeout=30)
        assert r.status_code == 200 and "immutable" in \
            r.headers.get("Cache-Control", ""), r.headers

        secret = run / "redis-password"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        import redis
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=ports["OMNI_REDIS_PORT"]).set("omni:x", "1")
        assert redis.Redis(port=ports["OMNI_REDIS_PORT"],
                           password=secret.read_text().strip()).ping()
    finally:
        down = _stack_sh(repo, env, "down")
        real = run.resolve()
        shutil.rmtree(home, ignore_errors=True)
        if real.parent == Path("/var/lib/omni"):
            shutil.rmtree(real, ignore_errors=True)
    assert down.returncode == 0, down.stdout + down.stderr
    assert pids and not any(stack.pid_alive(p) for p in pids)
