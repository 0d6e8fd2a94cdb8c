"""Dashboard configuration, preferences and the activity feed, through the
gateway (nginx + module in front of the shared worker)."""

import json
import uuid

import pytest

ALERTS = "/api/v1/config/alert_thresholds"
GOOD_ALERTS = {"cost_daily": 100, "error_rate": 0.05,
               "response_time_p99": 5000}
GOOD_DEV = {"websocket_debug": True, "quick_login": False,
            "quick_login_email": "", "quick_login_password": ""}


def _who(role):
    """A user of its own (the gateway limits requests per user)."""
    return "dash-%s-%s" % (role, uuid.uuid4().hex[:12])


def _auth(gateway, role="admin", sub=None):
    return gateway.bearer(sub=sub or _who(role), role=role)


def _put(gateway, path, value, role="admin", sub=None):
    return gateway.request("PUT", path, json=value,
                           headers=_auth(gateway, role, sub))


def _get(gateway, path, role="user", sub=None, **kwargs):
    return gateway.request("GET", path, headers=_auth(gateway, role, sub),
                           **kwargs)


@pytest.fixture(autouse=True)
def no_background_activity(migrated):
    """These tests read the newest entries of the shared activity feed.
    Servers earlier modules registered in the shared database (their
    upstreams stopped) would be probed by the shared worker and announced
    down in the middle of a test: none is left to probe."""
    migrated.sql("DELETE FROM omni2.mcp_servers", dbname="omni")


@pytest.fixture
def restore_config(gateway):
    """Puts back every configuration key the test changes (by admin PUT)."""
    saved = {}

    def remember(key):
        r = _get(gateway, "/api/v1/config/" + key, role="admin")
        assert r.status_code == 200, r.text
        saved.setdefault(key, r.json()["value"])

    yield remember
    for key, value in saved.items():
        r = _put(gateway, "/api/v1/config/" + key, value)
        assert r.status_code == 200, r.text


@pytest.fixture
def scratch_key(migrated):
    """A configuration key of this test's own, deleted afterwards (the API
    has no DELETE)."""
    keys = []

    def make(suffix=""):
        key = "test_%s%s" % (uuid.uuid4().hex[:10], suffix)
        keys.append(key)
        return key

    yield make
    for key in keys:
        migrated.sql("DELETE FROM omni2_dashboard.dashboard_config"
                     " WHERE key = %s", (key,), dbname="omni")


def test_admin_writes_config_and_every_role_reads_it(gateway,
                                                     restore_config):
    restore_config("alert_thresholds")
    value = dict(GOOD_ALERTS, response_time_p99=7500, response_time_p95=750)
    r = _put(gateway, ALERTS, value)
    assert r.status_code == 200, r.text
    assert r.json()["value"] == value
    for role in ("user", "viewer", "developer"):
        r = _get(gateway, ALERTS, role=role)
        assert r.status_code == 200, r.text
        assert r.json()["value"] == value


def test_config_put_records_who_when_old_and_new_in_the_audit(
        gateway, migrated, restore_config):
    restore_config("alert_thresholds")
    admin = _who("admin")
    before = _get(gateway, ALERTS).json()["value"]
    value = dict(GOOD_ALERTS, error_rate=0.075)
    r = _put(gateway, ALERTS, value, sub=admin)
    assert r.status_code == 200, r.text
    assert r.json()["updated_by"] == admin
    rows = migrated.sql(
        "SELECT old_value, new_value, changed_by,"
        " changed_at > now() - interval '1 minute'"
        " FROM omni2_dashboard.config_audit"
        " WHERE key = 'alert_thresholds' ORDER BY id DESC LIMIT 1",
        dbname="omni")
    assert rows == [(before, value, admin, True)]


@pytest.mark.parametrize("role", ["user", "viewer", "developer"])
def test_non_admin_gets_403_on_config_put_and_nothing_changes(
        gateway, role):
    before = _get(gateway, ALERTS).json()
    r = _put(gateway, ALERTS, dict(GOOD_ALERTS, error_rate=0.5), role=role)
    # refused at the gateway (limit_except + omni_require_role admin)
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "insufficient_role"
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert _get(gateway, ALERTS).json() == before


