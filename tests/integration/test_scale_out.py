"""Scale-out on loopback (SPEC 11, issue 19): 2 gateways, each in front of
its own omni-worker, all sharing the session's Redis and Postgres. What one
gateway admits, revokes or forgets, the other knows: a per-user limit of L
a minute admits exactly L across both, a logout through one is refused by
the other within 1 s, and an API key deleted through one is refused by both
on the very next request."""

import re
import time
import uuid

import pytest

import stack
from auth_support import (
    Client, assert_error, assert_gateway_401, create_key, login, register)

L = 20                  # the limit: L a minute, all L at once (burst L - 1)
RATE = "%dr/m" % L
INTERVAL = 60.0 / L     # s: one more request is admitted after each
REVOKED_WITHIN = 1.0    # s
# a loopback address of these tests' own: the per-IP auth limit's state in
# the shared Redis is keyed by it
SOURCE = "127.0.0.19"


class Gateway(stack.Nginx):
    """conf/nginx.conf.in with the per-user API limit at RATE and burst
    L - 1 (the product's is 40), the per-IP auth limit out of the way."""

    def __init__(self, worker_socket, redis_addr):
        super().__init__(worker_socket=worker_socket, redis_addr=redis_addr,
                         api_rate=RATE, extra={"AUTH_RATE": "10000r/s"})

    def render(self):
        super().render()
        text = self.conf_path.read_text()
        text, n = re.subn(r"(api_per_user rate=%s) burst=40;" % RATE,
                          r"\1 burst=%d;" % (L - 1), text)
        assert n == 1, "no api_per_user zone to set the burst of"
        self.conf_path.write_text(text)


def finish_worker(w):
    """Stops w; fails on a sanitizer report or processes left running."""
    try:
        w.stop()
        report = w.sanitizer_report()
    finally:
        w.destroy()
    assert report is None, "sanitizer report in omni-worker's log:\n" \
        + report
    assert not w.left_behind, w.left_behind


@pytest.fixture(scope="module")
def scaled(migrated, redis_server):
    """(A, B): Clients of two gateways, each before its own worker."""
    started, clients = [], []
    migrated.ensure_running()
    try:
        for _ in range(2):
            w = stack.Worker(migrated, redis_server)
            started.append(w)
            w.start()
            gw = Gateway(w.socket_path, redis_server.addr)
            started.append(gw)
            gw.start()
            clients.append(Client(gw, source=SOURCE))
        yield tuple(clients)
    finally:
        for c in clients:
            c.close()
        for service in reversed(started):
            if isinstance(service, stack.Worker):
                finish_worker(service)
            else:
                service.destroy()


def test_the_two_stacks_are_distinct(scaled):
    a, b = scaled
    assert a.nginx.http_port != b.nginx.http_port
    assert a.nginx.worker_socket != b.nginx.worker_socket
    pids = set()
    for gw in (a, b):
        for _ in range(4):
            r = gw.get("/health")
            assert r.status_code == 200, r.text
            pids.add((gw.nginx.worker_socket, r.json()["pid"]))
    # each gateway reaches only its own worker's processes
    assert len({pid for _, pid in pids}) == len(pids)


def test_one_limit_admits_exactly_l_across_both_gateways(scaled):
    a, b = scaled
    token = a.nginx.token(sub="scale-" + uuid.uuid4().hex, role="user")
    path = "/api/v1/config/refresh_interval"
    answers = []
    started = time.monotonic()
    for i in range(2 * L):
        gw = (a, b)[i % 2]
        r = gw.get(path, token=token)
        answers.append((gw, r))
    elapsed = time.monotonic() - started
    # within one INTERVAL no request is admitted beyond the first L
    assert elapsed < INTERVAL, "too slow to test the burst: %.2f s" % elapsed

    statuses = [r.status_code for _, r in answers]
    assert statuses == [200] * L + [429] * L, statuses
    admitted = {gw: sum(1 for g, r in answers if g is gw
                        and r.status_code == 200) for gw in (a, b)}
    assert admitted == {a: L // 2, b: L // 2}
    assert answers[0][1].headers["X-RateLimit-Limit"] == str(L)
    refused = answers[-1][1]
    assert_error(refused, 429, "rate_limited")
    retry = int(refused.headers["Retry-After"])
    assert 1 <= retry <= INTERVAL + 1, retry

    # the shared state refills at L a minute: one more, through the other
    # gateway, once Retry-After has passed; the next is refused again
    time.sleep(retry)
    assert b.get(path, token=token).status_code == 200
    assert_error(a.get(path, token=token), 429, "rate_limited")
    print("limit %s burst %d: %d requests alternating in %.0f ms, "
          "%d admitted (%d + %d), Retry-After %d s"
          % (RATE, L - 1, 2 * L, 1000 * elapsed, statuses.count(200),
             admitted[a], admitted[b], retry))


def test_logout_through_one_is_refused_by_the_other_within_1s(scaled):
    a, b = scaled
    user = register(a)
    login(a, user)
    # B has verified the token (and cached it) before the logout
    assert b.get("/auth/me", token=user.access).status_code == 200
    assert a.get("/auth/me", token=user.access).status_code == 200

    r = a.post("/auth/logout", token=user.access)
    assert r.status_code == 204, r.text
    logged_out = time.monotonic()
    accepted = 0
    while True:
        r = b.get("/auth/me", token=user.access)
        took = time.monotonic() - logged_out
        if r.status_code == 401:
            break
        assert r.status_code == 200, r.text
        accepted += 1
        assert took < REVOKED_WITHIN, \
            "still accepted by the other gateway %.2f s after" % took
        time.sleep(0.01)
    assert_gateway_401(r, "token_revoked")
    assert_gateway_401(a.get("/auth/me", token=user.access),
                       "token_revoked")
    print("logout through A: refused through B after %.1f ms (%d accepted "
          "before)" % (1000 * took, accepted))
    assert took < REVOKED_WITHIN
    assert accepted == 0


def test_api_key_deleted_through_one_is_refused_by_both_at_once(scaled):
    a, b = scaled
    user = register(a)
    login(a, user)
    doc = create_key(a, token=user.access)
    key = doc["key"]
    for gw in (a, b):
        r = gw.get("/api/v1/api-keys", apikey=key)
        assert r.status_code == 200, r.text
        assert [k["id"] for k in r.json()["items"]] == [doc["id"]]

    r = b.request("DELETE", "/api/v1/api-keys/" + doc["id"],
                  token=user.access)
    assert r.status_code == 204, r.text
    for gw in (a, b):
        assert_error(gw.get("/api/v1/api-keys", apikey=key), 401,
                     "invalid_token")
    # the owner's token still works through both
    for gw in (a, b):
        r = gw.get("/api/v1/api-keys", token=user.access)
        assert r.status_code == 200 and r.json()["items"] == [], r.text
