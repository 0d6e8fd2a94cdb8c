"""Omni benchmarks: every figure is a ratio to a baseline measured in the
same run on the same machine (SPEC section 9).

  worker no-DB endpoint through nginx   vs  nginx `return 200`, and vs nginx
                                            `proxy_pass` to a trivial upstream
  JSON point read from Postgres through vs  pgbench -S -M prepared
  nginx + worker                            at equal connections
  gateway: JWT (HS256, RS256, ES256,    vs  plain `proxy_pass` to the same
  EdDSA) + headers, cache off and on        upstream in the same nginx
                                            (tests/bench/gateway.py)

Each row is run BENCH_RUNS times (default 3) after a warm-up; the table shows
the median and the spread (min-max) of requests/s, and p50/p99 latency.
Writes the table to tests/bench/results.md and prints it.
"""

import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import gateway  # noqa: E402
import stack  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
PG_POOL = max(1, CONNS // WORKERS)

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


def wrk(target, seconds=SECONDS, conns=CONNS):
    """Runs wrk on target (a URL, or (URL, headers)); returns (requests/s,
    p50 ms, p99 ms). Any non-2xx answer or socket error fails the run."""
    url, headers = target if isinstance(target, tuple) else (target, {})
    args = []
    for name, value in headers.items():
        args += ["-H", "%s: %s" % (name, value)]
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(conns), "-d", "%ds" % seconds,
         "--latency"] + args + [url],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise RuntimeError("wrk saw failures on %s:\n%s" % (url, out))
    return rps, to_ms(lat["50"]), to_ms(lat["99"])


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" \
        else value


def pgbench(pg, seconds=SECONDS, conns=CONNS):
    env = dict(os.environ, PGPASSWORD=pg.password)
    out = subprocess.run(
        ["pgbench", "-h", "127.0.0.1", "-p", str(pg.port), "-U", pg.user,
         "-S", "-M", "prepared", "-c", str(conns), "-j", "1",
         "-T", str(seconds), "bench"],
        capture_output=True, text=True, check=True, env=env).stdout
    tps = float(re.search(r"tps = ([\d.]+) \(without initial", out).group(1))
    lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
    return tps, lat, None


def repeat(fn, target):
    fn(target, seconds=2)       # warm-up: connections, caches
    return [fn(target) for _ in range(RUNS)]


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


def row(name, s, base=None, target=None):
    ratio = "%.0f%%" % (100 * s["rps"] / base["rps"]) if base else "1.00 (baseline)"
    return "| %s | %.0f | %.0f-%.0f | %s | %s | %s | %s |" % (
        name, s["rps"], s["min"], s["max"], fmt_ms(s["p50"]),
        fmt_ms(s["p99"]), ratio, target or "")


def main():
    pg = stack.Postgres().init()
    redis = stack.Redis().start()
    worker = nginx = base_nginx = None
    try:
        res = stack.migrate(["up"], pg.url(),
                            binary=stack.BUILD / "omni-worker")
        if res.returncode:
            raise RuntimeError(res.stderr)
        pg.create_database("bench")
        subprocess.run(["pgbench", "-i", "-q", "-s", "10", "-h", "127.0.0.1",
                        "-p", str(pg.port), "-U", pg.user, "bench"],
                       check=True, capture_output=True,
                       env=dict(os.environ, PGPASSWORD=pg.password))

        worker = stack.Worker(pg, redis, workers=WORKERS,
                              binary=stack.BUILD / "omni-worker",
                              env={"OMNI_LOG_LEVEL": "warn",
                                   "OMNI_PG_POOL_SIZE": PG_POOL}).start()
        # the product configuration, its per-user API limit out of the way
        nginx = stack.Nginx(worker.socket_path, workers=WORKERS,
                            redis_addr=redis.addr,
                            api_rate="1000000r/s").start()

        proxy_port = stack.free_port()
        base_nginx = stack.NginxConf(BASELINE_CONF, "bench-nginx",
                                     workers=WORKERS,
                                     proxy_port=proxy_port).start()
        port = base_nginx.port

        ret200 = summary(repeat(wrk, "http://127.0.0.1:%d/" % port))
        proxied = summary(repeat(wrk, "http://127.0.0.1:%d/" % proxy_port))
        nodb = summary(repeat(wrk, nginx.http_url("/health/live")))
        pgb = summary(repeat(pgbench, pg))
        point = summary(repeat(
            wrk, (nginx.http_url("/api/v1/config/refresh_interval"),
                  nginx.bearer(role="user", lifetime=3600))))

        cpu = platform.processor() or "unknown cpu"
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        head = ("| benchmark | req/s (median) | spread | p50 ms | p99 ms "
                "| vs baseline | target |\n|---|---|---|---|---|---|---|")
        lines = [
            "Machine: %s, %d cores; %d nginx workers, %d omni-worker "
            "processes x %d Postgres connections; %d client connections, "
            "%d runs of %ds (median), wrk and the servers share the cores."
            % (cpu, os.cpu_count(), WORKERS, WORKERS, PG_POOL, CONNS, RUNS,
               SECONDS),
            "",
            head,
            row("nginx `return 200` (baseline)", ret200),
            row("nginx `proxy_pass` (keepalive, unix socket) to nginx "
                "`return 200`", proxied, ret200),
            row("worker no-DB `GET /health/live` through nginx", nodb, ret200),
            row("  the same, vs that `proxy_pass` (the worker's own cost)",
                nodb, proxied),
            row("pgbench -S -M prepared (baseline, p50 = average)", pgb),
            row("worker point read `GET /api/v1/config/{key}` through nginx",
                point, pgb, ">= 70%"),
        ]
        lines += gateway.run(lambda target: repeat(wrk, target), summary,
                             row, WORKERS,
                             base_nginx.prefix / "trivial.sock",
                             redis.addr)
        text = "\n".join(lines) + "\n"
        (HERE / "results.md").write_text(text)
        print(text)
    finally:
        for svc in (base_nginx, nginx, worker, redis, pg):
            if svc is not None:
                svc.destroy()


if __name__ == "__main__":
    main()
