"""Real services for Omni's tests: Postgres, Redis, omni-worker and nginx.

Each service runs on free 127.0.0.1 ports in its own temp dir and is stopped
by pid (never by name: a developer's own stack may be running). Used by the
integration suite (tests/integration/conftest.py) and the benchmarks
(tests/bench), which put this directory on sys.path and import it.
"""

import atexit
import ctypes
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
SQL_DIR = REPO / "sql"
CONF_DIR = REPO / "conf"
PG_BIN = Path("/usr/lib/postgresql/15/bin")

IS_ROOT = os.geteuid() == 0
# the nginx workers' user, which must be able to connect to the worker socket
NGINX_USER = "www-data"

SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}
SANITIZER_REPORT = re.compile(
    r"ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer")

# services still running; stopped at interpreter exit if a fixture could not
_running = []


def worker_bin():
    """The omni-worker binary under test (ASan/UBSan build by default)."""
    return Path(os.environ.get("OMNI_TEST_WORKER_BIN",
                               str(BUILD / "omni-worker-asan")))


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


OWNER_FILE = ".omni-test-owner"


def make_tmpdir(prefix):
    """A fresh temp dir others (postgres, www-data) can traverse, marked
    with our pid so sweep_stale_tmpdirs() can tell when it is orphaned."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    (path / OWNER_FILE).write_text(str(os.getpid()))
    return path


def sweep_stale_tmpdirs():
    """Removes temp dirs left by test runs that were killed outright
    (SIGKILL: no cleanup ran). Only dirs whose owner process is gone."""
    for path in Path(tempfile.gettempdir()).glob("omni-test-*"):
        try:
            owner = int((path / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not pid_alive(owner):
            shutil.rmtree(path, ignore_errors=True)


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls predicate() until it returns something truthy; returns it.
    Raises TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s"
                               % (timeout, what))
        time.sleep(interval)


def tail(path, lines=60):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def children_of(pid):
    """Pids of pid's live child processes."""
    kids = []
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(p) for p in f.read().split()]
    except FileNotFoundError:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == pid:
                kids.append(int(entry))
    return sorted(k for k in kids if pid_alive(k))


def _kill_group(pgid, sig=signal.SIGKILL):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _dies_with_us(sig):
    """A preexec_fn: the child gets `sig` when the thread starting it dies
    (start services from the main thread), even by SIGKILL, so a killed
    test run leaves no service behind. Popen runs it after switching user,
    which would clear it."""
    parent = os.getpid()

    def preexec():
        _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:      # died before prctl
            os.kill(os.getpid(), sig)
    return preexec


def group_members(pgid):
    """Pids of the live (non-zombie) processes in process group pgid."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def _stop_popen(proc, sig, timeout):
    """Stops a process started in its own session (pgid == pid): `sig`,
    then SIGKILL to the whole group after `timeout`. Returns its exit code
    and the pids it left running in its group when it exited by itself
    (those are killed too)."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait(10)
    left = group_members(proc.pid)
    _kill_group(proc.pid)
    return proc.returncode, left


def _register(service):
    _running.append(service)


def _unregister(service):
    if service in _running:
        _running.remove(service)


@atexit.register
def _stop_all():
    for service in reversed(list(_running)):
        try:
            service.destroy()
        except Exception:  # keep stopping the others
            pass


# --- HTTP over a unix socket -------------------------------------------------

class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client's HTTP/1.1 connection, over an AF_UNIX stream socket."""

    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Response:
    """A fully read HTTP response."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers      # http.client.HTTPMessage (any case)
        self.body = body

    @classmethod
    def read_from(cls, resp):
        return cls(resp.status, resp.reason, resp.headers, resp.read())

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %d %s %r>" % (self.status, self.reason,
                                        self.body[:200])


def http_request(conn, method, path, headers=None, body=None):
    """Sends one request on conn (kept open) and reads the whole answer."""
    if isinstance(body, str):
        body = body.encode()
    conn.request(method, path, body=body, headers=dict(headers or {}))
    return Response.read_from(conn.getresponse())


def raw_exchange(sock_path, head, body=b"", timeout=10):
    """Writes head + body to a new unix-socket connection, tolerating the
    server closing early (as it does when it refuses a body), and parses
    the answer. For requests http.client will not send."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(sock_path))
        try:
            sock.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass    # the answer may be waiting all the same
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return Response.read_from(resp)
    finally:
        sock.close()


