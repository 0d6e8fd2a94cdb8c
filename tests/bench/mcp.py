"""Bench rows for /mcp (SPEC section 9): `tools/call` of server-everything's
`echo` through the product (nginx + module + omni-worker, a bearer token,
an Omni session) vs the same call sent to server-everything directly (its
own session), at 1, 8 and 32 connections; the rows give both and the
latency Omni adds (p50, p99). wrk sends the JSON-RPC POST (a Lua script).

Method (ab()): after one warm-up of each, BENCH_MCP_ROUNDS (5) rounds of
BENCH_MCP_SECONDS (4) s alternate direct and through Omni (the order flips
each round, so drift on the shared machine falls on both); req/s is the
median with the spread, p50/p99 the medians of the rounds' wrk
percentiles, the added figures the differences of those medians. Beside
them, CPU µs per call of each server process group from
/proc/PID/schedstat divided by the calls wrk counted (the house method of
gateway.py): the upstream (node), nginx, omni-worker, Postgres, Redis.

Where the upstream runs: Omni's servers (nginx, omni-worker, Postgres,
Redis) are pinned to the servers' CPUs, and the outside world (wrk and
the MCP upstream) to the client CPUs (BENCH_MCP_UPSTREAM=client, the
default). An MCP server runs on another host in a deployment; on the
servers' core it would compete with Omni for the CPU in the Omni rounds
only (the direct rounds have the core to themselves), so the "added"
figures would measure the colocation, not Omni. BENCH_MCP_UPSTREAM=servers
puts it back on the servers' CPUs to show that case.

Those rows are closed loop: each wrk connection sends its next call when
the last answer is in. At 8 and 32 connections server-everything (one
Node process, ~400 µs of CPU a call) is saturated, and the rows measure
the queue at the upstream, whose shape differs between wrk's connections
and the worker's, more than Omni (the added p50 at 8 connections swung
from +0.35 to +4.9 ms between runs). The paced rows (paced_rows()) are
open loop: for BENCH_MCP_PACED_CONNECTIONS (8,32) connections, the
direct closed-loop saturation is measured first (wrk, median of 3 runs),
then at BENCH_MCP_PACED_LOADS (0.5,0.7) of it build/paced
(tests/bench/paced.c) calls at that fixed rate, one call in flight per
connection, each call's latency counted from when it was due;
BENCH_MCP_PACED_ROUNDS (BENCH_MCP_ROUNDS) rounds of BENCH_MCP_SECONDS
rotate the order of direct, `/mcp` and the REST route. Any answer that
is not a 200 carrying the echo without "error" fails the run.

The last rows compare 2 worker processes with 1 on the same load (/mcp,
32 connections, each wrk connection one request stream over the shared
Omni session: no stickiness). This machine has no core to give each
process, so each worker process gets the same CPU budget of its own, a
cgroup quota (BENCH_MCP_SCALE_QUOTA of one CPU, 0.05 by default): one
process is then the bottleneck, and the ratio shows whether a second adds
its budget's worth of calls or something shared (the session store,
Redis, a lock) holds it back."""

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

import stack  # noqa: E402
from mcp_support import Upstream  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_MCP_ROUNDS", "5"))
ROUND_SECONDS = int(os.environ.get("BENCH_MCP_SECONDS", "4"))
CONCURRENCY = [int(c) for c in
               os.environ.get("BENCH_MCP_CONNECTIONS", "1,8,32").split(",")]
UPSTREAM_PLACE = os.environ.get("BENCH_MCP_UPSTREAM", "client")
SCALE_QUOTA = float(os.environ.get("BENCH_MCP_SCALE_QUOTA", "0.05"))
PACED_CONNECTIONS = [int(c) for c in os.environ.get(
    "BENCH_MCP_PACED_CONNECTIONS", "8,32").split(",") if c]
PACED_LOADS = [float(x) for x in os.environ.get(
    "BENCH_MCP_PACED_LOADS", "0.5,0.7").split(",") if x]
PACED_ROUNDS = int(os.environ.get("BENCH_MCP_PACED_ROUNDS", str(ROUNDS)))
PACED = stack.BUILD / "paced"
# what a good answer carries (paced -k): the echo's text
MARKER = "Echo: bench"
# set by bench.py: the load generator's CPUs (None when nothing is pinned)
UPSTREAM_CPUS = None

CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "bench"}}}
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "1"}}}


def _post(url, body, headers):
    import urllib.request
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers.get("Mcp-Session-Id"), r.read()


def session(url, headers):
    """An initialized legacy session at url: the headers a call needs."""
    h = dict(headers, **{"Content-Type": "application/json",
                         "Accept": "application/json, text/event-stream"})
    sid, _ = _post(url, INIT, h)
    h["Mcp-Session-Id"] = sid
    h["MCP-Protocol-Version"] = "2025-11-25"
    _post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, h)
    return h


def check(url, headers, body):
    """One call before the load: it must answer 200 with the echo."""
    _, text = _post(url, body, headers)
    if b"bench" not in text or b'"error"' in text:
        raise RuntimeError("tools/call at %s: %s" % (url, text[:500]))


def _script(tmp, name, headers, body):
    """A wrk script POSTing body; any answer that is not a 200 carrying
    the echo is counted and shown (wrk's own count misses JSON-RPC errors
    in a 200)."""
    script = Path(tmp) / ("%s.lua" % name)
    script.write_text(
        'wrk.method = "POST"\nwrk.body = %s\n' % json.dumps(json.dumps(body))
        + "".join('wrk.headers[%s] = %s\n' % (json.dumps(k), json.dumps(v))
                  for k, v in headers.items())
        + 'local bad = 0\n'
        'function response(status, headers, body)\n'
        '  if status ~= 200 or not string.find(body, "bench", 1, true)\n'
        '     or string.find(body, "\\"error\\"", 1, true) then\n'
        '    bad = bad + 1\n'
        '    if bad == 1 then io.stderr:write(status .. " " .. body .. "\\n")'
        ' end\n'
        '  end\nend\n'
        'function done(summary, latency, requests)\n'
        '  io.stderr:write("bad " .. bad .. "\\n")\nend\n')
    return str(script)


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def wrk(client, threads, seconds, conns, url, script):
    """(req/s, p50 ms, p99 ms, calls)"""
    r = subprocess.run(
        client(["wrk", "-t", str(min(threads, conns)), "-c", str(conns),
                "-d", "%ds" % seconds, "--timeout", "10s", "--latency", "-s",
                script, url]),
        capture_output=True, text=True, check=True)
    out = r.stdout
    bad = re.search(r"^bad (\d+)", r.stderr, re.M)
    if (re.search(r"Non-2xx or 3xx responses|Socket errors", out)
            or bad is None or int(bad.group(1))):
        raise RuntimeError("wrk saw failures on %s:\n%s\n%s"
                           % (url, out, r.stderr[-2000:]))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    calls = int(re.search(r"(\d+) requests in", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    return rps, _ms(lat["50"]), _ms(lat["99"]), calls


def outside(upstream):
    """The upstream's threads onto the client CPUs (see the module
    docstring); threads it starts later inherit them."""
    if UPSTREAM_CPUS is None or UPSTREAM_PLACE != "client":
        return
    for pid in stack.group_members(upstream.proc.pid):
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                os.sched_setaffinity(int(tid), UPSTREAM_CPUS)
            except OSError:
                pass


def placement():
    """The upstream's placement, for the notes."""
    if UPSTREAM_CPUS is None or UPSTREAM_PLACE != "client":
        return "the upstream runs on the servers' CPUs"
    return ("the upstream runs on the client CPUs (%s) beside wrk"
            % ",".join(map(str, sorted(UPSTREAM_CPUS))))


def groups(upstream, product=None, pg=None, redis=None):
    """Process groups (each server runs in its own session) to account
    CPU to: name -> pgid."""
    g = {"upstream": upstream.proc.pid}
    if product is not None:
        g["nginx"] = product.nginx.proc.pid
        g["worker"] = product.worker.proc.pid
        pg = pg or product.worker.pg
        redis = redis or product.worker.redis
    if pg is not None and pg.proc is not None:
        g["postgres"] = pg.proc.pid
    if redis is not None and redis.proc is not None:
        g["redis"] = redis.proc.pid
    return g


def cpu_ns(pgid):
    """On-CPU time of the process group's live members (and the leader's
    children: Postgres backends leave the postmaster's group), ns."""
    total = 0
    for pid in set(stack.group_members(pgid) + stack.children_of(pgid)):
        try:
            with open("/proc/%d/schedstat" % pid) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def _round(client, threads, conns, target, pgids):
    url, script = target
    before = {k: cpu_ns(p) for k, p in pgids.items()}
    rps, p50, p99, calls = wrk(client, threads, ROUND_SECONDS, conns, url,
                               script)
    cpu = {k: (cpu_ns(p) - before[k]) / 1000.0 / max(calls, 1)
           for k, p in pgids.items()}
    return rps, p50, p99, cpu


def _summary(samples):
    rps = [s[0] for s in samples]
    return {"rps": statistics.median(rps), "min": min(rps), "max": max(rps),
            "p50": statistics.median(s[1] for s in samples),
            "p99": statistics.median(s[2] for s in samples),
            "p50s": [s[1] for s in samples],
            "cpu": {k: statistics.median(s[3][k] for s in samples)
                    for k in samples[0][3]}}


def ab(client, threads, conns, direct, via, pgids):
    """Alternating rounds of direct and via (each (url, script)): their
    summaries."""
    for target in (direct, via):
        wrk(client, threads, 2, conns, target[0], target[1])
    got = {"direct": [], "via": []}
    for i in range(ROUNDS):
        order = (("direct", direct), ("via", via))
        for label, target in order if i % 2 == 0 else order[::-1]:
            got[label].append(_round(client, threads, conns, target, pgids))
    return _summary(got["direct"]), _summary(got["via"])


def cpu_text(s):
    return ", ".join("%s %.0f" % (k, v) for k, v in s["cpu"].items())


def mean_ms(conns, s):
    """A closed loop's mean latency: every connection always has one call
    out, so by Little's law it is connections / calls per second. Where
    the upstream is saturated its rate alone sets this; the p50 also
    moves with how unevenly the upstream serves the connections."""
    return conns / s["rps"] * 1000.0


def rows(row, label, conns, base, via):
    added = ("added p50 %.2f ms, p99 %.2f ms, mean %.2f ms (%.2f vs %.2f); "
             "CPU µs/call %s" % (
                 via["p50"] - base["p50"], via["p99"] - base["p99"],
                 mean_ms(conns, via) - mean_ms(conns, base),
                 mean_ms(conns, via), mean_ms(conns, base), cpu_text(via)))
    return [
        row("MCP `tools/call` echo, closed loop (wrk), server-everything "
            "directly, %d conn (baseline; CPU µs/call %s)"
            % (conns, cpu_text(base)), base),
        row("  the same through %s, %d conn (%s)" % (label, conns, added),
            via, base, "added p50 <= 1 ms, p99 <= 3 ms"),
    ]


def paced(client, conns, side, rate, seconds, pgids):
    """(achieved calls/s, p50 ms, p99 ms, CPU µs/call) of side (name, url,
    headers, body file) called at `rate` calls/s, open loop, over `conns`
    connections for `seconds` by build/paced (tests/bench/paced.c); each
    call's latency counts from when it was due. Any answer that is not a
    200 carrying the echo (MARKER) without "error" fails the run."""
    _, url, headers, body = side
    u = urlsplit(url)
    cmd = [str(PACED), "-c", str(conns), "-m", "POST", "-D", body,
           "-k", MARKER]
    for name, value in headers.items():
        cmd += ["-H", "%s: %s" % (name, value)]
    cmd += [str(u.port), u.path, "%.0f" % rate, str(seconds)]
    before = {k: cpu_ns(p) for k, p in pgids.items()}
    out = subprocess.run(client(cmd), capture_output=True, text=True,
                         timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError("paced %s at %.0f/s over %d conn failed:\n%s"
                           % (url, rate, conns, out.stderr.strip()[-2000:]))
    calls = [tuple(int(v) for v in line.split())
             for line in out.stdout.splitlines()]
    cpu = {k: (cpu_ns(p) - before[k]) / 1000.0 / max(len(calls), 1)
           for k, p in pgids.items()}
    lat = sorted(took / 1e6 for _, took in calls)
    span = max(due + took for due, took in calls) - calls[0][0]
    return (len(calls) / (span / 1e9), lat[len(lat) // 2],
            lat[min(len(lat) - 1, int(len(lat) * 0.99))], cpu)


def saturation(client, threads, conns, direct):
    """The upstream's closed-loop rate, called directly by wrk over
    `conns` connections: the median of 3 runs after a warm-up."""
    wrk(client, threads, 2, conns, direct[0], direct[1])
    return statistics.median(
        wrk(client, threads, ROUND_SECONDS, conns, direct[0], direct[1])[0]
        for _ in range(3))


def paced_rows(row, client, threads, direct, sides, pgids):
    """Per connection count in PACED_CONNECTIONS: the direct closed-loop
    saturation (wrk on `direct`, (url, script)), then at each fraction of
    it in PACED_LOADS, PACED_ROUNDS rounds of paced calls of every side
    (sides[0] the baseline, called directly), the order rotated each
    round; p50/p99 the medians of the rounds', "added" their differences
    to the baseline's."""
    lines = []
    for conns in PACED_CONNECTIONS:
        print("bench: mcp paced c=%d: direct saturation (load %s)"
              % (conns, load_avg()), file=sys.stderr, flush=True)
        sat = saturation(client, threads, conns, direct)
        for load in PACED_LOADS:
            rate = load * sat
            print("bench: mcp paced c=%d at %.0f/s (load %s)"
                  % (conns, rate, load_avg()), file=sys.stderr, flush=True)
            for side in sides:
                paced(client, conns, side, rate, 2, pgids)
            got = {side[0]: [] for side in sides}
            for i in range(PACED_ROUNDS):
                k = i % len(sides)
                for side in sides[k:] + sides[:k]:
                    got[side[0]].append(paced(client, conns, side, rate,
                                              ROUND_SECONDS, pgids))
            base = _summary(got[sides[0][0]])
            lines.append(row(
                "MCP `tools/call` echo, paced (open loop, latency from each "
                "call's due time) at %.0f%% of the direct closed-loop "
                "saturation (%.0f calls/s) = %.0f calls/s, %d conn, "
                "server-everything directly (baseline; CPU µs/call %s)%s"
                % (100 * load, sat, rate, conns, cpu_text(base),
                   short(base, rate)), base))
            for name, _, _, _ in sides[1:]:
                s = _summary(got[name])
                lines.append(row(
                    "  the same paced through %s, %.0f calls/s, %d conn "
                    "(added p50 %.2f ms, p99 %.2f ms; CPU µs/call %s)%s"
                    % (name, rate, conns, s["p50"] - base["p50"],
                       s["p99"] - base["p99"], cpu_text(s),
                       short(s, rate)),
                    s, base, "added p50 <= 1 ms, p99 <= 3 ms"))
    return lines


def short(s, rate):
    """A warning for the row name when the median round fell short of
    the rate: the calls queued (the machine had less capacity than the
    saturation measured), and the latencies are that queue's."""
    if s["rps"] >= 0.95 * rate:
        return ""
    return (" **RATE NOT REACHED** (%.0f of %.0f calls/s: the calls "
            "queued, the latencies are that queue's, not comparable)"
            % (s["rps"], rate))


def note():
    """What the MCP rows' method is, for under the table."""
    return ("MCP rows: after a 2 s warm-up of each side, %d alternating "
            "rounds of %d s (direct and through Omni, the order flipped "
            "each round); req/s the median (spread), p50/p99 the medians "
            "of the rounds' wrk percentiles; CPU µs/call per server "
            "process group from /proc/PID/schedstat over the calls wrk "
            "counted, the median of the rounds; %s. Closed loop (wrk): "
            "each connection sends its next call when the last answer is "
            "in; at 8 and 32 connections server-everything (one Node "
            "process) is saturated, so those rows measure the queue at "
            "the upstream, whose shape differs between wrk's connections "
            "and the worker's, more than Omni. Paced (open loop, "
            "build/paced): the calls are due at a fixed rate, %s of the "
            "direct closed-loop saturation measured just before (wrk, "
            "median of 3 runs), one in flight per connection, each "
            "call's latency from its due time (a stall counts in every "
            "call it delays); %d rounds of %d s rotate the order of "
            "direct, `/mcp` and the REST route after a 2 s warm-up of "
            "each; req/s the achieved rate (spread), p50/p99 the medians "
            "of the rounds' (a side whose median round fell 5%% short of "
            "the rate says RATE NOT REACHED: its calls queued), an answer "
            "that is not a 200 carrying the echo without \"error\" fails "
            "the run. The 1 vs 2 process "
            "rows give each worker process a CPU quota of its own (%s). "
            "Load average at the end: %s."
            % (ROUNDS, ROUND_SECONDS, placement(),
               " and ".join("%.0f%%" % (100 * x) for x in PACED_LOADS),
               PACED_ROUNDS, ROUND_SECONDS, quota_text(), load_avg()))


def load_avg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def register(nginx, upstream, name="bench"):
    admin = dict(nginx.bearer(role="admin", lifetime=3600),
                 **{"Content-Type": "application/json"})
    _, body = _post(nginx.http_url("/api/v1/mcp/servers"),
                    {"name": name, "url": upstream.url, "timeout_ms": 10000},
                    admin)
    s = json.loads(body)
    _post(nginx.http_url("/api/v1/mcp/servers/%s/health" % s["id"]), {},
          admin)
    return name


def _processes(worker, n):
    """The worker restarted with n processes (the same socket, so nginx
    and the Omni sessions in Redis carry on)."""
    worker.stop()
    worker.workers = n
    worker.start()
    stack.wait_until(lambda: len(stack.children_of(worker.proc.pid)) == n,
                     10, "%d worker processes" % n)


class Quotas:
    """A cgroup of its own per process, capped at SCALE_QUOTA of one CPU
    (cgroup v1 `cpu.cfs_quota_us` or v2 `cpu.max`); removed by close()."""

    PERIOD_US = 20000  # the kernel's smallest quota is 1 ms: 5% needs 20 ms

    def __init__(self):
        self.dirs = []
        self.failed = None

    @staticmethod
    def root():
        v1 = Path("/sys/fs/cgroup/cpu")
        if (v1 / "cpu.cfs_quota_us").exists():
            return v1, 1
        v2 = Path("/sys/fs/cgroup")
        if "cpu" in (v2 / "cgroup.controllers").read_text().split():
            if "cpu" not in (v2 / "cgroup.subtree_control").read_text():
                (v2 / "cgroup.subtree_control").write_text("+cpu")
            return v2, 2
        raise OSError("no cgroup cpu controller")

    def give(self, pid):
        base, version = self.root()
        quota = int(SCALE_QUOTA * self.PERIOD_US)
        d = base / ("omni-bench-mcp-%d" % pid)
        d.mkdir(exist_ok=True)
        self.dirs.append(d)
        if version == 1:
            (d / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (d / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (d / "cpu.max").write_text("%d %d" % (quota, self.PERIOD_US))
        (d / "cgroup.procs").write_text(str(pid))

    def close(self):
        for d in self.dirs:
            try:
                for pid in (d / "cgroup.procs").read_text().split():
                    (d.parent / "cgroup.procs").write_text(pid)
                d.rmdir()
            except OSError:
                pass
        self.dirs = []


def quota_text():
    try:
        Quotas.root()
    except OSError:
        return "no cgroup CPU controller here: both setups share the " \
               "servers' CPUs, so the ratio cannot exceed 1"
    return "%.0f%% of one CPU each, cgroup `cpu` quota over %d ms" % (
        100 * SCALE_QUOTA, Quotas.PERIOD_US // 1000)


def scale_rows(row, client, threads, product, via, conns=32):
    """1 vs 2 worker processes on the same /mcp load (alternating rounds,
    the worker restarted between them, each process under its own CPU
    quota): the rate ratio and each setup's CPU per call."""
    w = product.worker
    first = w.workers
    got = {1: [], 2: []}
    quotas = Quotas()
    try:
        for i in range(max(2, ROUNDS // 2 + 1)):
            for n in (1, 2) if i % 2 == 0 else (2, 1):
                quotas.close()
                _processes(w, n)
                try:
                    for pid in stack.children_of(w.proc.pid):
                        quotas.give(pid)
                except OSError as e:
                    quotas.close()
                    quotas.failed = "no CPU quota (%s): both setups share " \
                        "the servers' CPUs, so the ratio cannot exceed 1" % e
                pgids = groups(via[2], product)
                check(via[0], via[3], via[4])
                wrk(client, threads, 1, conns, via[0], via[1])
                got[n].append(_round(client, threads, conns,
                                     (via[0], via[1]), pgids))
    finally:
        quotas.close()
        _processes(w, first)
    one, two = _summary(got[1]), _summary(got[2])
    return [
        row("MCP `tools/call` echo through `/mcp`, 1 worker process "
            "(CPU quota: %s), %d conn (CPU µs/call %s)"
            % (quotas.failed or quota_text(), conns, cpu_text(one)), one),
        row("  the same, 2 worker processes, each with that quota (no "
            "stickiness: one Omni session, any process; CPU µs/call %s)"
            % cpu_text(two), two, one, ">= 1.8x of 1 process", times=True),
    ]


TIMING_KEYS = {
    "mcp call timings": ("gen_us", "row_us", "sent_us", "replied_us",
                         "done_us"),
    "outbound timings": ("pretransfer_us", "first_byte_us", "total_us",
                         "done_us"),
}


def timings(worker):
    """The worker's timing debug lines (BENCH_MCP_TIMINGS=1 runs it at
    debug level), oldest first."""
    if os.environ.get("BENCH_MCP_TIMINGS") != "1":
        return []
    return [e for e in worker.log_lines() if e.get("msg") in TIMING_KEYS]


def show_timings(worker, seen, conns):
    """Where the worker's time went since the first `seen` lines: medians
    of µs since the request reached the worker ("mcp call timings") and
    of libcurl's clocks for the upstream request ("outbound timings")."""
    got = timings(worker)[seen:]
    for msg, keys in TIMING_KEYS.items():
        lines = [e for e in got if e["msg"] == msg]
        if lines:
            print("bench: mcp c=%d %s over %d, median µs: %s"
                  % (conns, msg, len(lines), ", ".join(
                      "%s %.0f" % (k, statistics.median(e[k] for e in lines))
                      for k in keys)), file=sys.stderr, flush=True)


def run(repeat, summary, row, client, threads, seconds, product):
    """Table lines: per concurrency, server-everything directly (baseline)
    and through /mcp, with the added p50/p99 and CPU per call."""
    tmp = stack.make_tmpdir("omni-bench-mcp-")
    up = Upstream("everything").start()
    outside(up)
    lines = []
    try:
        n = product.nginx
        name = register(n, up)
        direct_h = session(up.url, {})
        omni_url = n.http_url("/mcp")
        omni_h = session(omni_url, n.bearer(role="user", lifetime=3600))
        omni_call = dict(CALL, params={"name": name + "__echo",
                                       "arguments": {"message": "bench"}})
        check(up.url, direct_h, CALL)
        check(omni_url, omni_h, omni_call)
        direct = (up.url, _script(tmp, "direct", direct_h, CALL))
        via = (omni_url, _script(tmp, "mcp", omni_h, omni_call))
        pgids = groups(up, product)
        for conns in CONCURRENCY:
            print("bench: mcp /mcp c=%d (load %s)" % (conns, load_avg()),
                  file=sys.stderr, flush=True)
            seen = len(timings(product.worker))
            base, case = ab(client, threads, conns, direct, via, pgids)
            lines += rows(row, "nginx + module + worker `/mcp`", conns,
                          base, case)
            show_timings(product.worker, seen, conns)
        if PACED_CONNECTIONS and PACED_LOADS:
            subprocess.run(["make", "-s", "-C", str(stack.REPO),
                            "build/paced"], check=True)
            rest_url = n.http_url("/api/v1/mcp/tools/call")
            rest_h = dict(n.bearer(role="user", lifetime=3600),
                          **{"Content-Type": "application/json"})
            rest_call = {"server": name, "tool": "echo",
                         "arguments": {"message": "bench"}}
            check(rest_url, rest_h, rest_call)
            sides = [("server-everything directly", up.url, direct_h,
                      CALL),
                     ("nginx + module + worker `/mcp`", omni_url, omni_h,
                      omni_call),
                     ("nginx + worker (`POST /api/v1/mcp/tools/call`)",
                      rest_url, rest_h, rest_call)]
            for i, side in enumerate(sides):
                f = Path(tmp) / ("paced%d.json" % i)
                f.write_text(json.dumps(side[3]))
                sides[i] = side[:3] + (str(f),)
            lines += paced_rows(row, client, threads, direct, sides, pgids)
        if os.environ.get("BENCH_MCP_SCALE", "1") != "0":
            print("bench: mcp /mcp 1 vs 2 worker processes (load %s)"
                  % load_avg(), file=sys.stderr, flush=True)
            lines += scale_rows(row, client, threads, product,
                                (omni_url, via[1], up, omni_h, omni_call))
    finally:
        up.stop()
    return lines
