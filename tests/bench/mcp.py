"""Bench rows for /mcp (SPEC section 9): `tools/call` of server-everything's
`echo` through the product (nginx + module + omni-worker, a bearer token,
an Omni session) vs the same call sent to server-everything directly (its
own session), at 1, 8 and 32 connections; the rows give both and the
latency Omni adds (p50, p99). wrk sends the JSON-RPC POST (a Lua script);
every answer must be 2xx."""

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

import stack  # noqa: E402
from mcp_support import Upstream  # noqa: E402

CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "bench"}}}
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "1"}}}


def _post(url, body, headers):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers.get("Mcp-Session-Id"), r.read()


def session(url, headers):
    """An initialized legacy session at url: the headers a call needs."""
    h = dict(headers, **{"Content-Type": "application/json",
                         "Accept": "application/json, text/event-stream"})
    sid, _ = _post(url, INIT, h)
    h["Mcp-Session-Id"] = sid
    h["MCP-Protocol-Version"] = "2025-11-25"
    _post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, h)
    return h


def wrk_post(client, threads, seconds, conns, url, headers, body, tmp):
    script = Path(tmp) / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.body = %s\n' % json.dumps(json.dumps(body))
        + "".join('wrk.headers[%s] = %s\n' % (json.dumps(k), json.dumps(v))
                  for k, v in headers.items()))
    out = subprocess.run(
        client(["wrk", "-t", str(min(threads, conns)), "-c", str(conns),
                "-d", "%ds" % seconds, "--latency", "-s", str(script),
                url]),
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    if re.search(r"Non-2xx or 3xx responses|Socket errors", out):
        raise RuntimeError("wrk saw failures on %s:\n%s" % (url, out))
    return rps, _ms(lat["50"]), _ms(lat["99"]), 0


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def run(repeat, summary, row, client, threads, seconds, product):
    """Table lines: per concurrency, server-everything directly (baseline)
    and through /mcp, with the added p50/p99."""
    tmp = stack.make_tmpdir("omni-bench-mcp-")
    up = Upstream("everything").start()
    lines = []
    try:
        w, n = product.worker, product.nginx
        h = {"X-User-Role": "admin", "X-User-Id": "bench",
             "Content-Type": "application/json"}
        r = w.request("POST", "/api/v1/mcp/servers", h, json.dumps(
            {"name": "bench", "url": up.url, "timeout_ms": 10000}))
        if r.status != 201:
            raise RuntimeError(r.body)
        s = r.json()
        w.request("POST", "/api/v1/mcp/servers/%s/health" % s["id"], h)
        direct_h = session(up.url, {})
        omni_url = n.http_url("/mcp")
        omni_h = session(omni_url, n.bearer(role="user", lifetime=3600))
        omni_call = dict(CALL, params={"name": "bench__echo",
                                       "arguments": {"message": "bench"}})
        for conns in (1, 8, 32):
            def direct(_, seconds=seconds, c=conns):
                return wrk_post(client, threads, seconds, c, up.url,
                                direct_h, CALL, tmp)

            def omni(_, seconds=seconds, c=conns):
                return wrk_post(client, threads, seconds, c, omni_url,
                                omni_h, omni_call, tmp)
            base = summary(repeat(direct, "server-everything c=%d" % conns))
            via = summary(repeat(omni, "/mcp c=%d" % conns))
            added = "added p50 %.2f ms, p99 %.2f ms" % (
                via["p50"] - base["p50"], via["p99"] - base["p99"])
            lines += [
                row("MCP `tools/call` echo, server-everything directly, "
                    "%d conn (baseline)" % conns, base),
                row("  the same through nginx + module + worker `/mcp` "
                    "(%s)" % added, via, base,
                    "added p50 <= 1 ms, p99 <= 3 ms"),
            ]
    finally:
        up.stop()
    return lines
