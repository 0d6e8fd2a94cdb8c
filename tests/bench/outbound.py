"""Bench rows for the worker's outbound HTTP client (io/outbound.c): a
relay built on it (tests/bench/outbound_relay.c: evhttp in, the client out,
one loop, as a worker route calling an MCP server or an LLM provider does)
vs nginx `proxy_pass` (keepalive) to the same upstream, nginx `return 200`
over TCP on loopback. Both are one process on the servers' CPUs; the same
wrk load drives each. The ratio says what the client costs next to nginx's
own upstream code; p99 is reported beside it."""

import http.client
import subprocess

import stack

PROXY_CONF = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {preamble}
    upstream tcp_upstream {{
        server 127.0.0.1:{upstream_port};
        keepalive 1024;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://tcp_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def _relay(upstream_port):
    port = stack.free_port()
    proc = subprocess.Popen(
        [str(stack.BUILD / "outbound-relay"), str(port),
         "http://127.0.0.1:%d/" % upstream_port],
        stdin=subprocess.DEVNULL, start_new_session=True)

    def up():
        if proc.poll() is not None:
            raise RuntimeError("outbound-relay exited %d" % proc.returncode)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()
    stack.wait_until(up, 10, "outbound-relay on port %d" % port)
    return proc, port


def run(measure, summary, row, upstream_port):
    """Table lines: nginx proxy_pass (baseline) and the relay."""
    nginx = stack.NginxConf(PROXY_CONF, "bench-outbound",
                            upstream_port=upstream_port).start()
    relay = None
    try:
        relay, relay_port = _relay(upstream_port)
        proxied = summary(measure("http://127.0.0.1:%d/" % nginx.port))
        relayed = summary(measure("http://127.0.0.1:%d/" % relay_port))
    finally:
        if relay is not None:
            relay.terminate()
            try:
                relay.wait(5)
            except subprocess.TimeoutExpired:
                relay.kill()
        nginx.destroy()
    return [
        row("nginx `proxy_pass` (keepalive, TCP) to nginx `return 200` "
            "(baseline)", proxied),
        row("evhttp + outbound client (`io/outbound.c`, libcurl multi) "
            "relaying to the same upstream", relayed, proxied),
    ]
