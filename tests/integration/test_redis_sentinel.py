"""Redis through Sentinel (SPEC 11, issue 19): the module (`omni_redis
sentinel://...`) and the worker (OMNI_REDIS_ADDR=sentinel://...) ask the
Sentinels where the master is and follow a failover without a restart.
On loopback: a master, its replica and three Sentinels from Debian's
packages; `SENTINEL FAILOVER` under load; limits (decided by Redis: the
location fails closed, so a 429 can only come from the script) and
revocations keep working on the new master within seconds, the old
master (a replica now) gets no write, nothing crashes."""

import re
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
        self.cmd = [sentinel_binary(), str(conf)] if sentinel else [
            "redis-server", str(conf)]
        self.sentinel = sentinel
        self.name = name
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            self.cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=stack._dies_with_us(signal_term()))
        stack.wait_until(self._ping, 20, "%s on %d" % (self.name, self.port))

    def kill(self):
        import signal
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

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

    def start_failover(self):
        self.sentinels[0].client().execute_command(
            "SENTINEL", "FAILOVER", MASTER)

    def failover(self, started=False):
        """SENTINEL FAILOVER; returns once every Sentinel names the
        replica, the replica says it is the master and the old master that
        it is a replica (until then it takes writes, which its resync then
        drops: Redis replicates asynchronously)."""
        if not started:
            self.start_failover()

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
        sentinels.start_failover()

        # limits decided by the new master within a few seconds: the key
        # is there (a promoted replica no longer replicates the old
        # master, which keeps taking writes until Sentinel demotes it)
        deadline = t_failover + 10
        while True:
            key = "after-" + uuid.uuid4().hex[:8]
            promoted = sentinels.replica.client().info(
                "replication")["role"] == "master"
            ok, statuses = limit_holds(gw.port, key)
            if promoted and ok and any(key.encode() in k for k in
                                       omni_keys(sentinels.replica)):
                break
            assert time.monotonic() < deadline, statuses
            time.sleep(0.1)
        recovered = time.monotonic()
        if old_master.client().info("replication")["role"] == "master":
            # not demoted yet: it got nothing of this key
            assert not any(key.encode() in k for k in omni_keys(old_master))

        sentinels.failover(started=True)
        t_demoted = time.monotonic()
        time.sleep(2)
        results = load.stop()

        after = [st for t, st in results if t > recovered]
        assert after and all(st == 200 for st in after), \
            sorted(set(after))
        failed = [t for t, st in results if st != 200]
        span = (max(failed) - min(failed)) if failed else 0.0
        print("SENTINEL FAILOVER: the gateway decided on the new master "
              "%.2fs later (the old master was demoted after %.2fs); %d of "
              "%d requests failed (503, fail closed) over %.2fs"
              % (recovered - t_failover, t_demoted - t_failover,
                 len(failed), len(results), span))
        assert recovered - t_failover < 5
        assert span < 5

        log = gw.error_log.read_text()
        assert "[alert]" not in log and "[crit]" not in log, log[-3000:]
        # told by the Sentinel it watches, not by a -READONLY later
        assert re.search(r'redis Sentinel: failover of "%s": 127\.0\.0\.1 '
                         r'%d 127\.0\.0\.1 %d' % (
                             MASTER, old_master.port, sentinels.replica.port),
                         log), log[-3000:]
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

        switched = time.monotonic()
        sentinels.start_failover()
        while True:
            promoted = sentinels.replica.client().info(
                "replication")["role"] == "master"
            login(client, user)
            assert client.get("/auth/me",
                              token=user.access).status_code == 200
            r = client.post("/auth/logout", token=user.access)
            jti = claims(user.access)["jti"]
            # on the promoted replica: written to the new master (the old
            # one takes writes until it is demoted, and loses them then)
            if (promoted and r.status_code == 204
                    and sentinels.replica.client().exists(
                        "omni:revoked:" + jti)
                    and client.get("/auth/me",
                                   token=user.access).status_code == 401):
                break
            assert time.monotonic() - switched < 10, (r.status_code, r.text)
            time.sleep(0.2)
        took = time.monotonic() - switched
        sentinels.failover(started=True)
        assert_gateway_401(client.get("/auth/me", token=user.access),
                           "token_revoked")
        print("SENTINEL FAILOVER: logout + refusal through the new master "
              "%.2fs later" % took)
        assert took < 5
        found = [line for line in w.log_text().splitlines()
                 if "redis Sentinel: failover" in line
                 and ' %d"' % sentinels.replica.port in line]
        assert found, w.log_text()[-3000:]
        log = gw.error_log.read_text()
        assert "[alert]" not in log and "[crit]" not in log, log[-3000:]
    finally:
        client.close()
        gw.destroy()


def test_old_master_restarted_empty_is_never_written_to(sentinels):
    """The master dies; Sentinel promotes the replica; the old master comes
    back, empty and a master in its own eyes, until Sentinel demotes it
    (TESTING.md: ~10 s). The gateway writes only to the new one."""
    gw = stack.NginxConf(CONF, name="sentinel", redis=sentinels.url).start(
        probe="/many/")
    try:
        wait_connected(gw.port)
        old_master = sentinels.master
        killed = time.monotonic()
        old_master.kill()

        def decided_by_new_master():
            key = "after-" + uuid.uuid4().hex[:8]
            ok, _ = limit_holds(gw.port, key)
            # the old master is dead: the replica has it only if it was
            # written there
            return ok and any(key.encode() in k
                              for k in omni_keys(sentinels.replica))
        stack.wait_until(decided_by_new_master, 20,
                         "limits decided by the promoted replica",
                         interval=0.2)
        recovered = time.monotonic() - killed

        old_master.start()
        load = Load(gw.port)
        load.start()
        as_master = 0
        restarted = time.monotonic()
        deadline = restarted + 30
        while True:
            role = old_master.client().info("replication")["role"]
            if role != "master":
                break
            as_master += 1
            assert omni_keys(old_master) == [], \
                "the restarted old master was written to"
            assert time.monotonic() < deadline, "never demoted"
            time.sleep(0.1)
        demoted = time.monotonic() - restarted
        results = load.stop()
        assert as_master > 0, "the old master came back as a replica"
        ok, statuses = limit_holds(gw.port, "end-" + uuid.uuid4().hex[:8])
        assert ok, statuses
        assert [st for _, st in results].count(200) > 0.9 * len(results)
        print("master killed: limits decided by the promoted replica after "
              "%.2fs; the old master restarted as an empty master for "
              "%.1fs and got no write" % (recovered, demoted))
        log = gw.error_log.read_text()
        assert "[alert]" not in log and "[crit]" not in log, log[-3000:]
    finally:
        gw.destroy()


@pytest.mark.parametrize("addr", ["sentinel://127.0.0.1:26379",
                                  "sentinel:///mymaster",
                                  "sentinel://127.0.0.1:0/m",
                                  "sentinel://no-such-host.invalid:1/m"])
def test_worker_refuses_a_bad_sentinel_address_naming_it(addr):
    code, out, err = stack.run_worker({
        "OMNI_LISTEN": "127.0.0.1:%d" % stack.free_port(),
        "OMNI_DATABASE_URL": "postgresql://omni:x@127.0.0.1:1/omni",
        "OMNI_REDIS_ADDR": addr,
        "OMNI_WORKERS": "1",
    })
    assert code != 0
    assert "OMNI_REDIS_ADDR=%s" % addr in err, err
