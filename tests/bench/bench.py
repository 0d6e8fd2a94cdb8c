"""Omni benchmarks: every figure is a ratio to a baseline measured in the
same run on the same machine (SPEC section 9).

  worker no-DB endpoint through nginx   vs  nginx `return 200`, and vs nginx
                                            `proxy_pass` to a trivial upstream
  JSON point read from Postgres through vs  pgbench -S -M prepared
  nginx + worker                            at equal connections; with each
                                            server's CPU per request
                                            (alone: `bench.py worker`)
  a relay through the outbound HTTP      vs  nginx `proxy_pass` to the same
  client (evhttp in, libcurl multi out)     upstream (tests/bench/outbound.py)
  dashboard stats, 1k vs 1M requests    vs  each other, cached and not
  recorded                                  (tests/bench/dashboard.py)
  logins/s, and /health/live p99 with   vs  Python hashlib PBKDF2, and the
  and without a login burst                 p99 without the burst
                                            (tests/bench/login.py)
  gateway: JWT (HS256, RS256, ES256,    vs  plain `proxy_pass` to the same
  EdDSA) + RBAC + headers, cache off        upstream in a module-free nginx,
  and on, 0, 1 and 3 Redis limits           alternating rounds, CPU per
                                            request, paced p99
                                            (tests/bench/gateway.py; alone:
                                            `bench.py gateway`)
  events: 1,000 idle subscribers + 100  vs  the 200 ms target; subscribing
  events/s, delivery p50/p99, RSS          with vs without the authorization
                                            subrequest (tests/bench/events.py)
  chat: a streamed turn through nginx   vs  the provider double directly;
  + worker, TTFT p50 and gap p99;          1,000 concurrent slow streams on
  concurrent streams, RSS                   one worker process, RSS by batch
                                            (tests/bench/chat.py)
  LLM gateway: /v1/chat/completions     vs  the double directly (added TTFT,
  streamed, and non-streamed req/s         gap p50/p99); nginx `proxy_pass`
  with an API key, a TPM-limited key,      to aimock (req/s, CPU per request)
  an alias                                 (tests/bench/llm_gateway.py;
                                            alone: `bench.py llm`)
  ledger: non-streamed turns at 500/s   vs  the same with the ledger's rows
  open loop, rate reached, p50/p99          discarded (and without the
                                            dashboard rollup)
                                            (tests/bench/ledger.py)
  gateway RS256 rows                    vs  nginx `auth_request` to a Python
                                            auth service, then `proxy_pass`
                                            (tests/bench/authrequest.py)
  MCP `tools/call` echo through /mcp    vs  server-everything directly, 1/8/32
  and through the REST route                connections closed loop (wrk),
                                            and paced (open loop) at 50% and
                                            70% of the direct saturation, 8
                                            and 32 connections; added p50/p99
                                            (tests/bench/mcp.py, mcp_rest.py;
                                            alone: `bench.py mcp`)

Method: the servers (nginx, omni-worker, Postgres, Redis, uvicorn) are
pinned to all CPUs but the last, the load generator (wrk, pgbench) to the
last (BENCH_PIN=0: no pinning; with one CPU nothing is pinned). Each row
gets a 2 s warm-up, then BENCH_RUNS runs (default 3) of BENCH_SECONDS
(default 5); the table shows the median requests/s of the runs with their
spread (min-max), and the medians of the runs' p50/p99 latencies.
Writes the table to tests/bench/results.md and prints it.
"""

import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import authrequest  # noqa: E402
import chat  # noqa: E402
import ledger  # noqa: E402
import llm_gateway  # noqa: E402
import dashboard  # noqa: E402
import events  # noqa: E402
import gateway  # noqa: E402
import instructions  # noqa: E402
import login  # noqa: E402
import mcp  # noqa: E402
import mcp_rest  # noqa: E402
import standalone  # noqa: E402
import outbound  # noqa: E402
import stack  # noqa: E402


