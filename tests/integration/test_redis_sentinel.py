"""Redis through Sentinel (SPEC 11, issue 19): the module (`omni_redis
sentinel://...`) and the worker (OMNI_REDIS_ADDR=sentinel://...) ask the
Sentinels where the master is and follow a failover without a restart.
On loopback: a master, its replica and three Sentinels from Debian's
packages; `SENTINEL FAILOVER` under load; limits (decided by Redis: the
location fails closed, so a 429 can only come from the script) and
revocations keep working on the new master within seconds, the old
master (a replica now) gets no write, nothing crashes."""

import shutil
import subprocess
import threading
import time
import uuid

import pytest
import requests

import stack

MASTER = "omni-master"

CONF = """
load_module {module};
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 512; }}
http {{
    {preamble}
    omni_redis {redis} password={redis_password} timeout=200ms;
    omni_limit_zone few rate=1r/m burst=4 key=$http_x_client;
    omni_limit_zone many rate=100000r/s burst=100000 key=$http_x_client;
    server {{
        listen 127.0.0.1:{port};
        default_type application/json;

        location /few/ {{
            omni_auth off;
            omni_redis_fail closed;
            omni_limit zone=few;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /many/ {{
            omni_auth off;
            omni_redis_fail closed;
            omni_limit zone=many;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}
        location /echo/ {{
            omni_auth off;
            return 200 '{{}}';
        }}
    }}
}}
"""


def sentinel_binary():
    return shutil.which("redis-sentinel") or "redis-sentinel"


class Node:
    """redis-server (a master, or a replica of one) or redis-sentinel."""

    def __init__(self, dir, name, lines, sentinel=False):
        self.port = stack.free_port()
        self.dir = dir / name
        self.dir.mkdir()
        self.log_path = self.dir / "log"
        conf = self.dir / "conf"
        conf.write_text("\n".join(
            ["port %d" % self.port, "bind 127.0.0.1", "daemonize no",
             "dir %s" % self.dir, "logfile %s" % self.log_path] + lines)
            + "\n")
        conf.chmod(0o600)
        cmd = [sentinel_binary(), str(conf)] if sentinel else [
            "redis-server", str(conf)]
        self.proc = subprocess.Popen(
            cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=stack._dies_with_us(signal_term()))
        self.sentinel = sentinel
        stack.wait_until(self._ping, 20, "%s on %d" % (name, self.port))

    def client(self):
        import redis
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=5,
            password=None if self.sentinel else stack.REDIS_PASSWORD)

    def _ping(self):
        if self.proc.poll() is not None:
            raise RuntimeError("exited:\n" + stack.tail(self.log_path))
        try:
            return self.client().ping()
        except Exception:
            return False

    def stop(self):
        if self.proc.poll() is None:
            stack._stop_popen(self.proc, signal_term(), 10)


def signal_term():
    import signal
    return signal.SIGTERM


class SentinelSet:
    """1 master, 1 replica, 3 Sentinels on loopback, all password-less
    Sentinels watching a password-protected master."""

    def __init__(self):
        self.dir = stack.make_tmpdir("omni-test-sentinel-")
        self.nodes = []

    def start(self):
        auth = ["requirepass %s" % stack.REDIS_PASSWORD,
                "masterauth %s" % stack.REDIS_PASSWORD,
                "save \"\"", "appendonly no"]
        self.master = self._add(Node(self.dir, "master", auth))
        self.replica = self._add(Node(
            self.dir, "replica",
            auth + ["replicaof 127.0.0.1 %d" % self.master.port]))
        stack.wait_until(lambda: self.replica.client().info(
            "replication").get("master_link_status") == "up", 20,
            "the replica to sync")
        self.sentinels = [self._add(Node(self.dir, "sentinel%d" % i, [
            "sentinel monitor %s 127.0.0.1 %d 2" % (MASTER, self.master.port),
            "sentinel auth-pass %s %s" % (MASTER, stack.REDIS_PASSWORD),
            "sentinel down-after-milliseconds %s 1000" % MASTER,
            "sentinel failover-timeout %s 10000" % MASTER,
        ], sentinel=True)) for i in range(3)]

        def ready():
            for s in self.sentinels:
                c = s.client()
                if not c.execute_command("SENTINEL", "REPLICAS", MASTER):
                    return False
                info = c.execute_command("SENTINEL", "MASTER", MASTER)
                if int(info[info.index(b"num-other-sentinels") + 1]) < 2:
                    return False
            return True
        stack.wait_until(ready, 30, "the Sentinels to know each other and "
                         "the replica", interval=0.2)
        return self

    def _add(self, node):
        self.nodes.append(node)
        return node

    @property
    def url(self):
        return "sentinel://%s/%s" % (",".join(
            "127.0.0.1:%d" % s.port for s in self.sentinels), MASTER)

    def master_port(self):
        host, port = self.sentinels[0].client().execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
        return int(port)

    def failover(self):
        """SENTINEL FAILOVER; returns once every Sentinel names the
        replica, the replica says it is the master and the old master that
        it is a replica (until then it takes writes, which its resync then
        drops: Redis replicates asynchronously)."""
        self.sentinels[0].client().execute_command(
            "SENTINEL", "FAILOVER", MASTER)

        def done():
            return (all(int(s.client().execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)[1])
                == self.replica.port for s in self.sentinels)
                and self.replica.client().info("replication")["role"]
                == "master"
                and self.master.client().info("replication")["role"]
                == "slave")
        stack.wait_until(done, 30, "the failover", interval=0.1)

    def destroy(self):
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def sentinels():
    s = SentinelSet()
    try:
        yield s.start()
    finally:
        s.destroy()