@pytest.mark.parametrize("role", ["user", "viewer", "developer", None])
def test_worker_rechecks_the_admin_role_on_config_put(worker, role):
    """Straight to the worker, as if the gateway's check were missing."""
    headers = {"Content-Type": "application/json", "X-User-Id": "someone"}
    if role:
        headers["X-User-Role"] = role
    before = worker.request("GET", "/api/v1/config/alert_thresholds").json()
    r = worker.request("PUT", "/api/v1/config/alert_thresholds", headers,
                       json.dumps(dict(GOOD_ALERTS, error_rate=0.5)))
    assert r.status == 403, r
    assert r.json()["error"] == "forbidden"
    after = worker.request("GET", "/api/v1/config/alert_thresholds").json()
    assert after == before


@pytest.mark.parametrize("change, field", [
    ({"error_rate": 1.5}, "alert_thresholds.error_rate"),
    ({"error_rate": -0.1}, "alert_thresholds.error_rate"),
    ({"error_rate": "5%"}, "alert_thresholds.error_rate"),
    ({"cost_daily": None}, "alert_thresholds.cost_daily"),
    ({"response_time_p99": "fast"}, "alert_thresholds.response_time_p99"),
    ({"response_time_p95": 6000}, "alert_thresholds.response_time_p95"),
    ({"mcp_failure_count": 2.5}, "alert_thresholds.mcp_failure_count"),
    # the names Omni used before 007 are refused, not kept as extras
    ({"error_rate_percent": 5}, "alert_thresholds.error_rate_percent"),
    ({"p95_ms": 1000}, "alert_thresholds.p95_ms"),
])
def test_invalid_alert_thresholds_get_422_naming_the_field(gateway, change,
                                                           field):
    before = _get(gateway, ALERTS).json()
    value = dict(GOOD_ALERTS, **change)
    value = {k: v for k, v in value.items() if v is not None}
    r = _put(gateway, ALERTS, value)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_value"
    assert body["field"] == field
    assert field in body["message"]
    assert _get(gateway, ALERTS).json() == before


CHARTS = {"cost_period": "today", "queries_hours": 24,
          "response_time_hours": 24}
REFRESH = {"stats": 5, "charts": 30, "activity": 5}


@pytest.mark.parametrize("key, value, field", [
    ("chart_settings", dict(CHARTS, bucket="10m"), "chart_settings.bucket"),
    ("chart_settings", dict(CHARTS, queries_hours=48, bucket="5m"),
     "chart_settings.queries_hours"),
    ("chart_settings", dict(CHARTS, cost_period="month"),
     "chart_settings.cost_period"),
    ("chart_settings", {"default_hours": 24, "bucket": "5m",
                        "max_points": 288}, "chart_settings.default_hours"),
    ("dev_features", dict(GOOD_DEV, websocket_debug="yes"),
     "dev_features.websocket_debug"),
    ("dev_features", {"websocket_debug": False, "quick_login": True},
     "dev_features.quick_login_email"),
    ("dev_features", dict(GOOD_DEV, quick_login_password=1234),
     "dev_features.quick_login_password"),
    ("dev_mode", {"enabled": True}, "dev_mode"),
    ("dev_mode", True, "dev_mode"),
    ("dev_mode", "yes", "dev_mode"),
    ("live_updates", {"max_stored_events": 0},
     "live_updates.max_stored_events"),
    ("live_updates", {"enabled": True, "channels": ["activity"]},
     "live_updates.max_stored_events"),
    ("refresh_interval", dict(REFRESH, stats=0), "refresh_interval.stats"),
    ("refresh_interval", dict(REFRESH, charts=3601),
     "refresh_interval.charts"),
    ("refresh_interval", {"stats": 5, "charts": 30},
     "refresh_interval.activity"),
    ("refresh_interval", {"seconds": 30}, "refresh_interval.seconds"),
    ("refresh_interval", [30], "refresh_interval"),
])
def test_other_known_keys_are_validated(gateway, key, value, field):
    before = _get(gateway, "/api/v1/config/" + key, role="admin").json()
    r = _put(gateway, "/api/v1/config/" + key, value)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_value"
    assert r.json()["field"] == field
    assert r.json()["message"].startswith(field + ": ")
    assert _get(gateway, "/api/v1/config/" + key,
                role="admin").json() == before


