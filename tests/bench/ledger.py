"""Usage ledger (SPEC 9: 500 completions/s sustained on 2 cores with p99
unchanged; batched appends, no per-request counter updates).

Method. Non-streamed chat turns (POST /api/v1/conversations/{id}/messages,
through nginx + omni-worker with 2 worker processes) against the provider
double (tests/integration/fixtures/llm_double.py, behaviour "text": a whole
reply at once, with usage; TCP_NODELAY set, see DOUBLE_MAIN), sent open
loop at BENCH_LEDGER_RATE per second
for BENCH_LEDGER_SECONDS over keep-alive connections: request k is due at
start + k / rate and its latency counts from when it was due (a stall
shows in every request it delays). The turns are spread over
BENCH_LEDGER_CONVERSATIONS conversations. Two runs, alternated, on the
same stack:
  - without ledger writes: a BEFORE INSERT row trigger on
    omnichat.llm_usage discards every row and the rollup triggers
    (sql/013) are disabled, so each batch's INSERT statement still runs
    but writes nothing;
  - with them: every row stored, omnichat.usage_rollup kept by its
    statement triggers (one upsert per batch).
  - the same as the last at BENCH_LEDGER_LOW per second (default 100):
    the p99 that 500/s must not raise.
BENCH_LEDGER_ROUTE=gateway sends LLM gateway completions instead of chat
turns (POST /v1/chat/completions with an Omni API key, non-streamed, the
model named directly: one ledger row each, as a turn's).
Reported per run: the rate reached (completed turns / wall time), errors,
p50 and p99 latency, and for the ledger run the rows stored and the
batches they came in (pg_stat_user_tables: inserted rows vs INSERT
statements is not kept, so the batches are counted by the rollup
trigger's cache-generation bumps). The load generator is Python asyncio:
its own pauses show in both runs alike. On a shared machine the rate and
the tail say more about the neighbours than about Omni, so each run also
counts the servers' CPU time per turn (utime + stime of all their
processes and threads): Omni's (the worker, nginx, Postgres, Redis) and
the double's apart (a real provider runs elsewhere). 2 cores sustain 2 s
of CPU a second: 500 turns/s needs at most 4 ms a turn. Contention
inflates CPU time too (caches, the neighbours' work), so compare the
runs of one invocation. Run alone:
/usr/bin/python3 tests/bench/ledger.py"""

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import stack  # noqa: E402
from chat import _key_of_new_user  # noqa: E402

RATE = int(os.environ.get("BENCH_LEDGER_RATE", "500"))
SECONDS = int(os.environ.get("BENCH_LEDGER_SECONDS", "10"))
CONVERSATIONS = int(os.environ.get("BENCH_LEDGER_CONVERSATIONS", "200"))
CONNECTIONS = int(os.environ.get("BENCH_LEDGER_CONNECTIONS", "64"))
ROUNDS = int(os.environ.get("BENCH_LEDGER_ROUNDS", "2"))
LOW = int(os.environ.get("BENCH_LEDGER_LOW", "100"))
GATEWAY = os.environ.get("BENCH_LEDGER_ROUTE", "turn") == "gateway"
DOUBLE = HERE.parent / "integration" / "fixtures" / "llm_double.py"

# The double in a process of its own, with TCP_NODELAY: it writes a whole
# reply's headers and body apart, and Nagle's algorithm against the
# worker's delayed ACK holds the body 40 ms on every keep-alive request.
# Its request log is bounded: kept whole, tens of thousands of entries made
# Python's full garbage collections pause the double 0.2-0.5 s once a run,
# growing run by run, and that pause was each run's p99
DOUBLE_MAIN = """
import collections, sys, threading
sys.path.insert(0, sys.argv[1])
import llm_double as m
m.Handler.disable_nagle_algorithm = True
s = m.Server(("127.0.0.1", int(sys.argv[2])), m.Handler)
s.daemon_threads = True
s.lock = threading.Lock()
s.log = collections.deque(maxlen=64)
s.serve_forever()
"""

