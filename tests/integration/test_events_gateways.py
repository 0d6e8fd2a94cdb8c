"""Event channels with nginx of the test's own: subscribers sent away when
their token must be shown again (EVENTS_RECHECK; README "Events")."""

import time
import uuid
from pathlib import Path

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
