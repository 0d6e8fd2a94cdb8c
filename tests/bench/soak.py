"""Soak: SOAK_REQUESTS requests (default 1,000,000) of mixed endpoints
through nginx + ngx_http_omni_module + omni-worker (the product
configuration, release build), with the RSS of every nginx and every
omni-worker process (masters included) sampled before the load, after a
warm-up, every SOAK_INTERVAL seconds (default 5) during the load and after
it. SPEC 9: memory flat over 1M requests, which here means each sum within
5% between the warm sample and the end; and no answer but the expected
ones, no socket error, no process restarted.

The mix, in turn on each connection (wrk, tests/bench/soak.lua):
  GET /health/live                                   200 (no Postgres)
  GET /api/v1/config/refresh_interval, a token       200 (Redis + Postgres)
  GET /api/v1/config/no_such_key, a token            404 from the worker
  GET /api/v1/config/refresh_interval, no token      401 from the gateway

Prints a table and writes it to tests/bench/soak.md; exits 1 when the
memory is not flat or anything unexpected happened. Pinned like the
benchmarks (tests/bench/bench.py: BENCH_PIN, BENCH_WORKERS).
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import bench  # noqa: E402
import stack  # noqa: E402

TOTAL = int(os.environ.get("SOAK_REQUESTS", "1000000"))
INTERVAL = float(os.environ.get("SOAK_INTERVAL", "5"))
WARM = max(TOTAL // 20, 5000)
CONNS = bench.CONNS
FLAT = 0.05

CONFIG = "/api/v1/config/refresh_interval"
# (path, with a token, expected status)
MIX = [
    ("/health/live", False, 200),
    (CONFIG, True, 200),
    ("/api/v1/config/no_such_key", True, 404),
    (CONFIG, False, 401),
]


def rss_kib(pids):
    """The sum of VmRSS over pids (KiB); processes gone are skipped."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


class Sampler:
    """RSS samples of nginx's and omni-worker's processes."""

    def __init__(self, nginx, worker):
        self.nginx = nginx
        self.worker = worker
        self.samples = []       # (label, requests answered, nginx, worker)

    def pids(self):
        return (sorted(stack.group_members(self.nginx.proc.pid)),
                sorted(stack.group_members(self.worker.proc.pid)))

    def take(self, label, answered):
        ngx, wrk = self.pids()
        self.samples.append((label, answered, rss_kib(ngx), rss_kib(wrk)))


class Load:
    """One wrk run of `total` requests of MIX, its progress read from the
    script's stderr; interrupted (SIGINT) once they are all answered."""

    def __init__(self, nginx, token, total):
        args = [str(total)]
        for path, with_token, _ in MIX:
            args += [path, token if with_token else "-"]
        cmd = bench.client(
            ["wrk", "-t", "1", "-c", str(CONNS), "-d", "24h", "--latency",
             "-s", str(HERE / "soak.lua"), nginx.http_url("/"), "--"]
            + args)
        self.answered = 0
        self.finished = threading.Event()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            word, _, n = line.partition(" ")
            if word in ("progress", "done"):
                self.answered = int(n)
            if word == "done":
                self.finished.set()
                self.proc.send_signal(signal.SIGINT)

    def wait(self, tick, interval):
        """Calls tick() every `interval` seconds until wrk has ended;
        returns wrk's output."""
        while not self.finished.wait(interval):
            if self.proc.poll() is not None:
                break
            tick()
        out = self.proc.stdout.read()
        self.proc.wait(30)
        self.reader.join(5)
        if not self.finished.is_set():
            raise RuntimeError("wrk ended after %d answers:\n%s"
                               % (self.answered, out))
        return out