@pytest.mark.parametrize("key, value", [
    ("alert_thresholds", dict(GOOD_ALERTS, response_time_p95=1500,
                              mcp_failure_count=4, team="ops")),
    ("chart_settings", {"cost_period": "7d", "queries_hours": 168,
                        "response_time_hours": 6, "max_points": 288}),
    ("dev_features", dict(GOOD_DEV, quick_login=True,
                          quick_login_email="dev@example.com",
                          quick_login_password="pw-123",
                          show_debug_panel=True)),
    # the platform's "turn dev features off": no quick-login credentials
    ("dev_features", {"websocket_debug": False, "quick_login": False}),
    ("dev_mode", "true"),
    ("live_updates", {"max_stored_events": 200, "enabled": False,
                      "channels": ["activity"]}),
    ("refresh_interval", {"stats": 10, "charts": 60, "activity": 2,
                          "ui": "compact"}),
])
def test_the_platforms_shapes_with_extras_are_accepted_and_kept(
        gateway, restore_config, key, value):
    restore_config(key)
    r = _put(gateway, "/api/v1/config/" + key, value)
    assert r.status_code == 200, r.text
    assert r.json()["value"] == value
    r = _get(gateway, "/api/v1/config/" + key, role="admin")
    assert r.json()["value"] == value


def test_the_quick_login_password_is_hidden_but_from_admins(
        gateway, restore_config):
    restore_config("dev_features")
    value = dict(GOOD_DEV, quick_login=True,
                 quick_login_email="dev@example.com",
                 quick_login_password="pw-" + uuid.uuid4().hex)
    r = _put(gateway, "/api/v1/config/dev_features", value)
    assert r.status_code == 200, r.text
    hidden = dict(value, quick_login_password="[redacted]")
    for role in ("user", "viewer", "developer"):
        r = _get(gateway, "/api/v1/config/dev_features", role=role)
        assert r.json()["value"] == hidden, role
        assert value["quick_login_password"] not in r.text
        items = _get(gateway, "/api/v1/config", role=role,
                     params={"limit": 500}).json()["items"]
        assert [i["value"] for i in items if i["key"] == "dev_features"] \
            == [hidden]
    assert _get(gateway, "/api/v1/config/dev_features",
                role="admin").json()["value"] == value
    # the feed goes to every role, admins included
    r = _get(gateway, "/api/v1/dashboard/activity", role="admin",
             params={"limit": 20})
    assert _changes_of(r.json()["items"], "dev_features")[0]["detail"][
        "new"] == hidden
    assert value["quick_login_password"] not in r.text


def test_unknown_key_takes_any_object(gateway, scratch_key):
    key = scratch_key()
    value = {"a": [1, {"b": None}], "c": "x", "d": 1.5}
    r = _put(gateway, "/api/v1/config/" + key, value)
    assert r.status_code == 200, r.text
    r = _get(gateway, "/api/v1/config/" + key)
    assert r.json()["value"] == value


def test_a_number_postgres_cannot_hold_gets_422_with_its_path(gateway,
                                                              scratch_key):
    key = scratch_key()
    r = gateway.request("PUT", "/api/v1/config/" + key,
                        data='{"a": {"b": [1, 1e999]}}',
                        headers=dict(_auth(gateway),
                                     **{"Content-Type": "application/json"}))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == key + ".a.b[1]"


def test_secrets_in_config_values_are_hidden_from_non_admins(gateway,
                                                             scratch_key):
    key = scratch_key()
    value = {"host": "mail.example", "password": "hunter2",
             "relays": [{"name": "a", "api_key": "k-123"}], "max_tokens": 5}
    assert _put(gateway, "/api/v1/config/" + key, value).status_code == 200

    hidden = {"host": "mail.example", "password": "[redacted]",
              "relays": [{"name": "a", "api_key": "[redacted]"}],
              "max_tokens": 5}
    for role in ("user", "viewer", "developer"):
        r = _get(gateway, "/api/v1/config/" + key, role=role)
        assert r.json()["value"] == hidden, role
        assert "hunter2" not in r.text and "k-123" not in r.text
    r = _get(gateway, "/api/v1/config/" + key, role="admin")
    assert r.json()["value"] == value

    items = _get(gateway, "/api/v1/config",
                 params={"limit": 500}).json()["items"]
    assert [i["value"] for i in items if i["key"] == key] == [hidden]


