"""The chat turn, POST /api/v1/conversations/{id}/messages: the provider is
a double speaking the OpenAI and Anthropic wire formats (fixtures/
llm_double.py). A reply is saved with its usage and cost and one ledger
row per provider attempt; streaming answers SSE through nginx as the
provider's text arrives; a failure before the first byte falls back to the
next target, after it ends the stream with an error event (partial saved
and billed); a client that goes away has the provider's transfer closed;
daily budgets hold under concurrency; bad input names the field."""

import json
import socket
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import requests

import stack

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from llm_double import LlmDouble  # noqa: E402

KEY = "sk-double-" + uuid.uuid4().hex
PRICE = {"input": 2, "output": 10, "cached": 0.5}


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def direct(worker, method, path, body=None, user=None, role="user",
           timeout=30):
    h = {"X-User-Role": role, "X-User-Id": user or str(uuid.uuid4()),
         "X-User-Username": "turn-" + role,
         "Content-Type": "application/json"}
    return worker.request(method, path, h,
                          None if body is None else json.dumps(body),
                          timeout=timeout)


@pytest.fixture(scope="module")
def double():
    d = LlmDouble().start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("llm-key") / "key"
    p.write_text(KEY + "\n")
    return p


class Providers:
    """Makes providers on the double, one model each, named for the
    double's behaviour."""

    def __init__(self, worker, double, key_file):
        self.w, self.d, self.key_file = worker, double, key_file

    def model(self, behaviour, kind="openai", max_output=256,
              fallbacks=None, context=8000):
        name = unique(behaviour)
        m = {"name": name, "context_window": context,
             "max_output_tokens": max_output, "price": PRICE}
        if fallbacks:
            m["fallbacks"] = fallbacks
        r = direct(self.w, "POST", "/api/v1/llm/providers", {
            "name": unique("p")[:30], "type": kind, "base_url": self.d.url,
            "api_key_file": str(self.key_file), "models": [m]},
            role="admin")
        assert r.status == 201, r.body
        return {"provider": r.json()["name"], "model": name}


@pytest.fixture(scope="module")
def providers(worker, double, key_file):
    return Providers(worker, double, key_file)


