"""nginx + module in front of the worker: health, request ids, status."""

import re
import time
import uuid

NGINX_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


def _assert_healthy(r):
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "ok"
    assert body["postgres"] == "up"
    assert body["redis"] == "up"
    assert isinstance(body["pid"], int)
    assert isinstance(body["version"], str) and body["version"]


def test_health_over_http_reports_postgres_and_redis_up(gateway):
    _assert_healthy(gateway.request("GET", "/health"))


def test_health_over_https_reports_postgres_and_redis_up(gateway):
    _assert_healthy(gateway.request("GET", "/health", https=True))


def test_sane_client_request_id_is_kept_end_to_end(gateway):
    rid = "test-" + uuid.uuid4().hex
    r = gateway.request("GET", "/health", headers={"X-Request-Id": rid})
    assert r.status_code == 200
    assert r.headers["X-Request-Id"] == rid


def test_insane_client_request_id_is_replaced_by_nginx_request_id(gateway):
    rid = "bad id <script>"
    r = gateway.request("GET", "/health", headers={"X-Request-Id": rid})
    assert r.status_code == 200
    assert r.headers["X-Request-Id"] != rid
    assert NGINX_REQUEST_ID.match(r.headers["X-Request-Id"])


def test_missing_request_id_gets_nginx_request_id(gateway):
    r = gateway.request("GET", "/health")
    assert NGINX_REQUEST_ID.match(r.headers["X-Request-Id"])


def test_worker_answers_with_a_request_id_when_none_is_sent(worker):
    r = worker.request("GET", "/health/live")
    assert r.status == 200
    assert r.headers["X-Request-Id"]


def test_worker_echoes_the_request_id_it_is_sent(worker):
    rid = "test-" + uuid.uuid4().hex
    r = worker.request("GET", "/health/live", {"X-Request-Id": rid})
    assert r.headers["X-Request-Id"] == rid


def test_worker_logs_one_json_line_per_request_with_its_request_id(gateway,
                                                                   worker):
    rid = "test-" + uuid.uuid4().hex
    headers = gateway.bearer()
    headers["X-Request-Id"] = rid
    r = gateway.request("GET", "/api/v1/config/refresh_interval",
                        headers=headers)
    assert r.status_code == 200

    def ours(line):
        return line.get("request_id") == rid
    worker.wait_log(ours, what="a log line with request_id " + rid)
    time.sleep(0.2)     # a duplicate would be written by now
    lines = [l for l in worker.log_lines() if ours(l)]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["msg"] == "request"
    assert line["method"] == "GET"
    assert line["path"] == "/api/v1/config/refresh_interval"
    assert line["route"] == "GET /api/v1/config/{key}"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], (int, float))


def test_module_status_is_json_with_version(nginx):
    r = nginx.request("GET", "/omni/status")
    assert r.status_code == 200, r.text
    assert "version" in r.json()
