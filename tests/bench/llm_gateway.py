"""The LLM gateway (/v1/chat/completions) vs the provider directly (SPEC 9:
added time-to-first-token p50 <= 1 ms, added inter-chunk gap p99 <= 1 ms),
and non-streamed requests/s through Omni vs nginx `proxy_pass` to the same
provider, with the cost of an API key's tokens/requests-per-minute limit
and of an alias.

Streams: the provider double (tests/integration/fixtures/llm_double.py,
model `bench`: 20 deltas 20 ms apart) read from raw sockets, each delta
timestamped as it arrives, alternating one stream directly and one through
nginx + omni-worker with an Omni API key (the body passes through).
Non-streamed: @copilotkit/aimock (build/llm-node) answering a short text,
wrk POSTing the same body in alternating rounds of: nginx `proxy_pass`
(keepalive) to aimock, Omni with an API key, the same key with a limit of
tokens and requests per minute it never reaches, and an alias of the model;
the table shows the medians of the rounds and the CPU time the servers in
front of aimock (nginx, and omni-worker when it is there) spent per request
(/proc/PID/task/*/schedstat). Servers run on CPU 0, the clients on CPU 1
(BENCH_PIN=0: no pinning). BENCH_LLM_BASE=<an omni-worker binary>: a
second nginx + omni-worker pair runs it (a build of the commit before a
change), its streams alternating with the others' and its non-streamed
round beside Omni's, for an A/B in the same run. BENCH_LLM_TIMINGS=1: the
worker under test logs at debug level, and the medians of where its time
to first byte went (admitted by Redis, request handed to the provider
client, first byte to the client; µs from the request's arrival) are
shown. Run alone: /usr/bin/python3 tests/bench/llm_gateway.py"""

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import stack  # noqa: E402
from chat import _api, _key_of_new_user, _pct, _stream, \
    _timings  # noqa: E402

STREAMS = int(os.environ.get("BENCH_LLM_STREAMS", "30"))
ROUNDS = int(os.environ.get("BENCH_LLM_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_LLM_SECONDS", "3"))
CONNS = int(os.environ.get("BENCH_LLM_CONNS", "16"))
PIN = os.environ.get("BENCH_PIN", "1") != "0" and os.cpu_count() > 1
BASE = os.environ.get("BENCH_LLM_BASE")
TIMINGS = os.environ.get("BENCH_LLM_TIMINGS") == "1"
DOUBLE = HERE.parent / "integration" / "fixtures" / "llm_double.py"
AIMOCK = HERE.parent.parent / "build" / "llm-node" / "node_modules" \
    / "@copilotkit" / "aimock" / "dist" / "cli.js"
FIXTURES = HERE.parent / "integration" / "fixtures" / "llm" / "aimock.json"