def cpu_split():
    """(load generator CPUs, server CPUs): the last CPU for the load
    generator, the others for the servers; (None, all) unpinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if os.environ.get("BENCH_PIN", "1") == "0" or len(cpus) < 2:
        return None, cpus
    return cpus[-1:], cpus[:-1]


CLIENT_CPUS, SERVER_CPUS = cpu_split()
mcp.UPSTREAM_CPUS = CLIENT_CPUS
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
WARMUP = 2
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
# one process per server CPU: nginx workers, omni-worker processes
WORKERS = int(os.environ.get("BENCH_WORKERS", str(len(SERVER_CPUS))))
# uvicorn --workers as commonly set: the machine's core count
AUTH_WORKERS = int(os.environ.get("BENCH_AUTH_WORKERS",
                                  str(os.cpu_count())))
PG_POOL = max(1, CONNS // WORKERS)
# the worker under test (an older build for an A/B: BENCH_WORKER_BIN)
WORKER_BIN = Path(os.environ.get("BENCH_WORKER_BIN",
                                 str(stack.BUILD / "omni-worker")))
THREADS = len(CLIENT_CPUS) if CLIENT_CPUS else 1

BASELINE_CONF = """
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {preamble}
    upstream trivial {{
        server unix:{prefix}/trivial.sock;
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        listen unix:{prefix}/trivial.sock;
        location / {{
            default_type application/json;
            return 200 '{{"status":"ok","pid":1}}\\n';
        }}
    }}
    server {{
        listen 127.0.0.1:{proxy_port} reuseport;
        location / {{
            proxy_pass http://trivial;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def client(cmd):
    """cmd run on the load generator's CPUs."""
    if CLIENT_CPUS is None:
        return cmd
    return ["taskset", "-c", ",".join(map(str, CLIENT_CPUS))] + cmd


def wrk(target, seconds=SECONDS, conns=CONNS):
    """Runs wrk on target (a URL, or (URL, headers)); returns (requests/s,
    p50 ms, p99 ms, requests). Any non-2xx answer or socket error fails the
    run."""
    url, headers = target if isinstance(target, tuple) else (target, {})
    args = []
    for name, value in headers.items():
        args += ["-H", "%s: %s" % (name, value)]
    out = subprocess.run(
        client(["wrk", "-t", str(THREADS), "-c", str(conns),
                "-d", "%ds" % seconds, "--latency"] + args + [url]),
        capture_output=True, text=True, check=True).stdout
    return wrk_parse(out, url)


def wrk_parse(out, url):
    """wrk's output: (requests/s, p50 ms, p99 ms, requests); any non-2xx
    answer or socket error fails the run."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise RuntimeError("wrk saw failures on %s:\n%s" % (url, out))
    return rps, to_ms(lat["50"]), to_ms(lat["99"]), requests


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" \
        else value


def pgbench(pg, seconds=SECONDS, conns=CONNS):
    env = dict(os.environ, PGPASSWORD=pg.password)
    out = subprocess.run(
        client(["pgbench", "-h", "127.0.0.1", "-p", str(pg.port),
                "-U", pg.user, "-S", "-M", "prepared", "-c", str(conns),
                "-j", str(THREADS), "-T", str(seconds), "bench"]),
        capture_output=True, text=True, check=True, env=env).stdout
    tps = float(re.search(r"tps = ([\d.]+) \(without initial", out).group(1))
    lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
    return tps, lat, None


def repeat(fn, target):
    what = target[0] if isinstance(target, tuple) else target
    print("bench: %s" % (what if isinstance(what, str) else fn.__name__),
          file=sys.stderr, flush=True)
    fn(target, seconds=WARMUP)      # warm-up: connections, caches
    return [fn(target) for _ in range(RUNS)]


def measure(target):
    """wrk's samples of target (see repeat()): what gateway.run() and the
    other row modules call."""
    return repeat(wrk, target)


def summary(samples):
    rps = [s[0] for s in samples]
    p50 = statistics.median(s[1] for s in samples)
    p99s = [s[2] for s in samples if s[2] is not None]
    return {
        "rps": statistics.median(rps),
        "min": min(rps),
        "max": max(rps),
        "p50": p50,
        "p99": statistics.median(p99s) if p99s else None,
    }


def fmt_ms(v):
    return "-" if v is None else "%.2f" % v


def row(name, s, base=None, target=None, times=False):
    """A table line; the ratio to base as a percentage, or as a multiple
    when `times`."""
    if base is None:
        ratio = "1.00 (baseline)"
    elif times:
        ratio = "%.1fx" % (s["rps"] / base["rps"])
    else:
        ratio = "%.0f%%" % (100 * s["rps"] / base["rps"])
    return "| %s | %.0f | %.0f-%.0f | %s | %s | %s | %s |" % (
        name, s["rps"], s["min"], s["max"], fmt_ms(s["p50"]),
        fmt_ms(s["p99"]), ratio, target or "")


class Product:
    """The product: nginx from conf/nginx.conf.in (its per-user API limit
    out of the way) in front of omni-worker (release build), which signs
    with the gateway's dev key."""

    def __init__(self, pg, redis):
        self.dir = stack.make_tmpdir("omni-bench-product-")
        self.nginx = self.worker = None
        try:
            self.nginx = stack.Nginx(self.dir / "worker.sock",
                                     workers=WORKERS, redis_addr=redis.addr,
                                     api_rate="1000000r/s").start()
            self.worker = stack.Worker(
                pg, redis, workdir=self.dir, workers=WORKERS,
                binary=WORKER_BIN,
                env={"OMNI_LOG_LEVEL": "debug" if os.environ.get(
                         "BENCH_MCP_TIMINGS") == "1" else "warn",
                     "OMNI_PG_POOL_SIZE": PG_POOL,
                     # the product's default: a rollup flush invalidates
                     # the dashboard cache
                     "OMNI_METRICS_FLUSH_MS": 5000,
                     "OMNI_JWT_PRIVATE_KEY":
                         self.nginx.keys_dir / "jwt-private.pem"}).start()
        except BaseException:
            self.destroy()
            raise

    def destroy(self):
        for svc in (self.nginx, self.worker):
            if svc is not None:
                svc.destroy()
        shutil.rmtree(self.dir, ignore_errors=True)


def machine():
    cpu = platform.processor() or "unknown cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return "%s, %d cores" % (cpu, os.cpu_count())


def method():
    """The results' header: how they were measured."""
    if CLIENT_CPUS is None:
        pinning = "the load generator and the servers share the cores"
    else:
        pinning = ("servers pinned to CPU %s, the load generator (wrk -t%d, "
                   "pgbench -j%d) to CPU %s (taskset)"
                   % (",".join(map(str, SERVER_CPUS)), THREADS, THREADS,
                      ",".join(map(str, CLIENT_CPUS))))
    return ("Machine: %s. Method: %s; nginx workers: %d, omni-worker "
            "processes: %d (x %d Postgres connections), uvicorn workers: %d; "
            "%d client connections; per row a %d s warm-up, then %d run%s of "
            "%d s: req/s is the median with the spread (min-max), p50/p99 "
            "the medians of the runs' wrk percentiles; every ratio is to the "
            "baseline measured just before it in the same run."
            % (machine(), pinning, WORKERS, WORKERS, PG_POOL, AUTH_WORKERS,
               CONNS, WARMUP, RUNS, "s" if RUNS > 1 else "", SECONDS))


def gateway_rows(redis, base_nginx, keydir):
    """The gateway table (tests/bench/gateway.py) and its rows by name."""
    taskset = (["taskset", "-c", ",".join(map(str, SERVER_CPUS))]
               if CLIENT_CPUS is not None else [])
    keys, tokens = gateway.make_keys(keydir)
    lines, rows = gateway.run(
        wrk, RUNS, SECONDS, WORKERS, base_nginx.prefix / "trivial.sock",
        redis, taskset, keys, tokens, client([]),
        upstream_master=base_nginx.proc.pid)
    lines += ["", INSTRUCTIONS_NOTE, ""] + instructions.run(keys, tokens,
                                                            redis)
    return keys, tokens, lines, rows


INSTRUCTIONS_NOTE = (
    "The same work counted in instructions, which the machine's load does "
    "not move (tests/bench/instructions.py: one nginx process under "
    "callgrind, a static file per location, the difference of a run of "
    "%d requests and one of %d over one keep-alive connection; user space "
    "only, the module making no system call of its own on these paths):"
    % (instructions.WARM + instructions.COUNT, instructions.WARM))


def gateway_method():
    return ("Gateway rows: servers pinned as above, 1 nginx worker per "
            "server CPU (%d); per case and connection count, one warm-up "
            "pair, then %d alternating rounds of plain `proxy_pass` (a "
            "module-free nginx) and the case, %d s each; ratio = median of "
            "the rounds' ratios (min-max); CPU = the nginx worker's on-CPU "
            "time per request (/proc/PID/schedstat), module = case - plain; "
            "Redis (on the servers' CPUs) reached on its unix socket, by the "
            "gateway and by the `auth_request` service alike. "
            "Load average at the start: %s."
            % (WORKERS, RUNS, SECONDS,
               " ".join(open("/proc/loadavg").read().split()[:3])))


def mcp_rows(nginx, product=None):
    return mcp_rest.run(wrk_parse, summary, row, fmt_ms, client([]), THREADS,
                        RUNS,
                        SECONDS, WARMUP, nginx, product)


def mcp_only():
    pg = stack.Postgres().init()
    redis = stack.Redis().start()
    product = None
    try:
        res = stack.migrate(["up"], pg.url(),
                            binary=stack.BUILD / "omni-worker")
        if res.returncode:
            raise RuntimeError(res.stderr)
        product = Product(pg, redis)
        lines = mcp.run(repeat, summary, row, client, THREADS, SECONDS,
                        product)
        lines += mcp_rows(product.nginx, product)
        text = "\n".join([method(), "", TABLE_HEAD, TABLE_RULE] + lines
                          + ["", mcp.note()]) + "\n"
        (HERE / "results-mcp.md").write_text(text)
        print(text)
    finally:
        for svc in (product, redis, pg):
            if svc is not None:
                svc.destroy()


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def cpu_ns(pids):
    """On-CPU time of the processes and all their threads, ns (the
    scheduler's own account, /proc/PID/task/TID/schedstat)."""
    total = 0
    for pid in pids:
        tasks = Path("/proc/%d/task" % pid)
        try:
            for task in tasks.iterdir():
                total += int((task / "schedstat").read_text().split()[0])
        except OSError:
            pass    # exited meanwhile
    return total


class CpuMeter:
    """CPU µs per request of each server process group over wrk runs:
    steadier than requests/s on a shared machine, and it shows where a
    request's server time goes (the servers share one core)."""

    def __init__(self, groups):
        self.groups = groups    # name -> function returning pids

    def measure(self, target):
        """measure(target), with the CPU each group spent in its runs."""
        what = target[0] if isinstance(target, tuple) else target
        print("bench: %s" % what, file=sys.stderr, flush=True)
        wrk(target, seconds=WARMUP)
        samples, spent = [], {name: 0 for name in self.groups}
        for _ in range(RUNS):
            pids = {name: fn() for name, fn in self.groups.items()}
            before = {name: cpu_ns(p) for name, p in pids.items()}
            samples.append(wrk(target))
            for name, p in pids.items():
                spent[name] += cpu_ns(p) - before[name]
        requests = sum(s[3] for s in samples)
        return samples, {name: ns / 1000 / requests
                         for name, ns in spent.items()}


def pgbench_cpu(pg, postgres):
    """pgbench's runs, and its Postgres backends' CPU µs per transaction,
    sampled over the middle of each run (the backends live as long as
    pgbench's connections)."""
    print("bench: pgbench", file=sys.stderr, flush=True)
    pgbench(pg, seconds=WARMUP)
    samples, per_q = [], []
    for _ in range(RUNS):
        box = {}
        t = threading.Thread(target=lambda: box.update(r=pgbench(pg)))
        t.start()
        time.sleep(1)
        pids = postgres()
        c0, t0 = cpu_ns(pids), time.monotonic()
        time.sleep(max(0.5, SECONDS - 1.5))
        c1, t1 = cpu_ns(pids), time.monotonic()
        t.join()
        samples.append(box["r"])
        per_q.append((c1 - c0) / 1000 / (box["r"][0] * (t1 - t0)))
    return samples, statistics.median(per_q)


def worker_rows(pg, redis, base_nginx, proxy_port, product):
    """The worker's rows: nginx alone, then the worker's no-DB and point
    read endpoints through it, the point read against pgbench; and where
    each row's server CPU goes (see worker_cpu_lines)."""
    nginx = product.nginx
    port = base_nginx.port
    meter = CpuMeter({
        "worker": lambda: children(product.worker.pid),
        "nginx": lambda: children(nginx.proc.pid),
        "Redis": lambda: [redis.proc.pid],
        "Postgres": lambda: children(pg.proc.pid),
    })
    ret200 = summary(measure("http://127.0.0.1:%d/" % port))
    proxied = summary(measure("http://127.0.0.1:%d/" % proxy_port))
    samples, nodb_cpu = meter.measure(nginx.http_url("/health/live"))
    nodb = summary(samples)
    samples, pg_cpu = pgbench_cpu(pg, lambda: children(pg.proc.pid))
    pgb = summary(samples)
    samples, point_cpu = meter.measure(
        (nginx.http_url("/api/v1/config/refresh_interval"),
         nginx.bearer(role="user", lifetime=3600)))
    point = summary(samples)
    head = [
        row("nginx `return 200` (baseline)", ret200),
        row("nginx `proxy_pass` (keepalive, unix socket) to nginx "
            "`return 200`", proxied, ret200),
    ]
    lines = [
        row("worker no-DB `GET /health/live` through nginx", nodb, ret200),
        row("  the same, vs that `proxy_pass` (the worker's own cost)",
            nodb, proxied),
        row("pgbench -S -M prepared (baseline, p50 = average)", pgb),
        row("worker point read `GET /api/v1/config/{key}` through nginx",
            point, pgb, ">= 70%"),
    ]
    return head, lines, worker_cpu_lines(nodb_cpu, point_cpu, pg_cpu)


def worker_cpu_lines(nodb, point, pgbench_pg):
    """Server CPU per request of the worker rows, and the point read's
    CPU-bound ceiling: when the servers share one core, requests/s is at
    most 1 / (server CPU per request), so the point read reaches at most
    pgbench's Postgres CPU per transaction over the sum of its own."""
    names = ["worker", "nginx", "Redis", "Postgres"]
    out = [
        "Server CPU per request, µs (on-CPU time of each process group "
        "over the runs / requests; pgbench's Postgres sampled mid-run):",
        "",
        "| row | " + " | ".join(names) + " | total |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for label, cpu in (("no-DB `/health/live`", nodb),
                       ("point read", point)):
        out.append("| %s | %s | %.1f |" % (
            label, " | ".join("%.1f" % cpu[n] for n in names),
            sum(cpu.values())))
    out.append("| pgbench -S (Postgres only) | - | - | - | %.1f | %.1f |"
               % (pgbench_pg, pgbench_pg))
    others = point["nginx"] + point["Redis"] + point["Postgres"]
    # the no-DB row's nginx only proxies (no token, no limit): with the
    # module, Redis and the worker all free, a point read still costs
    # nginx's proxying and Postgres's query on the shared core
    bare = nodb["nginx"] + point["Postgres"]
    out += [
        "",
        "Point read vs pgbench by CPU: %.0f%%; with a worker costing "
        "nothing: %.0f%% (the CPU-bound ceiling the worker alone can "
        "reach); with only nginx's proxying (the no-DB row's nginx CPU) "
        "and Postgres's query: %.0f%% (the ceiling of any gateway and "
        "worker on this core)." % (100 * pgbench_pg / sum(point.values()),
                                   100 * pgbench_pg / others,
                                   100 * pgbench_pg / bare),
        "",
        # SPEC 9's "worker HTTP layer alone": nginx shares the core here,
        # so the layer's own rate per core is 1 / its CPU per request
        "Worker HTTP layer alone (no DB, `/health/live` over nginx's "
        "keepalive connections): %.1f µs of the worker's CPU per request "
        "= %.1fk req/s per core (SPEC 9: >= 50k)."
        % (nodb["worker"], 1e3 / nodb["worker"]),
    ]
    return out


def bench_database(pg):
    res = stack.migrate(["up"], pg.url(), binary=stack.BUILD / "omni-worker")
    if res.returncode:
        raise RuntimeError(res.stderr)
    pg.create_database("bench")
    subprocess.run(["pgbench", "-i", "-q", "-s", "10", "-h", "127.0.0.1",
                    "-p", str(pg.port), "-U", pg.user, "bench"],
                   check=True, capture_output=True,
                   env=dict(os.environ, PGPASSWORD=pg.password))


def worker_only():
    """`bench.py worker`: the worker's rows alone (results-worker.md)."""
    pg = stack.Postgres().init()
    redis = stack.Redis().start()
    product = base_nginx = None
    try:
        proxy_port = stack.free_port()
        base_nginx = stack.NginxConf(BASELINE_CONF, "bench-nginx",
                                     workers=WORKERS,
                                     proxy_port=proxy_port).start()
        bench_database(pg)
        product = Product(pg, redis)
        head, lines, cpu = worker_rows(pg, redis, base_nginx, proxy_port,
                                       product)
        text = "\n".join([method(), "", TABLE_HEAD, TABLE_RULE] + head
                         + lines + [""] + cpu) + "\n"
        (HERE / "results-worker.md").write_text(text)
        print(text)
    finally:
        for svc in (base_nginx, product, redis, pg):
            if svc is not None:
                svc.destroy()


def main():
    if sys.argv[1:] == ["mcp"]:
        if CLIENT_CPUS is not None:
            os.sched_setaffinity(0, SERVER_CPUS)
        mcp_only()
        return
    if sys.argv[1:] == ["llm"]:
        standalone.main(llm_gateway.run)
        return
    if sys.argv[1:] == ["worker"]:
        if CLIENT_CPUS is not None:
            os.sched_setaffinity(0, SERVER_CPUS)
        worker_only()
        return
    only_gateway = sys.argv[1:] == ["gateway"]
    if CLIENT_CPUS is not None:
        # every server started from here inherits the servers' CPUs
        os.sched_setaffinity(0, SERVER_CPUS)
    pg = None if only_gateway else stack.Postgres().init()
    redis = stack.Redis().start()
    product = base_nginx = None
    keydir = stack.make_tmpdir("omni-bench-keys-")
    try:
        proxy_port = stack.free_port()
        base_nginx = stack.NginxConf(BASELINE_CONF, "bench-nginx",
                                     workers=WORKERS,
                                     proxy_port=proxy_port).start()
        upstream = base_nginx.prefix / "trivial.sock"

        if only_gateway:
            keys, tokens, gw_lines, gw_rows = gateway_rows(
                redis, base_nginx, keydir)
            auth_lines = authrequest.run(measure, summary, row, WORKERS,
                                         AUTH_WORKERS, upstream, keys,
                                         tokens, gw_rows, redis.unix_addr)
            text = "\n".join([method(), "", gateway_method(), ""]
                             + gw_lines + ["", TABLE_HEAD, TABLE_RULE]
                             + auth_lines) + "\n"
            (HERE / "results-gateway.md").write_text(text)
            print(text)
            return

        bench_database(pg)
        product = Product(pg, redis)
        nginx = product.nginx
        port = base_nginx.port
        head, worker_lines, worker_cpu = worker_rows(
            pg, redis, base_nginx, proxy_port, product)
        lines = head

        # the outbound client (MCP servers, LLM providers) vs nginx's own
        lines += outbound.run(measure, summary, row, port)

        # worker endpoints through the gateway (the product configuration)
        lines += worker_lines
        lines += dashboard.run(measure, summary, row, pg, nginx)
        lines += login.run(measure, summary, row, pg, redis, CLIENT_CPUS)
        lines += events.run(pg, redis)
        lines += mcp.run(repeat, summary, row, client, THREADS, SECONDS,
                         product)
        lines += mcp_rows(nginx, product)
        lines += chat.run(pg, redis)
        lines += llm_gateway.run(pg, redis)
        lines += ledger.run(pg, redis)

        # the gateway alone, then the pattern it replaces
        keys, tokens, gw_lines, gw_rows = gateway_rows(
            redis, base_nginx, keydir)
        lines += authrequest.run(measure, summary, row, WORKERS,
                                 AUTH_WORKERS, upstream, keys, tokens,
                                 gw_rows, redis.unix_addr)

        text = "\n".join([method(), "", TABLE_HEAD, TABLE_RULE] + lines
                         + [""] + worker_cpu
                         + ["", gateway_method(), ""] + gw_lines) + "\n"
        (HERE / "results.md").write_text(text)
        print(text)
    finally:
        for svc in (base_nginx, product, redis, pg):
            if svc is not None:
                svc.destroy()
        shutil.rmtree(keydir, ignore_errors=True)


TABLE_HEAD = ("| benchmark | req/s (median) | spread | p50 ms | p99 ms "
              "| vs baseline | target |")
TABLE_RULE = "|---|---|---|---|---|---|---|"


if __name__ == "__main__":
    main()
