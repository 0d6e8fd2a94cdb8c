"""Clients of the gateway's event channels (nchan): an SSE reader and a
WebSocket helper, both on the plain-HTTP port."""

import http.client
import json
import socket
import time

import websocket


class Sse:
    """One EventSource subscription: GET /events/<channel> kept open."""

    def __init__(self, port, path, headers=None, timeout=5):
        self.conn = http.client.HTTPConnection("127.0.0.1", port,
                                               timeout=timeout)
        h = {"Accept": "text/event-stream"}
        h.update(headers or {})
        self.conn.request("GET", path, headers=h)
        self.sock = self.conn.sock    # the response keeps it: no length
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.body = b""
        if self.status != 200:
            self.body = self.resp.read()

    def json(self):
        return json.loads(self.body)

    def next_event(self, timeout=5):
        """The next event as {"id", "data", "at"} (at: time.monotonic() when
        its last line arrived), or None when nothing came in time. Comments
        (nchan's ": hi") and pings are skipped."""
        deadline = time.monotonic() + timeout
        ev = {}
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                line = self.resp.fp.readline()
            except (socket.timeout, TimeoutError):
                return None
            if not line:
                return None
            line = line.decode().rstrip("\r\n")
            if line == "":
                if "data" in ev and ev.get("event") != "ping":
                    ev["at"] = time.monotonic()
                    return ev
                ev = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                ev["data"] = ev["data"] + "\n" + value if "data" in ev \
                    else value
            else:
                ev[name] = value

    def events(self, n, timeout=5):
        """Exactly the next n events (fewer if they stop coming)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            ev = self.next_event(max(0.05, deadline - time.monotonic()))
            if ev is None:
                break
            out.append(ev)
        return out

    def close(self):
        self.resp.close()
        self.conn.close()


def ws_connect(port, path, headers=None, subprotocol=True, timeout=5):
    """A WebSocket to the gateway; raises websocket.WebSocketBadStatusException
    (with .status_code) when the upgrade is refused."""
    return websocket.create_connection(
        "ws://127.0.0.1:%d%s" % (port, path), timeout=timeout,
        header=["%s: %s" % kv for kv in (headers or {}).items()],
        subprotocols=["ws+meta.nchan"] if subprotocol else None)


def ws_message(ws):
    """(nchan message id, the event as a dict) of the next message of a
    ws+meta.nchan WebSocket."""
    text = ws.recv()
    head, _, body = text.partition("\n\n")
    msgid = None
    for line in head.split("\n"):
        if line.startswith("id: "):
            msgid = line[4:]
    return msgid, json.loads(body)
