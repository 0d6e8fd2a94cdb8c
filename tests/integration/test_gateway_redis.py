"""omni_redis: one non-blocking Redis connection per nginx worker, opened in
the worker, reconnected by itself; its address validated by `nginx -t`."""

import json

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
    {preamble}
    omni_redis {redis} {params};
    server {{
        listen 127.0.0.1:{port};
        location = /omni/status {{ omni_status; }}
    }}
}}
"""


class Gateway(stack.NginxConf):
    def __init__(self, redis_addr, params=None):
        if params is None:
            params = "password=" + stack.REDIS_PASSWORD
        super().__init__(CONF, "gwredis", redis=redis_addr, params=params)
        self.start("/omni/status")

    def status(self):
        return json.loads(self.get("/omni/status")[2])

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
