"""Memory benchmark (issue 22): the Omnex store's reads against the same
query written directly in SQL, on one machine in one run.

  context get by key            vs  the same point read, prepared, from a
                                    Postgres client
  text search (k 10)            vs  the websearch_to_tsquery / ts_rank_cd
                                    query in SQL
  exact semantic search (k 10)  vs  ORDER BY the dot product in SQL
  at 10k and 100k memories of 384-dimension vectors in one namespace
  memory add, batches of 100, until every memory is embedded (batched
  calls to the /v1/embeddings double)

Requests go one at a time straight to the worker's socket (no gateway),
the SQL one at a time through psycopg2: both sides pay a Python client.
The semantic search's query embedding comes from a local double (its
round trip is included; the SQL side is given the vector).

    /usr/bin/python3 tests/bench/memory.py          # BENCH_MEMORY_N=...
"""

import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import stack  # noqa: E402
from memory_support import EmbeddingsDouble, User, vector  # noqa: E402

MODEL = "bench-384"
SIZES = [int(x) for x in os.environ.get(
    "BENCH_MEMORY_N", "10000,100000").split(",")]
REPEAT = int(os.environ.get("BENCH_MEMORY_REPEAT", "30"))

LOAD_SQL = """
INSERT INTO omnex.memories (owner, namespace, content, embedding,
                            embedding_packed, embedding_model)
SELECT %(owner)s, 'bench', 'memory number ' || g || ' about '
       || (ARRAY['postgres', 'nginx', 'redis', 'kubernetes'])[1 + g %% 4],
       v.a,
       (SELECT string_agg(float4send(x), ''::bytea ORDER BY i)
        FROM unnest(v.a) WITH ORDINALITY AS u(x, i)),
       %(model)s
FROM generate_series(%(lo)s, %(hi)s) AS g,
     LATERAL (SELECT ARRAY(SELECT (random() - 0.5)::real
                           FROM generate_series(1, 384) WHERE g > 0) AS r)
         AS w,
     LATERAL (SELECT ARRAY(SELECT x / sqrt((SELECT sum(y * y)
                                            FROM unnest(w.r) AS y))
                           FROM unnest(w.r) AS x)::real[] AS a) AS v
"""

TEXT_SQL = """
SELECT id, content, metadata, ts_rank_cd(tsv, q) AS score
FROM omnex.memories, websearch_to_tsquery('english', %s) AS q
WHERE owner = %s AND namespace = 'bench' AND tsv @@ q
ORDER BY score DESC, created_at, id LIMIT 10
"""

SEMANTIC_SQL = """
SELECT id, content, metadata,
       (SELECT sum(a::float8 * b) FROM unnest(embedding, %s::real[]) AS t(a, b))
       AS score
FROM omnex.memories
WHERE owner = %s AND namespace = 'bench' AND embedding_model = %s
ORDER BY score DESC, id LIMIT 10
"""


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


class KeepAlive:
    """User's requests on one kept-alive connection, as a Postgres client
    keeps its connection."""

    def __init__(self, worker, user):
        self.worker = worker
        self.conn = worker.connection(30)
        self.h = {"X-User-Id": user.id, "X-User-Role": user.role,
                  "X-User-Username": "bench",
                  "Content-Type": "application/json"}

    def __call__(self, method, path, body=None):
        data = None if body is None else json.dumps(body)
        try:
            r = stack.http_request(self.conn, method, path, self.h, data)
        except (BrokenPipeError, ConnectionError):
            # idled out while the SQL side was measured
            self.conn = self.worker.connection(30)
            r = stack.http_request(self.conn, method, path, self.h, data)
        assert r.status == 200, r.body
        return r.json()


def line(name, ours, base):
    text = ("| %s | %.2f / %.2f | %.2f / %.2f | %.2f |"
            % (name, pct(ours, 50), pct(ours, 99), pct(base, 50),
               pct(base, 99), pct(ours, 50) / pct(base, 50)))
    print(text, file=sys.stderr)
    return text


