"""Gateway benchmark (SPEC section 9): the module's requests/s as a ratio
to plain nginx `proxy_pass` to the same upstream, and the module's own CPU
cost per request.

The baseline is a module-free nginx (`proxy_pass` over keepalive to an
nginx `return 200` on a unix socket); the cases run in two nginx instances
with the module, one without `omni_jwt_cache` and one with it, each with a
location per algorithm and two with Redis limits; with the cache, RS256
also with a token carrying a `jti` and no limit (as Omni's own tokens do:
the revocation check is the request's one Redis command). Method, per
case and per connection count (32, then 8):

- rounds alternate the baseline and the case (RUNS rounds of SECONDS each,
  one warm-up pair first): a drift of the shared machine hits both sides of
  a round alike; the ratio is the median of the rounds' ratios, with their
  spread;
- CPU per request is the nginx worker's on-CPU time over the run
  (/proc/PID/schedstat, in ns) divided by the requests wrk counted: far
  steadier than requests/s on a shared machine. The module's cost is the
  case's minus the baseline's (its `proxy_pass` is the same work). For the
  limit rows Redis's own CPU per request is shown too: it falls as load
  rises when concurrent requests share script calls;
- for the limit rows, what caps them, from their own figures: Redis's
  CPU per script call, inside the script (INFO commandstats) and outside
  it, the upstream's CPU per request, and the ratio by CPU (all servers
  share one CPU) as measured, were the script free, and were Redis free;
- latency below saturation: build/paced (tests/bench/paced.c) sends at a
  fixed total rate, 70% of the baseline's saturation rate at 32
  connections, over 32 connections, each latency counted from the
  request's scheduled send time; RUNS rounds of the baseline and the case
  (the order flipped each round), the same requests; "added p99" is the
  median of the rounds' case p99 minus baseline p99 (SPEC 9: <= 1 ms);
  the paced limit row's rounds run the limit ceiling's gateway (below) at
  the same rate too, so a rate beyond what any script serves shows there;
- the RSA ceiling is measured in the same run (`openssl speed -seconds 3
  rsa2048` on the servers' CPU): one RSA-2048 verification per request on
  top of the baseline's wall time per request caps RS256 uncached at
  t_plain / (t_plain + t_verify);
- the RSA ceiling is also measured as a server: a module-free nginx that
  does one bare RSA-2048 verification per request and nothing else
  (tests/bench/rsa_ceiling.c: split the token, base64url, SHA-256, one
  EVP_PKEY_verify with a prepared context) runs in the RS256 uncached
  rows' rounds beside plain and the case. On a core shared with the
  upstream it costs more than `openssl speed` says: the longer request
  lets the upstream preempt nginx about once per request instead of once
  per two or three, so this is the ceiling the machine really has; the
  row's target is 0.90 of it, and the `openssl speed` formula stays
  beside it.
- the limit rows' ceiling is measured the same way: the module built
  with tests/bench/limit_ceiling.lua in place of omni_limit_batch.lua
  (a script doing only the Redis commands a decision needs: TIME, and
  per group EXISTS, GET and SET of each limit; no checks, no API keys)
  runs in a gateway nginx of its own, on the same Redis, in the cache-on
  limit rows' rounds beside plain and the case: the round trip per
  event-loop pass and the unavoidable commands, what any script would
  cost at the least;

`bash tests/bench/run.sh gateway` runs these rows alone (and the
`auth_request` comparison) and writes tests/bench/results-gateway.md.
`/usr/bin/python3 tests/bench/gateway.py [--cases REGEX] [--cache on|off]
[--conns N]... [--module SO]` runs the rows whose name matches, against another build of
the module if given (an A/B of two builds: run it once for each), and
prints them (BENCH_RUNS and BENCH_SECONDS as for bench.py).
"""

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
import stack  # noqa: E402

ALGS = {
    # location: (PyJWT algorithm, openssl genpkey arguments or None = HMAC)
    "hs256": ("HS256", None),
    "rs256": ("RS256", ["-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048"]),
    "es256": ("ES256", ["-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256"]),
    "eddsa": ("EdDSA", ["-algorithm", "ED25519"]),
}