RESET = """
CREATE OR REPLACE FUNCTION public.bench_discard() RETURNS trigger
    LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
DROP TRIGGER IF EXISTS bench_discard ON omnichat.llm_usage;
ALTER TABLE omnichat.llm_usage ENABLE TRIGGER llm_usage_rollup_insert;
"""
DISCARD = """
CREATE TRIGGER bench_discard BEFORE INSERT ON omnichat.llm_usage
    FOR EACH ROW EXECUTE FUNCTION public.bench_discard();
"""
NO_ROLLUP = """
ALTER TABLE omnichat.llm_usage DISABLE TRIGGER llm_usage_rollup_insert;
"""
# case -> (what the row says, SQL after RESET, rate)
CASES = {
    "without": ("without ledger writes", DISCARD + NO_ROLLUP, RATE),
    "rows": ("with ledger rows, without the dashboard rollup", NO_ROLLUP,
             RATE),
    "with": ("with ledger rows and the dashboard rollup (the product)", "",
             RATE),
    "low": ("the same at a lower rate (BENCH_LEDGER_LOW)", "", LOW),
}


def _api(port, method, path, token, body=None):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, json.dumps(body) if body is not None else None,
              {"Authorization": "Bearer " + token,
               "Content-Type": "application/json"})
    r = c.getresponse()
    out = json.loads(r.read() or b"null")
    c.close()
    if r.status >= 300:
        raise RuntimeError("%s %s: %s %s" % (method, path, r.status, out))
    return out


async def _load(port, token, convs, rate, seconds):
    """Open-loop turns (or completions: convs is then [model]); returns
    (latencies in s, errors, wall time)."""
    idle = asyncio.Queue()
    for _ in range(CONNECTIONS):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    if GATEWAY:
        body = json.dumps({"model": convs[0], "messages": [
            {"role": "user", "content": "hi"}]}).encode()
    else:
        body = json.dumps({"content": "hi"}).encode()
    want = 200 if GATEWAY else 201
    lat, errors = [], []

    async def one(k, due):
        conn = await idle.get()
        reader, writer = conn
        path = "/v1/chat/completions" if GATEWAY else \
            "/api/v1/conversations/%s/messages" % convs[k % len(convs)]
        try:
            writer.write(("POST %s HTTP/1.1\r\nHost: bench\r\n"
                          "Authorization: Bearer %s\r\n"
                          "Content-Type: application/json\r\n"
                          "Content-Length: %d\r\n\r\n"
                          % (path, token, len(body))).encode() + body)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            n = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
            answer = await reader.readexactly(n)
            lat.append(time.perf_counter() - due)
            if status != want:
                errors.append("%d %r" % (status, answer[:200]))
            idle.put_nowait(conn)
        except Exception as e:   # noqa: BLE001 (counted, reported)
            errors.append(repr(e))
            writer.close()
            idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    tasks = []
    t0 = time.perf_counter()
    for k in range(rate * seconds):
        due = t0 + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(k, due)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    while not idle.empty():
        idle.get_nowait()[1].close()
    return lat, errors, wall


def _tree(pid):
    out = [pid]
    for kid in stack.children_of(pid):
        out += _tree(kid)
    return out


