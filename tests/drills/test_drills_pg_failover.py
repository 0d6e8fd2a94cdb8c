"""Postgres primary switch under load (SPEC 11, issue 19): the worker
reaches Postgres through a libpq multi-host URL with
target_session_attrs=read-write over a primary and its streaming standby
(synchronous replication); the primary dies, the standby is promoted, and
the worker finds it by itself: no restart, no configuration change, no
acknowledged write lost.

Synchronous replication (synchronous_standby_names '*', synchronous_commit
on) is what makes the claim hold for a crash: the primary answers a commit
only once the standby has flushed its WAL, so every write a client heard
200 for is on the standby before the primary can die. The primary is
stopped with `pg_ctl stop -m immediate` (SIGQUIT: no shutdown checkpoint,
no WAL shipped on the way out, as in a crash), not with a fast shutdown,
whose final WAL flush to the walsenders would hide a missing synchronous
setting.
"""

import shutil
import time

import pytest

import drill
import integration_conftest as integration
import stack
from test_drills import HOLD, postgres_down_answer, run_drill


class FailoverStack:
    """Postgres primary + synchronous standby, Redis, nginx and omni-worker
    (2 processes, the ASan build), all of this drill's own; the worker's
    OMNI_DATABASE_URL names both servers, the primary first."""

    def __init__(self):
        self.dir = stack.make_tmpdir("omni-test-drill-")
        self.pg = self.standby = self.redis = self.nginx = self.worker = None
        self.url = None

    def start(self):
        self.pg = stack.Postgres().init()
        res = stack.migrate(["up"], self.pg.url())
        assert res.returncode == 0, res.stdout + res.stderr
        self.standby = stack.PostgresStandby(self.pg).init()
        self.standby.make_synchronous()
        self.url = stack.multi_host_url([self.pg, self.standby],
                                        target_session_attrs="read-write")
        self.redis = stack.Redis().start()
        self.nginx = stack.Nginx(self.dir / "worker.sock",
                                 redis_addr=self.redis.addr,
                                 api_rate="1000000r/s",
                                 extra=drill.NO_LIMIT).start()
        self.worker = stack.Worker(
            self.pg, self.redis, workdir=self.dir,
            env={"OMNI_JWT_PRIVATE_KEY":
                 self.nginx.keys_dir / "jwt-private.pem",
                 "OMNI_DATABASE_URL": self.url}).start()
        self.worker.wait_children()
        return self

    def nginx_crashes(self):
        return [line for line in stack.tail(self.nginx.error_log, 100000)
                .splitlines() if "exited on signal" in line]

    def health(self):
        r = self.nginx.request("GET", "/health")
        return r.status_code, r.json()

    def destroy(self, failed):
        try:
            for service in (self.nginx, self.redis):
                if service is not None:
                    service.destroy()
        finally:
            try:
                if self.worker is not None:
                    integration._finish_worker(self.worker, failed)
            finally:
                for server in (self.standby, self.pg):
                    if server is not None:
                        server.destroy()
                shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def failover_stack(request):
    s = FailoverStack()
    try:
        s.start()
        yield s
    finally:
        s.destroy(integration._failed(request))


def audited_values(server):
    """Every value drill_counter was set to, from config_audit."""
    rows = server.sql(
        "SELECT new_value FROM omni2_dashboard.config_audit "
        "WHERE key = %s", ("drill_counter",), dbname=server.dbname)
    return {row[0]["n"] for row in rows}


def test_postgres_primary_switch(failover_stack, drill_report):
    s = failover_stack
    assert s.standby.replication() == [("streaming", "sync")]
    processes = set(s.worker.children())
    times = {}

    def crash_primary():
        s.pg.stop("immediate")

    def promote():
        times["promote"] = time.monotonic()
        s.standby.promote()
        times["promoted"] = time.monotonic()

    title = "Postgres primary lost, standby promoted %.0f s later" % HOLD
    outcome = run_drill(
        s, drill_report, title,
        "The worker's OMNI_DATABASE_URL is `postgresql://omni:...@"
        "127.0.0.1:P1,127.0.0.1:P2/omni?target_session_attrs=read-write`, "
        "P1 the primary, P2 its streaming standby with synchronous "
        "replication (`synchronous_standby_names = '*'`, "
        "`synchronous_commit = on`). The primary is stopped with `pg_ctl "
        "stop -m immediate` (a crash: no shutdown checkpoint, no WAL "
        "shipped on the way out); %.0f s later the standby is promoted "
        "(`pg_ctl promote`, what Patroni or an operator's runbook does). "
        "The worker is neither restarted nor reconfigured: its pool skips "
        "the dead host and the read-only one until the promotion." % HOLD,
        crash_primary, promote, lambda: s.health()[0] == 200,
        postgres_down_answer,
        "503 database_unavailable (config GET/PUT), 503 from /health")

    acked = {r.value for r in outcome.records if r.method == "PUT" and r.ok}
    unacked = {r.value for r in outcome.records
               if r.method == "PUT" and not r.ok}
    stored = audited_values(s.standby)
    lost = sorted(acked - stored)
    after = {r.value for r in outcome.records if r.method == "PUT" and r.ok
             and r.start > times["promoted"]}
    line, section = drill_report[-1]
    drill_report[-1] = (line, section + "\n".join([
        "| acknowledged PUTs found in config_audit on the new primary | "
        "%d of %d | all |" % (len(acked) - len(lost), len(acked)),
        "| PUTs answered 503 yet committed (client must not assume "
        "either way) | %d of %d | |" % (len(unacked & stored), len(unacked)),
        "| promotion (`pg_ctl promote -w`) | %.2f s | |" % (
            times["promoted"] - times["promote"]),
        "| worker processes replaced | %s | none |" % (
            "none" if set(s.worker.children()) == processes else "some"),
        "",
    ]))

    assert not s.standby.in_recovery()
    assert lost == [], "acknowledged writes lost: %s" % lost[:20]
    # writes were acknowledged on both sides of the switch
    assert min(acked) < min(unacked), (min(acked), sorted(unacked)[:5])
    assert after, "no write acknowledged after the promotion"
    assert set(s.worker.children()) == processes
    r = s.nginx.request("GET", drill.WRITE_KEY,
                        headers=drill.Load(s.nginx).admin)
    assert r.status_code == 200 and r.json()["value"]["n"] == max(stored)