CONNECTIONS = (32, 8)

CONF = """
load_module {module};
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {preamble}
    {cache}
    omni_redis {redis} password={redis_password} timeout=100ms;
    omni_limit_zone l1 rate=1000000r/s burst=1000;
    omni_limit_zone l2 rate=1000000r/s burst=1000 key=$remote_addr;
    omni_limit_zone l3 rate=1000000r/s burst=1000 key=$http_user_agent;
    upstream trivial {{
        server unix:{upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location /plain {{ proxy_pass http://trivial; }}
{locations}
        location /limit1 {{
            omni_auth jwt;
            omni_jwt_key file={rs_key} alg=RS256;
            omni_jwt_issuer bench;
            omni_jwt_audience bench;
            omni_require_role user;
            omni_limit zone=l1;
            proxy_pass http://trivial;
        }}
        location /limit3 {{
            omni_auth jwt;
            omni_jwt_key file={rs_key} alg=RS256;
            omni_jwt_issuer bench;
            omni_jwt_audience bench;
            omni_require_role user;
            omni_limit zone=l1;
            omni_limit zone=l2;
            omni_limit zone=l3;
            proxy_pass http://trivial;
        }}
    }}
}}
"""

# the baseline: the same proxying, in an nginx of its own without the module
# (its worker's CPU time is the proxy's alone, not the upstream's too)
PLAIN_CONF = """
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {preamble}
    upstream trivial {{
        server unix:{upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / {{ proxy_pass http://trivial; }}
    }}
}}
"""

# the measured RS256 ceiling: plain's proxying with one bare RSA
# verification in front (tests/bench/rsa_ceiling.c)
CEILING_MODULE = stack.BUILD / "ngx_http_bench_rsa_module.so"
CEILING_CONF = ("load_module %s;\n" % CEILING_MODULE) + PLAIN_CONF.replace(
    "location / {{ proxy_pass",
    "location / {{ bench_rsa_verify {rs_key}; proxy_pass")

# the measured limit ceiling: the module built with a script doing only
# the Redis commands a decision needs (tests/bench/limit_ceiling.lua), in
# a gateway nginx of its own beside the case's, on the same Redis
LIMIT_CEILING_MODULE = stack.BUILD / "limit-ceiling" / "ngx_http_omni_module.so"

LOCATION = """        location /{name} {{
            omni_auth jwt;
            omni_jwt_key file={key} alg={alg};
            omni_jwt_issuer bench;
            omni_jwt_audience bench;
            omni_require_role user;
            proxy_pass http://trivial;
        }}"""


def make_keys(keydir):
    """Key files and one long-lived token per location, made with openssl
    and PyJWT (the independent implementation)."""
    import jwt
    keys, tokens = {}, {}
    now = int(time.time())
    # no jti: a token with one costs a revocation check in Redis, which the
    # per-algorithm rows do not measure (the limit rows do, with "jti")
    claims = {"iss": "bench", "aud": "bench", "sub": "bench-user",
              "preferred_username": "bench", "role": "user",
              "iat": now, "exp": now + 3600}
    for name, (alg, genpkey) in ALGS.items():
        if genpkey is None:
            secret = b"s" * 48
            (keydir / name).write_bytes(secret)
            keys[name] = keydir / name
            tokens[name] = jwt.encode(claims, secret, algorithm=alg)
            continue
        priv, pub = keydir / (name + ".key"), keydir / (name + ".pem")
        subprocess.run(["openssl", "genpkey", "-out", str(priv)] + genpkey,
                       check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", str(priv), "-pubout",
                        "-out", str(pub)], check=True, capture_output=True)
        keys[name] = pub
        tokens[name] = jwt.encode(claims, priv.read_text(), algorithm=alg)
        if name == "rs256":
            tokens["jti"] = jwt.encode(dict(claims, jti="bench-jti"),
                                       priv.read_text(), algorithm=alg)
    return keys, tokens


