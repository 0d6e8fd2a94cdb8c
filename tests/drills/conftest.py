"""Fault drills' fixtures: the integration suite's (tests/integration/
conftest.py: Postgres, hooks, timeouts), plus a stack of each drill's own
(Redis, omni-worker, nginx) that the drill may break, and the report that
collects every drill's table into tests/drills/results.md."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
INTEGRATION = HERE.parent / "integration"
sys.path.insert(0, str(INTEGRATION))

# loaded under a name of its own: this file is `conftest` too
_spec = importlib.util.spec_from_file_location("integration_conftest",
                                               INTEGRATION / "conftest.py")
integration = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = integration
_spec.loader.exec_module(integration)

from integration_conftest import *  # noqa: E402,F401,F403

import drill  # noqa: E402
import stack  # noqa: E402


class Stack:
    """Redis, nginx (conf/nginx.conf.in, its per-user API limit out of the
    way) and omni-worker (2 processes, the ASan build) behind it, all of
    this drill's own; Postgres is the session's."""

    def __init__(self, pg):
        self.pg = pg
        self.dir = stack.make_tmpdir("omni-test-drill-")
        self.redis = self.nginx = self.worker = None

    def start(self):
        self.redis = stack.Redis().start()
        self.nginx = stack.Nginx(self.dir / "worker.sock",
                                 redis_addr=self.redis.addr,
                                 api_rate="1000000r/s",
                                 extra=drill.NO_LIMIT).start()
        self.worker = stack.Worker(
            self.pg, self.redis, workdir=self.dir,
            env={"OMNI_JWT_PRIVATE_KEY":
                 self.nginx.keys_dir / "jwt-private.pem"}).start()
        self.worker.wait_children()
        return self

    def nginx_workers(self):
        return stack.children_of(self.nginx.proc.pid)

    def nginx_crashes(self):
        """error.log lines of nginx workers that died of a signal."""
        return [line for line in stack.tail(self.nginx.error_log, 100000)
                .splitlines() if "exited on signal" in line]

    def gateway_redis_connected(self, answers=8):
        """Whether every nginx worker that answers says it is connected
        to Redis (new connections land on the workers in turn)."""
        states = set()
        for _ in range(answers):
            r = self.nginx.request("GET", "/omni/status")
            states.add(r.json()["configured"]["redis"]["connected"])
        return states == {True}

    def health(self):
        """The worker's /health through the gateway: (status, JSON)."""
        r = self.nginx.request("GET", "/health")
        return r.status_code, r.json()


@pytest.fixture
def drill_stack(migrated, request):
    s = Stack(migrated)
    try:
        s.start()
        yield s
    finally:
        failed = integration._failed(request)
        try:
            if s.nginx is not None:
                s.nginx.destroy()
            if s.redis is not None:
                s.redis.destroy()
        finally:
            if s.worker is not None:
                integration._finish_worker(s.worker, failed)
            shutil.rmtree(s.dir, ignore_errors=True)
        migrated.ensure_running()


_sections = []
_left = []  # drills that ran when the suite did not: results.md stays


def pytest_terminal_summary(terminalreporter):
    # said here: output from a session fixture's teardown is captured
    for ran in _left:
        terminalreporter.write_line(
            "drills: %d of the suite's drills ran; tests/drills/results.md "
            "left as it was (make drills writes it)" % ran)


def _whole_suite(config):
    """Whether this session runs every drill: tests/drills itself, with
    no -k or -m to pick among them. results.md is the whole suite's
    record; one drill run alone must not replace it with its own."""
    return (not config.option.keyword and not config.option.markexpr
            and bool(config.args)
            and all(Path(a).resolve() == HERE for a in config.args))


@pytest.fixture(scope="session")
def drill_report(pytestconfig):
    """Add a drill's results with .append((summary line, section));
    written to tests/drills/results.md when the session ends, if it ran
    the whole suite (otherwise the terminal says so and the file stays)."""
    yield _sections
    if _sections and not _whole_suite(pytestconfig):
        _left.append(len(_sections))
    elif _sections:
        head = ("# Fault drills\n\nWritten by `make drills` "
                "(tests/drills). Load during every drill: %s. The worker is "
                "the ASan/UBSan build (its log is checked for reports). "
                "Recovery is measured from the repair (Redis or Postgres "
                "back, SIGCONT) or, for a signal, from the fault, until "
                "the component reports healthy again and no request fails "
                "any more.\n\n" % drill.description())
        summary = "\n".join([drill.SUMMARY_HEAD]
                            + [line for line, _ in _sections])
        (HERE / "results.md").write_text(
            head + summary + "\n\n" + "\n".join(s for _, s in _sections))
