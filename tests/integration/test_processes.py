"""The worker's master: restarts crashed processes, drains on SIGTERM,
replaces its processes on SIGHUP. Each test has its own worker."""

import http.client
import os
import signal
import subprocess
import threading
import time

import pytest

import stack

CONFIG_PATH = "/api/v1/config/refresh_interval"


def _status(worker, path=CONFIG_PATH, timeout=5):
    """The status of one request on a new connection, or the error."""
    try:
        return worker.request("GET", path, timeout=timeout).status
    except (OSError, http.client.HTTPException) as e:
        return repr(e)


# --- a killed process --------------------------------------------------------

def test_killed_worker_process_is_replaced_by_a_new_one(own_worker):
    before = own_worker.wait_children()
    victim = before[0]
    os.kill(victim, signal.SIGKILL)

    def replaced():
        now = own_worker.children()
        if len(now) == own_worker.workers and victim not in now:
            return now
        return None
    after = stack.wait_until(replaced, 5, "a replacement for pid %d" % victim)
    assert set(after) - set(before), "no new pid: %s -> %s" % (before, after)
    assert own_worker.proc.poll() is None


def test_requests_after_a_worker_process_is_killed_all_succeed(own_worker):
    before = own_worker.wait_children()
    os.kill(before[0], signal.SIGKILL)
    stack.wait_until(lambda: len(own_worker.children()) == own_worker.workers
                     and before[0] not in own_worker.children(), 5,
                     "the killed process to be replaced")
    statuses = [_status(own_worker) for _ in range(50)]
    assert [s for s in statuses if s != 200] == []


# --- SIGTERM: graceful drain -------------------------------------------------

class Drain:
    """A request held in flight by a table lock while the master drains."""

    def __init__(self, pg, worker):
        self.pg = pg
        self.worker = worker
        self.lock_conn = None
        self.thread = None
        self.outcome = {}
        self.sigterm_at = None

    def _in_flight(self):
        try:
            self.outcome["response"] = self.worker.request(
                "GET", CONFIG_PATH, timeout=20)
        except Exception as e:
            self.outcome["error"] = e

    def _blocked_on_lock(self):
        rows = self.pg.sql("SELECT count(*) FROM pg_stat_activity"
                           " WHERE datname = 'omni'"
                           " AND wait_event_type = 'Lock'")
        return rows[0][0] > 0

    def start(self):
        """Lock the table, start a request that waits on it, SIGTERM the
        master, wait 0.5 s. The lock stays held."""
        assert self.worker.request("GET", CONFIG_PATH).status == 200
        self.worker.wait_children()
        self.lock_conn = self.pg.admin_connect("omni", autocommit=False)
        with self.lock_conn.cursor() as cur:
            cur.execute("LOCK TABLE omni2_dashboard.dashboard_config "
                        "IN ACCESS EXCLUSIVE MODE")
        self.thread = threading.Thread(target=self._in_flight, daemon=True)
        self.thread.start()
        stack.wait_until(self._blocked_on_lock, 5,
                         "the request to wait on the table lock")
        self.sigterm_at = time.monotonic()
        self.worker.kill(signal.SIGTERM)
        time.sleep(0.5)

    def release(self):
        if self.lock_conn is not None:
            self.lock_conn.commit()
            self.lock_conn.close()
            self.lock_conn = None

    def in_flight_result(self):
        self.thread.join(20)
        assert not self.thread.is_alive(), "in-flight request never ended"
        if "error" in self.outcome:
            raise AssertionError("in-flight request failed: %r"
                                 % self.outcome["error"])
        return self.outcome["response"]


@pytest.fixture
def drain(migrated, own_worker):
    d = Drain(migrated, own_worker)
    try:
        yield d
    finally:
        d.release()
        if d.thread is not None:
            d.thread.join(20)


def test_sigterm_lets_the_in_flight_request_finish_with_200(drain):
    drain.start()
    drain.release()
    r = drain.in_flight_result()
    assert r.status == 200, r.body


def test_sigterm_master_exits_0_within_the_drain_deadline(drain, own_worker):
    drain.start()
    drain.release()
    deadline = own_worker.drain_timeout_ms / 1000
    left = deadline - (time.monotonic() - drain.sigterm_at)
    try:
        code = own_worker.proc.wait(max(left, 0) + 1.0)
    except subprocess.TimeoutExpired:
        pytest.fail("master still running %.1fs after SIGTERM"
                    % (deadline + 1))
    assert code == 0, own_worker.log_text()[-2000:]


