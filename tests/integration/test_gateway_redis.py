"""omni_redis: one non-blocking Redis connection per nginx worker, opened in
the worker, reconnected by itself; its address validated by `nginx -t`."""

import json
import shutil
import subprocess

import pytest

import stack
from test_nginx_config import assert_fails, assert_passes, nginx_t  # noqa: F401

CONF = """
load_module {module};
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    omni_redis {redis} {params};
    server {{
        listen 127.0.0.1:{port};
        location = /omni/status {{ omni_status; }}
    }}
}}
"""


class Gateway:
    def __init__(self, redis_addr, params=""):
        self.prefix = stack.make_tmpdir("omni-test-gwredis-")
        (self.prefix / "tmp").mkdir()
        self.port = stack.free_port()
        (self.prefix / "nginx.conf").write_text(CONF.format(
            module=stack.BUILD / "ngx_http_omni_module.so",
            prefix=self.prefix, redis=redis_addr, params=params,
            port=self.port))
        self.proc = subprocess.Popen(
            ["nginx", "-p", str(self.prefix), "-c",
             str(self.prefix / "nginx.conf"), "-e",
             str(self.prefix / "error.log"), "-g", "daemon off;"],
            start_new_session=True, stderr=subprocess.DEVNULL)
        stack.wait_until(self._up, 10, "nginx")

    def _up(self):
        try:
            self.status()
            return True
        except OSError:
            return False

    def status(self):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/omni/status")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def redis_connected(self, answers=8):
        """Whether every worker that answers says it is connected (the two
        workers answer in turn, so ask several times)."""
        states = {self.status()["configured"]["redis"]["connected"]
                  for _ in range(answers)}
        return states == {True}

    def redis_down_everywhere(self, answers=8):
        states = {self.status()["configured"]["redis"]["connected"]
                  for _ in range(answers)}
        return states == {False}

    def destroy(self):
        stack._stop_popen(self.proc, 15, 10)
        shutil.rmtree(self.prefix, ignore_errors=True)


@pytest.fixture
def own_redis():
    server = stack.Redis()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def test_every_worker_connects_to_redis(own_redis):
    gw = Gateway(own_redis.addr)
    try:
        stack.wait_until(gw.redis_connected, 5, "workers connected")
        clients = own_redis.client().client_list()
        # one connection per nginx worker, none from the master
        assert len([c for c in clients if c["cmd"] != "client|list"]) == 2
    finally:
        gw.destroy()


def test_redis_restart_is_survived_without_reload(own_redis):
    gw = Gateway(own_redis.addr)
    try:
        stack.wait_until(gw.redis_connected, 5, "workers connected")
        port = own_redis.port
        own_redis.destroy()
        stack.wait_until(gw.redis_down_everywhere, 5, "workers disconnected")
        again = stack.Redis(port=port)
        try:
            again.start()
            stack.wait_until(gw.redis_connected, 10,
                             "workers reconnected", interval=0.2)
        finally:
            again.destroy()
    finally:
        gw.destroy()


def test_password_and_db_are_used_on_connect(own_redis):
    own_redis.client().config_set("requirepass", "s3cret-pw")
    gw = Gateway(own_redis.addr, "password=s3cret-pw db=3")
    try:
        stack.wait_until(gw.redis_connected, 5, "workers connected")
        import redis
        c = redis.Redis(host="127.0.0.1", port=own_redis.port,
                        password="s3cret-pw")
        dbs = {cl["db"] for cl in c.client_list()
               if cl["cmd"] not in ("client|list", "client")}
        assert dbs == {"3"}
    finally:
        gw.destroy()


def test_wrong_password_leaves_the_workers_disconnected(own_redis):
    own_redis.client().config_set("requirepass", "s3cret-pw")
    gw = Gateway(own_redis.addr, "password=wrong")
    try:
        stack.wait_until(gw.redis_down_everywhere, 5, "AUTH refused")
        log = (gw.prefix / "error.log").read_text()
        assert "AUTH failed" in log
        assert "wrong" not in log.split("AUTH failed", 1)[1][:200]
    finally:
        gw.destroy()


def test_unix_socket_address_is_accepted(nginx_t):  # noqa: F811
    assert_passes(nginx_t(http="omni_redis unix:/run/redis.sock;"))


@pytest.mark.parametrize("directive, pattern", [
    ("omni_redis 127.0.0.1:notaport;", "invalid address"),
    ("omni_redis 127.0.0.1:6379 timeout=abc;", "invalid timeout"),
    ("omni_redis 127.0.0.1:6379 db=x;", "invalid db"),
    ("omni_redis 127.0.0.1:6379 color=blue;", "invalid parameter"),
    ("omni_redis 127.0.0.1:6379;\n    omni_redis 127.0.0.1:6380;",
     "is duplicate"),
])
def test_bad_redis_configuration_fails_nginx_t(nginx_t, directive,  # noqa
                                               pattern):
    assert_fails(nginx_t(http=directive), "omni_redis", pattern)
