"""Login benchmark (issue 5): logins/s of one omni-worker process with one
auth thread, at the configured PBKDF2 iteration count, against the bare
PBKDF2 rate of Python's hashlib (OpenSSL underneath) on this machine; and
the p99 of `GET /health/live` on that same process without and with a
burst of logins running, to show PBKDF2 does not hold the event loop
(target: at most 1 ms added at p99).

The worker (release build) listens on TCP so clients reach it directly,
with no nginx in between. Login clients are Python threads on keep-alive
connections, pinned to the load generator's CPUs when bench.py pins.
/health/live is measured two ways: a paced probe (build/paced, from
tests/bench/paced.c: BENCH_PROBE_RATE requests/s on one connection, far
below capacity: the latency a request meets, which the 1 ms target is
about) and wrk saturating the process (how
much of its capacity the burst takes). The paced probe runs 4 x
BENCH_SECONDS per run while the logins alternate between paused and
running every BENCH_PROBE_WINDOW seconds; its baseline is the paused
windows of the same run, because on a VM an idle probe's p99 drifts by
milliseconds between separate runs.

  /usr/bin/python3 tests/bench/login.py      standalone (bench.py's method:
                                             BENCH_SECONDS, BENCH_RUNS,
                                             BENCH_PIN)
  BENCH_LOGIN_CLIENTS   concurrent login clients (default 4)
  BENCH_PROBE_RATE      /health/live requests/s of the paced probe (500)
  BENCH_PROBE_WINDOW    seconds between pausing and resuming the logins (1)
  BENCH_PASSWORD_ITERATIONS   OMNI_PASSWORD_ITERATIONS (default 29000)

bench.py includes it with run(measure, summary, row, pg, redis,
client_cpus): pg migrated, redis running; returns the table's lines.
"""

import hashlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import stack  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CLIENTS = int(os.environ.get("BENCH_LOGIN_CLIENTS", "4"))
ITERATIONS = int(os.environ.get("BENCH_PASSWORD_ITERATIONS", "29000"))
PROBE_RATE = int(os.environ.get("BENCH_PROBE_RATE", "500"))
WINDOW = float(os.environ.get("BENCH_PROBE_WINDOW", "1"))
SETTLE = 0.25
PACED = stack.BUILD / "paced"
PASSWORD = "bench password, long enough"


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * len(values))))]


def pbkdf2_rate(seconds, iterations=ITERATIONS):
    """Hashes/s of one thread of hashlib.pbkdf2_hmac (the baseline)."""
    salt = os.urandom(16)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, iterations)
        n += 1
    return n / (time.perf_counter() - t0), None, None


class LoginLoad:
    """`clients` threads logging in without pause until stop(), each on
    its own keep-alive connection; any answer but 200 is an error."""

    def __init__(self, port, body, clients=CLIENTS, cpus=None):
        self.port = port
        self.payload = json.dumps(body)
        self.cpus = cpus
        self.halt = threading.Event()
        self.running = threading.Event()
        self.running.set()
        self.lock = threading.Lock()
        self.latencies = []
        self.finished = []          # monotonic times logins completed
        self.errors = []
        self.threads = [threading.Thread(target=self._loop)
                        for _ in range(clients)]

    def _loop(self):
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)      # this thread only
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": "application/json"}
        try:
            while not self.halt.is_set():
                if not self.running.wait(0.05):
                    continue
                t0 = time.perf_counter()
                conn.request("POST", "/auth/login", self.payload, headers)
                r = conn.getresponse()
                body = r.read()
                elapsed = time.perf_counter() - t0
                with self.lock:
                    if r.status == 200:
                        self.latencies.append(elapsed)
                        self.finished.append(time.monotonic())
                    else:
                        self.errors.append((r.status, body[:200]))
        except Exception as e:      # reported by stop()
            with self.lock:
                self.errors.append(repr(e))
        finally:
            conn.close()

    def start(self):
        self.t0 = time.perf_counter()
        for t in self.threads:
            t.start()
        return self

    def pause(self):
        """The clients finish the login in flight and wait."""
        self.running.clear()

    def resume(self):
        self.running.set()

    def rate_since(self, t0):
        """Logins/s completed since monotonic time t0."""
        with self.lock:
            done = sum(1 for t in self.finished if t >= t0)
        return done / (time.monotonic() - t0)

    def stop(self):
        """Stops the clients; returns (logins/s, p50 ms, p99 ms), the rate
        over the whole time, paused or not."""
        self.halt.set()
        self.running.set()
        for t in self.threads:
            t.join(120)
        elapsed = time.perf_counter() - self.t0
        if self.errors:
            raise RuntimeError("login load saw %d failures, first: %r"
                               % (len(self.errors), self.errors[0]))
        if not self.latencies:
            raise RuntimeError("no login completed")
        return (len(self.latencies) / elapsed,
                percentile(self.latencies, 50) * 1e3,
                percentile(self.latencies, 99) * 1e3)