# --- Postgres ----------------------------------------------------------------

def as_postgres(cmd):
    """initdb and postgres refuse to run as root: run them as postgres."""
    if IS_ROOT:
        return ["runuser", "-u", "postgres", "--"] + [str(c) for c in cmd]
    return [str(c) for c in cmd]


class Postgres:
    """A throwaway Postgres 15 cluster with role and database `omni`."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.base = make_tmpdir("omni-test-pg-")
        self.dir = self.base / "pg"          # owned by postgres when root
        self.data = self.dir / "data"
        self.sockdir = self.dir / "sock"
        self.log_path = self.dir / "postgres.log"
        self.user = "omni"
        self.password = secrets.token_hex(12)
        self.dbname = "omni"
        self.proc = None

    # URLs and connections

    def url(self, dbname=None):
        """libpq URL for the omni role over TCP (what the worker uses)."""
        return "postgresql://%s:%s@127.0.0.1:%d/%s" % (
            self.user, self.password, self.port, dbname or self.dbname)

    @property
    def dsn(self):
        return self.url()

    def connect(self, dbname=None, autocommit=False):
        """A psycopg2 connection as omni over TCP."""
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port,
                                user=self.user, password=self.password,
                                dbname=dbname or self.dbname,
                                connect_timeout=5)
        conn.autocommit = autocommit
        return conn

    def admin_connect(self, dbname="postgres", autocommit=True):
        """A psycopg2 connection as the superuser over the unix socket."""
        import psycopg2
        conn = psycopg2.connect(host=str(self.sockdir), port=self.port,
                                user="postgres", dbname=dbname,
                                connect_timeout=5)
        conn.autocommit = autocommit
        return conn

    def sql(self, query, params=None, dbname="postgres"):
        """Runs one statement as superuser; returns its rows (or None)."""
        conn = self.admin_connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def create_database(self, name, owner=None):
        self.sql('CREATE DATABASE "%s" OWNER "%s"'
                 % (name, owner or self.user))

    def drop_database(self, name):
        self.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)

    # lifecycle

    def _run(self, cmd, timeout=60):
        res = subprocess.run(as_postgres(cmd), cwd=self.base,
                             stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s%s\n%s" % (
                " ".join(map(str, cmd)), res.returncode, res.stdout,
                res.stderr, tail(self.log_path)))
        return res

    def init(self):
        """initdb, configure, start, create role and database omni."""
        _register(self)
        self.dir.mkdir(mode=0o700)
        self.sockdir.mkdir(mode=0o755)
        if IS_ROOT:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(self.sockdir, "postgres", "postgres")
        self._run([PG_BIN / "initdb", "-D", self.data, "-U", "postgres",
                   "--auth-local=trust", "--auth-host=scram-sha-256",
                   "--encoding=UTF8", "--locale=C", "--no-sync"])
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "'%s'" % self.sockdir,
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
        conf = "".join("%s = %s\n" % kv for kv in settings.items())
        # appended as postgres: the data dir is not ours to write when root
        subprocess.run(as_postgres(["tee", "-a",
                                    self.data / "postgresql.conf"]),
                       input=conf, text=True, check=True, cwd=self.base,
                       stdout=subprocess.DEVNULL)
        self.start()
        self.sql("CREATE ROLE %s LOGIN PASSWORD '%s'"
                 % (self.user, self.password))
        self.create_database(self.dbname)
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("postgres exited %d:\n%s"
                               % (self.proc.returncode, tail(self.log_path)))
        import psycopg2
        try:
            self.admin_connect().close()
            return True
        except psycopg2.OperationalError:
            return False

    def start(self):
        """Starts the cluster (same port, same data) and waits for it. The
        postmaster is our child, so it dies with us whatever happens."""
        user = {}
        if IS_ROOT:
            user = {"user": "postgres", "group": "postgres",
                    "extra_groups": []}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(PG_BIN / "postgres"), "-D", str(self.data)],
                cwd=self.base, stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, start_new_session=True,
                preexec_fn=_dies_with_us(signal.SIGQUIT), **user)
        wait_until(self._ready, 60, "postgres on port %d" % self.port,
                   interval=0.1)

    def stop(self, mode="fast"):
        """pg_ctl stop -m MODE: waits until the postmaster is gone."""
        self._run([PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w",
                   "-t", "60", "stop"], timeout=90)
        if self.proc is not None:
            self.proc.wait(30)

    def postmaster_pid(self):
        try:
            with open(self.data / "postmaster.pid") as f:
                pid = int(f.readline())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def is_running(self):
        return self.postmaster_pid() is not None

    def ensure_running(self):
        if not self.is_running():
            self.start()

    def destroy(self):
        """Stops the cluster (by pid if pg_ctl cannot) and removes it all."""
        _unregister(self)
        if self.is_running():
            try:
                self.stop("fast")
            except Exception:
                pid = self.postmaster_pid()
                if pid:
                    os.kill(pid, signal.SIGKILL)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)


# --- Redis -------------------------------------------------------------------

# Every test Redis requires it, as the local stack's does (whoever can write
# Redis can mint API keys). One per run: a Redis restarted on the same port
# takes the same password.
REDIS_PASSWORD = secrets.token_hex(16)


class Redis:
    """A throwaway redis-server without persistence, with REDIS_PASSWORD."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = make_tmpdir("omni-test-redis-")
        self.log_path = self.dir / "redis.log"
        self.proc = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    @property
    def unix_addr(self):
        """The same server on its unix socket (omni_redis unix:PATH)."""
        return "unix:%s" % (self.dir / "redis.sock")

    def client(self, db=0):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, db=db,
                           password=REDIS_PASSWORD, socket_timeout=5)

    def _ping(self):
        if self.proc.poll() is not None:
            raise RuntimeError("redis-server exited %d:\n%s"
                               % (self.proc.returncode, tail(self.log_path)))
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def start(self):
        _register(self)
        conf = self.dir / "redis.conf"
        conf.write_text("requirepass %s\n" % REDIS_PASSWORD)
        conf.chmod(0o600)
        self.proc = subprocess.Popen(
            ["redis-server", str(conf),
             "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir),
             # nginx's workers (another user) connect too; the password
             # still guards it
             "--unixsocket", str(self.dir / "redis.sock"),
             "--unixsocketperm", "777",
             "--logfile", str(self.log_path), "--daemonize", "no"],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_dies_with_us(signal.SIGTERM))
        wait_until(self._ping, 20, "redis-server on port %d" % self.port)
        return self

    def destroy(self):
        _unregister(self)
        if self.proc is not None:
            _stop_popen(self.proc, signal.SIGTERM, 10)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- signing keys ------------------------------------------------------------