def test_a_config_key_named_as_a_secret_is_hidden_whole(gateway,
                                                        scratch_key):
    key = scratch_key("_secret")
    value = {"value": "s3cr3t"}
    assert _put(gateway, "/api/v1/config/" + key, value).status_code == 200
    assert _get(gateway, "/api/v1/config/" + key).json()["value"] \
        == "[redacted]"
    assert _get(gateway, "/api/v1/config/" + key,
                role="admin").json()["value"] == value


# --- preferences -------------------------------------------------------------

def test_preferences_are_per_user(gateway):
    alice, bob = _who("user"), _who("user")
    r = _get(gateway, "/api/v1/preferences", sub=alice)
    assert r.status_code == 200, r.text
    assert r.json() == {"user_id": alice, "preferences": {},
                        "updated_at": None}

    prefs = {"theme": "dark", "widgets": ["stats", "activity"]}
    r = gateway.request("PUT", "/api/v1/preferences", json=prefs,
                        headers=_auth(gateway, "user", alice))
    assert r.status_code == 200, r.text
    assert r.json()["preferences"] == prefs

    assert _get(gateway, "/api/v1/preferences",
                sub=bob).json()["preferences"] == {}
    r = gateway.request("PUT", "/api/v1/preferences", json={"theme": "light"},
                        headers=_auth(gateway, "viewer", bob))
    assert r.status_code == 200, r.text

    mine = _get(gateway, "/api/v1/preferences", sub=alice).json()
    assert mine["user_id"] == alice
    assert mine["preferences"] == prefs
    assert mine["updated_at"].endswith("Z")
    assert _get(gateway, "/api/v1/preferences",
                sub=bob).json()["preferences"] == {"theme": "light"}


def test_preferences_put_replaces_the_whole_object(gateway):
    me = _who("user")
    for prefs in ({"a": 1, "b": 2}, {"b": 3}):
        r = gateway.request("PUT", "/api/v1/preferences", json=prefs,
                            headers=_auth(gateway, "user", me))
        assert r.status_code == 200, r.text
    assert _get(gateway, "/api/v1/preferences",
                sub=me).json()["preferences"] == {"b": 3}


def test_preferences_must_be_an_object(gateway):
    r = gateway.request("PUT", "/api/v1/preferences", json=["dark"],
                        headers=_auth(gateway, "user"))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "preferences"


def test_preferences_without_a_user_get_401(worker):
    r = worker.request("GET", "/api/v1/preferences")
    assert r.status == 401, r.body
    assert r.json()["error"] == "missing_credentials"


# --- activity ----------------------------------------------------------------

