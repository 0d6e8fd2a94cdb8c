"""MCP `tools/call` of server-everything's `echo` through the gateway's
REST API (`POST /api/v1/mcp/tools/call` through nginx + omni-worker, JWT
checked, role checked, breaker, catalog row, an mcp_performance record)
vs the same call sent to server-everything directly (a Streamable HTTP
POST on one initialized session), each at 1, 8 and 32 connections (wrk,
closed loop: each connection sends its next call when the last answer is
in). The figures are the added p50 and p99 (gateway minus direct, the
medians of the runs' wrk percentiles; SPEC 9: <= 1 ms / <= 3 ms) and both
rates. server-everything is one Node process: at 32 connections it, not
the gateway, sets the rate, and its queueing shows in both columns.
Run by bench.py (with the /mcp rows of mcp.py alone: /usr/bin/python3 tests/bench/bench.py mcp)"""

import http.client
import json
import os
import subprocess
import tempfile

import stack
from mcp_support import Upstream, unique

CONCURRENCY = [int(c) for c in
               os.environ.get("BENCH_MCP_CONNECTIONS", "1,8,32").split(",")]
PROTOCOL = "2025-06-18"


def _lua(body):
    """A wrk script POSTing body."""
    f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    f.write('wrk.method = "POST"\nwrk.body = %s\n' % json.dumps(json.dumps(body)))
    f.write('local seen = 0\nfunction response(status, headers, body)\n'
            '  if status ~= 200 and seen < 1 then seen = seen + 1\n'
            '    io.stderr:write(status .. " " .. body .. "\\n") end\nend\n')
    f.close()
    return f.name


def _session(port):
    """An initialized session on server-everything: its Mcp-Session-Id."""
    head = {"Content-Type": "application/json",
            "Accept": "application/json, text/event-stream"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/mcp", json.dumps({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                       "clientInfo": {"name": "omni-bench",
                                      "version": "1"}}}), head)
        r = conn.getresponse()
        r.read()
        sid = r.getheader("Mcp-Session-Id")
        if r.status != 200 or not sid:
            raise RuntimeError("server-everything initialize: %d" % r.status)
        head.update({"Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTOCOL})
        conn.request("POST", "/mcp", json.dumps({
            "jsonrpc": "2.0", "method": "notifications/initialized"}), head)
        r = conn.getresponse()
        r.read()
        return sid
    finally:
        conn.close()


def _register(nginx, upstream):
    """The upstream registered through the gateway and its catalog read:
    its name."""
    name = unique("bench")
    admin = dict(nginx.bearer(role="admin", lifetime=3600),
                 **{"Content-Type": "application/json"})
    conn = http.client.HTTPConnection("127.0.0.1", nginx.http_port,
                                      timeout=30)
    try:
        conn.request("POST", "/api/v1/mcp/servers", json.dumps({
            "name": name, "url": upstream.url, "timeout_ms": 10000}), admin)
        r = conn.getresponse()
        body = json.loads(r.read())
        if r.status != 201:
            raise RuntimeError("register: %d %s" % (r.status, body))
        conn.request("POST", "/api/v1/mcp/servers/%s/health" % body["id"],
                     None, admin)
        r = conn.getresponse()
        probe = json.loads(r.read())
        if r.status != 200 or not probe["ok"]:
            raise RuntimeError("probe: %d %s" % (r.status, probe))
        return name
    finally:
        conn.close()


def _check(port, path, headers, body):
    """One call before the load: it must answer 200 with the echo."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, json.dumps(body), headers)
        r = conn.getresponse()
        text = r.read().decode(errors="replace")
        if r.status != 200 or "bench" not in text:
            raise RuntimeError("tools/call through the gateway: %d %s"
                               % (r.status, text[:500]))
    finally:
        conn.close()


def _wrk(client, threads, url, headers, script, conns, seconds):
    args = []
    for k, v in headers.items():
        args += ["-H", "%s: %s" % (k, v)]
    r = subprocess.run(
        client + ["wrk", "-t", str(min(threads, conns)), "-c", str(conns),
                  "-d", "%ds" % seconds, "--latency", "-s", script]
        + args + [url], capture_output=True, text=True, check=True)
    if r.stderr:
        print(r.stderr.strip())
    return r.stdout


def run(wrk_parse, summary, row, fmt_ms, client, threads, runs, seconds,
        warmup, nginx):
    """Table lines: per concurrency, direct (baseline) and through the
    gateway, with the added p50/p99 in the target column."""
    upstream = Upstream("everything").start()
    scripts = []
    try:
        sid = _session(upstream.port)
        name = _register(nginx, upstream)
        direct = ("http://127.0.0.1:%d/mcp" % upstream.port,
                  {"Content-Type": "application/json",
                   "Accept": "application/json, text/event-stream",
                   "Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTOCOL},
                  _lua({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": {"name": "echo",
                                   "arguments": {"message": "bench"}}}))
        gated = (nginx.http_url("/api/v1/mcp/tools/call"),
                 dict(nginx.bearer(role="user", lifetime=3600),
                      **{"Content-Type": "application/json"}),
                 _lua({"server": name, "tool": "echo",
                       "arguments": {"message": "bench"}}))
        scripts = [direct[2], gated[2]]
        _check(nginx.http_port, "/api/v1/mcp/tools/call", gated[1],
               {"server": name, "tool": "echo",
                "arguments": {"message": "bench"}})
        lines = []
        for conns in CONCURRENCY:
            got = {}
            for label, (url, headers, script) in (("direct", direct),
                                                  ("gateway", gated)):
                print("bench: mcp tools/call %s c=%d" % (label, conns),
                      flush=True)
                _wrk(client, threads, url, headers, script, conns, warmup)
                got[label] = summary([
                    wrk_parse(_wrk(client, threads, url, headers, script,
                                   conns, seconds), url)
                    for _ in range(runs)])
            d, g = got["direct"], got["gateway"]
            added = "added p50 %s ms, p99 %s ms (<= 1 / <= 3)" % (
                fmt_ms(g["p50"] - d["p50"]), fmt_ms(g["p99"] - d["p99"]))
            lines += [
                row("MCP `tools/call` echo to server-everything directly, "
                    "%d conn (baseline)" % conns, d),
                row("  the same through nginx + worker "
                    "(`POST /api/v1/mcp/tools/call`), %d conn" % conns,
                    g, d, added),
            ]
        return lines
    finally:
        upstream.stop()
        for s in scripts:
            os.unlink(s)
