"""The outbound HTTP client (worker/src/io/outbound.c) against real local
servers, driven by its harness build/outbound-probe (ASan/UBSan build; see
tests/integration/fixtures/outbound_probe.c for what it prints)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import stack

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import outbound_servers  # noqa: E402

PROBE = stack.BUILD / "outbound-probe"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(scope="module", autouse=True)
def probe_built():
    subprocess.run(["make", "-s", str(PROBE.relative_to(stack.REPO))],
                   cwd=stack.REPO, check=True, timeout=300)


@pytest.fixture
def upstream():
    server = outbound_servers.FaultServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def nginx():
    server = outbound_servers.TlsNginx()
    try:
        server.start()
        yield server
    finally:
        server.stop()


class Run:
    def __init__(self, proc):
        self.code = proc.returncode
        self.stderr = proc.stderr
        self.events = [json.loads(line) for line in proc.stdout.splitlines()]
        self.stats = next(e for e in self.events if e["ev"] == "stats")

    def of(self, req, ev=None):
        return [e for e in self.events
                if e.get("req") == req and (ev is None or e["ev"] == ev)]

    def done(self, req):
        (d,) = self.of(req, "done")
        return d

    def host(self, key):
        (h,) = [h for h in self.stats["hosts"] if h["host"] == key]
        return h


def probe(*args, env=None, timeout=60, inflight=0):
    """Runs the harness; checks it exited cleanly without a sanitizer
    report or a callback after cancel; returns its events."""
    run_env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    run_env.update({"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
                    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"})
    run_env.update(env or {})
    proc = subprocess.run([str(PROBE)] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout,
                          env=run_env, stdin=subprocess.DEVNULL)
    assert not stack.SANITIZER_REPORT.search(proc.stderr), proc.stderr
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    run = Run(proc)
    assert run.stats["inflight"] == inflight
    return run


# --- TLS ---------------------------------------------------------------------

def test_tls_peer_from_the_configured_ca_passes_over_http2(nginx):
    run = probe("--ca", nginx.ca, nginx.url("good", "/hello"))
    done = run.done(0)
    assert done["error"] == "ok", done
    assert (done["status"], done["http_version"]) == (200, 2)
    assert done["bytes"] == len("hello\n")


def test_tls_certificate_from_an_unknown_ca_fails_with_tls_error(nginx):
    run = probe("--ca", nginx.ca, nginx.url("unknown", "/hello"))
    done = run.done(0)
    assert done["error"] == "tls", done
    assert "certificate" in done["detail"].lower()
    assert run.of(0, "headers") == []
    # the curl detail is logged (JSON line on stderr), without the URL path
    assert '"error":"tls"' in run.stderr and "/hello" not in run.stderr


def test_tls_verification_is_on_without_a_ca_file(nginx):
    # the system store does not know the test CA: no insecure default
    done = probe(nginx.url("good", "/hello")).done(0)
    assert done["error"] == "tls", done


def test_tls_certificate_for_another_name_fails(nginx):
    done = probe("--ca", nginx.ca, nginx.url("wrong_name", "/hello")).done(0)
    assert done["error"] == "tls", done


# --- connection reuse --------------------------------------------------------

def _nginx_rows(nginx, port, since):
    return [r for r in nginx.access_log()[since:] if r["port"] == port]


def test_sequential_http2_requests_share_one_tls_connection(nginx):
    since = len(nginx.access_log())
    run = probe("--ca", nginx.ca, *[nginx.url("good", "/hello")] * 5)
    assert [run.done(i)["error"] for i in range(5)] == ["ok"] * 5
    rows = stack.wait_until(
        lambda: len(_nginx_rows(nginx, nginx.ports["good"], since)) == 5
        and _nginx_rows(nginx, nginx.ports["good"], since), 5, "5 log lines")
    assert len({r["conn"] for r in rows}) == 1, rows
    assert [r["n"] for r in rows] == [1, 2, 3, 4, 5]
    assert {r["protocol"] for r in rows} == {"HTTP/2.0"}


def test_parallel_http2_requests_are_multiplexed_on_one_connection(nginx):
    since = len(nginx.access_log())
    run = probe("--ca", nginx.ca, "--parallel",
                *[nginx.url("good", "/hello")] * 5)
    assert [run.done(i)["http_version"] for i in range(5)] == [2] * 5
    rows = stack.wait_until(
        lambda: len(_nginx_rows(nginx, nginx.ports["good"], since)) == 5
        and _nginx_rows(nginx, nginx.ports["good"], since), 5, "5 log lines")
    assert len({r["conn"] for r in rows}) == 1, rows


def test_sequential_http1_requests_share_one_connection(upstream):
    run = probe(*[upstream.url("/ok")] * 4)
    assert [run.done(i)["http_version"] for i in range(4)] == [1] * 4
    assert len(upstream.connections) == 1
    assert upstream.connections[0]["requests"] == 4


# --- size ---------------------------------------------------------------------

def test_10mb_body_arrives_whole_over_http2(nginx):
    run = probe("--ca", nginx.ca,
                nginx.url("good", "/big10m") + "|quiet=1|max_bytes=16777216")
    done = run.done(0)
    assert done["error"] == "ok", done
    assert done["bytes"] == nginx.BIG


def test_size_cap_with_content_length_fails_before_the_body(nginx):
    since = len(nginx.access_log())
    run = probe("--ca", nginx.ca, "--linger", "300",
                nginx.url("plain", "/big10m") + "|max_bytes=1048576")
    done = run.done(0)
    assert done["error"] == "too_large", done
    assert done["bytes"] == 0
    rows = stack.wait_until(
        lambda: _nginx_rows(nginx, nginx.ports["plain"], since), 5, "log")
    # nginx stopped early: the client closed instead of reading 10 MB
    assert rows[0]["sent"] < nginx.BIG, rows


def test_size_cap_on_a_chunked_body_stops_reading(upstream):
    run = probe("--linger", "500",
                upstream.url("/big?n=%d" % (64 << 20))
                + "|quiet=1|max_bytes=1048576")
    done = run.done(0)
    assert done["error"] == "too_large", done
    assert done["bytes"] <= 1 << 20
    stack.wait_until(lambda: upstream.big_result is not None, 5,
                     "the server's send to fail")
    assert upstream.big_result != "complete"
    assert upstream.progress[-1][1] < 64 << 20


# --- deadlines and faults ----------------------------------------------------

def test_stalled_upstream_times_out_within_the_deadline(upstream):
    run = probe(upstream.url("/stall") + "|timeout=500")
    done = run.done(0)
    assert done["error"] == "timeout", done
    assert 450 <= done["ms"] < 1500, done
    stack.wait_until(lambda: upstream.conn(0)["closed"], 5,
                     "the stalled connection to close")


@pytest.mark.parametrize("timeout, error", [(5000, "connect"),
                                            (300, "timeout")])
def test_a_connect_past_its_limit_fails_as_connect_or_timeout(timeout,
                                                              error):
    """A connect that outlasts its own limit is a connect error; one cut
    short by the request's whole deadline is a timeout: the host may be
    fine, the request ran out of time (a caller left with a few ms
    connects with those)."""
    hole = outbound_servers.BlackholeListener()
    try:
        run = probe(hole.url("/") + "|connect_timeout=300|timeout=%d"
                    % timeout)
    finally:
        hole.close()
    done = run.done(0)
    assert done["error"] == error, done
    assert 250 <= done["ms"] < 1500, done


def test_idle_timeout_ends_a_silent_stream(upstream):
    run = probe(upstream.url("/stall") + "|timeout=10000|idle_timeout=1000")
    done = run.done(0)
    assert done["error"] == "timeout", done
    assert 900 <= done["ms"] < 3500, done


def test_reset_mid_body_is_a_reset_error(upstream):
    run = probe(upstream.url("/reset") + "|quiet=1")
    done = run.done(0)
    assert done["error"] == "reset", done
    assert 0 < done["bytes"] < 1000000
    assert done["status"] == 200


def test_clean_close_mid_body_is_a_reset_error(upstream):
    done = probe(upstream.url("/truncate") + "|quiet=1").done(0)
    assert done["error"] == "reset", done
    assert done["bytes"] == 10000


def test_refused_connection_is_a_connect_error():
    done = probe("http://127.0.0.1:%d/" % stack.free_port()).done(0)
    assert done["error"] == "connect", done


# --- streaming ---------------------------------------------------------------

def test_sse_events_arrive_as_the_upstream_sends_them(upstream):
    run = probe(upstream.url("/sse") + "|sse=1")
    assert run.done(0)["error"] == "ok"
    events = run.of(0, "sse")
    assert [(e["type"], e["data"], e["id"]) for e in events] == [
        ("delta", "one", "1"), ("message", "two", "2"),
        ("message", "three", "3"), ("done", "[DONE]", "3")]
    assert run.of(0, "headers")[0]["content_type"] == "text/event-stream"
    # the pieces are 200 ms apart: each event is seen when its last piece
    # arrives, not at the end of the stream
    times = [e["t"] for e in events]
    headers_t = run.of(0, "headers")[0]["t"]
    assert times[0] - headers_t < 150
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[0] >= 150 and gaps[1] >= 350 and gaps[2] >= 150, gaps
    assert run.done(0)["t"] - times[0] >= 800


def test_pause_stops_reading_until_resume(upstream):
    total = 64 << 20
    run = probe(upstream.url("/big?n=%d" % total)
                + "|pause_after=1048576|pause_ms=1500|max_bytes=%d"
                % (total * 2), timeout=120)
    done = run.done(0)
    assert done["error"] == "ok", done
    assert done["bytes"] == total
    (pause,) = run.of(0, "pause")
    (resume,) = run.of(0, "resume")
    assert resume["t"] - pause["t"] >= 1400
    during = [e for e in run.of(0, "data")
              if pause["t"] < e["t"] < resume["t"]]
    assert during == []
    # the server felt it: its sends stalled for most of the pause, with
    # far less than the whole body written by then
    progress = list(upstream.progress)
    gaps = [(b[0] - a[0], a[1]) for a, b in zip(progress, progress[1:])]
    longest, sent_before = max(gaps)
    assert longest >= 1.0, longest
    assert sent_before < total // 2, sent_before


# --- caps --------------------------------------------------------------------

def test_per_host_cap_answers_overloaded_at_once(upstream):
    run = probe("--parallel", "--max-per-host", "2",
                *[upstream.url("/slow")] * 4)
    errors = [run.done(i)["error"] for i in range(4)]
    assert errors == ["ok", "ok", "overloaded", "overloaded"]
    # the two admitted ones ran side by side on two connections
    assert run.done(0)["ms"] < 550 and run.done(1)["ms"] < 550
    assert run.done(2)["ms"] < 100 and run.done(3)["ms"] < 100
    assert "max_per_host" in run.done(2)["detail"]
    host = run.host("http://127.0.0.1:%d" % upstream.port)
    assert host["requests"] == 4
    assert host["errors"]["ok"] == 2 and host["errors"]["overloaded"] == 2
    assert host["latency_count"] == 2


def test_process_cap_counts_every_host(upstream):
    run = probe("--parallel", "--max-inflight", "1",
                upstream.url("/slow"), upstream.url("/slow", host="localhost"))
    assert run.done(0)["error"] == "ok"
    assert run.done(1)["error"] == "overloaded"
    assert "max_inflight" in run.done(1)["detail"]


# --- cancellation --------------------------------------------------------------

def _closed_after_start(upstream):
    c = stack.wait_until(lambda: upstream.conn(0)["closed"] and
                         upstream.conn(0), 5, "the connection to close")
    return c["closed"] - c["opened"]


def test_cancel_ends_callbacks_and_closes_the_connection(upstream):
    run = probe("--linger", "2000",
                upstream.url("/sse-forever") + "|sse=1|cancel_after=400")
    (cancel,) = run.of(0, "cancel")
    assert run.of(0, "done") == []
    assert all(e["t"] <= cancel["t"] for e in run.of(0))
    # the probe lingered 2 s after the cancel: the close is the cancel's
    assert _closed_after_start(upstream) < 1.2
    host = run.host("http://127.0.0.1:%d" % upstream.port)
    assert host["errors"]["cancelled"] == 1


def test_cancel_from_inside_on_data_then_a_new_request(upstream):
    # the second request starts from inside the first one's on_data
    run = probe("--linger", "1500",
                upstream.url("/sse-forever") + "|cancel_on_data=1",
                upstream.url("/ok"))
    (cancel,) = run.of(0, "cancel")
    assert cancel["from"] == "on_data"
    assert run.of(0, "done") == []
    assert len(run.of(0, "data")) == 1
    assert run.done(1)["error"] == "ok"
    assert _closed_after_start(upstream) < 1.0


def test_release_drops_the_rest_and_closes_a_stream_that_goes_on(upstream):
    """omni_out_release from inside on_data: no callback after it, the
    request no longer counts as in flight, and a stream that does not end
    within the drain's 200 ms has its connection closed (the probe lingers
    1.5 s: the close is the drain's deadline, not the probe's exit)."""
    run = probe("--linger", "1500",
                upstream.url("/sse-forever") + "|release_on_data=1")
    assert len(run.of(0, "release")) == 1
    assert run.of(0, "done") == [] and len(run.of(0, "data")) == 1
    assert _closed_after_start(upstream) < 1.0


def test_cancel_from_inside_on_headers(upstream):
    run = probe("--linger", "1500",
                upstream.url("/sse-forever") + "|cancel_on_headers=1")
    assert run.of(0, "cancel")[0]["from"] == "on_headers"
    assert run.of(0, "data") == [] and run.of(0, "done") == []
    assert _closed_after_start(upstream) < 1.0


def test_destroy_with_requests_in_flight_calls_nothing(upstream):
    run = probe("--parallel", "--exit-after", "400",
                upstream.url("/sse-forever"), upstream.url("/stall"),
                inflight=2)
    assert run.events[-1] == {"ev": "destroyed"}
    assert run.of(0, "done") == [] and run.of(1, "done") == []
    assert run.of(0, "data")
    stack.wait_until(lambda: all(c["closed"] for c in upstream.connections)
                     and len(upstream.connections) == 2, 5,
                     "both connections to close")


# --- exactly once --------------------------------------------------------------

def test_non_idempotent_post_is_not_resent_when_a_reused_connection_dies(
        upstream):
    run = probe(upstream.url("/ok"),
                upstream.url("/die") + "|body={\"tool\":1}|idempotent=0")
    done = run.done(1)
    assert done["error"] == "reset", done
    assert "not sent again" in done["detail"]
    assert upstream.count("/die") == 1


def test_idempotent_post_is_resent_on_a_fresh_connection(upstream):
    # the same fault with idempotent=1: libcurl's silent resend happens,
    # which shows the server above really triggered it
    run = probe(upstream.url("/ok"),
                upstream.url("/die") + "|body={\"tool\":1}|idempotent=1")
    done = run.done(1)
    assert done["error"] == "ok", done
    assert upstream.count("/die") == 2
    assert [r["body"] for r in upstream.requests[1:]] == [b'{"tool":1}'] * 2


def test_non_idempotent_request_without_body_takes_a_fresh_connection(
        upstream):
    run = probe(upstream.url("/ok"),
                upstream.url("/die") + "|method=POST|idempotent=0")
    assert run.done(1)["error"] == "ok"
    assert upstream.count("/die") == 1
    assert len(upstream.connections) == 2


# --- proxies and schemes -------------------------------------------------------

def test_proxy_comes_from_the_environment(upstream):
    run = probe("http://upstream.test/ok",
                env={"http_proxy": "http://127.0.0.1:%d" % upstream.port})
    assert run.done(0)["error"] == "ok"
    assert [r["target"] for r in upstream.requests] == [
        "http://upstream.test/ok"]


def test_only_http_and_https_urls_are_accepted():
    run = probe("file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x/")
    assert [e["ev"] for e in run.events if e.get("req") == 0] == [
        "start", "refused"]
    assert run.of(1, "refused") and run.of(2, "refused")