def _cpu_s(pids):
    """utime + stime of the processes (their threads included), s."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")


def run(pg, redis):
    d = stack.make_tmpdir("omni-bench-ledger-")
    nginx = worker = double = None
    try:
        dport = stack.free_port()
        double = subprocess.Popen([sys.executable, "-c", DOUBLE_MAIN,
                                   str(DOUBLE.parent), str(dport)])
        nginx = stack.Nginx(d / "worker.sock", redis_addr=redis.addr,
                            api_rate="1000000r/s").start()
        worker = stack.Worker(
            pg, redis, workdir=d, workers=2,
            binary=stack.BUILD / "omni-worker",
            env={"OMNI_LOG_LEVEL": "warn"}).start()
        port = nginx.http_port
        admin = nginx.token(sub=str(uuid.uuid4()), role="admin",
                            lifetime=3600)
        user = nginx.token(sub=str(uuid.uuid4()), role="user", lifetime=3600)
        suffix = uuid.uuid4().hex[:8]
        (d / "key").write_text("sk-bench\n")
        model = "text-" + suffix
        _api(port, "POST", "/api/v1/llm/providers", admin, {
            "name": "ledger-" + suffix, "type": "openai",
            "base_url": "http://127.0.0.1:%d" % dport,
            "api_key_file": str(d / "key"),
            "models": [{"name": model, "context_window": 100000,
                        "max_output_tokens": 256,
                        "price": {"input": 1, "output": 2}}]})
        project = _api(port, "POST", "/api/v1/projects", user,
                       {"name": "ledger-bench"})["id"]
        prompt = _api(port, "POST", "/api/v1/projects/%s/prompts" % project,
                      user, {"name": "p", "content": "Be brief."})
        version = prompt["latest_version"]["id"]
        convs = [_api(port, "POST", "/api/v1/conversations", user, {
            "project_id": project, "prompt_version_id": version,
            "model": model})["id"] for _ in range(CONVERSATIONS)]
        if GATEWAY:
            user = _key_of_new_user(port, nginx, admin,
                                    "ledger-" + suffix)["key"]
            convs = [model]

        def sql(q):
            return pg.sql(q, dbname="omni")

        def rows():
            return sql("SELECT count(*) FROM omnichat.llm_usage")[0][0]

        def generation():
            return sql("SELECT generation FROM omni2_dashboard.cache_state"
                       )[0][0]

        def servers():
            return [p for root in (worker.pid, nginx.proc.pid, pg.proc.pid,
                                   redis.proc.pid)
                    for p in _tree(root)]

        # warm-up: connections, prepared statements, the double's threads
        asyncio.run(_load(port, user, convs, max(RATE // 5, 1), 2))
        results = {case: [] for case in CASES}
        cpu = {case: 0.0 for case in CASES}
        cpu_double = {case: 0.0 for case in CASES}
        stored = batches = 0
        for k in range(ROUNDS):
            # reversed every other round: the ledger grows (and autovacuum
            # comes) as the runs go on, which must not fall on one case
            for case in list(CASES)[::-1 if k % 2 else 1]:
                sql(RESET + CASES[case][1])
                time.sleep(1)          # batches of the last run flushed
                r0, g0 = rows(), generation()
                pids = servers()
                c0, x0 = _cpu_s(pids), _cpu_s(_tree(double.pid))
                res = asyncio.run(_load(port, user, convs, CASES[case][2],
                                        SECONDS))
                time.sleep(1)     # the last batch written, counted
                cpu[case] += _cpu_s(pids) - c0
                cpu_double[case] += _cpu_s(_tree(double.pid)) - x0
                results[case].append(res)
                if case in ("with", "low"):
                    stored += rows() - r0
                    # the request rollups bump it too: an upper bound
                    batches += generation() - g0
        sql(RESET)

        lines = []
        for case in CASES:
            lat = [x for r in results[case] for x in r[0]]
            errs = sum(len(r[1]) for r in results[case])
            n = sum(len(r[0]) for r in results[case])
            wall = sum(r[2] for r in results[case])
            per = cpu[case] / max(n, 1) * 1000
            lines.append(
                "| ledger: non-streamed %s at %d/s open loop, %s "
                "(%d x %d s, 2 worker processes), load %.1f | %.0f turns/s "
                "| %d errors | p50 %.2f ms | p99 %.2f ms | Omni's CPU %.2f "
                "ms a turn (2 cores: %.0f turns/s), the double's %.2f ms "
                "| >= 500/s |"
                % ("gateway completions" if GATEWAY else "turns",
                   CASES[case][2], CASES[case][0], ROUNDS, SECONDS,
                   os.getloadavg()[0],
                   n / wall, errs, _pct(lat, 0.5) * 1000,
                   _pct(lat, 0.99) * 1000, per, 2000 / per if per else 0,
                   cpu_double[case] / max(n, 1) * 1000))
        turns = sum(len(r[0]) - len(r[1]) for c in ("with", "low")
                    for r in results[c])
        lines.append(
            "| ledger: rows stored in the runs with the rollup / answered "
            "2xx; generation bumps (ledger + request rollup flushes) | "
            "%d / %d | %d | | | | |" % (stored, turns, batches))
        first = [e for case in results for r in results[case] for e in r[1]]
        return lines + (["first error: %s" % first[0]] if first else [])
    finally:
        for svc in (worker, nginx):
            if svc is not None:
                svc.destroy()
        if double is not None:
            double.terminate()
            double.wait(10)


if __name__ == "__main__":
    import standalone
    standalone.main(run)