class Load(threading.Thread):
    """GET /many/ as fast as one client goes; (time, status) of each."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.url = "http://127.0.0.1:%d/many/" % port
        self.stopping = threading.Event()
        self.results = []

    def run(self):
        s = requests.Session()
        while not self.stopping.is_set():
            try:
                status = s.get(self.url, timeout=5,
                               headers={"X-Client": "load"}).status_code
            except requests.RequestException:
                status = None
            self.results.append((time.monotonic(), status))
            time.sleep(0.005)

    def stop(self):
        self.stopping.set()
        self.join(20)
        return self.results


def limit_holds(port, key, expect_ok=5, send=8):
    """send requests with X-Client: key to /few/ (burst 4: 5 pass);
    True when exactly expect_ok got 200 and the rest 429."""
    statuses = [requests.get("http://127.0.0.1:%d/few/" % port, timeout=5,
                             headers={"X-Client": key}).status_code
                for _ in range(send)]
    return statuses == [200] * expect_ok + [429] * (send - expect_ok), \
        statuses


def wait_connected(port):
    """Until 20 requests in a row were decided by Redis (both nginx
    workers have found the master)."""
    def twenty():
        return all(requests.get("http://127.0.0.1:%d/many/" % port,
                                timeout=5, headers={"X-Client": "warm"})
                   .status_code == 200 for _ in range(20))
    stack.wait_until(twenty, 15, "the gateway to reach the master",
                     interval=0.2)


def omni_keys(node):
    return [k for k in node.client().keys("omni:*")]


def test_module_follows_a_sentinel_failover_under_load(sentinels):
    gw = stack.NginxConf(CONF, name="sentinel", redis=sentinels.url).start(
        probe="/many/")
    try:
        wait_connected(gw.port)
        ok, statuses = limit_holds(gw.port, "before")
        assert ok, statuses
        assert any(b"before" in k for k in omni_keys(sentinels.master))

        load = Load(gw.port)
        load.start()
        time.sleep(1)
        old_master = sentinels.master
        t_failover = time.monotonic()
        sentinels.failover()
        t_switched = time.monotonic()

        # limits decided by the new master within a few seconds
        deadline = time.monotonic() + 10
        while True:
            key = "after-" + uuid.uuid4().hex[:8]
            ok, statuses = limit_holds(gw.port, key)
            if ok:
                break
            assert time.monotonic() < deadline, statuses
            time.sleep(0.2)
        recovered = time.monotonic()
        time.sleep(2)
        results = load.stop()

        # decided by the new master (the old one only replicates it now)
        assert any(key.encode() in k for k in omni_keys(sentinels.replica))
        assert old_master.client().info("replication")["role"] == "slave"

        after = [st for t, st in results if t > recovered]
        assert after and all(st == 200 for st in after), \
            sorted(set(after))
        failed = [t for t, st in results if st != 200]
        span = (max(failed) - min(failed)) if failed else 0.0
        print("failover %.2fs (Sentinel: promotion to the old master's "
              "demotion); the gateway decided on the new master %.2fs "
              "later; %d of %d requests failed (503, fail closed) over "
              "%.2fs" % (t_switched - t_failover, recovered - t_switched,
                         len(failed), len(results), span))
        assert recovered - t_switched < 5
        assert span < 5

        log = gw.error_log.read_text()
        assert "[alert]" not in log and "[crit]" not in log, log[-3000:]
        assert 'redis master "%s" is at 127.0.0.1:%d' % (
            MASTER, sentinels.replica.port) in log
        assert gw.proc.poll() is None
    finally:
        gw.destroy()


def test_worker_and_gateway_revoke_on_the_new_master(sentinels,
                                                     worker_factory):
    """A logout writes the revocation through the worker's Redis link and
    the gateway reads it through its own: both follow the failover."""
    from auth_support import (
        Client, assert_gateway_401, claims, login, register)
    w = worker_factory(env={"OMNI_REDIS_ADDR": sentinels.url})
    gw = stack.Nginx(w.socket_path, redis_addr=sentinels.url,
                     extra={"AUTH_RATE": "10000r/s"}).start()
    client = Client(gw, source="127.0.0.23")
    try:
        user = register(client)
        login(client, user)
        assert client.get("/auth/me", token=user.access).status_code == 200
        assert client.post("/auth/logout",
                           token=user.access).status_code == 204
        assert_gateway_401(client.get("/auth/me", token=user.access),
                           "token_revoked")

        sentinels.failover()
        switched = time.monotonic()
        while True:
            login(client, user)
            assert client.get("/auth/me",
                              token=user.access).status_code == 200
            r = client.post("/auth/logout", token=user.access)
            if r.status_code == 204 and client.get(
                    "/auth/me", token=user.access).status_code == 401:
                break
            assert time.monotonic() - switched < 10, (r.status_code, r.text)
            time.sleep(0.2)
        took = time.monotonic() - switched
        assert_gateway_401(client.get("/auth/me", token=user.access),
                           "token_revoked")
        jti = claims(user.access)["jti"]
        assert sentinels.replica.client().exists("omni:revoked:" + jti), \
            "the revocation is not on the new master"
        print("logout + refusal through the new master %.2fs after the "
              "failover" % took)
        assert took < 5
        found = [line for line in w.log_text().splitlines()
                 if "redis master found through Sentinel" in line
                 and '"port":%d' % sentinels.replica.port in line]
        assert found, w.log_text()[-3000:]
        log = gw.error_log.read_text()
        assert "[alert]" not in log and "[crit]" not in log, log[-3000:]
    finally:
        client.close()
        gw.destroy()