def probe(port, seconds, rate=PROBE_RATE, cpus=None, during=None):
    """`GET /health/live` at a steady `rate` on one keep-alive connection
    for `seconds` (not saturating: the latency of a request that finds the
    worker idle or busy with logins), while during() runs here; returns
    [(CLOCK_MONOTONIC send time, latency), in s]. The client is build/paced
    (tests/bench/paced.c): a Python client's own pauses would be measured."""
    cmd = [str(PACED), str(port), "/health/live", str(rate), str(seconds)]
    if cpus:
        cmd = ["taskset", "-c", ",".join(map(str, cpus))] + cmd
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        if during:
            during()
        out, err = p.communicate(timeout=seconds + 60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if p.returncode != 0:
        raise RuntimeError("the /health/live probe failed: %s" % err.strip())
    return [(int(t) / 1e9, int(d) / 1e9)
            for t, d in (line.split() for line in out.splitlines())]


def probe_interleaved(port, load, seconds, window=WINDOW, settle=SETTLE):
    """The paced probe for `seconds` while `load` (a started LoginLoad)
    alternates between paused and running every `window` seconds, so that
    both phases meet the same machine: on a VM the p99 of an idle probe
    drifts by milliseconds from one run to the next, which a burst run
    after an idle run would count as the burst's. Samples sent in the
    first `settle` seconds of a window are dropped (logins in flight at a
    pause, clients warming up at a resume). Returns ((requests/s, p50 ms,
    p99 ms) idle, the same during the burst, logins/s during the burst)."""
    phases = []

    def alternate():
        end = time.monotonic() + seconds
        burst = False
        while time.monotonic() < end:
            (load.resume if burst else load.pause)()
            t0 = time.monotonic()
            time.sleep(min(window, max(0, end - t0)))
            phases.append((t0 + settle, time.monotonic(), burst))
            burst = not burst
        load.pause()

    samples = probe(port, seconds, cpus=load.cpus, during=alternate)
    result = []
    for burst in (False, True):
        spans = [(a, b) for a, b, x in phases if x == burst and b > a]
        lat = [d for t, d in samples if any(a <= t < b for a, b in spans)]
        if not lat:
            raise RuntimeError("no /health/live sample in a %s window"
                               % ("burst" if burst else "idle"))
        span = sum(b - a for a, b in spans)
        result.append((len(lat) / span, percentile(lat, 50) * 1e3,
                       percentile(lat, 99) * 1e3))
    with load.lock:
        done = sum(1 for t in load.finished
                   if any(a <= t < b for a, b in spans))
    result.append(done / span)          # spans, span: the burst windows'
    return result


def login_rate(port, body, seconds, clients, cpus):
    load = LoginLoad(port, body, clients, cpus).start()
    time.sleep(seconds)
    return load.stop()


class LoginWorker:
    """omni-worker (release build): 1 process, 1 auth thread, TCP, with a
    signing key of its own and one registered user."""

    def __init__(self, pg, redis):
        self.dir = stack.make_tmpdir("omni-bench-login-")
        self.port = stack.free_port()
        key = self.dir / "jwt.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA",
                        "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)],
                       check=True, capture_output=True)
        self.worker = stack.Worker(
            pg, redis, workdir=self.dir, workers=1,
            binary=stack.BUILD / "omni-worker",
            env={"OMNI_LISTEN": "127.0.0.1:%d" % self.port,
                 "OMNI_LOG_LEVEL": "warn", "OMNI_JWT_PRIVATE_KEY": key,
                 "OMNI_AUTH_THREADS": 1,
                 "OMNI_PASSWORD_ITERATIONS": ITERATIONS})
        try:
            self.worker.start(wait=False)
            stack.wait_until(self._live, 30, "omni-worker on port %d"
                             % self.port, interval=0.1)
            self.body = {"email": "bench-%s@example.com" % os.urandom(6).hex(),
                         "password": PASSWORD}
            status, text = self.post("/auth/register", self.body)
            if status != 201:
                raise RuntimeError("register answered %d: %s"
                                   % (status, text))
        except BaseException:
            self.destroy()
            raise

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def post(self, path, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, json.dumps(body),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            conn.close()

    def _live(self):
        if self.worker.proc.poll() is not None:
            raise RuntimeError("omni-worker exited %d:\n%s" % (
                self.worker.proc.returncode, stack.tail(self.worker.log_path)))
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/health/live")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def destroy(self):
        self.worker.destroy()
        shutil.rmtree(self.dir, ignore_errors=True)


def summarize(samples):
    """bench.py's summary() shape from (rate, p50, p99) samples."""
    rates = [s[0] for s in samples]
    p50s = [s[1] for s in samples if s[1] is not None]
    p99s = [s[2] for s in samples if s[2] is not None]
    return {"rps": statistics.median(rates), "min": min(rates),
            "max": max(rates),
            "p50": statistics.median(p50s) if p50s else None,
            "p99": statistics.median(p99s) if p99s else None}


def run(measure, summary, row, pg, redis, client_cpus=None,
        seconds=SECONDS, runs=RUNS, clients=CLIENTS):
    """Measures the login rows (pg migrated, redis running); returns the
    table's lines. measure(url) runs wrk on url and returns its samples;
    summary(samples) and row(name, s, base, target) are bench.py's.
    client_cpus: where the login client threads and the probe run (None:
    anywhere)."""
    subprocess.run(["make", "-s", "-C", str(HERE.parent.parent),
                    "build/paced"], check=True)
    w = LoginWorker(pg, redis)
    try:
        login_rate(w.port, w.body, 2, clients, client_cpus)     # warm-up
        # interleaved, so that both see the same machine
        hashes, logins = [], []
        for _ in range(runs):
            hashes.append(pbkdf2_rate(seconds))
            logins.append(login_rate(w.port, w.body, seconds, clients,
                                     client_cpus))
        pbkdf2, logins = summarize(hashes), summary(logins)
        health = summary(measure(w.url("/health/live")))
        load = LoginLoad(w.port, w.body, clients, client_cpus).start()
        try:
            probes = [probe_interleaved(w.port, load, 4 * seconds)
                      for _ in range(runs)]
            load.resume()
            t0 = time.monotonic()
            burst = summary(measure(w.url("/health/live")))
            wrk_logins = load.rate_since(t0)
        finally:
            load.stop()
        paced = summary([p[0] for p in probes])
        paced_burst = summary([p[1] for p in probes])
        burst_logins = statistics.median(p[2] for p in probes)
    finally:
        w.destroy()
    return [
        row("PBKDF2-HMAC-SHA256 %d rounds, Python hashlib, 1 thread "
            "(baseline, hashes/s)" % ITERATIONS, pbkdf2),
        row("login `POST /auth/login` straight to omni-worker, 1 process, "
            "1 auth thread, %d clients (logins/s)" % clients, logins,
            pbkdf2),
        row("omni-worker `GET /health/live`, 1 process, paced %d/s on 1 "
            "connection, in the %g s windows between bursts (baseline)"
            % (PROBE_RATE, WINDOW), paced),
        row("  the same in the burst windows (%d clients, %.0f logins/s): "
            "p99 %+.2f ms" % (clients, burst_logins,
                              paced_burst["p99"] - paced["p99"]),
            paced_burst, paced, "p99 +<= 1 ms"),
        row("omni-worker `GET /health/live`, 1 process, wrk saturating "
            "(baseline)", health),
        row("  the same during a login burst (%d clients, %.0f logins/s "
            "over the burst): p99 %+.2f ms"
            % (clients, wrk_logins, burst["p99"] - health["p99"]), burst,
            health),
    ]


def main():
    import bench
    if bench.CLIENT_CPUS is not None:
        os.sched_setaffinity(0, bench.SERVER_CPUS)
    pg = stack.Postgres().init()
    redis = stack.Redis().start()
    try:
        res = stack.migrate(["up"], pg.url(),
                            binary=stack.BUILD / "omni-worker")
        if res.returncode:
            raise RuntimeError(res.stderr)
        lines = run(bench.measure, bench.summary, bench.row, pg, redis,
                    bench.CLIENT_CPUS)
        pinning = ("servers on CPU %s, wrk and the login clients on CPU %s"
                   % (bench.SERVER_CPUS, bench.CLIENT_CPUS)
                   if bench.CLIENT_CPUS else "no pinning")
        print("\n".join([
            "Machine: %s; %s; %d runs of %d s after a 2 s warm-up, %d wrk "
            "connections." % (bench.machine(), pinning, RUNS, SECONDS,
                              bench.CONNS), "",
            "| benchmark | req/s (median) | spread | p50 ms | p99 ms "
            "| vs baseline | target |",
            "|---|---|---|---|---|---|---|"] + lines))
    finally:
        redis.destroy()
        pg.destroy()


if __name__ == "__main__":
    main()
