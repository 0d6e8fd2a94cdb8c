"""`omni-worker migrate up|down N|status` against fresh databases."""

import re
import shutil
from pathlib import Path

import pytest

import stack

UP_FILE = re.compile(r"^(\d+)_([A-Za-z0-9_-]+)\.sql$")


def _migrations(sql_dir=stack.SQL_DIR):
    """[(version, name, up file name)] in version order."""
    found = []
    for path in Path(sql_dir).iterdir():
        m = UP_FILE.match(path.name)
        if m:
            found.append((int(m.group(1)), m.group(2), path.name))
    return sorted(found)


MIGRATIONS = _migrations()


@pytest.fixture
def scratch_dir():
    path = stack.make_tmpdir("omni-test-sql-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _migrate(pg, db, *args, sql_dir=stack.SQL_DIR):
    return stack.migrate(args, pg.url(db), sql_dir=sql_dir)


def _ok(res):
    assert res.returncode == 0, "exit %d:\n%s%s" % (
        res.returncode, res.stdout, res.stderr)
    return res


def _applied(pg, db):
    """[(version, count)] recorded in omni_schema_migrations."""
    return pg.sql("SELECT version, count(*) FROM public.omni_schema_migrations"
                  " GROUP BY version ORDER BY version", dbname=db)


# every object a migration can create, outside the system schemas and the
# migrations' own bookkeeping table
SNAPSHOT_SQL = r"""
WITH ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'
)
SELECT 'schema', nspname FROM ns
UNION ALL
SELECT 'relation ' || c.relkind::text, ns.nspname || '.' || c.relname
FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
WHERE c.relname NOT LIKE 'omni\_schema\_migrations%'
UNION ALL
SELECT 'routine', p.oid::regprocedure::text || ' ' || l.lanname || ' '
    || md5(coalesce(p.prosrc, ''))
FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
UNION ALL
SELECT 'type', ns.nspname || '.' || t.typname
FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
WHERE t.typname NOT LIKE '%omni\_schema\_migrations'
UNION ALL
SELECT 'constraint', ns.nspname || '.' || co.conname
FROM pg_constraint co JOIN ns ON ns.oid = co.connamespace
WHERE co.conname NOT LIKE 'omni\_schema\_migrations%'
UNION ALL
SELECT 'trigger', tg.tgname || ' on ' || tg.tgrelid::regclass::text
FROM pg_trigger tg WHERE NOT tg.tgisinternal
UNION ALL
SELECT 'extension', extname FROM pg_extension
"""


# and the seeded data a migration may rewrite
CONFIG_SQL = """
SELECT 'config ' || key, value::text || ' -- ' || coalesce(description, '')
FROM omni2_dashboard.dashboard_config
"""


def _snapshot(pg, db):
    found = set(pg.sql(SNAPSHOT_SQL, dbname=db))
    if ("relation r", "omni2_dashboard.dashboard_config") in found:
        found |= set(pg.sql(CONFIG_SQL, dbname=db))
    return found


def test_migrate_status_lists_every_migration_pending(pg, fresh_db):
    db = fresh_db()
    res = _ok(_migrate(pg, db, "status"))
    for version, name, _ in MIGRATIONS:
        line = r"^%03d\s+%s\s+pending\b" % (version, re.escape(name))
        assert re.search(line, res.stdout, re.M), res.stdout


def test_migrate_up_applies_every_migration_once(pg, fresh_db):
    db = fresh_db()
    _ok(_migrate(pg, db, "up"))
    assert _applied(pg, db) == [(v, 1) for v, _, _ in MIGRATIONS]


def test_migrate_up_on_an_up_to_date_database_changes_nothing(pg, fresh_db):
    db = fresh_db()
    _ok(_migrate(pg, db, "up"))
    before = _snapshot(pg, db)
    _ok(_migrate(pg, db, "up"))
    assert _snapshot(pg, db) == before
    assert _applied(pg, db) == [(v, 1) for v, _, _ in MIGRATIONS]


def test_migrate_down_1_reverts_the_last_migration(pg, fresh_db, scratch_dir):
    # what the database looks like without the last migration
    last_version, last_name, last_file = MIGRATIONS[-1]
    shutil.copytree(stack.SQL_DIR, scratch_dir / "sql")
    (scratch_dir / "sql" / last_file).unlink()
    (scratch_dir / "sql" / last_file.replace(".sql", ".down.sql")).unlink(
        missing_ok=True)
    expected_db = fresh_db()
    _ok(_migrate(pg, expected_db, "up", sql_dir=scratch_dir / "sql"))

    db = fresh_db()
    _ok(_migrate(pg, db, "up"))
    assert _snapshot(pg, db) != _snapshot(pg, expected_db), \
        "%s creates nothing to revert" % last_file
    _ok(_migrate(pg, db, "down", "1"))

    assert _applied(pg, db) == [(v, 1) for v, _, _ in MIGRATIONS[:-1]]
    assert _snapshot(pg, db) == _snapshot(pg, expected_db)


def test_migrate_up_after_down_1_reapplies_the_last_migration(pg, fresh_db):
    db = fresh_db()
    _ok(_migrate(pg, db, "up"))
    migrated = _snapshot(pg, db)
    _ok(_migrate(pg, db, "down", "1"))
    _ok(_migrate(pg, db, "up"))
    assert _applied(pg, db) == [(v, 1) for v, _, _ in MIGRATIONS]
    assert _snapshot(pg, db) == migrated


def test_migrate_up_refuses_a_changed_applied_migration_naming_it(
        pg, fresh_db, scratch_dir):
    sql_dir = scratch_dir / "sql"
    shutil.copytree(stack.SQL_DIR, sql_dir)
    db = fresh_db()
    _ok(_migrate(pg, db, "up", sql_dir=sql_dir))

    _, _, first_file = MIGRATIONS[0]
    with open(sql_dir / first_file, "a") as f:
        f.write("\nSELECT 1; -- edited after it was applied\n")
    res = _migrate(pg, db, "up", sql_dir=sql_dir)
    assert res.returncode != 0, res.stdout
    assert first_file in res.stdout + res.stderr


def test_concurrent_migrate_up_runs_apply_each_version_once(pg, fresh_db):
    db = fresh_db()
    runs = [stack.migrate_popen(["up"], pg.url(db)) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, "exit %d:\n%s%s" % (run.returncode, out,
                                                        err)
    assert _applied(pg, db) == [(v, 1) for v, _, _ in MIGRATIONS]
