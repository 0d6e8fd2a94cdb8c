"""Chat streaming through Omni vs the provider double directly (SPEC 9:
added time-to-first-token p50 <= 1 ms, added inter-chunk gap p99 <= 1 ms,
many concurrent streams per worker process with flat RSS).

The double (tests/integration/fixtures/llm_double.py, its own process)
streams 20 deltas 20 ms apart. Sequential streams are read from raw
sockets, timestamping each delta as it arrives: directly from the double
(`POST /v1/chat/completions`, stream) and through nginx + omni-worker
(`POST /api/v1/conversations/{id}/messages`, stream:true), alternated one
by one, in BENCH_CHAT_ROUNDS rounds: the added time to first token is the
median over rounds of each round's median through Omni less its median
direct (the machine's load changes between rounds, not within one).
Then BENCH_CHAT_BATCHES batches of BENCH_CHAT_STREAMS slow streams at
once through one worker process: its RSS before, the highest sampled
while they run, and settled (3 s idle) after the first and the last
batch (BENCH_CHAT_BATCHES=0: none). BENCH_CHAT_BASE=<an omni-worker
binary>: a second nginx + omni-worker pair runs it (a build before a
change), its sequential streams alternating with the others'. With
BENCH_CHAT_TIMINGS=1 the worker under test logs at debug level and the
medians of where a turn's time to first delta went are shown (the plan,
turn_plan, answered; request handed to the provider client; first delta
out; µs from the request's arrival). The base build runs on the schema
this build migrated: a migration adds functions and keeps the ones an
older worker calls (018 keeps turn_begin_nowait). Run alone: /usr/bin/python3 tests/bench/chat.py"""

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import stack  # noqa: E402

STREAMS = int(os.environ.get("BENCH_CHAT_SEQUENTIAL", "60"))
ROUNDS = int(os.environ.get("BENCH_CHAT_ROUNDS", "6"))
CONCURRENT = int(os.environ.get("BENCH_CHAT_STREAMS", "1000"))
BATCHES = int(os.environ.get("BENCH_CHAT_BATCHES", "10"))
DOUBLE = HERE.parent / "integration" / "fixtures" / "llm_double.py"
BASE = os.environ.get("BENCH_CHAT_BASE")
TIMINGS = os.environ.get("BENCH_CHAT_TIMINGS") == "1"

# The double in a process of its own, with TCP_NODELAY (as a provider's
# server sets it): it writes a stream's head and its first chunk apart, and
# on a reused connection Nagle's algorithm against the worker's delayed ACK
# held that chunk until the ACK, ~20 ms more to the first token of a turn
# that followed another at once; the direct client's fresh connections
# never see it. Its request log is bounded (see ledger.py: a log kept
# whole made Python's full collections pause the double as it grew)
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


def _stream(port, path, body, headers, marker):
    """Sends one POST and reads the chunked answer; returns (ttft, gaps,
    text) in seconds: the first time `marker` arrives, the gaps between
    later arrivals of it."""
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", port), 30)
    head = "".join("%s: %s\r\n" % kv for kv in headers.items())
    t0 = time.perf_counter()
    s.sendall(("POST %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n%s"
               "\r\n" % (path, len(data), head)).encode() + data)
    times, text = [], b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        now = time.perf_counter()
        times += [now] * chunk.count(marker)
        text += chunk
    s.close()
    if not times:
        raise RuntimeError("no delta in %r" % text[:300])
    gaps = [b - a for a, b in zip(times, times[1:])]
    return times[0] - t0, gaps, text


def _pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


def _rss_kb(pids):
    total = 0
    for p in pids:
        try:
            for line in open("/proc/%d/status" % p):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _timings(worker, msg, keys):
    """The medians of keys over the worker's debug lines msg (first-byte
    timings, µs), and their number: (n, [median, ...]) or None."""
    marks = {k: [] for k in keys}
    for e in worker.log_lines():
        if e.get("msg") == msg:
            for k in keys:
                marks[k].append(e[k])
    if not marks[keys[0]]:
        return None
    return len(marks[keys[0]]), [statistics.median(marks[k]) for k in keys]


def _key_of_new_user(port, nginx, admin, name):
    """An API key of a newly registered user."""
    who = _api(port, "POST", "/auth/register", admin, {
        "email": "%s@example.com" % name, "password": "password-" + name})
    owner = nginx.token(sub=who["id"], role="user", lifetime=3600)
    return _api(port, "POST", "/api/v1/api-keys", owner, {"name": name})


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


