"""Fault drills' machinery: a steady load through the gateway that records
every request, and the measures taken from those records (which requests
failed, the longest request, the recovery time) written as one table per
drill to tests/drills/results.md.
"""

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass

import stack

CONFIG = "/api/v1/config/refresh_interval"
WRITE_KEY = "/api/v1/config/drill_counter"
# what each client sends in turn, as GETs
READS = ["/health/live", "/health", CONFIG]
CLIENTS = 4
READ_RATE = 100         # per client, requests/s
WRITE_RATE = 20         # PUT/s, one writer
# the per-user limits out of the drills' way: 1000000r/s alone still
# holds a burst of 41 requests within 41 µs, which a backlog released at
# once (a Redis link going down answers every waiting request together)
# can exceed
NO_LIMIT = {"API_BURST": 1000000}


@dataclass
class Record:
    method: str
    path: str
    start: float            # time.monotonic()
    end: float
    status: int = None      # None: no answer (error says why)
    error: str = ""         # the JSON error code, or the exception
    retried: bool = False   # a reused connection closed: sent again
    value: int = None       # the PUT's value

    @property
    def ok(self):
        return self.status is not None and 200 <= self.status < 300

    @property
    def what(self):
        if self.status is None:
            return "%s %s: no answer (%s)" % (self.method, self.path,
                                              self.error)
        return ("%s %s: %d %s" % (self.method, self.path, self.status,
                                  self.error)).rstrip()


class Client:
    """One kept-alive connection to the gateway. Like any HTTP client (RFC
    9112 9.3.1), it sends an idempotent request again, once, when a reused
    connection closes before the answer starts."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def send(self, method, path, headers, body=None, value=None):
        rec = Record(method, path, time.monotonic(), 0, value=value)
        try:
            try:
                reused = self.conn.sock is not None
                r = stack.http_request(self.conn, method, path, headers, body)
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError):
                if not reused:
                    raise
                self.conn.close()
                rec.retried = True
                r = stack.http_request(self.conn, method, path, headers, body)
            rec.status = r.status
            if not rec.ok:
                try:
                    rec.error = r.json().get("error", "")
                except ValueError:
                    rec.error = r.text[:60]
        except Exception as e:      # recorded: the drill judges it
            rec.error = type(e).__name__
            self.conn.close()
        rec.end = time.monotonic()
        return rec

    def close(self):
        self.conn.close()


class Load:
    """CLIENTS readers, each sending READS in turn at READ_RATE requests/s,
    and one writer PUTting {"n": 1, 2, ...} to WRITE_KEY at WRITE_RATE, all
    through the gateway; every request is recorded."""

    def __init__(self, nginx):
        self.nginx = nginx
        self.user = nginx.bearer(role="user", lifetime=3600)
        self.admin = dict(nginx.bearer(role="admin", lifetime=3600),
                          **{"Content-Type": "application/json"})
        self.records = []
        self.stopping = threading.Event()
        self.threads = []

    def _paced(self, rate, step):
        client = Client(self.nginx.http_port)
        interval, due, i = 1.0 / rate, time.monotonic(), 0
        try:
            while not self.stopping.is_set():
                self.records.append(step(client, i))
                i += 1
                due += interval
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    due = time.monotonic()      # late: no catching up
        finally:
            client.close()

    def _read(self, client, i):
        return client.send("GET", READS[i % len(READS)], self.user)

    def _write(self, client, i):
        return client.send("PUT", WRITE_KEY, self.admin,
                           json.dumps({"n": i + 1}), value=i + 1)

    def start(self):
        self.threads = [threading.Thread(target=self._paced,
                                         args=(READ_RATE, self._read))
                        for _ in range(CLIENTS)]
        self.threads.append(threading.Thread(target=self._paced,
                                             args=(WRITE_RATE, self._write)))
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        return self.records

    def stored_value(self):
        """WRITE_KEY's value now, read through the gateway."""
        r = self.nginx.request("GET", WRITE_KEY, headers=self.admin)
        assert r.status_code == 200, r.text
        return r.json()["value"]["n"]


