"""Fixtures: real Postgres, Redis, omni-worker and nginx (see stack.py).

Session-scoped services serve the read-only tests; tests that kill, stop or
signal something take their own worker (`own_worker`, `worker_factory`).
"""

import itertools
import os
import shutil
import signal

import pytest
import urllib3

import stack

# the gateway's dev certificate is self-signed
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

# a hung test fails instead of hanging `make test`
TEST_TIMEOUT = int(os.environ.get("OMNI_TEST_TIMEOUT", "120"))


def pytest_configure(config):
    stack.sweep_stale_tmpdirs()
    # pytest resets warning filters per test: disable_warnings alone is lost
    config.addinivalue_line(
        "filterwarnings",
        "ignore::urllib3.exceptions.InsecureRequestWarning")
    # SIGTERM (CI cancelling the job) tears fixtures down like Ctrl-C does
    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, interrupt)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    def expired(signum, frame):
        raise TimeoutError("test ran longer than %ds (OMNI_TEST_TIMEOUT)"
                           % TEST_TIMEOUT)
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


def _failed(request):
    node = request.node
    return any(getattr(getattr(node, "rep_" + when, None), "failed", False)
               for when in ("setup", "call"))


# --- services ----------------------------------------------------------------

@pytest.fixture(scope="session")
def pg():
    """Postgres 15 with role and database `omni`, for the whole session."""
    server = stack.Postgres()
    try:
        server.init()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def redis_server():
    server = stack.Redis()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def private_redis():
    """A redis-server of one test alone, for tests that count commands:
    the counts are server-wide, and workers of other tests poll the
    session's Redis."""
    server = stack.Redis()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def migrated(pg):
    """pg with database omni migrated up (`omni-worker migrate up`)."""
    res = stack.migrate(["up"], pg.url())
    if res.returncode != 0:
        pytest.fail("migrate up failed (%d):\n%s%s"
                    % (res.returncode, res.stdout, res.stderr), pytrace=False)
    return pg


_db_numbers = itertools.count(1)


@pytest.fixture
def fresh_db(pg):
    """Creates empty databases owned by omni (omni_mig_<n>); returns a
    function name -> URL. Dropped after the test."""
    created = []

    def create():
        name = "omni_mig_%d_%d" % (os.getpid(), next(_db_numbers))
        pg.ensure_running()
        pg.create_database(name)
        created.append(name)
        return name

    yield create
    for name in created:
        pg.drop_database(name)


@pytest.fixture(scope="session")
def shared_dir():
    """Holds the shared worker's socket, so nginx can be configured with
    its path before (or without) the worker."""
    path = stack.make_tmpdir("omni-test-shared-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _finish_worker(w, show_log):
    """Stops w; prints its log when the test failed; fails on a sanitizer
    report in the log or on processes the master left running."""
    try:
        w.stop()
        if show_log:
            print("--- %s (tail) ---\n%s"
                  % (w.log_path, stack.tail(w.log_path, 30)))
        report = w.sanitizer_report()
    finally:
        w.destroy()
    if report:
        pytest.fail("sanitizer report in omni-worker's log:\n" + report,
                    pytrace=False)
    if w.left_behind:
        pytest.fail("omni-worker's master exited leaving %s running"
                    % w.left_behind, pytrace=False)


@pytest.fixture(scope="session")
def worker(migrated, redis_server, shared_dir):
    """The shared omni-worker (2 processes) for tests that break nothing."""
    w = stack.Worker(migrated, redis_server, workdir=shared_dir, env={
        "OMNI_EVENTS_PUBLISH": "unix:%s" % (shared_dir / "events.sock")})
    try:
        w.start()
    except Exception:
        _finish_worker(w, True)
        raise
    yield w
    _finish_worker(w, False)


@pytest.fixture
def worker_factory(migrated, redis_server, request):
    """Starts workers of this test's own: factory(workers=2, env=None,
    wait=True, binary=None: the ASan build). Stopped after the test."""
    started = []

    def start(workers=2, env=None, wait=True, binary=None):
        migrated.ensure_running()
        w = stack.Worker(migrated, redis_server, workers=workers, env=env,
                         binary=binary)
        started.append(w)
        w.start(wait=wait)
        return w

    yield start
    errors = []
    for w in started:
        try:
            _finish_worker(w, _failed(request))
        except BaseException as e:   # finish the others first
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def own_worker(worker_factory):
    """A worker this test may kill, signal or starve."""
    return worker_factory()


@pytest.fixture(scope="session")
def nginx(shared_dir, redis_server):
    """nginx + ngx_http_omni_module, proxying to the shared worker's socket,
    with the session's Redis for limits and revocation."""
    server = stack.Nginx(worker_socket=shared_dir / "worker.sock",
                         redis_addr=redis_server.addr,
                         events_socket=shared_dir / "events.sock")
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def gateway(nginx, worker):
    """nginx with the shared worker behind it."""
    return nginx


# --- the gateway's JWT tests (test_jwt*.py, test_nginx_config.py) ------------

@pytest.fixture(scope="session")
def jwt_keys():
    """RSA, EC, Ed25519 key pairs, HMAC secrets and a JWKS, made by openssl
    in a temp dir (jwt_support.JwtKeys)."""
    import jwt_support
    keys = jwt_support.JwtKeys()
    try:
        yield keys.generate()
    finally:
        keys.destroy()


@pytest.fixture(scope="session")
def echo_upstream():
    """An HTTP server answering with every header line it received."""
    import jwt_upstream
    server = jwt_upstream.EchoUpstream().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def jwt_gateway(jwt_keys, echo_upstream):
    """nginx + the module from fixtures/nginx-jwt.conf.in (no worker, no
    Postgres) in front of echo_upstream."""
    import jwt_support
    server = jwt_support.JwtGateway(jwt_keys, echo_upstream.port)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def jwt_nginx_survives(jwt_gateway):
    """Fails the test when an nginx worker crashed or nginx logged an alert
    while it ran (a crash is otherwise only a retried request)."""
    log = jwt_gateway.error_log
    start = log.stat().st_size if log.exists() else 0
    yield
    with open(log, "rb") as f:
        f.seek(start)
        new = f.read().decode(errors="replace")
    bad = [line for line in new.splitlines()
           if "exited on signal" in line or "[alert]" in line
           or "[crit]" in line]
    assert not bad, "nginx error.log during the test:\n" + "\n".join(bad)
    assert jwt_gateway.alive(), "nginx exited:\n" + new[-3000:]