def run(pg, redis):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * CONCURRENT + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (min(hard, 2 * CONCURRENT + 1024), hard))
    d = stack.make_tmpdir("omni-bench-chat-")
    nginx = worker = double = bnginx = bworker = None
    try:
        dport = stack.free_port()
        double = subprocess.Popen([sys.executable, "-c", DOUBLE_MAIN,
                                   str(DOUBLE.parent), str(dport)])
        nginx = stack.Nginx(d / "worker.sock", redis_addr=redis.addr,
                            api_rate="1000000r/s").start()
        worker = stack.Worker(
            pg, redis, workdir=d, workers=1,
            binary=stack.BUILD / "omni-worker",
            env={"OMNI_LOG_LEVEL": "debug" if TIMINGS else "warn"}).start()
        if BASE:
            bd = stack.make_tmpdir("omni-bench-chat-base-")
            bnginx = stack.Nginx(bd / "worker.sock", redis_addr=redis.addr,
                                 api_rate="1000000r/s").start()
            bworker = stack.Worker(
                pg, redis, workdir=bd, workers=1, binary=BASE,
                env={"OMNI_LOG_LEVEL": "warn"}).start()
        port = nginx.http_port
        admin = nginx.token(sub=str(uuid.uuid4()), role="admin",
                            lifetime=3600)
        user = nginx.token(sub=str(uuid.uuid4()), role="user", lifetime=3600)
        suffix = uuid.uuid4().hex[:8]
        (d / "key").write_text("sk-bench\n")
        _api(port, "POST", "/api/v1/llm/providers", admin, {
            "name": "bench-" + suffix, "type": "openai",
            "base_url": "http://127.0.0.1:%d" % dport,
            "api_key_file": str(d / "key"),
            "models": [{"name": "%s-%s" % (b, suffix),
                        "context_window": 100000, "max_output_tokens": 256,
                        "price": {"input": 1, "output": 2}}
                       for b in ("bench", "slow")]})
        project = _api(port, "POST", "/api/v1/projects", user,
                       {"name": "bench"})["id"]
        prompt = _api(port, "POST", "/api/v1/projects/%s/prompts" % project,
                      user, {"name": "p", "content": "Be brief."})
        version = prompt["latest_version"]["id"]

        def conversation(model):
            return _api(port, "POST", "/api/v1/conversations", user, {
                "project_id": project, "prompt_version_id": version,
                "model": "%s-%s" % (model, suffix)})["id"]

        direct, omni, based, rounds = [], [], [], []
        for i in range(STREAMS):
            if i % max(STREAMS // ROUNDS, 1) == 0:
                rounds.append(len(direct))
            direct.append(_stream(
                dport, "/v1/chat/completions",
                {"model": "bench-" + suffix, "stream": True,
                 "messages": [{"role": "user", "content": "hi"}]},
                {}, b'"content": "abc'))
            # a fresh conversation each time: the same history size
            omni.append(_stream(
                port, "/api/v1/conversations/%s/messages"
                % conversation("bench"), {"content": "hi", "stream": True},
                {"Authorization": "Bearer " + user}, b"event: delta"))
            if BASE:
                based.append(_stream(
                    bnginx.http_port, "/api/v1/conversations/%s/messages"
                    % conversation("bench"),
                    {"content": "hi", "stream": True},
                    {"Authorization": "Bearer " + user}, b"event: delta"))
        load = os.getloadavg()[0]
        bounds = list(zip(rounds, rounds[1:] + [len(direct)]))
        def ttft(series):
            return statistics.median(statistics.median(
                x[0] for x in series[a:b]) for a, b in bounds) * 1000

        def more(series):   # the median over rounds of each one's excess
            return statistics.median(
                statistics.median(x[0] for x in series[a:b])
                - statistics.median(x[0] for x in direct[a:b])
                for a, b in bounds) * 1000

        d_ttft, o_ttft, added = ttft(direct), ttft(omni), more(omni)
        d_gap = _pct([g for x in direct for g in x[1]], 0.99) * 1000
        o_gap = _pct([g for x in omni for g in x[1]], 0.99) * 1000
        extra = []
        if BASE:
            b_ttft, b_added = ttft(based), more(based)
            b_gap = _pct([g for x in based for g in x[1]], 0.99) * 1000
            extra.append(
                "| chat: the same through the build before "
                "(BENCH_CHAT_BASE), alternated with the rows above | %d "
                "streams | | %.2f | %.2f | TTFT +%.2f ms (median of rounds)"
                ", gap p99 +%.2f ms | |"
                % (STREAMS, b_ttft, b_gap, b_added, b_gap - d_gap))
        marks = TIMINGS and _timings(worker, "chat turn first byte",
                                     ("asked_us", "begun_us", "sent_us",
                                      "first_us"))
        if marks:
            extra.append(
                "chat turns, inside the worker (medians of %d, us from the "
                "request's arrival): the plan asked %.0f, answered %.0f, "
                "handed to the provider client %.0f, first delta out %.0f"
                % ((marks[0],) + tuple(marks[1])))
        head = [
            "| chat: stream from the double directly (20 deltas, 20 ms "
            "apart), time to first delta p50 / gap p99 | %d streams | | "
            "%.2f | %.2f | | |" % (STREAMS, d_ttft, d_gap),
            "| chat: the same through nginx + omni-worker (a turn: the plan "
            "read, provider call beside the user message's save, reply "
            "saved), "
            "alternated, %d rounds, load %.1f | %d streams | | %.2f | %.2f "
            "| TTFT +%.2f ms (median of rounds), gap p99 +%.2f ms | <= 1 "
            "ms each |" % (len(bounds), load, STREAMS, o_ttft, o_gap, added,
                           o_gap - d_gap),
        ] + extra
        if BATCHES == 0:
            return head

        # many slow streams at once on one worker process
        pids = worker.children() or [worker.pid]
        rss0 = _rss_kb(pids)
        done, errors, peak = [], [], [rss0]
        sampling = threading.Event()

        def sample():
            while not sampling.wait(0.05):
                peak[0] = max(peak[0], _rss_kb(pids))

        def one(c):
            try:
                _, _, text = _stream(
                    port, "/api/v1/conversations/%s/messages" % c,
                    {"content": "hi", "stream": True},
                    {"Authorization": "Bearer " + user}, b"event: delta")
                done.append(b"event: done" in text)
            except Exception as e:   # noqa: BLE001 (counted, reported)
                errors.append(repr(e))

        def batch():
            # fresh conversations: every batch sends the same history
            convs = [conversation("slow") for _ in range(CONCURRENT)]
            threads = [threading.Thread(target=one, args=(c,))
                       for c in convs]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return time.monotonic() - t0

        sampler = threading.Thread(target=sample)
        sampler.start()
        took, settled = 0, []
        for _ in range(BATCHES):
            done.clear()
            took = max(took, batch())
            time.sleep(3)
            settled.append(_rss_kb(pids))
        sampling.set()
        sampler.join()
        # after the first bursts the caches (idle provider connections,
        # prepared statements, the heap's layout) are warm: the settled
        # RSS climbed over the first three batches and then held (14
        # batches: 19.3, 19.9, 20.3, then 20.5-20.9 MB), so flat is judged
        # from the third batch on; the spread from the second is shown too
        def spread(values):
            values = values or settled
            return (max(values) - min(values)) * 100.0 / min(values)

        return head + [
            "| chat: %d concurrent slow streams (4 deltas, 1.2 s) on one "
            "worker process, %d batches (%d streamed chats): done (last "
            "batch) / errors, slowest batch, worker RSS before -> peak -> "
            "settled (3 s) after the first, second and last batch; spread "
            "of the settled RSS from the third batch on (from the second) "
            "| %d / %d | %.1f s | | | %d -> %d -> %d, %d, %d KiB; %.1f%% "
            "(%.1f%%) | flat (+-5%%) |"
            % (CONCURRENT, BATCHES, CONCURRENT * BATCHES, sum(done),
               len(errors), took, rss0, peak[0], settled[0],
               settled[1 % len(settled)], settled[-1], spread(settled[2:]),
               spread(settled[1:])),
            "chat: settled RSS after each batch, KiB: "
            + ", ".join(str(x) for x in settled),
        ] + (["first error: " + errors[0]] if errors else [])
    finally:
        for svc in (worker, nginx, bworker, bnginx):
            if svc is not None:
                svc.destroy()
        if double is not None:
            double.terminate()
            double.wait(10)


if __name__ == "__main__":
    import standalone
    standalone.main(run)