def main():
    pg = stack.Postgres()
    redis = stack.Redis()
    double = EmbeddingsDouble()
    worker = None
    rows = []
    try:
        pg.init()
        pg.start()
        redis.start()
        res = stack.migrate(["up"], pg.url())
        assert res.returncode == 0, res.stderr
        worker = stack.Worker(pg, redis, workers=1, 
                              binary=stack.BUILD / "omni-worker", env={
            "OMNI_EMBEDDING_MODEL": MODEL, "BENCH_KEY": "k",
            "OMNI_PG_QUERY_TIMEOUT_MS": 60000})
        worker.start()
        admin = User(worker, role="admin")
        r = admin.call("POST", "/api/v1/llm/providers", {
            "name": "bench-embed", "type": "openai", "base_url": double.url,
            "api_key_env": "BENCH_KEY",
            "models": [{"name": MODEL, "context_window": 8192,
                        "max_output_tokens": 1,
                        "price": {"input": 0, "output": 0, "cached": 0}}]})
        assert r.status == 201, r.body
        user = User(worker)
        conn = pg.connect(autocommit=True)
        cur = conn.cursor()

        # context get vs the point read
        user.ok("PUT", "/api/v1/contexts/bench/k1",
                {"value": {"a": 1}, "tags": ["x"]}, status=201)
        ka = KeepAlive(worker, user)
        ours = timed(lambda: ka("GET", "/api/v1/contexts/bench/k1"),
                     REPEAT * 10)
        cur.execute("PREPARE pr(text) AS SELECT omnex.context_json(c)"
                    " FROM omnex.contexts AS c WHERE owner = $1"
                    " AND namespace = 'bench' AND key = 'k1'")
        base = timed(lambda: (cur.execute("EXECUTE pr(%s)", (user.id,)),
                              cur.fetchall()), REPEAT * 10)
        rows.append(line("context get by key", ours, base))

        loaded = 0
        q_text = "kubernetes number"
        q_vec = vector(MODEL, "what about kubernetes")
        for n in SIZES:
            t0 = time.monotonic()
            cur.execute(LOAD_SQL, {"owner": user.id, "model": MODEL,
                                   "lo": loaded + 1, "hi": n})
            cur.execute("VACUUM ANALYZE omnex.memories")
            loaded = n
            print("loaded %d memories in %.1f s" % (n, time.monotonic() - t0),
                  file=sys.stderr)
            ours = timed(lambda: ka("POST", "/api/v1/memories/search", {
                "query": q_text, "namespace": "bench", "mode": "text"}),
                REPEAT)
            base = timed(lambda: (cur.execute(TEXT_SQL, (q_text, user.id)),
                                  cur.fetchall()), REPEAT)
            rows.append(line("text search, %dk memories" % (n // 1000),
                             ours, base))
            ours = timed(lambda: ka("POST", "/api/v1/memories/search", {
                "query": "what about kubernetes", "namespace": "bench",
                "mode": "semantic"}), REPEAT)
            base = timed(lambda: (cur.execute(
                SEMANTIC_SQL, (q_vec, user.id, MODEL)), cur.fetchall()),
                max(3, REPEAT // 5))
            rows.append(line("semantic search, %dk x 384-d"
                             % (n // 1000), ours, base))
            ours = timed(lambda: ka("POST", "/api/v1/memories/search", {
                "query": "what about kubernetes", "namespace": "bench",
                "mode": "hybrid"}), REPEAT)
            rows.append("| hybrid search, %dk x 384-d | %.2f / %.2f | - | - |"
                        % (n // 1000, pct(ours, 50), pct(ours, 99)))

        # adds, embedded in batches by the queue
        adder, total = User(worker), 2000
        t0 = time.monotonic()
        for b in range(total // 100):
            adder.ok("POST", "/api/v1/memories", {"items": [
                {"namespace": "adds", "content": "added %d-%d %s"
                 % (b, i, uuid.uuid4().hex)} for i in range(100)]},
                status=201)
        acked = time.monotonic() - t0
        stack.wait_until(lambda: (cur.execute(
            "SELECT count(*) FROM omnex.memories WHERE owner = %s"
            " AND embedding_model = %s", (adder.id, MODEL)),
            cur.fetchone()[0] == total)[1], 300, "all embedded")
        done = time.monotonic() - t0
        calls = sum(1 for r in double.requests if len(r[1]) > 1)
        rows.append("| memory add, %d in batches of 100 | %.0f/s acknowledged,"
                    " %.0f/s embedded | (%d embedding calls of up to 32) | |"
                    % (total, total / acked, total / done, calls))
    finally:
        if worker is not None:
            worker.stop()
            worker.destroy()
        double.close()
        redis.destroy()
        pg.destroy()
    print("| what | Omni p50 / p99 ms | SQL p50 / p99 ms | p50 ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
