"""MCP `tools/call` of server-everything's `echo` through the gateway's
REST API (`POST /api/v1/mcp/tools/call` through nginx + omni-worker, JWT
checked, role checked, breaker, catalog, an mcp_performance record)
vs the same call sent to server-everything directly (a Streamable HTTP
POST on one initialized session), each at 1, 8 and 32 connections (wrk,
closed loop: each connection sends its next call when the last answer is
in). Alternating rounds, medians and CPU µs per call as in mcp.py (ab()).
server-everything is one Node process, placed as in mcp.py (beside wrk
by default): at 32 connections it, not the gateway, sets the rate, and
its queueing shows in both columns. The REST route's paced (open loop)
rows, beside `/mcp`'s on the same upstream, are in mcp.py (paced_rows()).
Run by bench.py (with the /mcp rows of mcp.py alone:
/usr/bin/python3 tests/bench/bench.py mcp)"""

import stack
from mcp_support import Upstream, unique

import mcp


def run(wrk_parse, summary, row, fmt_ms, client, threads, runs, seconds,
        warmup, nginx, product=None):
    """Table lines: per concurrency, direct (baseline) and through the
    gateway, with the added p50/p99 and CPU per call."""
    tmp = stack.make_tmpdir("omni-bench-mcp-rest-")
    upstream = Upstream("everything").start()
    mcp.outside(upstream)

    def on_client(cmd):
        return client + cmd

    try:
        name = mcp.register(nginx, upstream, unique("bench"))
        direct_h = mcp.session(upstream.url, {})
        body = {"server": name, "tool": "echo",
                "arguments": {"message": "bench"}}
        url = nginx.http_url("/api/v1/mcp/tools/call")
        gated_h = dict(nginx.bearer(role="user", lifetime=3600),
                       **{"Content-Type": "application/json"})
        mcp.check(upstream.url, direct_h, mcp.CALL)
        mcp.check(url, gated_h, body)
        direct = (upstream.url,
                  mcp._script(tmp, "direct", direct_h, mcp.CALL))
        gated = (url, mcp._script(tmp, "rest", gated_h, body))
        pgids = mcp.groups(upstream, product)
        lines = []
        for conns in mcp.CONCURRENCY:
            print("bench: mcp REST c=%d (load %s)" % (conns, mcp.load_avg()),
                  flush=True)
            seen = len(mcp.timings(product.worker))
            base, case = mcp.ab(on_client, threads, conns, direct, gated,
                                pgids)
            lines += mcp.rows(row, "nginx + worker "
                              "(`POST /api/v1/mcp/tools/call`)", conns,
                              base, case)
            mcp.show_timings(product.worker, seen, conns)
        return lines
    finally:
        upstream.stop()
