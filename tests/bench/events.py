"""Event channels under load: 1,000 idle subscribers held open (on `mcp`,
where nothing is published) while configuration changes publish 100
events/s to `activity`, read by a few active SSE subscribers. Reports the
delivery latency (change sent -> event read) p50/p99, events lost within
the history bound, the gateway's RSS before and after, and the cost of
the worker's authorization subrequest when subscribing (conversation
channel vs activity). Run by bench.py or alone:
/usr/bin/python3 tests/bench/events.py"""

import json
import os
import resource
import selectors
import socket
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import stack  # noqa: E402

IDLE = int(os.environ.get("BENCH_EVENTS_IDLE", "1000"))
ACTIVE = int(os.environ.get("BENCH_EVENTS_ACTIVE", "10"))
RATE = int(os.environ.get("BENCH_EVENTS_RATE", "100"))
SECONDS = int(os.environ.get("BENCH_EVENTS_SECONDS", "10"))


def _rss_kb(pid):
    """RSS of nginx's master and workers, in KiB."""
    total = 0
    for p in [pid] + stack.children_of(pid):
        try:
            for line in open("/proc/%d/status" % p):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _subscribe(port, path, token):
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.sendall(("GET %s HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream"
               "\r\nAuthorization: Bearer %s\r\n\r\n" % (path, token))
              .encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("subscriber closed: %r" % head)
        head += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("subscribe %s: %r" % (path, head[:200]))
    return s, head.partition(b"\r\n\r\n")[2]


def _subscribe_ms(port, path, token, n=200):
    """Median time to a subscriber's response head, in ms."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        s, _ = _subscribe(port, path, token)
        times.append((time.perf_counter() - t0) * 1000)
        s.close()
    return statistics.median(times), sorted(times)[int(n * 0.99) - 1]


def run(pg, redis):
    """Starts nginx + a worker of its own publishing to it; returns the
    lines of the results table."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (min(hard, IDLE + 1024), hard))
    d = stack.make_tmpdir("omni-bench-events-")
    nginx = worker = None
    socks = []
    key = "bench_events_%s" % uuid.uuid4().hex[:8]
    try:
        nginx = stack.Nginx(d / "worker.sock", redis_addr=redis.addr,
                            api_rate="1000000r/s").start()
        worker = stack.Worker(
            pg, redis, workdir=d, binary=stack.BUILD / "omni-worker",
            env={"OMNI_LOG_LEVEL": "warn",
                 "OMNI_EVENTS_PUBLISH": "unix:%s" % nginx.events_socket,
                 "OMNI_JWT_PRIVATE_KEY":
                     nginx.keys_dir / "jwt-private.pem"}).start()
        port = nginx.http_port
        viewer = nginx.token(sub=str(uuid.uuid4()), role="viewer",
                             lifetime=3600)
        admin = {"Authorization": "Bearer " + nginx.token(
            sub=str(uuid.uuid4()), role="admin", lifetime=3600)}

        # the authorization subrequest's cost: a conversation channel
        # (module + worker + Postgres) vs activity (the module alone)
        owner = str(uuid.uuid4())
        cid = str(uuid.uuid4())
        # the owner's conversation, with the project and prompt version
        # the chat schema (sql/009) requires
        pg.sql("WITH p AS (INSERT INTO omnichat.projects (user_id, name)"
               "  VALUES (%(o)s, 'bench') RETURNING id),"
               " q AS (INSERT INTO omnichat.prompts (project_id, user_id,"
               "  name) SELECT id, %(o)s, 'bench' FROM p RETURNING id),"
               " v AS (INSERT INTO omnichat.prompt_versions (prompt_id,"
               "  user_id, version, content) SELECT id, %(o)s, 1, 'bench'"
               "  FROM q RETURNING id)"
               " INSERT INTO omnichat.conversations (id, user_id, project_id,"
               "  prompt_version_id, model)"
               " SELECT %(c)s, %(o)s, p.id, v.id, 'bench' FROM p, v",
               {"o": owner, "c": cid}, dbname="omni")
        own = nginx.token(sub=owner, role="user", lifetime=3600)
        act_ms = _subscribe_ms(port, "/events/activity", viewer)
        conv_ms = _subscribe_ms(port, "/events/conversation-" + cid, own)

        rss0 = _rss_kb(nginx.proc.pid)
        for _ in range(IDLE):
            socks.append(_subscribe(port, "/events/mcp", viewer)[0])
        rss_idle = _rss_kb(nginx.proc.pid)

        sel = selectors.DefaultSelector()
        active = []
        for _ in range(ACTIVE):
            s, rest = _subscribe(port, "/events/activity", viewer)
            s.setblocking(False)
            st = {"buf": rest, "lat": [], "seen": set()}
            sel.register(s, selectors.EVENT_READ, st)
            active.append((s, st))

        total = RATE * SECONDS
        done = threading.Event()

        def publish():
            sess = __import__("requests").Session()
            t_start = time.monotonic()
            for i in range(total):
                wait = t_start + i / RATE - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                r = sess.put(nginx.http_url("/api/v1/config/" + key),
                             json={"i": i, "t": time.time()},
                             headers=admin, timeout=10)
                r.raise_for_status()
            done.set()

        pub = threading.Thread(target=publish)
        pub.start()
        deadline = None
        while True:
            if done.is_set() and deadline is None:
                deadline = time.monotonic() + 2
            if deadline and time.monotonic() > deadline:
                break
            for k, _ in sel.select(0.2):
                st = k.data
                chunk = k.fileobj.recv(262144)
                now = time.time()
                st["buf"] += chunk
                while b"\n\n" in st["buf"]:
                    ev, _, st["buf"] = st["buf"].partition(b"\n\n")
                    for line in ev.split(b"\n"):
                        if line.startswith(b"data: "):
                            msg = json.loads(line[6:])
                            new = msg["data"].get("detail", {}).get("new")
                            if (msg["data"]["detail"].get("key") == key
                                    and isinstance(new, dict)):
                                st["seen"].add(new["i"])
                                st["lat"].append((now - new["t"]) * 1000)
        pub.join()
        rss_end = _rss_kb(nginx.proc.pid)
        lat = sorted(x for _, st in active for x in st["lat"])
        lost = sum(total - len(st["seen"]) for _, st in active)
        p50 = lat[len(lat) // 2] if lat else float("nan")
        p99 = lat[max(0, int(len(lat) * 0.99) - 1)] if lat else float("nan")
        return [
            "| events: subscribe (SSE head) to `activity`, the module alone "
            "| | | %.2f | %.2f | | |" % act_ms,
            "| events: subscribe to `conversation-<uuid>` (+ authorize "
            "subrequest to the worker, Postgres) | | | %.2f | %.2f "
            "| +%.2f ms p50 | |" % (conv_ms[0], conv_ms[1],
                                    conv_ms[0] - act_ms[0]),
            "| events: %d idle SSE subscribers + %d events/s for %d s, %d "
            "active subscribers: change -> event delivered | %d events "
            "| lost %d | %.2f | %.2f | | p99 < 200 ms |"
            % (IDLE, RATE, SECONDS, ACTIVE, total, lost, p50, p99),
            "| events: gateway RSS (master + workers): before, with %d "
            "idle subscribers, after the events | %d / %d / %d KiB | | | "
            "| | |" % (IDLE, rss0, rss_idle, rss_end),
        ]
    finally:
        for s in socks:
            s.close()
        for svc in (worker, nginx):
            if svc is not None:
                svc.destroy()
        pg.sql("DELETE FROM omni2_dashboard.dashboard_config WHERE key = %s",
               (key,), dbname="omni")


if __name__ == "__main__":
    import standalone
    standalone.main(run)