SUMMARY_HEAD = ("| drill | requests | failed | client retries | longest "
                "request | recovery |\n|---|---|---|---|---|---|")


def description():
    return ("%d clients x %d req/s, each in turn GET %s (user token), and "
            "%d PUT/s to %s (admin token), through the gateway on kept-"
            "alive connections" % (CLIENTS, READ_RATE, ", ".join(READS),
                                   WRITE_RATE, WRITE_KEY))


class Outcome:
    """The measures of one drill, from the load's records."""

    def __init__(self, records, fault_at, repair_at, healthy_at):
        self.records = records
        self.fault_at = fault_at
        self.repair_at = repair_at
        self.healthy_at = healthy_at
        self.failed = [r for r in records if not r.ok]
        self.retried = sum(1 for r in records if r.retried)
        self.longest = max(records, key=lambda r: r.end - r.start)
        last = max((r.end for r in self.failed), default=repair_at)
        # service is back once the component reports healthy and no
        # request fails any more
        self.recovery = max(healthy_at, last) - repair_at

    def failures(self):
        """Counter of (method path: status error) of the failed requests."""
        return Counter(r.what for r in self.failed)

    def unexpected(self, allowed):
        """Failed requests that allowed(record) does not accept."""
        return Counter(r.what for r in self.failed if not allowed(r))

    def acknowledged(self):
        """The highest value a PUT was answered 200 for, and every value
        a PUT was sent with."""
        puts = [r for r in self.records if r.method == "PUT"]
        acked = max((r.value for r in puts if r.ok), default=None)
        return acked, {r.value for r in puts}

    def window(self):
        """Requests started between the fault and the recovery, by method
        and path: "METHOD path": (count, p50 ms, p99 ms)."""
        until = self.repair_at + self.recovery
        times = {}
        for r in self.records:
            if self.fault_at <= r.start <= until:
                times.setdefault("%s %s" % (r.method, r.path), []).append(
                    1000 * (r.end - r.start))
        stats = {}
        for what, ms in times.items():
            ms.sort()
            stats[what] = (len(ms), ms[len(ms) // 2],
                           ms[min(len(ms) - 1, int(len(ms) * .99))])
        return stats

    def summary(self, title):
        """This drill's line in the summary table."""
        failed = sum(self.failures().values())
        longest = self.longest
        return "| %s | %d | %s | %d | %.0f ms | %.2f s |" % (
            title, len(self.records),
            "%d (%s)" % (failed, ", ".join(sorted(
                {"%s %s" % (r.status, r.error or r.path) if r.status
                 else r.error for r in self.failed}))) if failed else "0",
            self.retried, 1000 * (longest.end - longest.start),
            self.recovery)

    def table(self, title, fault, allowed_text, bounds):
        """This drill's section of results.md; bounds: (longest request,
        recovery) asserted, in seconds."""
        failures = self.failures()
        failed = "; ".join("%s x %d" % kv for kv in sorted(failures.items()))
        longest = self.longest
        window = "; ".join(
            "%s: %d, p50 %.1f ms, p99 %.1f ms" % ((what,) + stats)
            for what, stats in sorted(self.window().items())) or "none"
        return "\n".join([
            "### " + title,
            "",
            fault,
            "",
            "| measure | value | asserted |",
            "|---|---|---|",
            "| requests | %d (%d PUT) | |" % (
                len(self.records),
                sum(1 for r in self.records if r.method == "PUT")),
            "| failed | %s | %s |" % (failed or "none", allowed_text),
            "| client retries (reused connection closed) | %d | |"
            % self.retried,
            "| longest request | %.0f ms (%s %s) | < %.0f ms |" % (
                1000 * (longest.end - longest.start), longest.method,
                longest.path, 1000 * bounds[0]),
            "| recovery, without human action | %.2f s | < %.0f s |" % (
                self.recovery, bounds[1]),
            "| requests from the fault to the recovery | %s | |" % window,
            "",
        ])
