"""Dashboard benchmark: GET /api/v1/dashboard/stats?period=24h through the
gateway, with 1k and with 1M requests recorded, uncached and cached.

The requests are rollup rows generated in Postgres: 1M requests spread
over every minute of the last 24 hours x 10 routes x 4 statuses (57,600
rows), 1k requests as 1,000 of those rows. The stats read the 5-minute and
hourly summaries the rollup triggers keep, so the two should cost the same.
Uncached: refresh_interval.stats set to 0 s behind the API's back (its
minimum is 1 s), so every read computes and stores; cached: 3600 s, so reads
are served from dashboard_cache until a rollup flush bumps the generation.

    /usr/bin/python3 tests/bench/dashboard.py      # BENCH_SECONDS, ...

run() is what bench.py calls to add these rows to its table.
"""

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
sys.path.insert(0, str(HERE))

import stack  # noqa: E402

MINUTES, ROUTES, STATUSES = 1440, 10, (200, 201, 404, 500)
KEYS = MINUTES * ROUTES * len(STATUSES)

# $1 requests over min($1, KEYS) distinct (minute, route, status) rows,
# each with one latency from 0.5 to 50 ms
LOAD_SQL = """
TRUNCATE omni_metrics.request_rollup;
WITH keys AS (
    SELECT m, r, s, row_number() OVER (ORDER BY random()) - 1 AS k
    FROM generate_series(0, %(minutes)s - 1) AS m,
         generate_series(1, %(routes)s) AS r,
         unnest(%(statuses)s::int[]) AS s
), sel AS (
    SELECT m, r, s,
           %(total)s / least(%(total)s, %(keys)s)
           + CASE WHEN k < %(total)s %% least(%(total)s, %(keys)s)
                  THEN 1 ELSE 0 END AS n,
           500 + (k * 7919) %% 49500 AS lat
    FROM keys WHERE k < least(%(total)s, %(keys)s)
)
INSERT INTO omni_metrics.request_rollup
    (minute, route, status, count, sum_us, max_us, hist)
SELECT date_trunc('minute', now()) - m * interval '1 minute',
       'GET /bench/' || r, s, n, n * lat, lat,
       (SELECT array_agg(CASE WHEN i - 1 = omni_metrics.hist_bucket(lat)
                              THEN n ELSE 0 END ORDER BY i)
        FROM generate_series(1, 120) AS i)
FROM sel;
"""

SET_TTL_SQL = """
UPDATE omni2_dashboard.dashboard_config
SET value = jsonb_set(value, '{stats}', to_jsonb(%(seconds)s))
WHERE key = 'refresh_interval';
UPDATE omni2_dashboard.cache_state SET generation = generation + 1;
"""


def _load(conn, total):
    with conn.cursor() as cur:
        cur.execute(LOAD_SQL, {"total": total, "keys": KEYS,
                               "minutes": MINUTES, "routes": ROUTES,
                               "statuses": list(STATUSES)})
        # the worker's own flushes (the stats requests being measured)
        # land in the same table: count the loaded rows only
        cur.execute("SELECT sum(count), count(*)"
                    " FROM omni_metrics.request_rollup"
                    " WHERE route LIKE 'GET /bench/%%'")
        requests, rows = cur.fetchone()
    assert requests == total, (requests, total)
    return rows


def _ttl(conn, seconds):
    """Sets refresh_interval; then every table the stats read is vacuumed
    and analyzed, so no phase pays for the dead rows of the one before."""
    with conn.cursor() as cur:
        cur.execute(SET_TTL_SQL, {"seconds": seconds})
        cur.execute("VACUUM (ANALYZE) omni_metrics.request_rollup,"
                    " omni_metrics.request_summary,"
                    " omni2_dashboard.dashboard_cache,"
                    " omni2_dashboard.cache_state")


def run(measure, summary, row, pg, nginx):
    """Measures the stats rows against the worker behind `nginx`, which
    uses database omni of `pg` (its rollups are replaced, its
    refresh_interval restored afterwards). measure(target) returns samples
    for summary(); row(name, s, base, target) makes a table line. Returns
    the table's lines."""
    target = (nginx.http_url("/api/v1/dashboard/stats?period=24h"),
              nginx.bearer(sub="bench-dashboard", role="user",
                           lifetime=3600))
    conn = pg.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT value FROM omni2_dashboard.dashboard_config"
                    " WHERE key = 'refresh_interval'")
        saved = cur.fetchone()[0]["stats"]
    samples, nrows = {}, {}
    try:
        # both orders: whichever data set is measured later runs on a
        # database that has served (and vacuumed) more, which alone made
        # the later one measure slower; each figure pools both passes
        for order in ((1000, 1000000), (1000000, 1000)):
            for total in order:
                nrows[total] = _load(conn, total)
                for cached in (False, True):
                    _ttl(conn, 3600 if cached else 0)
                    samples.setdefault((total, cached), []).extend(
                        measure(target))
    finally:
        _ttl(conn, saved)
        with conn.cursor() as cur:
            cur.execute("TRUNCATE omni_metrics.request_rollup")
        conn.close()

    results = {key: (nrows[key[0]], summary(value))
               for key, value in samples.items()}
    lines = []
    for cached in (False, True):
        mode = "cached" if cached else "uncached"
        base = None
        for total, label in ((1000, "1k"), (1000000, "1M")):
            rows, s = results[total, cached]
            lines.append(row(
                "dashboard stats (24h), %s, %s requests recorded (%d rollup "
                "rows)" % (mode, label, rows), s, base,
                "flat" if base else ""))
            base = base or s
    lines.append(row("  cached vs uncached, 1M requests",
                     results[1000000, True][1], results[1000000, False][1]))
    return lines


def main():
    import bench

    pg = stack.Postgres().init()
    redis = stack.Redis().start()
    workdir = stack.make_tmpdir("omni-bench-dashboard-")
    nginx = worker = None
    try:
        res = stack.migrate(["up"], pg.url(),
                            binary=stack.BUILD / "omni-worker")
        if res.returncode:
            raise RuntimeError(res.stderr)
        nginx = stack.Nginx(workdir / "worker.sock", workers=bench.WORKERS,
                            redis_addr=redis.addr,
                            api_rate="1000000r/s").start()
        # the product's flush interval: each flush invalidates the cache
        worker = stack.Worker(
            pg, redis, workdir=workdir, workers=bench.WORKERS,
            binary=stack.BUILD / "omni-worker",
            env={"OMNI_LOG_LEVEL": "warn", "OMNI_PG_POOL_SIZE": bench.PG_POOL,
                 "OMNI_METRICS_FLUSH_MS": 5000,
                 "OMNI_JWT_PRIVATE_KEY":
                     nginx.keys_dir / "jwt-private.pem"}).start()
        lines = run(bench.measure, bench.summary, bench.row, pg, nginx)
        print("\n".join([
            "%d omni-worker processes x %d Postgres connections, %d client "
            "connections, %d runs of %ds (median)"
            % (bench.WORKERS, bench.PG_POOL, bench.CONNS, bench.RUNS,
               bench.SECONDS),
            "",
            "| benchmark | req/s (median) | spread | p50 ms | p99 ms "
            "| vs baseline | target |",
            "|---|---|---|---|---|---|---|",
        ] + lines))
    finally:
        for svc in (worker, nginx, redis, pg):
            if svc is not None:
                svc.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