def _activity(gateway, **params):
    r = _get(gateway, "/api/v1/dashboard/activity", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _changes_of(items, key):
    """The feed's entries for configuration key `key`: the feed is shared
    with the platform's own events (an MCP server of another module
    announced down), which may land between a test's writes."""
    return [i for i in items if i["type"] == "config.updated"
            and i["detail"].get("key") == key]


def test_config_changes_appear_in_the_activity_feed_newest_first(
        gateway, restore_config):
    restore_config("dev_features")
    admin = _who("admin")
    marker = "flag_" + uuid.uuid4().hex[:8]
    first = dict(GOOD_DEV, websocket_debug=False, **{marker: True})
    second = dict(GOOD_DEV, **{marker: False})
    for value in (first, second):
        r = _put(gateway, "/api/v1/config/dev_features", value, sub=admin)
        assert r.status_code == 200, r.text

    items = _changes_of(_activity(gateway, limit=20)["items"],
                        "dev_features")[:2]
    assert len(items) == 2
    assert [i["actor"] for i in items] == [admin, admin]
    assert items[0]["id"] > items[1]["id"]
    assert items[0]["created_at"] >= items[1]["created_at"]
    # (the feed never holds the quick login password)
    assert items[0]["detail"] == {
        "key": "dev_features",
        "old": dict(first, quick_login_password="[redacted]"),
        "new": dict(second, quick_login_password="[redacted]")}
    assert items[1]["detail"]["new"] \
        == dict(first, quick_login_password="[redacted]")
    assert "dev_features" in items[0]["summary"]


def test_an_unchanged_value_is_not_a_change(gateway, restore_config):
    restore_config("dev_features")
    admin = _who("admin")
    value = dict(GOOD_DEV, marker=admin)
    assert _put(gateway, "/api/v1/config/dev_features", value,
                sub=admin).status_code == 200
    top = _changes_of(_activity(gateway, limit=20)["items"],
                      "dev_features")[0]
    assert _put(gateway, "/api/v1/config/dev_features",
                value).status_code == 200
    assert _changes_of(_activity(gateway, limit=20)["items"],
                       "dev_features")[0]["id"] == top["id"]


def test_activity_never_holds_more_than_max_stored_events(
        gateway, migrated, restore_config, scratch_key):
    restore_config("live_updates")
    live = _get(gateway, "/api/v1/config/live_updates",
                role="admin").json()["value"]
    r = _put(gateway, "/api/v1/config/live_updates",
             dict(live, max_stored_events=3))
    assert r.status_code == 200, r.text

    key = scratch_key()
    for n in range(6):
        r = _put(gateway, "/api/v1/config/" + key, {"n": n})
        assert r.status_code == 200, r.text
        stored = migrated.sql("SELECT count(*) FROM omni2_dashboard.activity",
                              dbname="omni")[0][0]
        assert stored <= 3

    page = _activity(gateway, limit=50)
    assert len(page["items"]) == 3 and page["next_cursor"] is None
    # the newest three; a platform event landing among the writes takes
    # the place of the oldest of them
    mine = [i["detail"]["new"] for i in _changes_of(page["items"], key)]
    assert mine == [{"n": 5}, {"n": 4}, {"n": 3}][:len(mine)]
    assert len(mine) >= 1


def test_activity_pages_with_a_cursor(gateway, scratch_key):
    key = scratch_key()
    for n in range(3):
        assert _put(gateway, "/api/v1/config/" + key,
                    {"n": n}).status_code == 200
    page = _activity(gateway, limit=2)
    assert len(page["items"]) == 2 and page["next_cursor"]
    seen = list(page["items"])
    while len(_changes_of(seen, key)) < 3 and page["next_cursor"]:
        page = _activity(gateway, limit=2, cursor=page["next_cursor"])
        assert page["items"][0]["id"] < seen[-1]["id"]
        seen += page["items"]
    assert [i["detail"]["new"] for i in _changes_of(seen, key)] \
        == [{"n": 2}, {"n": 1}, {"n": 0}]


def test_activity_hides_secrets_of_config_changes_from_everyone(
        gateway, scratch_key):
    key = scratch_key()
    assert _put(gateway, "/api/v1/config/" + key,
                {"user": "u", "password": "hunter2"}).status_code == 200
    for role in ("user", "admin"):
        r = _get(gateway, "/api/v1/dashboard/activity", role=role,
                 params={"limit": 20})
        assert _changes_of(r.json()["items"], key)[0]["detail"]["new"] \
            == {"user": "u", "password": "[redacted]"}
        assert "hunter2" not in r.text


@pytest.mark.parametrize("params, name", [
    ({"limit": 0}, "limit"),
    ({"limit": "x"}, "limit"),
    ({"limit": 501}, "limit"),
    ({"cursor": "abc"}, "cursor"),
    ({"cursor": "-1"}, "cursor"),
])
def test_bad_activity_parameters_get_400_naming_them(gateway, params, name):
    r = _get(gateway, "/api/v1/dashboard/activity", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_parameter"
    assert name in r.json()["message"]


def test_activity_body_is_json_with_items_and_next_cursor(gateway):
    body = json.loads(_get(gateway, "/api/v1/dashboard/activity").text)
    assert set(body) == {"items", "next_cursor"}