_dev_keys = []


def dev_keys():
    """The test session's token signing key pair (conf/keys.sh: RS256), made
    once: the directory holding jwt-private.pem and jwt-public.pem. Workers
    sign with it and gateways verify with it unless a test says otherwise."""
    if not _dev_keys:
        path = make_tmpdir("omni-test-keys-")
        subprocess.run(["bash", str(CONF_DIR / "keys.sh"), str(path)],
                       check=True, capture_output=True)
        path.chmod(0o755)   # nginx's user reads the public key
        atexit.register(shutil.rmtree, path, True)
        _dev_keys.append(path)
    return _dev_keys[0]


# --- omni-worker -------------------------------------------------------------

def worker_env(overrides=None):
    """The process environment without the caller's OMNI_* settings (a
    developer's own stack must not leak in), plus sanitizer options, the
    session's signing key and `overrides` (a value of None removes the
    variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_")}
    env.update(SANITIZER_ENV)
    env["OMNI_JWT_PRIVATE_KEY"] = str(dev_keys() / "jwt-private.pem")
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def _built(binary):
    binary = Path(binary or worker_bin())
    if not binary.exists():
        raise RuntimeError("%s is not built (make build)" % binary)
    return str(binary)


def migrate(args, database_url, sql_dir=SQL_DIR, binary=None, timeout=120):
    """Runs `omni-worker migrate ARGS...`; returns the CompletedProcess."""
    env = worker_env({"OMNI_DATABASE_URL": database_url,
                      "OMNI_SQL_DIR": sql_dir, "OMNI_LOG_LEVEL": "info"})
    return subprocess.run([_built(binary), "migrate"]
                          + [str(a) for a in args],
                          env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def migrate_popen(args, database_url, sql_dir=SQL_DIR, binary=None):
    """`omni-worker migrate ARGS...` started, not waited for."""
    env = worker_env({"OMNI_DATABASE_URL": database_url,
                      "OMNI_SQL_DIR": sql_dir, "OMNI_LOG_LEVEL": "info"})
    return subprocess.Popen([_built(binary), "migrate"]
                            + [str(a) for a in args],
                            env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def run_worker(overrides, args=(), timeout=15, binary=None):
    """Runs the worker binary to completion with worker_env(overrides);
    returns (exit code, stdout, stderr). One still running after `timeout`
    is killed with its process group and TimeoutError raised."""
    proc = subprocess.Popen([_built(binary)] + list(args),
                            env=worker_env(overrides), cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        raise TimeoutError("omni-worker still running after %ss:\n%s%s"
                           % (timeout, out, err))
    _kill_group(proc.pid)
    return proc.returncode, out, err


class Worker:
    """One omni-worker master (+ its processes) on a unix socket."""

    def __init__(self, pg, redis, workdir=None, workers=2, env=None,
                 binary=None):
        self.pg = pg
        self.redis = redis
        self.binary = Path(binary) if binary else worker_bin()
        self.own_dir = workdir is None
        self.dir = (Path(workdir) if workdir
                    else make_tmpdir("omni-test-worker-"))
        self.socket_path = self.dir / "worker.sock"
        self.log_path = self.dir / "worker.log"
        self.workers = workers
        self.overrides = dict(env or {})
        self.drain_timeout_ms = int(self.overrides.get("OMNI_DRAIN_TIMEOUT_MS",
                                                       5000))
        self.proc = None
        self.left_behind = []   # processes still running when master exited

    def env(self):
        settings = {
            "OMNI_LISTEN": "unix:%s" % self.socket_path,
            "OMNI_DATABASE_URL": self.pg.url() if self.pg else None,
            "OMNI_REDIS_ADDR": self.redis.addr if self.redis else None,
            "OMNI_REDIS_PASSWORD": REDIS_PASSWORD if self.redis else None,
            "OMNI_WORKERS": self.workers,
            "OMNI_SQL_DIR": SQL_DIR,
            "OMNI_LOG_LEVEL": "info",
            "OMNI_METRICS_FLUSH_MS": 200,
            "OMNI_DRAIN_TIMEOUT_MS": self.drain_timeout_ms,
        }
        if IS_ROOT:
            settings["OMNI_LISTEN_GROUP"] = NGINX_USER
        settings.update(self.overrides)
        return worker_env(settings)

    @property
    def pid(self):
        """The master's pid."""
        return self.proc.pid

    def start(self, wait=True, timeout=30):
        _built(self.binary)
        _register(self)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary)], env=self.env(), cwd=self.dir,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
                preexec_fn=_dies_with_us(signal.SIGTERM))
        if wait:
            self.wait_live(timeout)
        return self

    def _live(self):
        if self.proc.poll() is not None:
            raise RuntimeError("omni-worker exited %d before serving:\n%s"
                               % (self.proc.returncode, tail(self.log_path)))
        try:
            return self.request("GET", "/health/live", timeout=2).status == 200
        except (OSError, http.client.HTTPException):
            return False

    def wait_live(self, timeout=30):
        wait_until(self._live, timeout,
                   "omni-worker to answer /health/live on %s"
                   % self.socket_path,
                   interval=0.1)

    def children(self):
        """Pids of the master's live worker processes."""
        return children_of(self.pid)

    def wait_children(self, n=None, timeout=10):
        n = self.workers if n is None else n
        return wait_until(lambda: (lambda c: c if len(c) == n else None)(
            self.children()), timeout, "%d worker processes" % n)

    def kill(self, sig):
        """Sends sig to the master."""
        os.kill(self.pid, sig)

    # HTTP

    def connection(self, timeout=10):
        """A keep-alive HTTP/1.1 connection to the worker's socket."""
        return UnixHTTPConnection(self.socket_path, timeout=timeout)

    def request(self, method, path, headers=None, body=None, timeout=10):
        """One request on a new connection; returns a Response."""
        conn = self.connection(timeout)
        try:
            return http_request(conn, method, path, headers, body)
        finally:
            conn.close()

    def raw(self, head, body=b"", timeout=10):
        return raw_exchange(self.socket_path, head, body, timeout)

    # logs

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_contains(self, substr):
        return substr in self.log_text()

    def log_lines(self):
        """The log's JSON lines, parsed (other lines skipped)."""
        lines = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    def wait_log(self, predicate, timeout=5, what="a log line"):
        """Waits for JSON log lines matching predicate; returns them."""
        return wait_until(
            lambda: [line for line in self.log_lines() if predicate(line)],
            timeout, what)

    def sanitizer_report(self):
        """The first ASan/UBSan report in the log, or None."""
        text = self.log_text()
        m = SANITIZER_REPORT.search(text)
        if not m:
            return None
        start = text.rfind("\n", 0, m.start()) + 1
        # the other processes' JSON lines interleave with the report
        lines = [line for line in text[start:].splitlines()
                 if not line.startswith('{"ts":')]
        return "\n".join(lines)[:6000]

    # lifecycle

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Signals the master, waits, kills what is left; returns the
        master's exit code."""
        if self.proc is None:
            return None
        if timeout is None:
            timeout = self.drain_timeout_ms / 1000 + 5
        code, left = _stop_popen(self.proc, sig, timeout)
        self.left_behind = self.left_behind or left
        return code

    def destroy(self):
        _unregister(self)
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- nginx with ngx_http_omni_module -----------------------------------------