class Chat:
    """A user with a project, a prompt and conversations."""

    def __init__(self, worker, user=None):
        self.w, self.id = worker, user or str(uuid.uuid4())
        self.project = self.post("/api/v1/projects",
                                 {"name": unique("proj")})
        self.prompt = self.post(
            "/api/v1/projects/%s/prompts" % self.project["id"],
            {"name": unique("prompt"), "content": "You are terse."})

    def call(self, method, path, body=None, timeout=30):
        return direct(self.w, method, path, body, user=self.id,
                      timeout=timeout)

    def post(self, path, body):
        r = self.call("POST", path, body)
        assert r.status == 201, (path, r.body)
        return r.json()

    def conversation(self, model, **extra):
        body = {"project_id": self.project["id"],
                "prompt_version_id": self.prompt["latest_version"]["id"],
                "model": model}
        body.update(extra)
        return self.post("/api/v1/conversations", body)["id"]

    def send(self, conv, content="hi", **extra):
        body = {"content": content}
        body.update(extra)
        return self.call("POST", "/api/v1/conversations/%s/messages" % conv,
                         body, timeout=60)

    def messages(self, conv):
        r = self.call("GET", "/api/v1/conversations/%s/messages" % conv)
        assert r.status == 200, r.body
        return r.json()["items"]

    def usage(self, conv, n, timeout=5):
        """The conversation's ledger rows once there are n (batched)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.call("GET", "/api/v1/conversations/%s/usage" % conv)
            assert r.status == 200, r.body
            items = r.json()["items"]
            if len(items) >= n or time.monotonic() > deadline:
                return items
            time.sleep(0.1)


def sse_events(text):
    out = []
    for block in text.split("\n\n"):
        ev, data = None, []
        for line in block.splitlines():
            if line.startswith("event:"):
                ev = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if ev:
            out.append((ev, json.loads("\n".join(data))))
    return out


# --- the non-streamed turn ------------------------------------------------

@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_reply_is_saved_with_usage_cost_and_one_ledger_row(
        worker, providers, double, kind):
    m = providers.model("text", kind)
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    r = chat.send(conv, "what is up?")
    assert r.status == 201, r.body
    reply = r.json()
    assert reply["role"] == "assistant"
    assert reply["content"] == "Hello from the double."
    assert reply["usage"] == {"input_tokens": 21, "output_tokens": 9,
                              "cached_tokens": 0}
    # 21 in at 2/M + 9 out at 10/M
    assert Decimal(str(reply["cost"])) == Decimal("0.000132")
    assert reply["status"] == "ok"
    assert reply["provider_request_id"] in ("chatcmpl-double", "msg_double")

    msgs = chat.messages(conv)
    assert [(x["role"], x["content"]) for x in msgs] == [
        ("user", "what is up?"), ("assistant", "Hello from the double.")]
    rows = chat.usage(conv, 1)
    assert len(rows) == 1
    assert rows[0]["status"] == "ok" and rows[0]["estimated"] is False
    assert rows[0]["usage"]["input_tokens"] == 21
    assert rows[0]["price_version"] == 1
    assert rows[0]["message_id"] == reply["id"]

    sent = double.requests(m["model"])[-1]
    # the system prompt and the history went out; the key by reference
    if kind == "openai":
        assert sent["body"]["messages"][0] == {"role": "system",
                                               "content": "You are terse."}
        assert sent["key"] == "Bearer " + KEY
    else:
        assert sent["body"]["system"] == "You are terse."
        assert sent["key"] == KEY
    assert KEY not in worker.log_text()


def test_a_rotated_key_file_is_sent_within_seconds(worker, double,
                                                  tmp_path):
    # the worker keeps a key file's content for up to 2 s rather than
    # reading it at every turn; a rotated secret takes over after that
    key = tmp_path / "rotating-key"
    key.write_text("sk-first\n")
    m = Providers(worker, double, key).model("text")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    assert chat.send(conv).status == 201
    assert double.requests(m["model"])[-1]["key"] == "Bearer sk-first"
    key.write_text("sk-second\n")
    time.sleep(2.2)
    for _ in range(4):   # whichever worker process takes the turn
        assert chat.send(conv).status == 201
        assert double.requests(m["model"])[-1]["key"] == "Bearer sk-second"
    key.unlink()
    time.sleep(2.2)
    for _ in range(4):   # a deleted key is not sent from memory
        chat.send(conv)
        assert "sk-" not in (double.requests(m["model"])[-1]["key"] or "")
    assert len(double.requests(m["model"])) == 9


def test_history_goes_to_the_provider_in_order(worker, providers, double):
    m = providers.model("text")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    assert chat.send(conv, "first").status == 201
    assert chat.send(conv, "second").status == 201
    sent = double.requests(m["model"])[-1]["body"]["messages"]
    assert [(x["role"], x["content"]) for x in sent] == [
        ("system", "You are terse."), ("user", "first"),
        ("assistant", "Hello from the double."), ("user", "second")]


def test_history_is_cut_to_the_models_context_budget(worker, providers,
                                                    double):
    # a message is estimated at 4 characters a token + 4; the budget is the
    # context window less max_output_tokens, the system prompt (+8) and the
    # question: 400 - 100 - 14/4 - 8 - (200/4 + 4) = 235 tokens, filled
    # from the newest message back (user 54 each, the double's reply 9)
    m = providers.model("text", max_output=100, context=400)
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    asked = ["q%d" % i + "x" * 198 for i in range(1, 7)]
    for q in asked:
        assert chat.send(conv, q).status == 201
    sent = double.requests(m["model"])[-1]["body"]["messages"]
    reply = ("assistant", "Hello from the double.")
    assert [(x["role"], x["content"]) for x in sent] == [
        ("system", "You are terse."), reply,
        ("user", asked[2]), reply, ("user", asked[3]), reply,
        ("user", asked[4]), reply, ("user", asked[5])]


def test_another_users_conversation_is_404_and_gets_no_message(
        worker, providers):
    m = providers.model("text")
    alice, bob = Chat(worker), Chat(worker)
    conv = alice.conversation(m["model"])
    r = bob.send(conv, "let me in")
    assert r.status == 404, r.body
    assert r.json()["error"] == "not_found"
    assert alice.messages(conv) == []


def test_edited_prompt_leaves_the_conversation_on_its_version(
        worker, providers, double):
    m = providers.model("text")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    chat.post("/api/v1/prompts/%s/versions" % chat.prompt["id"],
              {"content": "You are verbose."})
    assert chat.send(conv).status == 201
    sent = double.requests(m["model"])[-1]["body"]["messages"]
    assert sent[0]["content"] == "You are terse."
    newer = chat.post("/api/v1/conversations", {
        "project_id": chat.project["id"], "model": m["model"],
        "prompt_version_id": chat.call(
            "GET", "/api/v1/projects/%s/prompts" % chat.project["id"]
        ).json()["items"][0]["latest_version"]["id"]})["id"]
    assert chat.send(newer).status == 201
    sent = double.requests(m["model"])[-1]["body"]["messages"]
    assert sent[0]["content"] == "You are verbose."


@pytest.mark.parametrize("body,status,field", [
    ({}, 400, "content"),
    ({"content": 7}, 400, "content"),
    ({"content": "   "}, 422, "content"),
    ({"content": "x" * 100001}, 422, "content"),
    ({"content": "hi", "stream": "yes"}, 400, "stream"),
    ({"content": "hi", "tools": "all"}, 400, "tools"),
    ({"content": "hi", "temperature": 1}, 422, "temperature"),
])
def test_bad_message_body_names_the_field(worker, providers, body, status,
                                          field):
    m = providers.model("text")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    r = chat.call("POST", "/api/v1/conversations/%s/messages" % conv, body)
    assert r.status == status, r.body
    assert field in r.json()["message"]
    assert chat.messages(conv) == []


def test_retired_model_is_422(worker, providers, double):
    m = providers.model("text")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    r = direct(worker, "PATCH", "/api/v1/llm/providers/" + m["provider"],
               {"models": [{"name": unique("other"), "context_window": 8000,
                            "max_output_tokens": 100, "price": PRICE}]},
               role="admin")
    assert r.status == 200, r.body
    r = chat.send(conv)
    assert r.status == 422, r.body
    assert r.json()["field"] == "model"
    # refused before the question is saved or any provider is called
    assert chat.messages(conv) == []
    assert double.requests(m["model"]) == []


def test_garbage_from_the_provider_is_502(worker, providers):
    m = providers.model("garbage")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    r = chat.send(conv, stream=True)
    assert r.status == 502, r.body
    assert r.json()["error"] == "upstream_error"
    rows = chat.usage(conv, 1)
    assert [x["status"] for x in rows] == ["error"]


def test_endless_stream_is_cut_at_the_reply_cap(worker, providers, double):
    m = providers.model("endless")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    t0 = time.monotonic()
    r = chat.send(conv, stream=True)
    assert r.status == 200, r.body[:200]
    assert time.monotonic() - t0 < 10
    events = sse_events(r.text)
    assert events[-1][0] == "error", events[-1]
    assert events[-1][1]["error"] == "bad_response"
    text = "".join(d["text"] for e, d in events if e == "delta")
    assert 900 * 1024 <= len(text) <= 1024 * 1024
    stack.wait_until(lambda: double.requests(m["model"])[-1]["outcome"]
                     == "disconnected", 5, "the double sees its client go")
    assert chat.usage(conv, 1)[0]["status"] == "error"


def test_viewer_cannot_post_messages_or_create_chat_objects(worker,
                                                            providers):
    m = providers.model("text")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    r = direct(worker, "POST", "/api/v1/conversations/%s/messages" % conv,
               {"content": "hi"}, user=chat.id, role="viewer")
    assert r.status == 403, r.body
    r = direct(worker, "POST", "/api/v1/projects", {"name": unique("v")},
               role="viewer")
    assert r.status == 403, r.body
    r = direct(worker, "GET", "/api/v1/projects", role="viewer")
    assert r.status == 200, r.body


# --- fallbacks and failures -------------------------------------------------

@pytest.mark.parametrize("failure", ["fail429", "fail500"])
def test_failure_before_first_byte_falls_back_two_rows_one_charge(
        worker, providers, failure):
    good = providers.model("text", "anthropic")
    bad = providers.model(failure, fallbacks=[good])
    chat = Chat(worker)
    conv = chat.conversation(bad["model"])
    r = chat.send(conv, stream=True)
    assert r.status == 200, r.body
    events = sse_events(r.text)
    assert [e for e, _ in events if e != "delta"] == ["usage", "done"]
    assert "".join(d["text"] for e, d in events if e == "delta") == \
        "Hello from the double."
    rows = chat.usage(conv, 2)
    assert [(x["model"], x["status"]) for x in rows] == [
        (bad["model"], "fallback"), (good["model"], "ok")]
    assert Decimal(str(rows[0]["cost"])) == 0
    assert Decimal(str(rows[1]["cost"])) > 0
    assert rows[0]["message_id"] is None
    assert rows[1]["message_id"] == chat.messages(conv)[-1]["id"]


def test_failure_with_no_fallback_left_is_502(worker, providers):
    m = providers.model("fail500")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    r = chat.send(conv)
    assert r.status == 502, r.body
    assert "double says no" in r.json()["message"]
    assert [x["status"] for x in chat.usage(conv, 1)] == ["error"]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("failure", ["cut", "errorevt"])
def test_mid_stream_failure_ends_with_error_event_partial_saved_and_billed(
        worker, providers, kind, failure):
    fallback = providers.model("text")
    m = providers.model(failure, kind, fallbacks=[fallback])
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    r = chat.send(conv, stream=True)
    assert r.status == 200, r.body
    events = sse_events(r.text)
    names = [e for e, _ in events]
    assert names[-1] == "error" and "done" not in names
    partial = "".join(d["text"] for e, d in events if e == "delta")
    assert partial in ("Hello from the ", "Hello from ")
    msgs = chat.messages(conv)
    assert msgs[-1]["role"] == "assistant"
    assert msgs[-1]["content"] == partial
    assert msgs[-1]["status"] == "error"
    rows = chat.usage(conv, 1)
    assert len(rows) == 1          # no fallback after the first byte
    assert rows[0]["status"] == "error"
    # billed at least for what arrived (Anthropic's message_start said 1)
    assert rows[0]["usage"]["output_tokens"] >= len(partial) // 4 > 1
    assert rows[0]["estimated"] is True
    assert rows[0]["message_id"] == msgs[-1]["id"]
    assert Decimal(str(rows[0]["cost"])) > 0


# --- through the gateway ----------------------------------------------------

@pytest.fixture(scope="module")
def chat_gw(worker, shared_dir, redis_server):
    """nginx before the shared worker with the per-user API limit out of
    the way (50 concurrent turns of one user)."""
    server = stack.Nginx(worker_socket=shared_dir / "worker.sock",
                         redis_addr=redis_server.addr, api_rate="1000r/s")
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def gw_send(gw, user, conv, body, stream=False, timeout=30):
    return requests.post(
        gw.http_url("/api/v1/conversations/%s/messages" % conv),
        json=body, headers=gw.bearer(sub=user, role="user"),
        stream=stream, timeout=timeout)


def test_stream_is_not_buffered_by_nginx(worker, providers, double,
                                         chat_gw):
    m = providers.model("slow")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    t0 = time.monotonic()
    r = gw_send(chat_gw, chat.id, conv, {"content": "hi", "stream": True},
                stream=True)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    first = None
    text = b""
    for chunk in r.iter_content(chunk_size=None):
        if first is None and b"event: delta" in chunk:
            first = time.monotonic() - t0
        text += chunk
    total = time.monotonic() - t0
    # the double spends 4 x 300 ms; the first delta comes after the first
    assert first is not None and first < 0.9, (first, total)
    assert total >= 1.1
    assert [e for e, _ in sse_events(text.decode())][-1] == "done"


def test_other_users_cannot_post_through_the_gateway(worker, providers,
                                                     chat_gw):
    m = providers.model("text")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    r = gw_send(chat_gw, str(uuid.uuid4()), conv, {"content": "hi"})
    assert r.status_code == 404
    r = gw_send(chat_gw, chat.id, conv, {"content": "hi"})
    assert r.status_code == 201, r.text


def test_client_disconnect_closes_the_upstream_and_bills(worker, providers,
                                                         double, chat_gw):
    m = providers.model("slow")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    token = chat_gw.token(sub=chat.id, role="user")
    body = json.dumps({"content": "hi", "stream": True}).encode()
    s = socket.create_connection(("127.0.0.1", chat_gw.http_port), 10)
    s.sendall(("POST /api/v1/conversations/%s/messages HTTP/1.1\r\n"
               "Host: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (conv, token, len(body))).encode() + body)
    got = b""
    while b"event: delta" not in got:
        got += s.recv(65536)
    s.close()
    closed_at = time.time()
    stack.wait_until(lambda: double.requests(m["model"])[-1]["outcome"]
                     != "started", 5, "the double sees its client go")
    sent = double.requests(m["model"])[-1]
    assert sent["outcome"] == "disconnected"
    # the double notices at its next write, at most 300 ms after the close
    assert sent["end"] - closed_at < 1.3
    rows = chat.usage(conv, 1)
    assert [x["status"] for x in rows] == ["client_disconnected"]
    assert rows[0]["estimated"] is True
    assert rows[0]["usage"]["output_tokens"] > 0
    msgs = chat.messages(conv)
    assert msgs[-1]["status"] == "client_disconnected"


def test_non_streamed_client_disconnect_cancels_the_provider(
        worker, providers, double, chat_gw):
    """Nothing is written while a whole reply is awaited, so libevent would
    not notice the close: the turn looks every 250 ms. The answer then goes
    to a client that is gone (libevent frees the request while answering
    it: the worker logs it first)."""
    m = providers.model("slow")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    token = chat_gw.token(sub=chat.id, role="user")
    body = json.dumps({"content": "hi"}).encode()
    s = socket.create_connection(("127.0.0.1", chat_gw.http_port), 10)
    s.sendall(("POST /api/v1/conversations/%s/messages HTTP/1.1\r\n"
               "Host: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (conv, token, len(body))).encode() + body)
    stack.wait_until(lambda: double.requests(m["model"]), 5,
                     "the provider called")
    s.close()
    rows = chat.usage(conv, 1)
    assert [x["status"] for x in rows] == ["client_disconnected"]
    # cancelled well before the double's 1.2 s answer
    assert rows[0]["latency_ms"] < 1000, rows[0]
    assert worker.sanitizer_report() is None
    r = chat.send(conv, "still there?")
    assert r.status in (201, 200), r.body


def test_deltas_are_published_on_the_conversation_channel(worker, providers,
                                                         gateway):
    from events_support import Sse
    m = providers.model("text")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    sub = Sse(gateway.http_port, "/events/conversation-" + conv,
              headers=gateway.bearer(sub=chat.id, role="user"))
    try:
        assert sub.status == 200, sub.body
        r = chat.send(conv, stream=True)
        assert r.status == 200, r.body
        events = sub.events(4, timeout=5)
        got = [json.loads(e["data"]) for e in events]
        assert [g["type"] for g in got] == ["chat.delta"] * 4
        assert "".join(g["data"]["text"] for g in got) == \
            "Hello from the double."
    finally:
        sub.close()


def test_each_delta_reaches_the_conversation_channel_within_200ms(
        worker, providers, gateway):
    """SPEC 6 Events: a subscriber of the conversation sees each delta
    within 200 ms of the client streaming the turn (the double spaces its
    chunks 300 ms apart, so each delta is timed on its own)."""
    from events_support import Sse
    m = providers.model("slow")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    sub = Sse(gateway.http_port, "/events/conversation-" + conv,
              headers=gateway.bearer(sub=chat.id, role="user"))
    published = []
    reader = threading.Thread(
        target=lambda: published.extend(sub.events(4, timeout=10)))
    try:
        assert sub.status == 200, sub.body
        reader.start()
        r = gw_send(gateway, chat.id, conv, {"content": "hi", "stream": True},
                    stream=True)
        assert r.status_code == 200
        streamed, buf = [], b""
        for chunk in r.iter_content(chunk_size=None):
            now = time.monotonic()
            buf += chunk
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                if block.startswith(b"event: delta"):
                    streamed.append(now)
        reader.join(10)
        assert len(streamed) == 4, streamed
        assert [json.loads(e["data"])["type"] for e in published] == \
            ["chat.delta"] * 4, published
        late = [round((e["at"] - at) * 1000) for at, e in
                zip(streamed, published)]
        assert all(ms < 200 for ms in late), late
    finally:
        sub.close()


# --- budgets ----------------------------------------------------------------

def test_budget_holds_under_50_concurrent_requests(worker, providers,
                                                   chat_gw):
    m = providers.model("text", max_output=100)
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    # each request reserves its worst case: ~input + 100 tokens; 30
    # actually spend (21 + 9)
    r = direct(worker, "POST", "/api/v1/llm/budgets",
               {"scope": "project", "project_id": chat.project["id"],
                "tokens_per_day": 600}, role="admin")
    assert r.status == 201, r.body
    results = []

    def one():
        r = gw_send(chat_gw, chat.id, conv, {"content": "hi"}, timeout=60)
        results.append(r.status_code)
        if r.status_code == 429:
            assert r.json()["error"] == "budget_exceeded"

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) <= {201, 429}, results
    ok = results.count(201)
    assert ok >= 1 and results.count(429) >= 1, results
    rows = chat.usage(conv, ok)
    spent = sum(x["usage"]["input_tokens"] + x["usage"]["output_tokens"]
                for x in rows)
    worst = max(x["usage"]["input_tokens"] for x in rows) + 100
    assert spent <= 600 + worst, (spent, ok)
    assert len(rows) == ok



# --- the tool loop through the MCP service ----------------------------------

@pytest.fixture(scope="module")
def tool_worker(migrated, redis_server, shared_dir):
    from mcp_support import key_file as mcp_key_file
    d = stack.make_tmpdir("omni-test-chat-tools-")
    w = stack.Worker(migrated, redis_server, env={
        "OMNI_MCP_SECRET_KEY_FILE": mcp_key_file(d),
        "OMNI_EVENTS_PUBLISH": "unix:%s" % (shared_dir / "events.sock")})
    w.start()
    yield w
    w.stop()
    report = w.sanitizer_report()
    w.destroy()
    assert not report, report


@pytest.fixture(scope="module")
def legacy_mcp():
    from mcp_support import Upstream
    u = Upstream("legacy.cjs").start()
    yield u
    u.stop()


def register_mcp(worker, upstream):
    """A registered fixture server whose tools are in the catalog."""
    server = unique("fx")
    r = direct(worker, "POST", "/api/v1/mcp/servers",
               {"name": server, "url": upstream.url, "timeout_ms": 5000},
               role="admin")
    assert r.status == 201, r.body
    stack.wait_until(lambda: json.loads(direct(
        worker, "GET", "/api/v1/mcp/servers/%s/tools" % server,
        role="admin").body)["items"], 10, "the fixture's tools listed")
    return server


def mcp_count(upstream):
    return upstream.ctl("count")["count"]


def test_offered_tools_follow_a_registry_change_at_once(
        tool_worker, double, key_file, legacy_mcp):
    # each worker process keeps the list of tools it offers per (role,
    # filter) at omni:mcp:gen (offer.c); a change bumps the generation, so
    # the very next turn, on whichever process, offers the new list
    server = register_mcp(tool_worker, legacy_mcp)
    m = Providers(tool_worker, double, key_file).model("text")
    chat = Chat(tool_worker)
    conv = chat.conversation(m["model"])

    def offered():
        assert chat.send(conv).status == 201
        sent = double.requests(m["model"])[-1]["body"].get("tools") or []
        return {t["function"]["name"] for t in sent
                if t["function"]["name"].startswith(server + "__")}

    for _ in range(4):
        assert server + "__echo" in offered()
    for roles, shown in ((["admin"], False), ([], True), (["admin"], False)):
        r = direct(tool_worker, "PATCH", "/api/v1/mcp/servers/" + server,
                   {"roles": roles}, role="admin")
        assert r.status == 200, r.body
        for _ in range(4):   # a user's turns, both processes
            assert (server + "__echo" in offered()) is shown, roles
    assert direct(tool_worker, "DELETE", "/api/v1/mcp/servers/" + server,
                  role="admin").status in (200, 204)
    assert offered() == set()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_two_round_tool_loop_with_parallel_calls(tool_worker, double,
                                                 key_file, legacy_mcp, kind):
    server = register_mcp(tool_worker, legacy_mcp)
    m = Providers(tool_worker, double, key_file).model("loop", kind)
    chat = Chat(tool_worker)
    conv = chat.conversation(m["model"], max_tool_rounds=3)
    before = mcp_count(legacy_mcp)
    r = chat.send(conv, "use your tools", stream=True,
                  tools=[server + "__echo", server + "__count"])
    assert r.status == 200, r.body
    events = sse_events(r.text)
    names = [e for e, _ in events if e != "delta"]
    assert names == ["tool_call"] * 3 + ["tool_result"] * 3 \
        + ["tool_call"] * 2 + ["tool_result"] * 2 + ["usage", "done"], names
    results = {d["id"]: d for e, d in events if e == "tool_result"}
    assert results["r1_echo"]["content"] == "Echo: round 1"
    assert results["r1_echo"]["is_error"] is False
    assert results["r2_echo"]["content"] == "Echo: round 2"
    # arguments that are not JSON go back to the model as a tool error
    assert results["r1_bad"]["is_error"] is True
    assert "JSON" in results["r1_bad"]["content"]
    # each call reached the upstream once
    assert mcp_count(legacy_mcp) == before + 2
    text = "".join(d["text"] for e, d in events if e == "delta")
    assert text.startswith("Tools said: Echo: round 1")
    assert "Echo: round 2" in text

    # only the two tools asked for were offered
    sent = double.requests(m["model"])[0]["body"]["tools"]
    offered = {t["name"] if kind == "anthropic" else t["function"]["name"]
               for t in sent}
    assert offered == {server + "__echo", server + "__count"}

    msgs = chat.messages(conv)
    assert [x["role"] for x in msgs] == [
        "user", "assistant", "tool", "tool", "tool", "assistant", "tool",
        "tool", "assistant"]
    assert len(msgs[1]["tool_calls"]) == 3
    assert msgs[2]["tool_call_id"] == "r1_echo"
    rows = chat.usage(conv, 3)
    assert [x["status"] for x in rows] == ["ok", "ok", "ok"]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_the_built_in_servers_tools_act_as_the_caller(tool_worker, double,
                                                      key_file, kind):
    """Issue 22: a turn offers the built-in server's tools (omni__*) and
    runs them as the caller: the model's context_put lands in the caller's
    own store, its context_get reads it back, and another user cannot see
    it."""
    m = Providers(tool_worker, double, key_file).model("memory", kind)
    chat = Chat(tool_worker)
    conv = chat.conversation(m["model"], max_tool_rounds=3)
    said = "remember " + uuid.uuid4().hex
    r = chat.send(conv, said)
    assert r.status == 201, r.body
    sent = double.requests(m["model"])[0]["body"]["tools"]
    offered = {t["name"] if kind == "anthropic" else t["function"]["name"]
               for t in sent}
    assert {"omni__context_put", "omni__context_get",
            "omni__memory_search"} <= offered, offered
    # the get's result went back to the model, which quoted it
    assert said in r.json()["content"], r.json()["content"]
    mine = direct(tool_worker, "GET", "/api/v1/contexts/notes/k1",
                  user=chat.id)
    assert mine.status == 200, mine.body
    assert json.loads(mine.body)["value"] == {"said": said}
    other = direct(tool_worker, "GET", "/api/v1/contexts/notes/k1",
                   user=str(uuid.uuid4()))
    assert other.status == 404, other.body
    msgs = chat.messages(conv)
    assert [x["role"] for x in msgs] == [
        "user", "assistant", "tool", "assistant", "tool", "assistant"]


def test_tools_are_not_offered_past_max_tool_rounds(tool_worker, double,
                                                    key_file, legacy_mcp):
    server = register_mcp(tool_worker, legacy_mcp)
    m = Providers(tool_worker, double, key_file).model("loop")
    chat = Chat(tool_worker)
    conv = chat.conversation(m["model"], max_tool_rounds=1)
    r = chat.send(conv, "use your tools",
                  tools=[server + "__echo", server + "__count"])
    assert r.status == 201, r.body
    sent = double.requests(m["model"])
    assert len(sent) == 2
    assert sent[0]["body"].get("tools")
    assert not sent[1]["body"].get("tools")
    assert r.json()["content"].startswith("Tools said: Echo: round 1")


def test_each_tool_round_reserves_budget_and_an_overrun_ends_the_loop(
        tool_worker, double, key_file, legacy_mcp):
    server = register_mcp(tool_worker, legacy_mcp)
    m = Providers(tool_worker, double, key_file).model("loop",
                                                       max_output=1000)
    chat = Chat(tool_worker)
    conv = chat.conversation(m["model"], max_tool_rounds=3)
    # room for one round's worst case (~1000 + input), not two
    r = direct(tool_worker, "POST", "/api/v1/llm/budgets",
               {"scope": "project", "project_id": chat.project["id"],
                "tokens_per_day": 1500}, role="admin")
    assert r.status == 201, r.body
    r = chat.send(conv, "use your tools", stream=True,
                  tools=[server + "__echo", server + "__count"])
    assert r.status == 200, r.body
    events = sse_events(r.text)
    names = [e for e, _ in events if e != "delta"]
    assert names == ["tool_call"] * 3 + ["tool_result"] * 3 \
        + ["usage", "error"], names
    assert events[-1][1]["error"] == "budget_exceeded"
    assert len(double.requests(m["model"])) == 1
    assert [x["role"] for x in chat.messages(conv)] == [
        "user", "assistant", "tool", "tool", "tool"]
    # what was spent is settled: the next turn fits again
    r = chat.send(conv, "again", tools=[])
    assert r.status == 201, r.body


def test_tool_progress_is_published_on_the_conversation_channel(
        tool_worker, double, key_file, legacy_mcp, gateway):
    from events_support import Sse
    server = register_mcp(tool_worker, legacy_mcp)
    m = Providers(tool_worker, double, key_file).model("loop")
    chat = Chat(tool_worker)
    conv = chat.conversation(m["model"], max_tool_rounds=1)
    sub = Sse(gateway.http_port, "/events/conversation-" + conv,
              headers=gateway.bearer(sub=chat.id, role="user"))
    try:
        assert sub.status == 200, sub.body
        r = chat.send(conv, "use your tools",
                      tools=[server + "__echo", server + "__count"])
        assert r.status == 201, r.body
        got = [json.loads(e["data"]) for e in sub.events(6, timeout=5)]
        assert [g["type"] for g in got] == ["chat.tool_call"] * 3 \
            + ["chat.tool_result"] * 3
        assert got[3]["data"] == {"id": "r1_echo", "name": server + "__echo",
                                  "content": "Echo: round 1",
                                  "is_error": False}
    finally:
        sub.close()


@pytest.fixture(scope="module")
def tool_gw(tool_worker, redis_server):
    """nginx before the tool loop's worker."""
    server = stack.Nginx(worker_socket=tool_worker.socket_path,
                         redis_addr=redis_server.addr, api_rate="1000r/s")
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_tool_progress_reaches_the_stream_and_the_channel(
        tool_worker, tool_gw, double, key_file, legacy_mcp, gateway, kind):
    """An MCP tool's progress notifications during the turn's tool call
    (legacy.cjs's `slow`: 3 of them, 50 ms apart) reach the chat client's
    stream through nginx, between the call and its result, as they happen,
    and the conversation's events channel."""
    from events_support import Sse
    server = register_mcp(tool_worker, legacy_mcp)
    m = Providers(tool_worker, double, key_file).model("progress", kind)
    chat = Chat(tool_worker)
    conv = chat.conversation(m["model"], max_tool_rounds=1)
    sub = Sse(gateway.http_port, "/events/conversation-" + conv,
              headers=gateway.bearer(sub=chat.id, role="user"))
    try:
        assert sub.status == 200, sub.body
        r = requests.post(
            tool_gw.http_url("/api/v1/conversations/%s/messages" % conv),
            json={"content": "be slow", "stream": True,
                  "tools": [server + "__slow"]},
            headers=tool_gw.bearer(sub=chat.id, role="user"),
            stream=True, timeout=30)
        assert r.status_code == 200, r.text
        text, seen = b"", []
        for chunk in r.iter_content(chunk_size=None):
            text += chunk
            seen.append((time.monotonic(), chunk.count(b"tool_progress")))
        events = sse_events(text.decode())
        names = [e for e, _ in events if e != "delta"]
        assert names == ["tool_call"] + ["tool_progress"] * 3 \
            + ["tool_result", "usage", "done"], names
        progress = [d for e, d in events if e == "tool_progress"]
        assert progress == [{"id": "p1_slow", "name": server + "__slow",
                             "progress": i, "total": 3}
                            for i in (1, 2, 3)]
        # passed on as they came, not gathered with the result (the tool
        # waits 50 ms after each)
        times = [t for t, n in seen if n]
        assert len(times) >= 2 and times[-1] - times[0] >= 0.05, seen
        assert [d for e, d in events if e == "tool_result"][0]["content"] \
            == "done"
        assert "".join(d["text"] for e, d in events if e == "delta") \
            == "Tools said: done"
        got = [json.loads(e["data"]) for e in sub.events(5, timeout=5)]
        assert [g["type"] for g in got] == ["chat.tool_call"] \
            + ["chat.tool_progress"] * 3 + ["chat.tool_result"]
        assert [g["data"] for g in got[1:4]] == progress
    finally:
        sub.close()


def test_turn_begin_commits_without_waiting_for_the_wal_flush(migrated):
    """The turn's first round trip (the user's message) commits with
    synchronous_commit off, that transaction only (sql/016): the provider
    is called without waiting for the disk; the reply's save still waits,
    and its flush covers the message."""
    conn = migrated.admin_connect("omni")
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit = on")
            conn.commit()
            cur.execute("SELECT status FROM omnichat.turn_begin_nowait("
                        "%s, %s, 'hi', 'user', NULL)",
                        (str(uuid.uuid4()), str(uuid.uuid4())))
            assert cur.fetchall() == [(404,)]
            cur.execute("SELECT current_setting('synchronous_commit')")
            assert cur.fetchall() == [("off",)]
            conn.commit()
            cur.execute("SELECT current_setting('synchronous_commit')")
            assert cur.fetchall() == [("on",)]
            conn.commit()
    finally:
        conn.close()