def test_sigterm_stops_accepting_new_connections(drain, own_worker):
    drain.start()
    try:
        conn = own_worker.connection(timeout=0.5)
        r = stack.http_request(conn, "GET", "/health/live")
        conn.close()
    except (ConnectionRefusedError, FileNotFoundError):
        return      # refused
    except (TimeoutError, ConnectionResetError, BrokenPipeError,
            http.client.RemoteDisconnected):
        return      # connected to the backlog, never accepted
    pytest.fail("a connection made after SIGTERM was served: %r" % r)


# --- SIGHUP: replace the processes -------------------------------------------

def _load(worker, keepalive, stop, results):
    """Sequential requests until stop is set; results get statuses or errors.
    On a kept-alive connection the server may close between two requests
    (it is being replaced); like any HTTP client (RFC 9112 9.3.1) this one
    retries an idempotent request once when a reused connection closes
    before answering."""
    conn = worker.connection(5) if keepalive else None
    while not stop.is_set():
        try:
            if not keepalive:
                results.append(worker.request("GET", CONFIG_PATH,
                                              timeout=5).status)
                continue
            reused = conn.sock is not None
            try:
                r = stack.http_request(conn, "GET", CONFIG_PATH)
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError):
                if not reused:
                    raise
                conn.close()
                r = stack.http_request(conn, "GET", CONFIG_PATH)
            results.append(r.status)
        except Exception as e:
            results.append(repr(e))
            if conn is not None:
                conn.close()
    if conn is not None:
        conn.close()


def test_sighup_under_load_fails_no_request(own_worker):
    own_worker.wait_children()
    stop = threading.Event()
    per_connection, keepalive = [], []
    threads = [
        threading.Thread(target=_load, args=(own_worker, False, stop,
                                             per_connection)),
        threading.Thread(target=_load, args=(own_worker, True, stop,
                                             keepalive)),
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        own_worker.kill(signal.SIGHUP)
        time.sleep(2.0)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert len(per_connection) > 10 and len(keepalive) > 10, \
        "too little load: %d + %d" % (len(per_connection), len(keepalive))
    failed = ["new connection: %s" % r for r in per_connection if r != 200] \
        + ["keep-alive: %s" % r for r in keepalive if r != 200]
    assert failed == []


def test_sighup_replaces_every_worker_process(own_worker):
    before = set(own_worker.wait_children())
    own_worker.kill(signal.SIGHUP)

    def replaced():
        now = set(own_worker.children())
        return now if len(now) == own_worker.workers and \
            not now & before else None
    stack.wait_until(replaced, 10, "all of %s to be replaced" % sorted(before))
    assert own_worker.proc.poll() is None


# --- connections spread over the processes ----------------------------------

def _accepted(pid, path):
    """How many connections to the socket at path process pid holds
    (/proc/net/unix names the path on the accepted ends too; the
    listening socket is flagged __SO_ACCEPTCON)."""
    inodes = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            cols = line.split()
            if len(cols) >= 8 and cols[7] == str(path) \
                    and not int(cols[3], 16) & 0x10000:
                inodes.add("socket:[%s]" % cols[6])
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)) in inodes
        except OSError:
            pass
    return n


def test_a_burst_of_connections_is_spread_over_the_processes(own_worker):
    """nginx opens its keepalive connections to the worker in a burst and
    keeps them for thousands of requests: if one process takes them all,
    the others idle while it queues. The processes share one CPU here, as
    they do under a CPU limit, where the first to wake would otherwise
    empty the backlog before the other runs."""
    kids = own_worker.wait_children()
    stack.wait_until(lambda: own_worker.log_text().count('"worker ready"')
                     >= len(kids), 10, "every process to accept")
    cpu = min(os.sched_getaffinity(0))
    for pid in kids:
        for tid in os.listdir("/proc/%d/task" % pid):
            os.sched_setaffinity(int(tid), {cpu})
    path = own_worker.socket_path
    before = {pid: _accepted(pid, path) for pid in kids}
    conns = [own_worker.connection() for _ in range(24)]
    try:
        for c in conns:         # all queued in the backlog before any request
            c.connect()
        for c in conns:
            assert stack.http_request(c, "GET", "/health/live").status == 200
        held = {pid: _accepted(pid, path) - before[pid] for pid in kids}
        assert sum(held.values()) == 24, held
        assert min(held.values()) >= 8, \
            "one process took the burst: %s" % held
    finally:
        for c in conns:
            c.close()
