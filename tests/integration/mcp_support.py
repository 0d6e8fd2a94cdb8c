"""Shared pieces of the MCP tests: a worker with a sealing key (and nginx
in front of it), requests with an identity, and the MCP upstreams
(server-everything and the SDK fixtures under fixtures/mcp/, installed by
`make mcp-node`)."""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import urllib.request
import uuid
from pathlib import Path

import stack

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mcp"
NODE_DIR = REPO / "build" / "mcp-node"


def key_file(directory):
    path = Path(directory) / "mcp-secret.key"
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def mcp_stack(migrated, redis_server, env=None, nginx=None, key=None):
    """An omni-worker with an MCP sealing key (key: a key file shared with
    another worker, else a new one) and env; with nginx (a dict of
    stack.Nginx options) nginx + module in front of it. Yields the worker,
    or (worker, nginx). On the way out both stop, and the worker's log must
    hold no sanitizer report."""
    env = dict(env or {})
    env.setdefault("OMNI_MCP_SECRET_KEY_FILE",
                   key or key_file(stack.make_tmpdir("omni-test-mcp-")))
    w = stack.Worker(migrated, redis_server, env=env)
    n = None
    try:
        w.start()
        if nginx is not None:
            n = stack.Nginx(worker_socket=w.socket_path,
                            redis_addr=redis_server.addr, **nginx)
            n.start()
        yield w if n is None else (w, n)
    finally:
        if n is not None:
            n.destroy()
        w.stop()
        report = w.sanitizer_report()
        w.destroy()
    assert not report, report


@contextlib.contextmanager
def auth_proxy(nginx, role="developer"):
    """A local pass-through proxy to nginx adding a bearer token of role
    (fixtures/mcp/auth_proxy.cjs): for clients that cannot send one, as
    the conformance suite's CLI. Yields its base URL."""
    port = stack.free_port()
    proxy = subprocess.Popen(
        [shutil.which("node"), str(FIXTURES / "auth_proxy.cjs")],
        env={"PATH": "/usr/bin:/bin", "PORT": str(port),
             "TARGET": "http://127.0.0.1:%d" % nginx.http_port,
             "TOKEN": nginx.token(sub="conformance", role=role,
                                  lifetime=3600)},
        stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        stack.wait_until(lambda: _listening(port), 10, "the auth proxy")
        yield "http://127.0.0.1:%d" % port
    finally:
        proxy.kill()
        proxy.wait(10)


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def who(role="admin"):
    return {"X-User-Role": role, "X-User-Id": str(uuid.uuid4()),
            "X-User-Username": "mcp-" + role,
            "Content-Type": "application/json"}


def call(worker, method, path, body=None, role="admin", headers=None):
    h = who(role)
    h.update(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return worker.request(method, path, h, data, timeout=30)


def unique(prefix="s"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


class Upstream:
    """One MCP server process on a free loopback port, bound to 127.0.0.1
    (server-everything listens on every interface unless the preload
    narrows it) and given a minimal environment."""

    def __init__(self, kind, args=(), port=None, env=None):
        self.kind = kind
        self.args = list(args)
        self.port = port or stack.free_port()
        self.extra_env = dict(env or {})
        self.proc = None
        self.log_path = Path(stack.make_tmpdir("omni-mcp-up-")) / "log"

    @property
    def url(self):
        return "http://127.0.0.1:%d/mcp" % self.port

    def command(self):
        node = shutil.which("node")
        preload = str(FIXTURES / "listen_loopback.cjs")
        if self.kind == "everything":
            main = NODE_DIR / "node_modules" / "@modelcontextprotocol" \
                / "server-everything" / "dist" / "index.js"
            return [node, "--require", preload, str(main), "streamableHttp"]
        return [node, "--require", preload, str(FIXTURES / self.kind)] \
            + self.args

    def start(self):
        if not (NODE_DIR / "node_modules").exists():
            raise RuntimeError("MCP node packages missing: make mcp-node")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "PORT": str(self.port), "NODE_PATH": str(NODE_DIR /
                                                        "node_modules")}
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), env=env, cwd=str(NODE_DIR),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        stack.wait_until(self._listening, 20,
                         "%s to listen on %d" % (self.kind, self.port))
        return self

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited: %s" % (
                self.kind, self.log_path.read_text(errors="replace")[-2000:]))
        return _listening(self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def pause(self):
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.killpg(self.proc.pid, signal.SIGCONT)

    def ctl(self, what):
        """A fixture's /ctl/ switch (legacy.cjs: fail, stall, extra,
        describe, count...): its JSON answer."""
        with urllib.request.urlopen("http://127.0.0.1:%d/ctl/%s"
                                    % (self.port, what), timeout=5) as r:
            return json.loads(r.read())
