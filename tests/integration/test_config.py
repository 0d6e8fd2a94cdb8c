"""Dashboard config over omni2_dashboard.dashboard_config."""

import json
import uuid

SEEDED_KEYS = {"alert_thresholds", "chart_settings", "dev_features",
               "dev_mode", "live_updates", "refresh_interval"}
ADMIN = {"X-User-Role": "admin", "Content-Type": "application/json"}


def test_get_config_key_returns_its_object_value(gateway):
    r = gateway.request("GET", "/api/v1/config/refresh_interval",
                        headers=gateway.bearer(role="user"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["key"] == "refresh_interval"
    assert isinstance(doc["value"], dict)


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
