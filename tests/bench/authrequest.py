"""The pattern Omni replaces, as a benchmark baseline (SPEC section 9: the
gateway >= 5x its requests/s): nginx `auth_request` to a Python auth service
(tests/bench/authservice.py: FastAPI on uvicorn, PyJWT) that verifies the
same RS256 token (same key, issuer and audience as the gateway rows) and
answers with identity headers, which nginx copies (`auth_request_set`) to
the same trivial upstream.

uvicorn runs as such a service is commonly deployed: `--workers N`, one
process per core of the machine (bench.py; BENCH_AUTH_WORKERS overrides),
with uvloop and httptools (what `pip install uvicorn[standard]` brings),
access log off, an `async def` handler; nginx keeps connections to it
alive.
"""

import http.client
import os
import shutil
import signal
import subprocess
import sys

import stack

HERE = os.path.dirname(os.path.abspath(__file__))

CONF = """
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {preamble}
    upstream trivial {{
        server unix:{upstream};
        keepalive 64;
    }}
    upstream authservice {{
        server 127.0.0.1:{auth_port};
        keepalive 64;
        # below uvicorn's keep-alive timeout (5 s): nginx closes first
        keepalive_timeout 4s;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;

        location = /_auth {{
            internal;
            proxy_pass http://authservice/verify;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }}

        location /api {{
            auth_request /_auth;
            auth_request_set $auth_user_id $upstream_http_x_user_id;
            auth_request_set $auth_username $upstream_http_x_user_username;
            auth_request_set $auth_role $upstream_http_x_user_role;
            proxy_pass http://trivial;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # replaces any client-sent X-User-*, as omni_headers does
            proxy_set_header X-User-Id $auth_user_id;
            proxy_set_header X-User-Username $auth_username;
            proxy_set_header X-User-Role $auth_role;
        }}

        # what nginx copied from the auth service's answer (checked once)
        location = /identity {{
            auth_request /_auth;
            auth_request_set $auth_user_id $upstream_http_x_user_id;
            auth_request_set $auth_username $upstream_http_x_user_username;
            auth_request_set $auth_role $upstream_http_x_user_role;
            add_header X-Identity "$auth_user_id $auth_username $auth_role";
            proxy_pass http://trivial;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


class AuthService:
    """tests/bench/authservice.py under uvicorn on a free loopback port."""

    def __init__(self, public_key, workers, issuer="bench",
                 audience="bench", redis_addr=None):
        self.port = stack.free_port()
        self.workers = workers
        self.dir = stack.make_tmpdir("omni-bench-authservice-")
        self.log_path = self.dir / "uvicorn.log"
        self.env = dict(os.environ, AUTH_PUBLIC_KEY=str(public_key),
                        AUTH_ISSUER=issuer, AUTH_AUDIENCE=audience)
        if redis_addr is not None:
            # the gateway rows' limit (gateway.py: zone l1, per user)
            # the same Redis as the gateway, on its unix socket as well
            url = ("unix://:%s@%s" % (stack.REDIS_PASSWORD, redis_addr[5:])
                   if redis_addr.startswith("unix:")
                   else "redis://:%s@%s" % (stack.REDIS_PASSWORD, redis_addr))
            self.env.update(AUTH_REDIS_URL=url,
                            AUTH_RATE="1000000", AUTH_BURST="1000")
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "authservice:app",
                 "--app-dir", HERE, "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", str(self.workers),
                 "--loop", "uvloop", "--http", "httptools",
                 "--no-access-log", "--log-level", "warning"],
                env=self.env, cwd=self.dir, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True)
        stack.wait_until(self._ready, 30,
                         "uvicorn on port %d" % self.port, interval=0.2)
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("uvicorn exited %d:\n%s" % (
                self.proc.returncode, stack.tail(self.log_path)))
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/verify")
            return conn.getresponse().status == 401
        except OSError:
            return False
        finally:
            conn.close()

    def destroy(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
            for pid in stack.group_members(self.proc.pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def check(gw, token):
    """The chain answers: 401 without a token, the token's identity as
    nginx copied it with one."""
    status = gw.get("/api/x")[0]
    if status != 401:
        raise RuntimeError("auth_request without a token answered %d"
                           % status)
    status, headers, _ = gw.get("/identity",
                                {"Authorization": "Bearer " + token})
    identity = headers.get("X-Identity")
    if status != 200 or identity != "bench-user bench user":
        raise RuntimeError("auth_request identity: %d %r"
                           % (status, identity))


# the gateway rows (tests/bench/gateway.py) compared with this baseline:
# (row, whether the service limits too)
COMPARED = [
    ("RS256 + headers, cache off", False),
    ("RS256 + headers, cache on", False),
    ("RS256 + RBAC + 1 Redis limit + headers, cache off", True),
    ("RS256 + RBAC + 1 Redis limit + headers, cache on", True),
]


def baseline(measure, summary, workers, auth_workers, upstream, keys,
             tokens, redis_addr=None):
    """The auth_request chain's summary, its service limiting each user in
    Redis when redis_addr is given."""
    service = AuthService(keys["rs256"], auth_workers,
                          redis_addr=redis_addr).start()
    gw = None
    try:
        gw = stack.NginxConf(CONF, "bench-authreq", workers=workers,
                             upstream=upstream,
                             auth_port=service.port).start("/api/x")
        check(gw, tokens["rs256"])
        return summary(measure(
            ("http://127.0.0.1:%d/api/x" % gw.port,
             {"Authorization": "Bearer " + tokens["rs256"]})))
    finally:
        if gw is not None:
            gw.destroy()
        service.destroy()


def run(measure, summary, row, workers, auth_workers, upstream, keys,
        tokens, gateway_rows, redis_addr):
    """Measures the auth_request baselines (the service without and with a
    per-user Redis limit); returns the table's lines: the baselines, then
    the gateway's RS256 rows (gateway_rows: row name -> summary, from the
    same run) as multiples of the one doing the same work."""
    plain = baseline(measure, summary, workers, auth_workers, upstream,
                     keys, tokens)
    limited = baseline(measure, summary, workers, auth_workers, upstream,
                       keys, tokens, redis_addr)
    procs = "%d process%s" % (auth_workers, "es" if auth_workers > 1 else "")
    lines = [
        row("nginx `auth_request` to FastAPI/uvicorn (%s, PyJWT RS256) + "
            "`proxy_pass` (baseline)" % procs, plain),
        row("nginx `auth_request` to FastAPI/uvicorn (%s, PyJWT RS256, a "
            "per-user GCRA limit: one Lua script call in Redis per request, "
            "redis-py asyncio) + `proxy_pass` (baseline for the limit rows)"
            % procs, limited),
    ]
    for name, limits in COMPARED:
        base = limited if limits else plain
        extra = (" (%.1fx the limit-free service)"
                 % (gateway_rows[name]["rps"] / plain["rps"])
                 if limits else "")
        ceil = gateway_rows[name].get("ceil")
        if ceil is not None:
            # what nginx doing nothing but the one RSA verification
            # reaches, or for a limit row the module whose script does
            # only the Redis commands a decision needs (gateway.py)
            what = ("the measured limit ceiling, a script doing only the "
                    "needed Redis commands" if limits else
                    "the measured RS256 ceiling, nginx + one bare "
                    "verification")
            extra += " (%s: %.1fx)" % (what, ceil["rps"] / base["rps"])
        lines.append(row("Omni gateway %s, vs `auth_request`%s%s"
                         % (name, " with the limit" if limits else "",
                            extra),
                         gateway_rows[name], base, ">= 5x", times=True))
    return lines
