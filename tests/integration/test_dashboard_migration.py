"""Migration 007: the seeded dashboard settings in the platform's shapes
(SPEC section 6), on fresh databases and on ones holding customised values
of the old shapes; up, down and up again."""

import json
from pathlib import Path
import shutil

import pytest

import stack

MIGRATION = "007_dashboard_contract_keys"

# SPEC section 6, members and types
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

# values an admin stored through the old API (003's shapes, customised,
# with members of their own)
OLD_CUSTOM = {
    "alert_thresholds": {"error_rate_percent": 7.5, "p95_ms": 800,
                         "p99_ms": 2500, "mcp_failure_count": 5,
                         "team": "ops"},
    "chart_settings": {"default_hours": 48, "bucket": "1h",
                       "max_points": 100},
    "dev_features": {"show_debug_panel": True, "mock_data": False},
    "dev_mode": {"enabled": True},
    "live_updates": {"enabled": False, "max_stored_events": 50,
                     "channels": ["activity"]},
    "refresh_interval": {"seconds": 12},
}

NEW_CUSTOM = {
    "alert_thresholds": {"cost_daily": 100, "error_rate": 0.075,
                         "response_time_p99": 2500,
                         "response_time_p95": 800, "mcp_failure_count": 5,
                         "team": "ops"},
    "chart_settings": {"cost_period": "today", "queries_hours": 48,
                       "response_time_hours": 48, "bucket": "1h",
                       "max_points": 100},
    "dev_features": {"websocket_debug": True, "quick_login": False,
                     "quick_login_email": "", "quick_login_password": "",
                     "show_debug_panel": True, "mock_data": False},
    "dev_mode": "true",
    "live_updates": {"enabled": False, "max_stored_events": 50,
                     "channels": ["activity"]},
    "refresh_interval": {"stats": 12, "charts": 12, "activity": 12},
}


@pytest.fixture
def before_007(scratch_sql):
    """A copy of sql/ without 007 (and anything after it)."""
    for path in list(scratch_sql.iterdir()):
        if path.name[:3].isdigit() and int(path.name[:3]) >= 7:
            path.unlink()
    return scratch_sql


@pytest.fixture
def scratch_sql():
    path = stack.make_tmpdir("omni-test-sql-")
    try:
        shutil.copytree(stack.SQL_DIR, path / "sql")
        yield path / "sql"
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _ok(res):
    assert res.returncode == 0, "exit %d:\n%s%s" % (
        res.returncode, res.stdout, res.stderr)
    return res


def _config(pg, db):
    return dict(pg.sql("SELECT key, value FROM omni2_dashboard.dashboard_config"
                       " WHERE key = ANY(%s)", (list(CONTRACT),), dbname=db))


def _assert_same(got, want):
    """Equal, and every number of the same JSON kind (an integer stays one:
    dashboards written for the platform parse them so)."""
    assert got == want
    for key, value in want.items():
        if isinstance(value, dict):
            for member, v in value.items():
                assert type(got[key][member]) is type(v), (key, member)


def test_a_fresh_database_holds_exactly_the_contract_defaults(pg, fresh_db):
    db = fresh_db()
    _ok(stack.migrate(["up"], pg.url(db)))
    _assert_same(_config(pg, db), CONTRACT)


def test_customised_old_values_are_carried_over_down_and_up_again(
        pg, fresh_db, before_007):
    db = fresh_db()
    _ok(stack.migrate(["up"], pg.url(db), sql_dir=before_007))
    for key, value in OLD_CUSTOM.items():
        pg.sql("UPDATE omni2_dashboard.dashboard_config SET value = %s::jsonb,"
               " updated_by = 'admin-1' WHERE key = %s",
               (json.dumps(value), key), dbname=db)
    generation = pg.sql("SELECT generation FROM omni2_dashboard.cache_state",
                        dbname=db)[0][0]

    res = _ok(stack.migrate(["up"], pg.url(db)))
    assert MIGRATION in res.stdout
    _assert_same(_config(pg, db), NEW_CUSTOM)
    # every rewrite is in the audit (live_updates needed none), and cached
    # answers are stale
    audit = pg.sql("SELECT key, old_value, new_value, changed_by"
                   " FROM omni2_dashboard.config_audit ORDER BY key",
                   dbname=db)
    assert audit == [(k, OLD_CUSTOM[k], NEW_CUSTOM[k], None)
                     for k in sorted(CONTRACT) if k != "live_updates"]
    assert pg.sql("SELECT generation FROM omni2_dashboard.cache_state",
                  dbname=db)[0][0] > generation

    # down to just before 007, whatever migrations came after it
    since_007 = sum(1 for p in Path(stack.SQL_DIR).glob("[0-9][0-9][0-9]_*.sql")
                    if not p.name.endswith(".down.sql") and int(p.name[:3]) >= 7)
    _ok(stack.migrate(["down", str(since_007)], pg.url(db)))
    _assert_same(_config(pg, db), OLD_CUSTOM)

    _ok(stack.migrate(["up"], pg.url(db)))
    _assert_same(_config(pg, db), NEW_CUSTOM)


def test_contract_members_already_there_win_over_old_ones(pg, fresh_db,
                                                          before_007):
    """A value holding both (written by a platform script while the old
    worker ran) keeps the contract's."""
    db = fresh_db()
    _ok(stack.migrate(["up"], pg.url(db), sql_dir=before_007))
    mixed = {"seconds": 60, "stats": 7, "charts": 90}
    pg.sql("UPDATE omni2_dashboard.dashboard_config SET value = %s::jsonb"
           " WHERE key = 'refresh_interval'", (json.dumps(mixed),),
           dbname=db)
    _ok(stack.migrate(["up"], pg.url(db)))
    assert _config(pg, db)["refresh_interval"] \
        == {"stats": 7, "charts": 90, "activity": 60}


def test_only_default_rows_get_the_new_defaults(pg, fresh_db, before_007):
    """A customised key next to untouched ones: the untouched get the
    contract defaults, the customised keeps its settings."""
    db = fresh_db()
    _ok(stack.migrate(["up"], pg.url(db), sql_dir=before_007))
    pg.sql("UPDATE omni2_dashboard.dashboard_config SET value = %s::jsonb"
           " WHERE key = 'refresh_interval'",
           (json.dumps({"seconds": 30, "ui": "compact"}),), dbname=db)
    _ok(stack.migrate(["up"], pg.url(db)))
    got = _config(pg, db)
    assert got["refresh_interval"] == {"stats": 30, "charts": 30,
                                       "activity": 30, "ui": "compact"}
    assert {k: v for k, v in got.items() if k != "refresh_interval"} \
        == {k: v for k, v in CONTRACT.items() if k != "refresh_interval"}
    assert pg.sql("SELECT count(*) FROM omni2_dashboard.config_audit"
                  " WHERE key = 'alert_thresholds'", dbname=db)[0][0] == 1