def start(workers, upstream, keys, cached, redis, module=None):
    """The gateway nginx, with or without the token cache."""
    locations = "\n".join(
        LOCATION.format(name=name, key=keys[name], alg=ALGS[name][0])
        for name in ALGS)
    cache = "omni_jwt_cache zone=bench:32m ttl=10m;" if cached else ""
    extra = {"module": module} if module else {}
    return stack.NginxConf(CONF, "bench-gw", workers=workers, cache=cache,
                           upstream=upstream, locations=locations,
                           redis=redis, rs_key=keys["rs256"],
                           **extra).start("/plain")


def worker_pids(master):
    """The nginx workers of a master process."""
    with open("/proc/%d/task/%d/children" % (master, master)) as f:
        return [int(p) for p in f.read().split()]


def cpu_ns(pids):
    """On-CPU time of the processes, ns (the scheduler's own account)."""
    total = 0
    for pid in pids:
        with open("/proc/%d/schedstat" % pid) as f:
            total += int(f.read().split()[0])
    return total


def rsa_verify_us(taskset):
    """One RSA-2048 verification, µs, by `openssl speed` on the servers'
    CPUs."""
    out = subprocess.run(taskset + ["openssl", "speed", "-seconds", "3",
                                    "rsa2048"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"^rsa\s+2048 bits\s+[\d.]+s\s+([\d.]+)s", out, re.M)
    return float(m.group(1)) * 1e6


class Case:
    """One measured target: a URL (and headers) on an nginx whose worker
    CPU time is read around each run."""

    def __init__(self, name, url, headers, master, target="", redis=None,
                 upstream=None):
        self.name, self.url, self.headers = name, url, headers
        self.pids = worker_pids(master)
        self.target, self.redis = target, redis
        # the upstream nginx's workers, whose CPU a request costs too
        self.upstream = worker_pids(upstream) if upstream else []

    def run(self, wrk, seconds, conns, headers=None):
        """(requests/s, p99 ms, worker CPU µs/request, Redis CPU
        µs/request or None, requests per script call or None, µs per
        script call inside the script or None, the upstream's CPU
        µs/request or None); headers replace the case's own."""
        before = cpu_ns(self.pids)
        ubefore = cpu_ns(self.upstream)
        rbefore = cpu_ns([self.redis.proc.pid]) if self.redis else 0
        calls, usec = script_calls(self.redis) if self.redis else (0, 0)
        target = (self.url, headers or self.headers)
        rps, _p50, p99, requests = wrk(target, seconds=seconds, conns=conns)
        cpu = (cpu_ns(self.pids) - before) / 1000 / requests
        ucpu = ((cpu_ns(self.upstream) - ubefore) / 1000 / requests
                if self.upstream else None)
        if not self.redis:
            return rps, p99, cpu, None, None, None, ucpu
        rcpu = (cpu_ns([self.redis.proc.pid]) - rbefore) / 1000 / requests
        calls2, usec2 = script_calls(self.redis)
        if calls2 == calls:
            # no script: a revocation check alone (one EXISTS a request)
            return rps, p99, cpu, rcpu, None, None, ucpu
        n = calls2 - calls
        return rps, p99, cpu, rcpu, requests / n, (usec2 - usec) / n, ucpu


def script_calls(redis):
    """The script calls Redis has answered (FCALL of the limit library,
    EVALSHA and EVAL), and the µs Redis spent inside them (INFO
    commandstats)."""
    client = redis.client()
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    calls = [stats.get("cmdstat_" + c, {}) for c in ("fcall", "evalsha", "eval")]
    return (sum(c.get("calls", 0) for c in calls),
            sum(c.get("usec", 0) for c in calls))


def rounds(wrk, plain, case, conns, runs, seconds, ceiling=None):
    """Alternating rounds: a summary of the case against the baseline,
    which gets the same request (the token too: parsing and forwarding it
    is nginx's work either way). With a ceiling (the measured RS256
    ceiling's nginx), each round runs it too, before or after the case in
    turn, and the summary has its ratio to plain and the case's to it."""
    plain.run(wrk, 1, conns, case.headers)
    case.run(wrk, 1, conns)
    pairs, ceil = [], []
    for i in range(runs):
        p = plain.run(wrk, seconds, conns, case.headers)
        if ceiling is not None and i % 2 == 0:
            ceil.append(ceiling.run(wrk, seconds, conns, case.headers))
        c = case.run(wrk, seconds, conns)
        if ceiling is not None and i % 2 == 1:
            ceil.append(ceiling.run(wrk, seconds, conns, case.headers))
        pairs.append((p, c))
    ratios = [c[0] / p[0] for p, c in pairs]
    med = statistics.median
    s = {
        "conns": conns,
        "plain_rps": med(p[0] for p, _ in pairs),
        "rps": med(c[0] for _, c in pairs),
        "ratio": med(ratios), "rmin": min(ratios), "rmax": max(ratios),
        "min": min(c[0] for _, c in pairs),
        "max": max(c[0] for _, c in pairs),
        "p50": None,
        "p99": med(c[1] for _, c in pairs),
        "plain_cpu": med(p[2] for p, _ in pairs),
        "cpu": med(c[2] for _, c in pairs),
        "redis_cpu": (med(c[3] for _, c in pairs)
                      if case.redis else None),
        "per_call": (med(c[4] for _, c in pairs)
                     if case.redis and pairs[0][1][4] is not None
                     else None),
        "script_us": (med(c[5] for _, c in pairs)
                      if case.redis and pairs[0][1][5] is not None
                      else None),
        "upstream_cpu": (med(p[6] for p, _ in pairs)
                         if plain.upstream else 0.0),
    }
    s["module_us"] = s["cpu"] - s["plain_cpu"]
    if ceil:
        of_plain = [k[0] / p[0] for k, (p, _) in zip(ceil, pairs)]
        of_ceil = [c[0] / k[0] for k, (_, c) in zip(ceil, pairs)]
        s["ceil"] = {"rps": med(k[0] for k in ceil),
                     "ratio": med(of_plain),
                     "cpu": med(k[2] for k in ceil),
                     "case": med(of_ceil), "cmin": min(of_ceil),
                     "cmax": max(of_ceil)}
    return s


PACED = stack.BUILD / "paced"
PACED_CONNECTIONS = 32
# the cases whose latency below saturation is measured too
PACED_CASES = ("HS256 + RBAC + headers, cache on",
               "RS256 + RBAC + headers, cache on",
               "RS256 + RBAC + 1 Redis limit + headers, cache on")


def paced(taskset, url, headers, rate, seconds):
    """(p50 ms, p99 ms) of GET url at `rate` requests/s over
    PACED_CONNECTIONS connections for `seconds`, each from its scheduled
    send time."""
    u = urlsplit(url)
    cmd = taskset + [str(PACED), "-c", str(PACED_CONNECTIONS)]
    for name, value in headers.items():
        cmd += ["-H", "%s: %s" % (name, value)]
    cmd += [str(u.port), u.path or "/", "%.0f" % rate, str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError("paced %s: %s" % (url, out.stderr.strip()))
    lat = sorted(int(line.split()[1]) / 1e6
                 for line in out.stdout.splitlines())
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def paced_line(taskset, plain, case, rate, runs, seconds, ceiling=None):
    """The paced row: `runs` rounds of plain and the case at the same
    rate, the order flipped each round (one stall of the shared VM moves
    a single run's p99 by milliseconds); the medians of the rounds' p50
    and p99, and the added p99 as the median of the rounds' differences
    with their spread. With a ceiling (the limit rows' measured ceiling
    gateway), each round runs it too at the same rate: a row paced beyond
    what the ceiling serves queues there as well."""
    base, got, ceil = [], [], []
    for i in range(runs):
        sides = [(base, plain.url), (got, case.url)]
        if ceiling is not None:
            sides.append((ceil, ceiling.url))
        for out, url in sides if i % 2 == 0 else sides[::-1]:
            out.append(paced(taskset, url, case.headers, rate, seconds))
    med = statistics.median
    added = [g[1] - b[1] for b, g in zip(base, got)]
    measured = "-"
    if ceil:
        over = [k[1] - b[1] for b, k in zip(base, ceil)]
        measured = "%.2f / %.2f, %.2f (%.2f to %.2f)" % (
            med(k[0] for k in ceil), med(k[1] for k in ceil), med(over),
            min(over), max(over))
    return ("| %s | %.0f | %.2f / %.2f | %.2f / %.2f | %.2f (%.2f to %.2f) "
            "| %s | <= 1 ms |" % (case.name, rate, med(b[0] for b in base),
                                  med(b[1] for b in base),
                                  med(g[0] for g in got),
                                  med(g[1] for g in got), med(added),
                                  min(added), max(added), measured))


PACED_HEADER = [
    "| case (paced, %d connections) | rate req/s (70%% of plain's "
    "saturation) | plain p50 / p99 ms | case p50 / p99 ms | added p99 ms: "
    "median of the rounds (spread) | the measured ceiling: p50 / p99 ms, "
    "added p99 ms "
    "| target |" % PACED_CONNECTIONS,
    "|---|---|---|---|---|---|---|",
]


HEADER = [
    "| case | conns | plain req/s | req/s | vs plain: median (spread) "
    "| p99 ms | worker CPU µs/req (plain) | module µs/req "
    "| Redis CPU µs/req | requests per script call | target |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]


def line(case, s, target):
    return ("| %s | %d | %.0f | %.0f | %.2f (%.2f-%.2f) | %.2f | %.2f (%.2f) "
            "| %.2f | %s | %s | %s |" % (
                case, s["conns"], s["plain_rps"], s["rps"], s["ratio"],
                s["rmin"], s["rmax"], s["p99"], s["cpu"], s["plain_cpu"],
                s["module_us"],
                "-" if s["redis_cpu"] is None else "%.2f" % s["redis_cpu"],
                "-" if s["per_call"] is None else "%.1f" % s["per_call"],
                target))


CEILING_HEADER = [
    "| limit row (same run) | conns | Redis CPU µs per script call "
    "| of it inside the script | outside it (I/O, event loop) "
    "| requests per call | upstream CPU µs/req | ratio by CPU (measured) "
    "| ceiling: script free | ceiling: Redis free |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def ceiling_line(case, s):
    """What stops a limit row, from its own figures: Redis's CPU per
    script call, split into the script's time (INFO commandstats) and
    the rest, which a call costs however little the script does. With
    every server on one CPU a request of plain costs that CPU its nginx
    worker's and its upstream's time, and one of the row the module's
    and Redis's on top: the ratio by CPU, (plain + upstream) / (plain +
    upstream + module + Redis), beside the measured one, then the same
    were the script free (Redis outside it only) and were Redis free
    (the module's own share alone)."""
    per_call = s["redis_cpu"] * s["per_call"]
    outside = max(0.0, per_call - s["script_us"])
    base = s["plain_cpu"] + s["upstream_cpu"]
    return ("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f (%.2f) "
            "| %.2f | %.2f |" % (
                case, s["conns"], per_call, s["script_us"], outside,
                s["per_call"], s["upstream_cpu"],
                base / (base + s["module_us"] + s["redis_cpu"]), s["ratio"],
                base / (base + s["module_us"] + outside / s["per_call"]),
                base / (base + s["module_us"])))


def run(wrk, runs, seconds, workers, upstream, redis, taskset, keys,
        tokens, client_taskset=(), only=None, modes=(True, False),
        module=None, upstream_master=None):
    """Measures every gateway row (keys and tokens from make_keys());
    returns the table's lines and a dict: the old row names (cache off/on)
    -> {"rps", ...} at 8 connections, for the `auth_request`
    comparison."""
    verify_us = rsa_verify_us(taskset)
    base = stack.NginxConf(PLAIN_CONF, "bench-plain", workers=workers,
                           upstream=upstream).start()
    measured = measured_case = None
    try:
        lines, results, ceiling, paced_lines = [], {}, None, []
        ceilings, measured_lines, limit_lines = [], [], []
        plain = Case("plain", "http://127.0.0.1:%d/" % base.port, {},
                     base.proc.pid, upstream=upstream_master)
        if False in modes and (not only or re.search(
                only, "RS256 + RBAC + headers, cache off")):
            measured = start_ceiling(workers, upstream, keys,
                                     tokens["rs256"])
            measured_case = Case("measured ceiling",
                                 "http://127.0.0.1:%d/" % measured.port, {},
                                 measured.proc.pid, upstream=upstream_master)
        for cached in modes:
            ceiling = run_gateway(wrk, runs, seconds, workers, upstream,
                                  redis, keys, tokens, plain, cached,
                                  verify_us, lines, results, paced_lines,
                                  list(client_taskset), only,
                                  module, ceilings, measured_case,
                                  measured_lines, limit_lines) or ceiling
    finally:
        for svc in (measured, base):
            if svc is not None:
                svc.destroy()
    lines.append("")
    lines.append("RSA-2048 verification (`openssl speed`, same run, servers' "
                 "CPU): %.1f µs; RS256 uncached ceiling: t_plain / (t_plain "
                 "+ %.1f µs)%s." % (
                     verify_us, verify_us,
                     "" if ceiling is None else
                     " = %.2f at 8 connections" % ceiling))
    if measured_lines:
        lines += [""] + MEASURED_HEADER + measured_lines
    if ceilings:
        lines += [""] + CEILING_HEADER + ceilings
    if limit_lines:
        lines += [""] + LIMIT_HEADER + limit_lines
    return HEADER + lines + [""] + PACED_HEADER + paced_lines, results


def start_ceiling(workers, upstream, keys, token):
    """The measured RS256 ceiling's nginx (see CEILING_CONF), checked to
    verify: the token passes, the same token with another signature gets
    401, so the ceiling cannot be a proxy that skipped the work."""
    import urllib.error
    import urllib.request
    if not CEILING_MODULE.exists():
        raise RuntimeError("%s is missing: make %s" % (
            CEILING_MODULE, CEILING_MODULE.relative_to(stack.REPO)))
    ngx = stack.NginxConf(CEILING_CONF, "bench-rsa-ceiling",
                          workers=workers, upstream=upstream,
                          rs_key=keys["rs256"]).start()
    head, _, sig = token.rpartition(".")
    forged = head + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    for tok, want in ((token, 200), (forged, 401)):
        req = urllib.request.Request(
            "http://127.0.0.1:%d/" % ngx.port,
            headers={"Authorization": "Bearer " + tok})
        try:
            got = urllib.request.urlopen(req, timeout=5).status
        except urllib.error.HTTPError as e:
            got = e.code
        if got != want:
            ngx.destroy()
            raise RuntimeError("the RS256 ceiling's nginx answered %d, not "
                               "%d" % (got, want))
    return ngx


MEASURED_HEADER = [
    "| RS256 + RBAC + headers, cache off, vs the measured ceiling (nginx "
    "+ one bare RSA-2048 verification) | conns | plain req/s | ceiling "
    "req/s | ceiling vs plain | case vs ceiling: median (spread) | nginx "
    "CPU µs/req: ceiling / case | the module's work beyond the "
    "verification, µs/req | target |",
    "|---|---|---|---|---|---|---|---|---|",
]


def measured_line(case, s):
    k = s["ceil"]
    return ("| %s | %d | %.0f | %.0f | %.2f | %.2f (%.2f-%.2f) | %.2f / %.2f "
            "| %.2f | >= 0.90 |" % (
                case, s["conns"], s["plain_rps"], k["rps"], k["ratio"],
                k["case"], k["cmin"], k["cmax"], k["cpu"], s["cpu"],
                s["cpu"] - k["cpu"]))


def start_limit_ceiling(workers, upstream, keys, redis, token):
    """The measured limit ceiling's gateway (LIMIT_CEILING_MODULE), checked
    to do the work: a request is decided from the state its call wrote
    (X-RateLimit-Remaining), and the limit's key is in Redis."""
    import urllib.request
    if not LIMIT_CEILING_MODULE.exists():
        raise RuntimeError("%s is missing: make %s" % (
            LIMIT_CEILING_MODULE,
            LIMIT_CEILING_MODULE.relative_to(stack.REPO)))
    ngx = start(workers, upstream, keys, True, redis.unix_addr,
                LIMIT_CEILING_MODULE)
    client = redis.client()
    try:
        client.delete("omni:rl:l1:bench-user")
        req = urllib.request.Request(
            "http://127.0.0.1:%d/limit1" % ngx.port,
            headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=5) as r:
            remaining = r.headers.get("X-RateLimit-Remaining")
        if remaining != "1000" or not client.exists("omni:rl:l1:bench-user"):
            raise RuntimeError("the limit ceiling's gateway did not decide "
                               "from Redis (remaining %r)" % remaining)
    except BaseException:
        ngx.destroy()
        raise
    finally:
        client.close()
    return ngx


LIMIT_HEADER = [
    "| limit row, cache on, vs the measured ceiling (the module with a "
    "script doing only the Redis commands a decision needs) | conns "
    "| plain req/s | ceiling req/s | ceiling vs plain | case vs ceiling: "
    "median (spread) | nginx CPU µs/req: ceiling / case |",
    "|---|---|---|---|---|---|---|",
]


def limit_line(case, s):
    k = s["ceil"]
    return ("| %s | %d | %.0f | %.0f | %.2f | %.2f (%.2f-%.2f) | %.2f / %.2f "
            "|" % (case, s["conns"], s["plain_rps"], k["rps"], k["ratio"],
                   k["case"], k["cmin"], k["cmax"], k["cpu"], s["cpu"]))


def run_gateway(wrk, runs, seconds, workers, upstream, redis, keys, tokens,
                plain, cached, verify_us, lines, results, paced_lines,
                client_taskset, only=None, module=None, ceilings=None,
                measured=None, measured_lines=None, limit_lines=None):
    """One gateway nginx's cases (those whose name matches the regular
    expression only, when given); returns the RSA ceiling when
    measured."""
    ceiling = None
    # Redis on the servers' host, reached as such a deployment would: its
    # unix socket (as plain nginx reaches its upstream); over TCP loopback
    # the limit rows measured 0.59-0.82 where this gives 0.66-0.87
    gw = start(workers, upstream, keys, cached, redis.unix_addr, module)
    limit_gw = None
    try:
        url = "http://127.0.0.1:%d/" % gw.port
        mode = "cache on" if cached else "cache off"
        cases = []
        for name in ALGS:
            target = (">= 0.90, <= 1.5 µs" if cached
                      else ">= 0.90 x ceiling" if name == "rs256"
                      else "")
            cases.append(Case(
                "%s + RBAC + headers, %s" % (ALGS[name][0], mode),
                url + name, {"Authorization": "Bearer " + tokens[name]},
                gw.proc.pid, target))
        if cached:
            # the tokens Omni issues carry a jti: with no limit, the
            # revocation check is the request's one Redis command (EXISTS)
            cases.append(Case(
                "RS256 + RBAC + revocation check (jti) + headers, %s" % mode,
                url + "rs256", {"Authorization": "Bearer " + tokens["jti"]},
                gw.proc.pid, "", redis=redis))
        for n, target in ((1, ">= 0.75"), (3, ">= 0.70")):
            cases.append(Case(
                "RS256 + RBAC + %d Redis limit%s + headers, %s"
                % (n, "s" if n > 1 else "", mode),
                url + "limit%d" % n,
                {"Authorization": "Bearer " + tokens["jti"]},
                gw.proc.pid, target if cached else "",
                redis=redis))
        for case in cases:
            if only and not re.search(only, case.name):
                continue
            limit_ceiling = None
            if cached and "Redis limit" in case.name:
                if limit_gw is None:
                    limit_gw = start_limit_ceiling(workers, upstream, keys,
                                                   redis, tokens["jti"])
                limit_ceiling = Case(
                    "limit ceiling", "http://127.0.0.1:%d/%s" % (
                        limit_gw.port, case.url.rsplit("/", 1)[1]),
                    case.headers, limit_gw.proc.pid, redis=redis)
            for conns in CONNECTIONS:
                rsa = case.name.startswith("RS256 + RBAC + headers, "
                                           "cache off")
                s = rounds(wrk, plain, case, conns, runs, seconds,
                           measured if rsa else limit_ceiling)
                target = case.target
                if rsa:
                    t_plain = 1e6 / s["plain_rps"]
                    ceiling = t_plain / (t_plain + verify_us)
                    target = ("%s = %.2f (`openssl speed` ceiling %.2f)"
                              % (target, 0.9 * ceiling, ceiling))
                    if "ceil" in s:
                        target += ("; measured ceiling %.2f, the case at "
                                   "%.2f of it" % (s["ceil"]["ratio"],
                                                   s["ceil"]["case"]))
                        measured_lines.append(measured_line(case.name, s))
                if limit_ceiling is not None:
                    target += ("; measured ceiling %.2f, the case at %.2f "
                               "of it" % (s["ceil"]["ratio"],
                                          s["ceil"]["case"]))
                    limit_lines.append(limit_line(case.name, s))
                lines.append(line(case.name, s, target))
                if s["per_call"] is not None and ceilings is not None:
                    ceilings.append(ceiling_line(case.name, s))
                if conns == 8:
                    results[case.name.replace(" + RBAC + headers",
                                              " + headers")] = s
                if conns == PACED_CONNECTIONS and case.name in PACED_CASES:
                    paced_lines.append(paced_line(
                        client_taskset, plain, case, 0.7 * s["plain_rps"],
                        runs, seconds, limit_ceiling))
    finally:
        gw.destroy()
        if limit_gw is not None:
            limit_gw.destroy()
    return ceiling


def main():
    import argparse
    import os

    sys.path.insert(0, str(HERE))
    import bench

    ap = argparse.ArgumentParser(description="some gateway rows alone")
    ap.add_argument("--cases", help="regular expression on the row names")
    ap.add_argument("--cache", choices=("on", "off"),
                    help="only the gateway with (on) or without the cache")
    ap.add_argument("--module", help="the module .so to load instead")
    ap.add_argument("--conns", type=int, action="append",
                    help="connection counts (default: 32 and 8)")
    args = ap.parse_args()
    global CONNECTIONS
    CONNECTIONS = tuple(args.conns or CONNECTIONS)

    if bench.CLIENT_CPUS is not None:
        os.sched_setaffinity(0, bench.SERVER_CPUS)
    taskset = (["taskset", "-c", ",".join(map(str, bench.SERVER_CPUS))]
               if bench.CLIENT_CPUS is not None else [])
    modes = {None: (True, False), "on": (True,), "off": (False,)}
    redis = stack.Redis().start()
    base = None
    keydir = stack.make_tmpdir("omni-bench-keys-")
    try:
        base = stack.NginxConf(bench.BASELINE_CONF, "bench-nginx",
                               workers=bench.WORKERS,
                               proxy_port=stack.free_port()).start()
        keys, tokens = make_keys(keydir)
        print(bench.gateway_method())
        lines, _ = run(bench.wrk, bench.RUNS, bench.SECONDS, bench.WORKERS,
                       base.prefix / "trivial.sock", redis, taskset, keys,
                       tokens, bench.client([]), args.cases,
                       modes[args.cache], args.module, base.proc.pid)
        print("\n".join(lines))
    finally:
        for svc in (base, redis):
            if svc is not None:
                svc.destroy()


if __name__ == "__main__":
    main()