PROXY_CONF = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {preamble}
    upstream aimock {{
        server 127.0.0.1:{aimock_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://aimock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def _client(cmd):
    return ["taskset", "-c", "1"] + cmd if PIN else cmd


def _cpu_ns(pids):
    total = 0
    for p in pids:
        try:
            for t in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/schedstat" % (p, t)) as f:
                    total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def _wrk(url, body, headers, pids, lua_dir, backing=()):
    """One wrk round of POSTs: (requests/s, p50 ms, p99 ms, CPU us of
    pids per request, non-2xx responses, CPU us of backing per
    request)."""
    lua = lua_dir / ("post-%s.lua" % uuid.uuid4().hex[:8])
    lines = ["wrk.method = \"POST\"",
             "wrk.body = %s" % json.dumps(json.dumps(body)),
             "wrk.headers[\"Content-Type\"] = \"application/json\""]
    lines += ["wrk.headers[%s] = %s" % (json.dumps(k), json.dumps(v))
              for k, v in headers.items()]
    lua.write_text("\n".join(lines) + "\n")
    cpu0, back0 = _cpu_ns(pids), _cpu_ns(backing)
    out = subprocess.run(
        _client(["wrk", "-t1", "-c", str(CONNS), "-d", "%ds" % SECONDS,
                 "--latency", "-s", str(lua), url]),
        capture_output=True, text=True, check=True).stdout
    cpu1, back1 = _cpu_ns(pids), _cpu_ns(backing)
    rps = float(out.split("Requests/sec:")[1].split()[0])
    total = int(out.split(" requests in ")[0].split()[-1])
    bad = int(out.split("Non-2xx or 3xx responses:")[1].split()[0]) \
        if "Non-2xx" in out else 0

    def lat(p):
        dist = out.split("Latency Distribution")[1]
        v = dist.split(" %s%%" % p)[1].split()[0]
        for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
            if v.endswith(unit):
                return float(v[:-len(unit)]) * f
        return float(v)

    return (rps, lat(50), lat(99), (cpu1 - cpu0) / 1000 / max(total, 1),
            bad, (back1 - back0) / 1000 / max(total, 1))


def _up(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def run(pg, redis):
    if not AIMOCK.exists():
        raise RuntimeError("aimock missing: make llm-node")
    mask = os.sched_getaffinity(0)
    d = stack.make_tmpdir("omni-bench-llm-")
    nginx = worker = double = mock = proxy = None
    bnginx = bworker = None
    try:
        if PIN:
            os.sched_setaffinity(0, {0})
        dport, aport = stack.free_port(), stack.free_port()
        double = subprocess.Popen([sys.executable, str(DOUBLE), str(dport)])
        mock = subprocess.Popen(
            [shutil.which("node"), str(AIMOCK), "-p", str(aport), "-h",
             "127.0.0.1", "-f", str(FIXTURES), "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proxy = stack.NginxConf(PROXY_CONF, "bench-llm-proxy",
                                aimock_port=aport)
        nginx = stack.Nginx(d / "worker.sock", redis_addr=redis.addr,
                            api_rate="1000000r/s", workers=1).start()
        worker = stack.Worker(
            pg, redis, workdir=d, workers=1,
            binary=stack.BUILD / "omni-worker",
            env={"OMNI_LOG_LEVEL": "debug" if TIMINGS else "warn"}).start()
        if BASE:
            bd = stack.make_tmpdir("omni-bench-llm-base-")
            bnginx = stack.Nginx(bd / "worker.sock", redis_addr=redis.addr,
                                 api_rate="1000000r/s", workers=1).start()
            bworker = stack.Worker(
                pg, redis, workdir=bd, workers=1, binary=BASE,
                env={"OMNI_LOG_LEVEL": "warn"}).start()
        stack.wait_until(lambda: _up(aport) and _up(dport), 15,
                         "aimock and the double listening")
        proxy.start(probe="/v1/models")
        if PIN:
            os.sched_setaffinity(0, {1})
        port = nginx.http_port
        admin = nginx.token(sub=str(uuid.uuid4()), role="admin",
                            lifetime=3600)
        # aimock matches a model name with a numeric suffix to its fixture
        # (aimock-text-123), not any suffix
        suffix = str(random.randrange(10 ** 8, 10 ** 9))
        (d / "key").write_text("sk-bench\n")
        for kind, url, models in (
                ("double", "http://127.0.0.1:%d" % dport, ["bench"]),
                ("aimock", "http://127.0.0.1:%d" % aport, ["aimock-text"])):
            _api(port, "POST", "/api/v1/llm/providers", admin, {
                "name": "%s-%s" % (kind, suffix), "type": "openai",
                "base_url": url, "api_key_file": str(d / "key"),
                "models": [{"name": "%s-%s" % (m, suffix),
                            "context_window": 100000,
                            "max_output_tokens": 256,
                            "price": {"input": 1, "output": 2}}
                           for m in models]})
        text_model = "aimock-text-%s" % suffix
        alias = "fast-%s" % suffix
        _api(port, "POST", "/api/v1/llm/aliases", admin, {
            "name": alias, "targets": [{"provider": "aimock-" + suffix,
                                        "model": text_model}]})
        key = _key_of_new_user(port, nginx, admin, "bench-" + suffix)["key"]
        limited = _key_of_new_user(port, nginx, admin, "limited-" + suffix)
        _api(port, "PUT", "/api/v1/llm/limits/" + limited["id"], admin,
             {"tokens_per_minute": 10 ** 11, "requests_per_minute": 10 ** 6})

        # streams, alternating
        direct, omni, based = [], [], []
        body = {"model": "bench-" + suffix, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(STREAMS):
            direct.append(_stream(dport, "/v1/chat/completions", body, {},
                                  b'"content": "abc'))
            omni.append(_stream(port, "/v1/chat/completions", body,
                                {"Authorization": "Bearer " + key},
                                b'"content": "abc'))
            if BASE:
                based.append(_stream(bnginx.http_port,
                                     "/v1/chat/completions", body,
                                     {"Authorization": "Bearer " + key},
                                     b'"content": "abc'))
        d_ttft = statistics.median(x[0] for x in direct) * 1000
        o_ttft = statistics.median(x[0] for x in omni) * 1000
        d_gap50 = statistics.median(g for x in direct for g in x[1]) * 1000
        o_gap50 = statistics.median(g for x in omni for g in x[1]) * 1000
        d_gap = _pct([g for x in direct for g in x[1]], 0.99) * 1000
        o_gap = _pct([g for x in omni for g in x[1]], 0.99) * 1000

        # non-streamed requests/s, alternating rounds
        small = {"model": text_model,
                 "messages": [{"role": "user", "content": "Say hello"}]}
        front = [nginx.proc.pid] + stack.children_of(nginx.proc.pid) \
            + [worker.pid] + (worker.children() or [])
        proxy_pids = [proxy.proc.pid] + stack.children_of(proxy.proc.pid)
        backing = [redis.proc.pid, pg.proc.pid] \
            + stack.children_of(pg.proc.pid)
        if BASE:
            front_b = [bnginx.proc.pid] + stack.children_of(bnginx.proc.pid) \
                + [bworker.pid] + (bworker.children() or [])
        cases = [
            ("nginx `proxy_pass` to aimock (baseline)",
             "http://127.0.0.1:%d/v1/chat/completions" % proxy.port,
             small, {}, proxy_pids, ()),
            ("Omni `/v1/chat/completions`, API key (auth, plan, ledger)",
             nginx.http_url("/v1/chat/completions"), small,
             {"Authorization": "Bearer " + key}, front, backing),
            ("  the same key with a tokens + requests per minute limit",
             nginx.http_url("/v1/chat/completions"), small,
             {"Authorization": "Bearer " + limited["key"]}, front,
             backing),
            ("  the same, the model named by an alias",
             nginx.http_url("/v1/chat/completions"),
             dict(small, model=alias),
             {"Authorization": "Bearer " + key}, front, backing),
        ]
        if BASE:
            cases.insert(2, (
                "  the same, the build before (BENCH_LLM_BASE)",
                bnginx.http_url("/v1/chat/completions"), small,
                {"Authorization": "Bearer " + key}, front_b, backing))
        for name, url, b, h, pids, back in cases:   # warm-up
            if _wrk(url, b, h, pids, d, back)[4]:
                raise RuntimeError("non-2xx answers: " + name)
        rounds = [[] for _ in cases]
        for _ in range(ROUNDS):
            for i, (_, url, b, h, pids, back) in enumerate(cases):
                rounds[i].append(_wrk(url, b, h, pids, d, back))
        load = os.getloadavg()
        lines = [
            "| LLM gateway: stream from the double directly (20 deltas, "
            "20 ms apart), TTFT p50 / gap p50 / gap p99 | %d streams | | "
            "%.2f | %.2f | gap p50 %.2f ms | |"
            % (STREAMS, d_ttft, d_gap, d_gap50),
            "| LLM gateway: the same through nginx + omni-worker "
            "(`/v1/chat/completions`, API key, passed through) | %d "
            "streams | | %.2f | %.2f | TTFT +%.2f ms, gap p50 +%.2f ms, "
            "gap p99 +%.2f ms | <= 1 ms each |"
            % (STREAMS, o_ttft, o_gap, o_ttft - d_ttft, o_gap50 - d_gap50,
               o_gap - d_gap),
        ]
        if BASE:
            b_ttft = statistics.median(x[0] for x in based) * 1000
            b_gap = _pct([g for x in based for g in x[1]], 0.99) * 1000
            lines.append(
                "| LLM gateway: the same through the build before "
                "(BENCH_LLM_BASE), streams alternating with the rows above "
                "| %d streams | | %.2f | %.2f | TTFT +%.2f ms, gap p99 "
                "+%.2f ms | |"
                % (STREAMS, b_ttft, b_gap, b_ttft - d_ttft, b_gap - d_gap))
        marks = TIMINGS and _timings(worker, "LLM gateway first byte",
                                     ("admitted_us", "sent_us", "first_us"))
        if marks:
            lines.append(
                "LLM gateway streams, inside the worker (medians of %d, us "
                "from the request's arrival): admitted %.0f, handed to the "
                "provider client %.0f, first byte out %.0f"
                % ((marks[0],) + tuple(marks[1])))
        base = statistics.median(r[0] for r in rounds[0])
        for (name, _, _, _, _, back), rs in zip(cases, rounds):
            rps = statistics.median(r[0] for r in rs)
            lines.append(
                "| LLM gateway non-streamed: %s | %.0f | %.0f-%.0f | %.2f | "
                "%.2f | %.0f%%, CPU/req: %.0f us in front of aimock%s%s | |"
                % (name, rps, min(r[0] for r in rs), max(r[0] for r in rs),
                   statistics.median(r[1] for r in rs),
                   statistics.median(r[2] for r in rs), 100 * rps / base,
                   statistics.median(r[3] for r in rs),
                   " + %.0f us Redis and Postgres"
                   % statistics.median(r[5] for r in rs) if back else "",
                   ", %d non-2xx" % sum(r[4] for r in rs)
                   if any(r[4] for r in rs) else ""))
        lines.append("LLM gateway rows: %d rounds of %d s, %d connections, "
                     "load average %.2f %.2f %.2f; LiteLLM's published "
                     "overhead for reference: p50 12 ms / p99 43 ms at "
                     "~1k RPS" % ((ROUNDS, SECONDS, CONNS) + load))
        return lines
    finally:
        os.sched_setaffinity(0, mask)
        for svc in (worker, nginx, proxy, bworker, bnginx):
            if svc is not None:
                svc.destroy()
        for p in (double, mock):
            if p is not None:
                p.terminate()
                p.wait(10)


if __name__ == "__main__":
    import standalone
    standalone.main(run)