class Nginx:
    """nginx rendered from conf/nginx.conf.in, loading the module."""

    def __init__(self, worker_socket, module=None, max_body="1m", workers=2,
                 extra=None, redis_addr="127.0.0.1:6379", api_rate="20r/s",
                 events_socket=None):
        self.dir = make_tmpdir("omni-test-nginx-")
        self._events_socket = events_socket
        self.prefix = self.dir / "nginx"
        self.conf_path = self.prefix / "nginx.conf"
        self.tls_dir = self.dir / "tls"
        self.keys_dir = dev_keys()
        self.redis_addr = redis_addr
        self.api_rate = api_rate
        self.worker_socket = Path(worker_socket)
        self.module = (Path(module) if module
                       else BUILD / "ngx_http_omni_module.so")
        self.max_body = max_body
        self.workers = workers
        self.http_port = free_port()
        self.https_port = free_port()
        self.extra = dict(extra or {})
        self.proc = None

    @property
    def events_socket(self):
        """Where the worker publishes events (OMNI_EVENTS_PUBLISH=unix:)."""
        return Path(self._events_socket or self.dir / "events.sock")

    @property
    def error_log(self):
        return self.prefix / "error.log"

    @property
    def access_log(self):
        return self.prefix / "access.log"

    def http_url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def https_url(self, path="/"):
        return "https://127.0.0.1:%d%s" % (self.https_port, path)

    def url(self, path="/", https=False):
        return self.https_url(path) if https else self.http_url(path)

    def request(self, method, path, https=False, **kwargs):
        """A `requests` call to the gateway (self-signed cert accepted)."""
        import requests
        kwargs.setdefault("timeout", 10)
        kwargs.setdefault("verify", False)
        return requests.request(method, self.url(path, https), **kwargs)

    def connection(self, timeout=10):
        """A raw http.client connection to the plain-HTTP port."""
        return http.client.HTTPConnection("127.0.0.1", self.http_port,
                                          timeout=timeout)

    def token(self, sub="test-user", role="admin", username=None,
              lifetime=300, **claims):
        """An RS256 access token the gateway accepts, as the worker would
        sign it (issuer omni, audience omni-api), made with PyJWT."""
        import jwt
        now = int(time.time())
        payload = {"iss": "omni", "aud": "omni-api", "sub": sub,
                   "preferred_username": username or sub, "role": role,
                   "jti": secrets.token_hex(8), "iat": now,
                   "exp": now + lifetime}
        payload.update(claims)
        key = (self.keys_dir / "jwt-private.pem").read_text()
        return jwt.encode(payload, key, algorithm="RS256")

    def bearer(self, **kwargs):
        """Headers carrying token(**kwargs)."""
        return {"Authorization": "Bearer " + self.token(**kwargs)}

    def _tls_files(self):
        cert, key = self.tls_dir / "cert.pem", self.tls_dir / "key.pem"
        if not (cert.exists() and key.exists()):
            raise RuntimeError("conf/tls.sh made no cert.pem/key.pem in %s"
                               % self.tls_dir)
        return cert, key

    def _run(self, cmd, what):
        res = subprocess.run([str(c) for c in cmd], cwd=REPO,
                             stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s%s" % (
                what, res.returncode, res.stdout, res.stderr))
        return res

    def render(self):
        if not self.module.exists():
            raise RuntimeError("%s is not built (make module)" % self.module)
        self._run(["bash", CONF_DIR / "tls.sh", self.tls_dir], "conf/tls.sh")
        self._run(["bash", CONF_DIR / "keys.sh", self.keys_dir],
                  "conf/keys.sh")
        cert, key = self._tls_files()
        values = {
            "JWT_PUBLIC_KEY": self.keys_dir / "jwt-public.pem",
            "REDIS_ADDR": self.redis_addr,
            "REDIS_PASSWORD": REDIS_PASSWORD,
            "API_RATE": self.api_rate,
            "API_BURST": 40,
            "AUTH_RATE": "10r/m",
            "MODULE_PATH": self.module,
            "NGINX_USER": NGINX_USER,
            "NGINX_WORKERS": self.workers,
            "PREFIX": self.prefix,
            "MAX_BODY": self.max_body,
            "WORKER_SOCKET": self.worker_socket,
            "BIND": "127.0.0.1",
            "HTTP_PORT": self.http_port,
            "HTTPS_PORT": self.https_port,
            "TLS_CERT": cert,
            "TLS_KEY": key,
            "CONF_DIR": CONF_DIR,
            "EVENTS_PUBLISH": "unix:%s" % self.events_socket,
        }
        values.update(self.extra)
        self.prefix.mkdir(mode=0o755)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            path = self.prefix / "tmp" / sub
            path.mkdir(parents=True)
            if IS_ROOT:
                shutil.chown(path, NGINX_USER)
        (self.prefix / "tmp").chmod(0o755)
        self._run(["bash", CONF_DIR / "render.sh", self.conf_path]
                  + ["%s=%s" % kv for kv in values.items()], "conf/render.sh")

    def _nginx(self, *args):
        return ["nginx", "-p", str(self.prefix), "-c", str(self.conf_path),
                "-e", str(self.error_log)] + list(args)

    def test_config(self):
        return self._run(self._nginx("-t"), "nginx -t")

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("nginx exited %d:\n%s" % (
                self.proc.returncode, tail(self.error_log)))
        try:
            for port in (self.http_port, self.https_port):
                socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            return False

    def start(self):
        _register(self)
        self.render()
        self.test_config()
        with open(self.dir / "nginx.stderr", "ab") as stderr:
            self.proc = subprocess.Popen(
                self._nginx("-g", "daemon off;"), cwd=self.dir,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=stderr, start_new_session=True,
                preexec_fn=_dies_with_us(signal.SIGTERM))
        wait_until(self._listening, 20,
                   "nginx on ports %d/%d" % (self.http_port, self.https_port))
        return self

    def destroy(self):
        _unregister(self)
        if self.proc is not None:
            _stop_popen(self.proc, signal.SIGTERM, 10)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- nginx from a configuration text ----------------------------------------

