"""The chat turn against @copilotkit/aimock (build/llm-node, `make
llm-node`), independently written OpenAI- and Anthropic-compatible
provider doubles, from fixtures/llm/aimock.json: streamed text with a
usage chunk, parallel tool calls assembled from their deltas, 429 and 500
before the first byte (fallback), a stream cut after N chunks, and a slow
first token. aimock differs from the real APIs where noted (its Anthropic
message_start already carries the final output tokens); test_wire.c checks
the parser against hand-written golden streams of the real shapes."""

import json
import os
import random
import shutil
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

import stack
from test_chat_turn import Chat, PRICE, direct, key_file, sse_events, \
    unique  # noqa: F401 (key_file is a fixture)

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "build" / "llm-node"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "llm"
BEHAVIOURS = ["text", "tools", "429", "500", "cut", "slow"]


@pytest.fixture(scope="module")
def aimock():
    cli = NODE_DIR / "node_modules" / "@copilotkit" / "aimock" / "dist" \
        / "cli.js"
    if not cli.exists():
        raise RuntimeError("aimock missing: make llm-node")
    port = stack.free_port()
    log = open(stack.make_tmpdir("omni-aimock-") / "log", "w")
    proc = subprocess.Popen(
        [shutil.which("node"), str(cli), "-p", str(port), "-h", "127.0.0.1",
         "-f", str(FIXTURES / "aimock.json"), "--log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    url = "http://127.0.0.1:%d" % port
    try:
        stack.wait_until(lambda: _up(port), 15, "aimock listening")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _up(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module", params=["openai", "anthropic"])
def models(request, worker, aimock, key_file):
    """A provider of the given kind on aimock with one model per fixture,
    named aimock-<behaviour>-<digits> (aimock matches the prefix)."""
    suffix = str(random.randrange(10 ** 8, 10 ** 9))
    names = {b: "aimock-%s-%s" % (b, suffix) for b in BEHAVIOURS}
    r = direct(worker, "POST", "/api/v1/llm/providers", {
        "name": unique("aimock")[:30], "type": request.param,
        "base_url": aimock, "api_key_file": str(key_file),
        "models": [{"name": n, "context_window": 8000,
                    "max_output_tokens": 256, "price": PRICE}
                   for n in names.values()]}, role="admin")
    assert r.status == 201, r.body
    names["provider"] = r.json()["name"]
    names["kind"] = request.param
    return names


def test_streamed_text_with_usage(worker, models):
    chat = Chat(worker)
    conv = chat.conversation(models["text"])
    r = chat.send(conv, stream=True)
    assert r.status == 200, r.body
    events = sse_events(r.text)
    deltas = [d["text"] for e, d in events if e == "delta"]
    assert len(deltas) > 3          # streamed in 6-character chunks
    assert "".join(deltas) == "Hello from aimock, streamed in small chunks."
    usage = [d for e, d in events if e == "usage"][0]
    # Anthropic: message_start and message_delta both say 11 output
    # tokens; the last is taken, never the sum
    assert (usage["input_tokens"], usage["output_tokens"]) == (17, 11)
    assert events[-1][0] == "done"
    msg = chat.messages(conv)[-1]
    assert msg["content"] == "Hello from aimock, streamed in small chunks."
    assert msg["usage"]["output_tokens"] == 11
    rows = chat.usage(conv, 1)
    assert rows[0]["status"] == "ok" and rows[0]["estimated"] is False


def test_parallel_tool_calls_are_assembled(worker, models):
    chat = Chat(worker)
    conv = chat.conversation(models["tools"])
    for stream in (False, True):
        # no MCP tool offered (other tests register servers): the calls
        # are the reply
        r = chat.send(conv, stream=stream, tools=[])
        assert r.status in (200, 201), r.body
        msg = chat.messages(conv)[-1]
        calls = msg["tool_calls"]
        assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
            ("fx__echo", {"text": "one"}), ("fx__add", {"a": 1, "b": 2})]
        assert all(c["id"] for c in calls)
        assert msg["usage"]["output_tokens"] == 20


@pytest.mark.parametrize("failure", ["429", "500"])
def test_error_before_first_byte_falls_back(worker, models, failure):
    chat = Chat(worker)
    conv = chat.conversation(models[failure], fallbacks=[
        {"provider": models["provider"], "model": models["text"]}])
    r = chat.send(conv, stream=True)
    assert r.status == 200, r.body
    assert sse_events(r.text)[-1][0] == "done"
    rows = chat.usage(conv, 2)
    assert [(x["model"], x["status"]) for x in rows] == [
        (models[failure], "fallback"), (models["text"], "ok")]
    assert Decimal(str(rows[0]["cost"])) == 0


@pytest.mark.parametrize("failure", ["429", "500"])
def test_error_with_no_fallback_is_502_with_the_providers_message(
        worker, models, failure):
    chat = Chat(worker)
    conv = chat.conversation(models[failure])
    r = chat.send(conv)
    assert r.status == 502, r.body
    expected = {"429": "Rate limit exceeded",
                "500": "The server had an error"}[failure]
    assert expected in r.json()["message"]
    # aimock's 429 says Retry-After: 2 (the fixture's retryAfter)
    assert r.headers.get("Retry-After") == ("2" if failure == "429"
                                            else None)


def test_stream_cut_after_chunks_ends_with_error_and_bills(worker, models):
    chat = Chat(worker)
    conv = chat.conversation(models["cut"])
    r = chat.send(conv, stream=True)
    assert r.status == 200, r.body
    events = sse_events(r.text)
    assert events[-1][0] == "error" and "done" not in [e for e, _ in events]
    partial = "".join(d["text"] for e, d in events if e == "delta")
    assert partial and "This reply is long enough".startswith(partial[:20])
    msg = chat.messages(conv)[-1]
    assert (msg["status"], msg["content"]) == ("error", partial)
    rows = chat.usage(conv, 1)
    assert rows[0]["status"] == "error"
    assert rows[0]["usage"]["output_tokens"] > 0


def test_slow_first_token_still_streams(worker, models):
    chat = Chat(worker)
    conv = chat.conversation(models["slow"])
    t0 = time.monotonic()
    r = chat.send(conv, stream=True)
    assert r.status == 200, r.body
    assert time.monotonic() - t0 >= 0.7
    events = sse_events(r.text)
    assert "".join(d["text"] for e, d in events if e == "delta") == \
        "A slow first token, then the rest."
    assert events[-1][0] == "done"
    assert chat.messages(conv)[-1]["latency_ms"] >= 700
