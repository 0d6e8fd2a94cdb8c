"""Clients of the gateway's event channels (nchan): an SSE reader and a
WebSocket helper, both on the plain-HTTP port."""

import json
import socket
import time

import websocket


class Sse:
    """One EventSource subscription: GET /events/<channel> kept open, read
    from the raw socket (a read may time out and the next one go on)."""

    def __init__(self, port, path, headers=None, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        h = {"Host": "127.0.0.1:%d" % port, "Accept": "text/event-stream"}
        h.update(headers or {})
        head = "GET %s HTTP/1.1\r\n%s\r\n" % (path, "".join(
            "%s: %s\r\n" % kv for kv in h.items()))
        self.sock.sendall(head.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.body = b""
        if self.status != 200:
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
            self.body = self.buf[:n]
            self.sock.close()

    def getheader(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body)

    def _line(self, deadline):
        """The next line of the stream, "" at its end, None on timeout."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return None
            except OSError:
                chunk = b""
            if not chunk:
                self.ended = True
                return ""
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode().rstrip("\r") + "\n"

    ended = False

    def next_event(self, timeout=5):
        """The next event as {"id", "data", "at"} (at: time.monotonic() when
        its last line arrived), or None when nothing came in time or the
        stream ended (then .ended is set). Chunked framing, comments
        (nchan's ": hi") and pings are skipped."""
        deadline = time.monotonic() + timeout
        ev = {}
        while True:
            line = self._line(deadline)
            if not line:
                return None
            line = line[:-1]
            if line == "":
                if "data" in ev and ev.get("event") != "ping":
                    ev["at"] = time.monotonic()
                    return ev
                ev = {}
                continue
            if line.startswith(":") or ":" not in line:
                continue    # a comment, or a chunk size
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                ev["data"] = ev["data"] + "\n" + value if "data" in ev \
                    else value
            elif name in ("id", "event"):
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
        self.sock.close()


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
