"""Dashboard config over omni2_dashboard.dashboard_config."""

import json
import uuid

import stack

# SPEC section 6: the platform's keys, their members, types and defaults
CONTRACT = {
    "alert_thresholds": {"cost_daily": 100, "error_rate": 0.05,
                         "response_time_p99": 5000},
    "chart_settings": {"cost_period": "today", "queries_hours": 24,
                       "response_time_hours": 24},
    "dev_features": {"websocket_debug": True, "quick_login": False,
                     "quick_login_email": "", "quick_login_password": ""},
    "dev_mode": "false",
    "live_updates": {"max_stored_events": 1000},
    "refresh_interval": {"stats": 5, "charts": 30, "activity": 5},
}
SEEDED_KEYS = set(CONTRACT)
ADMIN = {"X-User-Role": "admin", "Content-Type": "application/json"}


def test_a_fresh_database_serves_each_seeded_key_in_the_contract_shape(
        pg, redis_server, fresh_db):
    db = fresh_db()
    res = stack.migrate(["up"], pg.url(db))
    assert res.returncode == 0, res.stdout + res.stderr
    w = stack.Worker(pg, redis_server, env={"OMNI_DATABASE_URL": pg.url(db)})
    try:
        w.start()
        for role in ("admin", "viewer"):
            for key, want in CONTRACT.items():
                if key == "dev_features" and role != "admin":
                    # a secret by its name, whatever it holds
                    want = dict(want, quick_login_password="[redacted]")
                r = w.request("GET", "/api/v1/config/" + key,
                              {"X-User-Role": role, "X-User-Id": "u1"})
                assert r.status == 200, r.body
                got = r.json()["value"]
                # exactly these members, of these JSON types (an integer
                # is not sent as 24.0, a flag is the string "false")
                assert got == want, key
                assert type(got) is type(want), key
                if isinstance(want, dict):
                    assert {m: type(v) for m, v in got.items()} \
                        == {m: type(v) for m, v in want.items()}, key
    finally:
        w.destroy()


def test_get_config_key_returns_its_object_value(gateway):
    r = gateway.request("GET", "/api/v1/config/refresh_interval",
                        headers=gateway.bearer(role="user"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["key"] == "refresh_interval"
    assert set(doc["value"]) >= {"stats", "charts", "activity"}


def test_get_unknown_config_key_gets_404_not_found(gateway):
    key = "no_such_key_" + uuid.uuid4().hex
    r = gateway.request("GET", "/api/v1/config/" + key,
                        headers=gateway.bearer(role="user"))
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "not_found"


def test_admin_put_is_returned_by_the_next_get(gateway, worker):
    path = "/api/v1/config/chart_settings"
    before = worker.request("GET", path)
    assert before.status == 200, before.body
    original = before.json()["value"]
    updated = dict(original, test_marker=uuid.uuid4().hex)
    try:
        r = worker.request("PUT", path, ADMIN, json.dumps(updated))
        assert 200 <= r.status < 300, r.body
        r = gateway.request("GET", path, headers=gateway.bearer(role="user"))
        assert r.status_code == 200, r.text
        assert r.json()["value"] == updated
    finally:
        worker.request("PUT", path, ADMIN, json.dumps(original))


def test_config_list_holds_the_seeded_keys_on_one_page(gateway):
    r = gateway.request("GET", "/api/v1/config",
                        headers=gateway.bearer(role="user"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["next_cursor"] is None
    assert SEEDED_KEYS <= {item["key"] for item in doc["items"]}
