"""Event channels with nginx of the test's own: subscribers sent away when
their token must be shown again (EVENTS_RECHECK; README "Events")."""

import json
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
import websocket

import stack
from events_support import Sse, ws_connect


def _bearer(gw, role="viewer", **kw):
    return {"Authorization": "Bearer " + gw.token(
        sub="evgw-%s" % uuid.uuid4().hex[:12], role=role, **kw)}


@pytest.fixture
def gateways(worker_factory, redis_server, request):
    """start(n, **extra): n gateways (conf/render.sh values in extra) in
    front of one worker of this test's own, which publishes to the first."""
    made = []

    def start(n, **extra):
        first = stack.Nginx(worker_socket=Path("/nonexistent"),
                            redis_addr=redis_server.addr, extra=extra)
        made.append(first)
        w = worker_factory(env={
            "OMNI_EVENTS_PUBLISH": "unix:%s" % first.events_socket})
        first.worker_socket = w.socket_path
        gws = [first]
        for _ in range(n - 1):
            gw = stack.Nginx(worker_socket=w.socket_path,
                             redis_addr=redis_server.addr, extra=extra)
            made.append(gw)
            gws.append(gw)
        for gw in gws:
            gw.start()
        return gws

    yield start
    for gw in made:
        gw.destroy()


def test_subscriber_must_show_a_valid_token_again_within_recheck(gateways):
    (gw,) = gateways(1, EVENTS_RECHECK="2s")
    # leeway is 30 s: this token is good for about two more seconds
    headers = _bearer(gw, lifetime=-28)
    sub = Sse(gw.http_port, "/events/activity", headers=headers)
    ws = ws_connect(gw.http_port, "/ws/activity", headers=headers)
    try:
        assert sub.status == 200
        t0 = time.monotonic()
        while not sub.ended and time.monotonic() - t0 < 5:
            sub.next_event(0.5)
        assert sub.ended, "the SSE stream stayed open"
        ws.settimeout(5)
        with pytest.raises((websocket.WebSocketConnectionClosedException,
                            ConnectionError)):
            while True:
                op, _ = ws.recv_data(control_frame=True)
                if op == websocket.ABNF.OPCODE_CLOSE:
                    raise ConnectionError("closed")
        assert time.monotonic() - t0 < 5
    finally:
        sub.close()
        ws.close()
    time.sleep(max(0, 2.5 - (time.monotonic() - t0)))
    again = Sse(gw.http_port, "/events/activity", headers=headers)
    assert again.status == 401
    assert again.json()["error"] == "token_expired"


def test_gateways_sharing_redis_share_channels(gateways, redis_server,
                                               migrated):
    """EVENTS_REDIS_URL: nchan keeps the channels in Redis, so an event the
    worker publishes through the first gateway reaches a subscriber of the
    second (SPEC 11). Needs the module's hiredis kept to itself: nchan has
    its own copy (see `config`)."""
    url = "redis://:%s@%s" % (stack.REDIS_PASSWORD, redis_server.addr)
    first, second = gateways(2, EVENTS_REDIS_URL=url)
    key = "evgw_shared_%s" % uuid.uuid4().hex[:10]
    sub = Sse(second.http_port, "/events/activity", headers=_bearer(second))
    try:
        assert sub.status == 200
        t0 = time.monotonic()
        r = first.request("PUT", "/api/v1/config/" + key, json={"n": 1},
                          headers=_bearer(first, "admin"))
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 5
        seen = None
        while seen is None and time.monotonic() < deadline:
            ev = sub.next_event(max(0.05, deadline - time.monotonic()))
            if ev is None:
                break
            msg = json.loads(ev["data"])
            if msg["data"].get("detail", {}).get("key") == key:
                seen = ev
        assert seen is not None, "the second gateway's subscriber got nothing"
        assert seen["at"] - t0 < 1.0
    finally:
        sub.close()
        with psycopg2.connect(migrated.url()) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM omni2_dashboard.dashboard_config"
                        " WHERE key = %s", (key,))
    for gw in (first, second):
        assert "corrupted" not in gw.error_log.read_text()