NGINX_HTTP_PREAMBLE = """
    access_log off;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
"""


class NginxConf:
    """nginx run from a configuration template of the test's own, in a
    fresh prefix, on a free port. The template is str.format()ed with
    module (the built .so), prefix, port, redis_password, preamble (temp
    paths, no access log: put it inside http {{}}) and **values."""

    def __init__(self, template, name="conf", **values):
        self.prefix = make_tmpdir("omni-test-%s-" % name)
        (self.prefix / "tmp").mkdir()
        self.port = values.pop("port", None) or free_port()
        fill = dict(module=BUILD / "ngx_http_omni_module.so",
                    prefix=self.prefix, port=self.port,
                    redis_password=REDIS_PASSWORD)
        fill["preamble"] = NGINX_HTTP_PREAMBLE.format(**fill)
        fill.update(values)
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(template.format(**fill))
        self.proc = None

    @property
    def error_log(self):
        return self.prefix / "error.log"

    def start(self, probe="/"):
        """Starts nginx and waits until `probe` answers at all."""
        _register(self)
        self.proc = subprocess.Popen(
            ["nginx", "-p", str(self.prefix), "-c", str(self.conf),
             "-e", str(self.error_log), "-g", "daemon off;"],
            start_new_session=True, stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited %d:\n%s" % (
                    self.proc.returncode, tail(self.error_log)))
            try:
                self.get(probe)
                return True
            except OSError:
                return False
        wait_until(up, 10, "nginx on port %d" % self.port)
        return self

    def get(self, path, headers=None):
        """GET on a new connection: (status, headers dict, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def destroy(self):
        _unregister(self)
        if self.proc is not None:
            _stop_popen(self.proc, signal.SIGTERM, 10)
        shutil.rmtree(self.prefix, ignore_errors=True)


# --- Postgres streaming replication (primary switch drills) -----------------

def multi_host_url(servers, **params):
    """A libpq multi-host URL for the omni role over the servers, in that
    order, with query parameters (e.g. target_session_attrs="read-write");
    the servers share role, password and database (replicas of one)."""
    first = servers[0]
    url = "postgresql://%s:%s@%s/%s" % (
        first.user, first.password,
        ",".join("127.0.0.1:%d" % s.port for s in servers), first.dbname)
    if params:
        url += "?" + "&".join("%s=%s" % kv for kv in params.items())
    return url


class PostgresStandby(Postgres):
    """A hot standby of `primary` on a port of its own: pg_basebackup over
    the primary's unix socket as postgres, which with -R writes
    standby.signal and a primary_conninfo; it streams from then on. Same
    role, password and database as the primary (they are replicated)."""

    def __init__(self, primary, port=None):
        super().__init__(port)
        self.primary = primary
        self.user = primary.user
        self.password = primary.password
        self.dbname = primary.dbname

    def init(self):
        _register(self)
        self.dir.mkdir(mode=0o700)
        self.sockdir.mkdir(mode=0o755)
        if IS_ROOT:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(self.sockdir, "postgres", "postgres")
        self._run([PG_BIN / "pg_basebackup", "-h", self.primary.sockdir,
                   "-p", self.primary.port, "-U", "postgres",
                   "-D", self.data, "-X", "stream", "-R",
                   "--checkpoint=fast", "--no-sync"], timeout=120)
        # the copied postgresql.conf names the primary's port and socket
        # dir. Once promoted it has no standby of its own: never wait for
        # one (a real deployment attaches a new standby, or lets Patroni's
        # synchronous_mode manage this setting)
        settings = {
            "port": str(self.port),
            "unix_socket_directories": "'%s'" % self.sockdir,
            "synchronous_standby_names": "''",
        }
        conf = "".join("%s = %s\n" % kv for kv in settings.items())
        subprocess.run(as_postgres(["tee", "-a",
                                    self.data / "postgresql.conf"]),
                       input=conf, text=True, check=True, cwd=self.base,
                       stdout=subprocess.DEVNULL)
        self.start()
        wait_until(self.streaming, 30,
                   "standby on port %d streaming from %d"
                   % (self.port, self.primary.port), interval=0.1)
        return self

    def replication(self):
        """The primary's pg_stat_replication rows: (state, sync_state)."""
        return self.primary.sql(
            "SELECT state, sync_state FROM pg_catalog.pg_stat_replication")

    def streaming(self):
        return any(state == "streaming" for state, _ in self.replication())

    def make_synchronous(self):
        """The primary answers a commit only once this standby has flushed
        its WAL (synchronous_commit on = remote flush): an acknowledged
        write is on both."""
        self.primary.sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        self.primary.sql("ALTER SYSTEM SET synchronous_commit = 'on'")
        self.primary.sql("SELECT pg_catalog.pg_reload_conf()")
        wait_until(lambda: ("streaming", "sync") in self.replication(), 30,
                   "standby on port %d synchronous" % self.port,
                   interval=0.1)

    def in_recovery(self):
        return self.sql("SELECT pg_catalog.pg_is_in_recovery()")[0][0]

    def promote(self):
        """pg_ctl promote -w: returns once it accepts writes."""
        self._run([PG_BIN / "pg_ctl", "-D", self.data, "-w", "-t", "60",
                   "promote"], timeout=90)
