"""An upstream for the gateway's JWT tests that answers every request with
what it received: method, path and every header line, in order, copies
included (nginx's $http_x_user_id would show only the first copy, and a
spoofed second copy is exactly what the tests look for).

    {"method": "GET", "path": "/hs256/x",
     "headers": [["Host", "echo"], ["X-User-Id", "u1"], ...]}
"""

import http.server
import json
import socket
import threading

import stack


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keepalive from nginx's upstream

    def setup(self):
        super().setup()
        # head and body go out in two writes: without this, Nagle and
        # delayed ACKs add 40 ms to every response
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _echo(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _echo

    def log_message(self, fmt, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class EchoUpstream:
    """The echo server on a free 127.0.0.1 port, in a thread of ours."""

    def __init__(self, port=None):
        self.port = port or stack.free_port()
        self.server = None
        self.thread = None

    def start(self):
        self.server = _Server(("127.0.0.1", self.port), _Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name="jwt-echo-upstream", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)
            self.server = None


class Echo:
    """What the upstream saw, from the gateway's response to a request
    that was let through."""

    def __init__(self, response):
        self.doc = response.json()
        self.path = self.doc["path"]
        self.headers = [tuple(h) for h in self.doc["headers"]]

    def values(self, name):
        """Every value received for header `name` (any case), in order."""
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def names(self):
        return [k for k, _ in self.headers]

    def one(self, name):
        """The one value of `name`; fails when there are 0 or 2+ copies."""
        values = self.values(name)
        assert len(values) == 1, "%s received %d times: %r (all: %r)" % (
            name, len(values), values, self.headers)
        return values[0]

    def absent(self, name):
        return not self.values(name)

    def identity(self):
        """(X-User-Id, X-User-Username, X-User-Role) values as lists."""
        return (self.values("X-User-Id"), self.values("X-User-Username"),
                self.values("X-User-Role"))

    def __repr__(self):
        return "<Echo %s %r>" % (self.path, self.headers)
