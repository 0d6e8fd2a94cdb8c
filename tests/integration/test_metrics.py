"""Request accounting: per-minute rollups in Postgres and /metrics."""

import re

import stack

ROUTE = "GET /api/v1/config/{key}"
CONFIG_PATH = "/api/v1/config/refresh_interval"
REQUESTS = 20


def _rollup(pg):
    """[(count, sum(hist))] of the route's 200 rows."""
    return pg.sql("SELECT count,"
                  " (SELECT coalesce(sum(h), 0) FROM unnest(hist) h)"
                  " FROM omni_metrics.request_rollup"
                  " WHERE route = %s AND status = 200",
                  (ROUTE,), dbname="omni")


def test_rollup_counts_every_request_to_a_route(migrated, worker):
    before = sum(count for count, _ in _rollup(migrated))
    for _ in range(REQUESTS):
        assert worker.request("GET", CONFIG_PATH).status == 200

    def counted():
        return sum(count for count, _ in _rollup(migrated)) - before \
            >= REQUESTS
    stack.wait_until(counted, 3, "%d requests in request_rollup" % REQUESTS,
                     interval=0.1)


def test_rollup_histogram_sums_to_the_count(migrated, worker):
    for _ in range(REQUESTS):
        assert worker.request("GET", CONFIG_PATH).status == 200
    stack.wait_until(lambda: _rollup(migrated), 3, "rows in request_rollup")
    rows = _rollup(migrated)
    assert all(count == hist_sum for count, hist_sum in rows), rows


COUNTER = re.compile(r'^omni_worker_requests_total\{route="GET /api/v1/config/'
                     r'\{key\}",status="200"\} (\d+(?:\.\d+)?(?:e\+?\d+)?)$',
                     re.M)


def test_metrics_is_prometheus_text_with_route_counter_and_histogram(worker):
    for _ in range(REQUESTS):
        assert worker.request("GET", CONFIG_PATH).status == 200

    def scraped():
        r = worker.request("GET", "/metrics")
        assert r.status == 200, r.body
        return r if COUNTER.search(r.text) else None
    r = stack.wait_until(scraped, 3, "the route's counter in /metrics",
                         interval=0.1)
    assert r.headers["Content-Type"].startswith("text/plain")
    assert float(COUNTER.search(r.text).group(1)) >= 1
    assert "omni_worker_request_duration_seconds_bucket{" in r.text
