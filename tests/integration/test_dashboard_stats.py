"""Dashboard stats and charts against an exact computation by the test.

These tests own their data: a database of their own (migrated), a worker
started per test on it and a gateway (nginx + module) in front, so no other
test's traffic lands in the rollups they count. Data comes either from
requests through the gateway (checked against the worker's request log) or
from rollup rows inserted directly with exact histograms.
"""

import collections
import datetime
import os
import random
import shutil
import time

import pytest

import stack

STATUS_MIX = {200: 30, 404: 10, 403: 5, 422: 5, 500: 4}


# --- the stack ---------------------------------------------------------------

@pytest.fixture(scope="module")
def dash_db(pg):
    name = "omni_dash_%d" % os.getpid()
    pg.ensure_running()
    pg.drop_database(name)
    pg.create_database(name)
    res = stack.migrate(["up"], pg.url(name))
    assert res.returncode == 0, res.stdout + res.stderr
    yield name
    pg.drop_database(name)


@pytest.fixture(scope="module")
def dash_dir():
    path = stack.make_tmpdir("omni-test-dash-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def dash_gateway(dash_dir, redis_server):
    """The product's nginx configuration in front of dash_dir's socket, its
    per-user limit out of the tests' way."""
    nginx = stack.Nginx(worker_socket=dash_dir / "worker.sock",
                        redis_addr=redis_server.addr, api_rate="10000r/s")
    try:
        nginx.start()
        yield nginx
    finally:
        nginx.destroy()


@pytest.fixture
def dash_worker(pg, redis_server, dash_db, dash_dir, request):
    """start(flush_ms) empties the rollups (and so the summaries), the cache
    and the activity of dash_db, then starts a worker on it behind
    dash_gateway. With the default flush interval its own requests reach
    the rollups only when it stops."""
    started = []

    def start(flush_ms=3600000):
        pg.sql("TRUNCATE omni_metrics.request_rollup;"
               " DELETE FROM omni2_dashboard.dashboard_cache;"
               " DELETE FROM omni2_dashboard.activity", dbname=dash_db)
        (dash_dir / "worker.log").unlink(missing_ok=True)
        w = stack.Worker(pg, redis_server, workdir=dash_dir,
                         env={"OMNI_DATABASE_URL": pg.url(dash_db),
                              "OMNI_METRICS_FLUSH_MS": flush_ms})
        started.append(w)
        w.start()
        return w

    yield start
    failed = any(getattr(getattr(request.node, "rep_" + when, None),
                         "failed", False) for when in ("setup", "call"))
    for w in started:
        w.destroy()
        if failed:
            print("--- worker log (tail) ---\n" + stack.tail(w.log_path, 30))
        report = w.sanitizer_report()
        assert report is None, report


def _get(gw, path, role="user", **params):
    r = gw.request("GET", path, params=params,
                   headers=gw.bearer(sub="dash-stats-" + role, role=role))
    assert r.status_code == 200, r.text
    return r


def _stats(gw, period):
    return _get(gw, "/api/v1/dashboard/stats", period=period).json()


def _chart(gw, metric, hours, bucket):
    return _get(gw, "/api/v1/dashboard/charts/" + metric, hours=hours,
                bucket=bucket).json()


def _time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ") \
        .replace(tzinfo=datetime.timezone.utc)


# --- the exact computation ---------------------------------------------------

def _bucket(us):
    """worker/src/lib/hist.c's bucket of a latency in microseconds."""
    if us < 4:
        return us
    k = us.bit_length() - 1
    return min(119, 4 * (k - 1) + ((us >> (k - 2)) & 3))


def _quantile(latencies, permille):
    """Nearest rank: the ceil(n * q)-th smallest."""
    ordered = sorted(latencies)
    return ordered[(len(ordered) * permille + 999) // 1000 - 1]


def _assert_matches(doc, requests, prefix=""):
    """doc (stats or a chart point) against the exact figures of
    requests [(status, us)]: counts and error rate exactly, mean to the
    0.1 us printed, quantiles within the histogram's 12.5%."""
    n = len(requests)
    errors = sum(1 for s, _ in requests if s >= 500)
    client = sum(1 for s, _ in requests if 400 <= s < 500)
    assert doc.get("requests", doc.get("value")) == n, prefix
    if "errors" in doc:
        assert doc["errors"] == errors, prefix
        assert doc["client_errors"] == client, prefix
        assert doc["error_rate"] == (errors / n if n else 0), prefix
    if n == 0:
        assert doc["p50_ms"] is None and doc["avg_ms"] is None, prefix
        return
    latencies = [us for _, us in requests]
    assert abs(doc["avg_ms"] - sum(latencies) / n / 1000) <= 0.00006, prefix
    for q, name in ((500, "p50_ms"), (950, "p95_ms"), (990, "p99_ms")):
        exact = _quantile(latencies, q) / 1000
        assert abs(doc[name] - exact) <= 0.125 * exact, \
            "%s%s: %s vs exact %s" % (prefix, name, doc[name], exact)
    if "max_ms" in doc:
        assert doc["max_ms"] == max(latencies) / 1000, prefix


def _insert(pg, db, requests):
    """Rollup rows for requests [(minute, route, status, us)], one per
    (minute, route, status), as the worker's flush writes them."""
    rows = {}
    for minute, route, status, us in requests:
        row = rows.setdefault((minute, route, status),
                              [0, 0, 0, [0] * 120])
        row[0] += 1
        row[1] += us
        row[2] = max(row[2], us)
        row[3][_bucket(us)] += 1
    conn = pg.connect(db, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO omni_metrics.request_rollup AS r"
                " (minute, route, status, count, sum_us, max_us, hist)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (minute, route, status) DO UPDATE SET"
                " count = r.count + excluded.count,"
                " sum_us = r.sum_us + excluded.sum_us,"
                " max_us = greatest(r.max_us, excluded.max_us),"
                " hist = omni_metrics.hist_add(r.hist, excluded.hist)",
                [k + tuple(v) for k, v in rows.items()])
    finally:
        conn.close()


def _now_minute(pg, db):
    return pg.sql("SELECT date_trunc('minute', now())", dbname=db)[0][0]


def _synthetic(now, n=3000, seed=6):
    """n requests over the last 8 days (more of them recent), with statuses
    and log-uniform latencies from 50 us to 5 s: [(minute, route, status,
    us)]."""
    rng = random.Random(seed)
    # a few in the current minute: "today" is never empty
    out = [(now, "GET /api/v1/health", 200, 900 + i) for i in range(5)]
    statuses = [200] * 14 + [201, 204, 400, 401, 404, 404, 422, 500, 502, 503]
    routes = ["GET /api/v1/config/{key}", "PUT /api/v1/config/{key}",
              "GET /api/v1/dashboard/stats", "POST /api/v1/chat"]
    for _ in range(n):
        age = int(rng.choice([rng.uniform(0, 180), rng.uniform(0, 1800),
                              rng.uniform(0, 8 * 1440)]))
        us = int(50 * (10 ** 5) ** rng.random())
        out.append((now - datetime.timedelta(minutes=age), rng.choice(routes),
                    rng.choice(statuses), us))
    return out


# --- stats from inserted rollups ---------------------------------------------

@pytest.mark.parametrize("period", ["today", "24h", "7d"])
def test_stats_match_an_exact_computation_over_the_period(
        pg, dash_db, dash_gateway, dash_worker, period):
    dash_worker()
    requests = _synthetic(_now_minute(pg, dash_db))
    _insert(pg, dash_db, requests)

    doc = _stats(dash_gateway, period)
    start, end = _time(doc["from"]), _time(doc["to"])
    if period == "today":
        assert start == end.replace(hour=0, minute=0, second=0,
                                    microsecond=0)
    else:
        span = datetime.timedelta(days=1 if period == "24h" else 7)
        assert end - span - datetime.timedelta(minutes=5) < start \
            <= end - span
        assert start.minute % 5 == 0 and start.second == 0
    inside = [(s, us) for m, _, s, us in requests if m >= start]
    assert 0 < len(inside) < len(requests)
    assert doc["period"] == period
    _assert_matches(doc, inside)
    assert (doc["cost"], doc["tokens"], doc["active_mcp_servers"],
            doc["open_circuit_breakers"]) == (0, 0, 0, 0)


def test_stats_of_no_requests_are_zero_with_null_latencies(
        dash_gateway, dash_worker):
    dash_worker()
    doc = _stats(dash_gateway, "24h")
    assert (doc["requests"], doc["errors"], doc["error_rate"]) == (0, 0, 0)
    assert doc["p99_ms"] is None and doc["max_ms"] is None


@pytest.mark.parametrize("hours, bucket", [(24, "1h"), (3, "5m"),
                                           (168, "1h")])
def test_charts_match_an_exact_computation_per_point(
        pg, dash_db, dash_gateway, dash_worker, hours, bucket):
    dash_worker()
    requests = _synthetic(_now_minute(pg, dash_db))
    _insert(pg, dash_db, requests)
    width = datetime.timedelta(hours=1) if bucket == "1h" \
        else datetime.timedelta(minutes=5)

    def inside(t):
        start = _time(t)
        return [(s, us) for m, _, s, us in requests
                if start <= m < start + width]

    counted = 0
    for metric in ("queries", "errors", "response_time", "cost"):
        doc = _chart(dash_gateway, metric, hours, bucket)
        assert (doc["metric"], doc["hours"], doc["bucket"]) \
            == (metric, hours, bucket)
        points = doc["points"]
        assert len(points) == hours * 3600 // width.seconds
        assert doc["from"] == points[0]["t"]
        assert [_time(p["t"]) - _time(points[0]["t"]) for p in points] \
            == [width * i for i in range(len(points))]
        assert _time(points[-1]["t"]) <= _time(doc["to"]) \
            < _time(points[-1]["t"]) + width
        for point in points:
            where = "%s %s point %s: " % (metric, bucket, point["t"])
            got = inside(point["t"])
            if metric == "queries":
                assert point["value"] == len(got), where
                counted += len(got)
            elif metric == "errors":
                errors = sum(1 for s, _ in got if s >= 500)
                assert point["value"] == errors, where
                assert point["client_errors"] \
                    == sum(1 for s, _ in got if 400 <= s < 500), where
                assert point["error_rate"] \
                    == (errors / len(got) if got else 0), where
            elif metric == "response_time":
                _assert_matches(point, got, where)
            else:
                assert point["value"] == 0, where
    assert counted > 0


# --- stats from requests through the gateway ---------------------------------

def test_stats_match_the_requests_the_worker_served(
        pg, dash_db, dash_gateway, dash_worker):
    w = dash_worker(flush_ms=100)
    gw = dash_gateway
    user = gw.bearer(sub="dash-mix-user", role="user")
    admin = dict(gw.bearer(sub="dash-mix-admin", role="admin"))
    for _ in range(STATUS_MIX[200]):
        gw.request("GET", "/api/v1/config/refresh_interval", headers=user)
    for _ in range(STATUS_MIX[404]):
        gw.request("GET", "/api/v1/config/no_such_key", headers=user)
    for _ in range(STATUS_MIX[403]):
        # refused by the worker (the token's sub is no registered user)
        gw.request("POST", "/api/v1/api-keys", headers=user,
                   json={"name": "dash-mix"})
    for _ in range(STATUS_MIX[422]):
        gw.request("PUT", "/api/v1/config/alert_thresholds", headers=admin,
                   json={"cost_daily": 100, "error_rate": 5,
                         "response_time_p99": 5000})
    # a statement Postgres refuses is a 500 internal_error
    pg.sql("REVOKE SELECT ON omni2_dashboard.user_preferences FROM omni",
           dbname=dash_db)
    try:
        for _ in range(STATUS_MIX[500]):
            gw.request("GET", "/api/v1/preferences", headers=user)
    finally:
        pg.sql("GRANT SELECT ON omni2_dashboard.user_preferences TO omni",
               dbname=dash_db)

    def flushed(more=0):
        """The requests served, once all are in the rollups (and at least
        `more` of them)."""
        def settled():
            served = [line for line in w.log_lines()
                      if line.get("msg") == "request"]
            total = pg.sql("SELECT coalesce(sum(count), 0)"
                           " FROM omni_metrics.request_rollup",
                           dbname=dash_db)[0][0]
            return served if len(served) > more and total == len(served) \
                else None
        return stack.wait_until(settled, 10, "every request in the rollups",
                                interval=0.2)
    served = flushed()

    mix = collections.Counter(line["status"] for line in served
                              if line["path"] != "/health/live")
    assert mix == STATUS_MIX
    requests = [(line["status"], round(line["duration_ms"] * 1000))
                for line in served]
    _assert_matches(_stats(gw, "24h"), requests)

    # the same requests and that stats request, in 5-minute points
    served = flushed(more=len(requests))
    points = _chart(gw, "queries", 1, "5m")["points"]
    assert sum(p["value"] for p in points) == len(served) == len(requests) + 1


# --- the cache ---------------------------------------------------------------

def test_stats_are_cached_until_the_rollups_change(
        pg, dash_db, dash_gateway, dash_worker):
    dash_worker()
    now = _now_minute(pg, dash_db)
    _insert(pg, dash_db, [(now, "GET /x", 200, 1000)] * 5)

    first = _get(dash_gateway, "/api/v1/dashboard/stats", period="24h")
    assert first.headers["X-Omni-Cache"] == "miss"
    assert first.json()["requests"] == 5
    again = _get(dash_gateway, "/api/v1/dashboard/stats", period="24h")
    assert again.headers["X-Omni-Cache"] == "hit"
    assert again.json() == first.json()

    _insert(pg, dash_db, [(now, "GET /x", 503, 2000)] * 2)
    changed = _get(dash_gateway, "/api/v1/dashboard/stats", period="24h")
    assert changed.headers["X-Omni-Cache"] == "miss"
    assert (changed.json()["requests"], changed.json()["errors"]) == (7, 2)

    chart = [_get(dash_gateway, "/api/v1/dashboard/charts/errors",
                  hours=2, bucket="1h") for _ in range(2)]
    assert [c.headers["X-Omni-Cache"] for c in chart] == ["miss", "hit"]
    assert chart[1].json()["points"][-1]["value"] == 2


def test_a_configuration_change_invalidates_the_cache(
        dash_gateway, dash_worker):
    dash_worker()
    path = "/api/v1/dashboard/charts/queries"
    assert _get(dash_gateway, path).headers["X-Omni-Cache"] == "miss"
    assert _get(dash_gateway, path).headers["X-Omni-Cache"] == "hit"
    # the defaults come from chart_settings
    admin = dash_gateway.bearer(sub="dash-cache-admin", role="admin")
    r = dash_gateway.request("PUT", "/api/v1/config/chart_settings",
                             headers=admin,
                             json=dict(CHART_DEFAULTS, queries_hours=6,
                                       bucket="1h"))
    assert r.status_code == 200, r.text
    try:
        doc = _get(dash_gateway, path)
        assert doc.headers["X-Omni-Cache"] == "miss"
        assert (doc.json()["hours"], doc.json()["bucket"]) == (6, "1h")
        assert len(doc.json()["points"]) == 6
    finally:
        _put_config(dash_gateway, "chart_settings", CHART_DEFAULTS)


CHART_DEFAULTS = {"cost_period": "today", "queries_hours": 24,
                  "response_time_hours": 24}
REFRESH_DEFAULTS = {"stats": 5, "charts": 30, "activity": 5}


def _put_config(gw, key, value):
    r = gw.request("PUT", "/api/v1/config/" + key, json=value,
                   headers=gw.bearer(sub="dash-config-admin", role="admin"))
    assert r.status_code == 200, r.text


def test_each_chart_takes_its_default_hours_from_chart_settings(
        pg, dash_db, dash_gateway, dash_worker):
    dash_worker()
    _put_config(dash_gateway, "chart_settings",
                {"cost_period": "7d", "queries_hours": 6,
                 "response_time_hours": 12})
    try:
        got = {m: _get(dash_gateway, "/api/v1/dashboard/charts/" + m).json()
               for m in ("queries", "errors", "response_time", "cost")}
        # without a bucket: 5m while that fits max_points (288), else 1h
        assert {m: (d["hours"], d["bucket"], len(d["points"]))
                for m, d in got.items()} \
            == {"queries": (6, "5m", 72), "errors": (6, "5m", 72),
                "response_time": (12, "5m", 144), "cost": (168, "1h", 168)}

        # "today": the hours since 00:00 UTC, begun ones included
        _put_config(dash_gateway, "chart_settings", CHART_DEFAULTS)
        before = pg.sql("SELECT ceil(extract(epoch FROM now()"
                        " - date_trunc('day', now(), 'UTC')) / 3600)::int",
                        dbname=dash_db)[0][0]
        cost = _get(dash_gateway, "/api/v1/dashboard/charts/cost").json()
        assert cost["hours"] in (max(before, 1), before + 1)
        # an explicit ?hours= wins
        assert _get(dash_gateway, "/api/v1/dashboard/charts/cost",
                    hours=2).json()["hours"] == 2
    finally:
        _put_config(dash_gateway, "chart_settings", CHART_DEFAULTS)


def _cache(gw, path, **params):
    return _get(gw, path, **params).headers["X-Omni-Cache"]


def test_cached_stats_and_charts_expire_after_their_refresh_interval(
        dash_gateway, dash_worker):
    """Stats are reused for refresh_interval.stats seconds, charts for
    refresh_interval.charts."""
    dash_worker()
    stats, chart = "/api/v1/dashboard/stats", "/api/v1/dashboard/charts/cost"
    try:
        _put_config(dash_gateway, "refresh_interval",
                    dict(REFRESH_DEFAULTS, stats=1, charts=3600))
        seen = [_cache(dash_gateway, stats, period="7d") for _ in range(2)]
        seen += [_cache(dash_gateway, chart, hours=1) for _ in range(2)]
        time.sleep(1.2)
        seen += [_cache(dash_gateway, stats, period="7d"),
                 _cache(dash_gateway, chart, hours=1)]
        assert seen == ["miss", "hit", "miss", "hit", "miss", "hit"]

        # the change itself makes every cached answer stale
        _put_config(dash_gateway, "refresh_interval",
                    dict(REFRESH_DEFAULTS, stats=3600, charts=1))
        seen = [_cache(dash_gateway, stats, period="7d") for _ in range(2)]
        seen += [_cache(dash_gateway, chart, hours=1) for _ in range(2)]
        time.sleep(1.2)
        seen += [_cache(dash_gateway, stats, period="7d"),
                 _cache(dash_gateway, chart, hours=1)]
        assert seen == ["miss", "hit", "miss", "hit", "hit", "miss"]
    finally:
        _put_config(dash_gateway, "refresh_interval", REFRESH_DEFAULTS)


def test_expired_cache_rows_are_swept(pg, redis_server, dash_db):
    """Rows of users who stopped looking do not stay for good: a worker
    deletes the rows that expired over a minute ago soon after it starts
    (then every minute); fresh and just-expired rows stay."""
    pg.sql("DELETE FROM omni2_dashboard.dashboard_cache;"
           " INSERT INTO omni2_dashboard.dashboard_cache"
           " (key, value, expires_at, generation)"
           " SELECT 'stats:24h:gone-' || i, '{}', now() - interval '2 hours',"
           "  0 FROM generate_series(1, 50) AS i;"
           " INSERT INTO omni2_dashboard.dashboard_cache"
           " (key, value, expires_at, generation) VALUES"
           " ('stats:24h:fresh', '{}', now() + interval '1 hour', 0),"
           " ('stats:24h:just-expired', '{}', now() - interval '5 seconds', 0)",
           dbname=dash_db)
    d = stack.make_tmpdir("omni-test-dash-sweep-")
    w = stack.Worker(pg, redis_server, workdir=d,
                     env={"OMNI_DATABASE_URL": pg.url(dash_db)})
    try:
        w.start()

        def keys():
            return sorted(row[0] for row in pg.sql(
                "SELECT key FROM omni2_dashboard.dashboard_cache",
                dbname=dash_db))
        stack.wait_until(lambda: len(keys()) == 2, 10,
                         "the expired rows swept")
        assert keys() == ["stats:24h:fresh", "stats:24h:just-expired"]
    finally:
        w.destroy()
        report = w.sanitizer_report()
        shutil.rmtree(d, ignore_errors=True)
        assert report is None, report


# --- parameters --------------------------------------------------------------

@pytest.mark.parametrize("path, params, name", [
    ("stats", {"period": "1d"}, "period"),
    ("stats", {"period": ""}, "period"),
    ("charts/queries", {"hours": "0"}, "hours"),
    ("charts/queries", {"hours": "169"}, "hours"),
    ("charts/queries", {"hours": "2x"}, "hours"),
    ("charts/queries", {"bucket": "10m"}, "bucket"),
    # 48 hours of 5-minute points is more than chart_settings.max_points
    ("charts/errors", {"hours": "48", "bucket": "5m"}, "hours"),
])
def test_bad_parameters_get_400_naming_them(dash_gateway, dash_worker, path,
                                            params, name):
    dash_worker()
    r = dash_gateway.request(
        "GET", "/api/v1/dashboard/" + path, params=params,
        headers=dash_gateway.bearer(sub="dash-params", role="user"))
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_parameter"
    assert r.json()["message"].startswith(name)


def test_an_unknown_chart_gets_404(dash_gateway, dash_worker):
    dash_worker()
    r = dash_gateway.request(
        "GET", "/api/v1/dashboard/charts/latency",
        headers=dash_gateway.bearer(sub="dash-params", role="user"))
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "not_found"


# --- the summaries -----------------------------------------------------------

SUMMARY_DRIFT = """
WITH r AS (
    SELECT w.width,
           to_timestamp(floor(extract(epoch FROM minute) / w.width)
                        * w.width) AS start,
           sum(count) AS count,
           coalesce(sum(count) FILTER (WHERE status >= 500), 0) AS errors,
           coalesce(sum(count) FILTER (WHERE status BETWEEN 400 AND 499), 0)
               AS client_errors,
           sum(sum_us) AS sum_us, omni_metrics.hist_sum(hist) AS hist
    FROM omni_metrics.request_rollup, (VALUES (300), (3600)) AS w(width)
    GROUP BY 1, 2
)
SELECT count(*) FROM r
FULL JOIN omni_metrics.request_summary AS s USING (width, start)
WHERE (r.count, r.errors, r.client_errors, r.sum_us, r.hist)
      IS DISTINCT FROM (s.count, s.errors, s.client_errors, s.sum_us, s.hist)
"""


def test_summaries_follow_every_change_to_the_rollups(pg, dash_db,
                                                      dash_worker):
    dash_worker()
    now = _now_minute(pg, dash_db)
    generation = "SELECT generation FROM omni2_dashboard.cache_state"
    g0 = pg.sql(generation, dbname=dash_db)[0][0]

    _insert(pg, dash_db, _synthetic(now, n=500, seed=1))
    _insert(pg, dash_db, _synthetic(now, n=500, seed=2))      # upserts
    assert pg.sql(SUMMARY_DRIFT, dbname=dash_db) == [(0,)]
    pg.sql("UPDATE omni_metrics.request_rollup SET status = 599,"
           " count = count + 1, hist[100] = hist[100] + 1"
           " WHERE status = 200", dbname=dash_db)
    assert pg.sql(SUMMARY_DRIFT, dbname=dash_db) == [(0,)]
    pg.sql("DELETE FROM omni_metrics.request_rollup"
           " WHERE route = 'POST /api/v1/chat'", dbname=dash_db)
    assert pg.sql(SUMMARY_DRIFT, dbname=dash_db) == [(0,)]
    assert pg.sql(generation, dbname=dash_db)[0][0] >= g0 + 4

    # retention: what prune_rollups deletes leaves the summaries too
    pg.sql("SELECT omni_metrics.prune_rollups(interval '1 day')",
           dbname=dash_db)
    assert pg.sql(SUMMARY_DRIFT, dbname=dash_db) == [(0,)]
    assert pg.sql("SELECT count(*) FROM omni_metrics.request_summary"
                  " WHERE count = 0 OR start < now() - interval '25 hours'",
                  dbname=dash_db) == [(0,)]

    pg.sql("TRUNCATE omni_metrics.request_rollup", dbname=dash_db)
    assert pg.sql("SELECT count(*) FROM omni_metrics.request_summary",
                  dbname=dash_db) == [(0,)]