def parse(out):
    """wrk's output: {status: count}, socket errors, requests/s and the
    script's latency line (us)."""
    statuses = {int(s): int(n)
                for s, n in re.findall(r"^status (\d+) (\d+)$", out, re.M)}
    errors = re.search(r"Socket errors: (.*)", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = re.search(r"^latency p50 (\d+) p99 (\d+) max (\d+)$", out, re.M)
    return statuses, errors.group(1) if errors else None, rps, \
        [int(v) / 1000 for v in lat.groups()]


def check_mix(nginx, token):
    """Each request of the mix answers what the soak expects, once."""
    for path, with_token, expected in MIX:
        headers = {"Authorization": "Bearer " + token} if with_token else {}
        r = nginx.request("GET", path, headers=headers)
        if r.status_code != expected:
            raise RuntimeError("GET %s%s: %d, expected %d: %s" % (
                path, " (token)" if with_token else "", r.status_code,
                expected, r.text[:200]))


def report(sampler, statuses, errors, rps, latency, elapsed, problems):
    lines = [
        "Machine: %s; nginx workers: %d, omni-worker processes: %d "
        "(release build); wrk -t1 -c%d%s. %d requests (after a warm-up of "
        "%d) in %.0f s, %.0f req/s; latency p50 %.2f ms, p99 %.2f ms, "
        "max %.1f ms."
        % (bench.machine(), bench.WORKERS, bench.WORKERS, CONNS,
           "" if bench.CLIENT_CPUS is None else
           " pinned apart from the servers", sum(statuses.values()), WARM,
           elapsed, rps, latency[0], latency[1], latency[2]),
        "",
        "Answers: %s; socket errors: %s." % (
            ", ".join("%d x %d" % (n, s) for s, n in sorted(statuses.items())),
            errors or "none"),
        "",
        "| sample | requests answered (warm-up included) "
        "| nginx RSS MiB (all processes) "
        "| omni-worker RSS MiB (all processes) |",
        "|---|---|---|---|",
    ]
    for label, answered, ngx, wrk in sampler.samples:
        lines.append("| %s | %d | %.1f | %.1f |" % (
            label, answered, ngx / 1024, wrk / 1024))
    warm = next(s for s in sampler.samples if s[0] == "warm")
    end = sampler.samples[-1]
    change = []
    for i, name in ((2, "nginx"), (3, "omni-worker")):
        delta = (end[i] - warm[i]) / warm[i]
        change.append("%s %+.1f%%" % (name, 100 * delta))
    lines += [
        "",
        "Warm to end: %s (flat: within %d%%). %s" % (
            ", ".join(change), 100 * FLAT,
            "Result: flat, no unexpected answer." if not problems else
            "Result: FAILED: " + "; ".join(problems)),
    ]
    return "\n".join(lines) + "\n"


def problems_of(sampler, statuses, errors, pids_before, pids_after,
                nginx):
    """What makes the soak fail, as text (empty: passed)."""
    problems = []
    answered = sum(statuses.values())
    if answered < TOTAL:
        problems.append("%d answers of %d" % (answered, TOTAL))
    expected = {}
    for _, _, status in MIX:
        expected[status] = expected.get(status, 0) + answered / len(MIX)
    for status in sorted(set(statuses) | set(expected)):
        got, want = statuses.get(status, 0), expected.get(status, 0)
        if abs(got - want) > CONNS + len(MIX):
            problems.append("%d answers %d, expected %.0f"
                            % (got, status, want))
    if errors:
        problems.append("socket errors: " + errors)
    if pids_after != pids_before:
        problems.append("processes changed: %s -> %s"
                        % (pids_before, pids_after))
    crashes = [line for line in stack.tail(nginx.error_log, 10000)
               .splitlines() if "exited on signal" in line]
    if crashes:
        problems.append("nginx: " + crashes[0])
    warm = next(s for s in sampler.samples if s[0] == "warm")
    end = sampler.samples[-1]
    for i, name in ((2, "nginx"), (3, "omni-worker")):
        if abs(end[i] - warm[i]) > FLAT * warm[i]:
            problems.append("%s RSS %d -> %d KiB" % (name, warm[i], end[i]))
    return problems


def main():
    if bench.CLIENT_CPUS is not None:
        os.sched_setaffinity(0, bench.SERVER_CPUS)
    pg = stack.Postgres().init()
    redis = stack.Redis().start()
    product = None
    try:
        res = stack.migrate(["up"], pg.url(),
                            binary=stack.BUILD / "omni-worker")
        if res.returncode:
            raise RuntimeError(res.stderr)
        product = bench.Product(pg, redis)
        nginx, worker = product.nginx, product.worker
        token = nginx.token(role="user", lifetime=24 * 3600)
        check_mix(nginx, token)
        sampler = Sampler(nginx, worker)
        pids_before = sampler.pids()
        sampler.take("before", 0)

        print("soak: warm-up, %d requests" % WARM, file=sys.stderr)
        Load(nginx, token, WARM).wait(lambda: None, 1)
        sampler.take("warm", WARM)

        print("soak: %d requests" % TOTAL, file=sys.stderr)
        load = Load(nginx, token, TOTAL)
        started = time.monotonic()
        out = load.wait(lambda: sampler.take(
            "during, %.0f s" % (time.monotonic() - started),
            WARM + load.answered),
            INTERVAL)
        elapsed = time.monotonic() - started
        statuses, errors, rps, latency = parse(out)
        sampler.take("after", WARM + sum(statuses.values()))
        problems = problems_of(sampler, statuses, errors, pids_before,
                               sampler.pids(), nginx)
        text = report(sampler, statuses, errors, rps, latency, elapsed,
                      problems)
        (HERE / "soak.md").write_text(text)
        print(text)
        return 1 if problems else 0
    finally:
        for svc in (product, redis, pg):
            if svc is not None:
                svc.destroy()


if __name__ == "__main__":
    sys.exit(main())
