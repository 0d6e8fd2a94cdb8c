"""The LLM gateway (/v1/chat/completions, /v1/messages, /v1/models) driven
by the official SDKs, `openai` 6.x and `@anthropic-ai/sdk` 1.17 (pinned in
fixtures/llm-sdk, `make llm-sdk`), through nginx (an Omni API key as the
SDKs send it) to @copilotkit/aimock, and the same SDK script against aimock
directly: the parsed results are identical (ids left out). Each call leaves
its ledger rows, tagged with the user and the API key."""

import json
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

import stack
from auth_support import admin, auth_gw, auth_nginx, create_key, \
    new_user  # noqa: F401 (fixtures)
from test_chat_aimock import aimock  # noqa: F401 (fixture)
from test_chat_turn import KEY, PRICE, LlmDouble, direct, \
    key_file  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
SDK_DIR = REPO / "build" / "llm-sdk"
SCRIPT = Path(__file__).resolve().parent / "fixtures" / "llm-sdk" / "sdk.cjs"
BEHAVIOURS = ["text", "tools", "429", "cut"]


def sdk(which, case, base_url, api_key, model):
    if not (SDK_DIR / "node_modules" / "openai").exists():
        raise RuntimeError("SDKs missing: make llm-sdk")
    out = subprocess.run(
        [shutil.which("node"), str(SCRIPT), json.dumps({
            "sdk": which, "case": case, "base_url": base_url,
            "api_key": api_key, "model": model})],
        capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
             "NODE_PATH": str(SDK_DIR / "node_modules")})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def caller(auth_gw, admin):
    user = new_user(auth_gw)
    key = create_key(auth_gw, token=user.access)
    return {"user": user, "key": key["key"], "key_id": key["id"]}


def make_models(worker, aimock, key_file, kind):
    """A provider of kind on aimock with one model per behaviour, named
    aimock-<behaviour>-<digits> (aimock matches the prefix)."""
    suffix = str(random.randrange(10 ** 8, 10 ** 9))
    names = {b: "aimock-%s-%s" % (b, suffix) for b in BEHAVIOURS}
    r = direct(worker, "POST", "/api/v1/llm/providers", {
        "name": ("gw-%s-%s" % (kind[:4], suffix))[:30],
        "type": kind, "base_url": aimock,
        "api_key_file": str(key_file),
        "models": [{"name": n, "context_window": 8000,
                    "max_output_tokens": 256, "price": PRICE}
                   for n in names.values()]}, role="admin")
    assert r.status == 201, r.body
    names["kind"] = kind
    names["provider"] = r.json()["name"]
    return names


@pytest.fixture(scope="module", params=["openai", "anthropic"])
def models(request, worker, aimock, key_file):
    return make_models(worker, aimock, key_file, request.param)


@pytest.fixture(scope="module")
def openai_models(worker, aimock, key_file):
    return make_models(worker, aimock, key_file, "openai")


@pytest.fixture(scope="module")
def anthropic_models(worker, aimock, key_file):
    return make_models(worker, aimock, key_file, "anthropic")


def ledger(migrated, key_id, model, n, timeout=5):
    """The ledger rows of model tagged with key_id, once there are n."""
    deadline = time.monotonic() + timeout
    while True:
        rows = migrated.sql(
            "SELECT status, user_id, input_tokens, output_tokens, cost,"
            " estimated FROM omnichat.llm_usage"
            " WHERE api_key_id = %s AND model = %s ORDER BY at",
            (key_id, model), dbname="omni")
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


@pytest.mark.parametrize("case", ["text", "stream"])
def test_sdk_text_through_omni_equals_direct(auth_nginx, aimock, caller,
                                             models, migrated, case):
    kind, model = models["kind"], models["text"]
    via = sdk(kind, case, auth_nginx.http_url(""), caller["key"], model)
    plain = sdk(kind, case, aimock, "sk-direct", model)
    assert "error" not in via, via
    assert via == plain
    assert via["text"] == "Hello from aimock, streamed in small chunks."
    assert via["usage"] == [17, 11]
    if case == "stream":
        assert via["streamed"] is True
    rows = ledger(migrated, caller["key_id"], model, 1 if case == "text"
                  else 2)
    row = rows[-1]
    assert row[0] == "ok" and row[1] == caller["user"].id
    assert (row[2], row[3]) == (17, 11)
    # 17 in at 2/M + 11 out at 10/M
    assert float(row[4]) == pytest.approx((17 * 2 + 11 * 10) / 1e6)


def test_sdk_streamed_parallel_tool_calls(auth_nginx, aimock, caller,
                                          models, migrated):
    kind, model = models["kind"], models["tools"]
    via = sdk(kind, "tools", auth_nginx.http_url(""), caller["key"], model)
    plain = sdk(kind, "tools", aimock, "sk-direct", model)
    assert "error" not in via, via
    assert via == plain
    assert via["calls"] == [["fx__echo", {"text": "one"}],
                            ["fx__add", {"a": 1, "b": 2}]]
    assert via["finish"] == ("tool_calls" if kind == "openai"
                             else "tool_use")
    rows = ledger(migrated, caller["key_id"], model, 1)
    assert [r[0] for r in rows] == ["ok"]


def test_sdk_typed_429_with_retry_after(auth_nginx, caller, models,
                                        migrated):
    kind, model = models["kind"], models["429"]
    via = sdk(kind, "text", auth_nginx.http_url(""), caller["key"], model)
    assert via["error"] == "RateLimitError", via
    assert via["status"] == 429 and via["retry_after"] == "2"
    assert via["type"] == ("rate_limit_error" if kind == "anthropic"
                           else "rate_limit")
    rows = ledger(migrated, caller["key_id"], model, 1)
    assert [r[0] for r in rows] == ["error"]


def test_sdk_bad_key_is_401(auth_nginx, models):
    kind = models["kind"]
    via = sdk(kind, "text", auth_nginx.http_url(""),
              "omk_" + "A" * 43, models["text"])
    assert via["error"] == "AuthenticationError", via
    assert via["status"] == 401


def test_unknown_model_is_404_in_the_callers_format(auth_gw, caller):
    h = {"Authorization": "Bearer " + caller["key"]}
    r = auth_gw.post("/v1/chat/completions",
                     {"model": "no-such-model", "messages": []}, headers=h)
    assert r.status_code == 404, r.text
    err = r.json()["error"]
    assert err["code"] == "model_not_found" and "no-such-model" in \
        err["message"] and "param" in err and err["type"]
    r = auth_gw.post("/v1/messages", {"model": "no-such-model",
                                      "max_tokens": 5, "messages": []},
                     headers={"x-api-key": caller["key"]})
    assert r.status_code == 404, r.text
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "not_found_error"


def test_stream_cut_midway_ends_with_an_error_not_a_normal_end(
        auth_gw, caller, models, migrated):
    kind, model = models["kind"], models["cut"]
    path = "/v1/chat/completions" if kind == "openai" else "/v1/messages"
    r = auth_gw.post(path, {"model": model, "max_tokens": 50, "stream": True,
                            "messages": [{"role": "user", "content": "hi"}]},
                     headers={"Authorization": "Bearer " + caller["key"]})
    assert r.status_code == 200, r.text
    body = r.text
    if kind == "openai":
        assert "[DONE]" not in body
        assert '"error":{"message":' in body
    else:
        assert "message_stop" not in body
        assert "event: error" in body and '"type":"error"' in body
    rows = ledger(migrated, caller["key_id"], model, 1)
    assert [r[0] for r in rows] == ["error"] and rows[0][5] is True


def test_models_lists_the_configured_models(auth_gw, caller, models):
    r = auth_gw.get("/v1/models",
                    headers={"Authorization": "Bearer " + caller["key"]})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["object"] == "list"
    ids = {m["id"] for m in doc["data"]}
    assert {models[b] for b in BEHAVIOURS} <= ids
    assert all(m["object"] == "model" for m in doc["data"])


@pytest.mark.parametrize("case", ["text", "stream", "tools"])
def test_anthropic_sdk_through_an_openai_target_is_translated(
        auth_nginx, aimock, caller, openai_models, migrated, case):
    """The Anthropic SDK asks for a model that only an OpenAI-format
    provider serves: the SDK parses what it parses from aimock's own
    Anthropic endpoint (text, stream, tool calls, usage, stop reason)."""
    model = openai_models["tools" if case == "tools" else "text"]
    via = sdk("anthropic", case, auth_nginx.http_url(""), caller["key"],
              model)
    plain = sdk("anthropic", case, aimock, "sk-direct", model)
    assert "error" not in via, via
    assert via == plain
    assert via["finish"] == ("tool_use" if case == "tools" else "end_turn")
    rows = ledger(migrated, caller["key_id"], model, 1)
    assert rows[-1][0] == "ok" and rows[-1][1] == caller["user"].id


@pytest.mark.parametrize("case", ["text", "stream", "tools"])
def test_openai_sdk_through_an_anthropic_target_is_translated(
        auth_nginx, aimock, caller, anthropic_models, migrated, case):
    """The OpenAI SDK asks for a model that only an Anthropic-format
    provider serves: Omni translates the request and the answer (text,
    stream, tool calls, usage, finish reason), and the SDK parses what it
    parses from aimock's own OpenAI endpoint."""
    model = anthropic_models["tools" if case == "tools" else "text"]
    via = sdk("openai", case, auth_nginx.http_url(""), caller["key"], model)
    plain = sdk("openai", case, aimock, "sk-direct", model)
    assert "error" not in via, via
    assert via == plain
    assert via["finish"] == ("tool_calls" if case == "tools" else "stop")
    rows = ledger(migrated, caller["key_id"], model, 1)
    assert rows[-1][0] == "ok" and rows[-1][1] == caller["user"].id


def test_failure_before_the_first_byte_falls_back(
        worker, auth_nginx, aimock, key_file, caller, models, migrated):
    """A model whose target answers 429 and whose fallback is the text
    model: the SDK sees the fallback's answer; two ledger rows."""
    kind = models["kind"]
    name = "aimock-429-%d" % random.randrange(10 ** 8, 10 ** 9)
    r = direct(worker, "POST", "/api/v1/llm/providers", {
        "name": ("gwfb-%s-%s" % (kind[:4], name[-9:]))[:30], "type": kind,
        "base_url": aimock, "api_key_file": str(key_file),
        "models": [{"name": name, "context_window": 8000,
                    "max_output_tokens": 256, "price": PRICE,
                    "fallbacks": [{"provider": models["provider"],
                                   "model": models["text"]}]}]},
        role="admin")
    assert r.status == 201, r.body
    via = sdk(kind, "stream", auth_nginx.http_url(""), caller["key"], name)
    assert via.get("text") == \
        "Hello from aimock, streamed in small chunks.", via
    assert [x[0] for x in ledger(migrated, caller["key_id"], name, 1)] == \
        ["fallback"]
    assert ledger(migrated, caller["key_id"], models["text"], 1)[-1][0] == \
        "ok"


def test_spent_budget_is_a_typed_429_and_no_provider_call(
        worker, auth_gw, auth_nginx, admin, models, migrated):
    user = new_user(auth_gw)
    key = create_key(auth_gw, token=user.access)
    r = direct(worker, "POST", "/api/v1/llm/budgets",
               {"scope": "user", "user_id": user.id, "tokens_per_day": 10},
               role="admin")
    assert r.status == 201, r.body
    via = sdk(models["kind"], "text", auth_nginx.http_url(""), key["key"],
              models["text"])
    assert via["error"] == "RateLimitError", via
    assert via["status"] == 429 and int(via["retry_after"]) > 0
    time.sleep(0.7)  # a batch of ledger rows is flushed every 0.5 s
    assert ledger(migrated, key["id"], models["text"], 0) == []


@pytest.fixture(scope="module")
def double():
    d = LlmDouble().start()
    yield d
    d.stop()


def double_model(worker, double, key_file, kind, behaviour="text"):
    name = "%s-%d" % (behaviour, random.randrange(10 ** 8, 10 ** 9))
    r = direct(worker, "POST", "/api/v1/llm/providers", {
        "name": "gwd-%s-%s" % (kind[:4], name[-9:]), "type": kind,
        "base_url": double.url, "api_key_file": str(key_file),
        "models": [{"name": name, "context_window": 8000,
                    "max_output_tokens": 256, "price": PRICE}]},
        role="admin")
    assert r.status == 201, r.body
    return name


def test_pass_through_sends_the_callers_body_and_the_providers_key(
        worker, auth_gw, caller, double, key_file):
    model = double_model(worker, double, key_file, "openai")
    body = {"model": model, "temperature": 0.25, "user": "end-user-7",
            "response_format": {"type": "text"},
            "messages": [{"role": "user", "content": "hi"}]}
    r = auth_gw.post("/v1/chat/completions", body,
                     headers={"Authorization": "Bearer " + caller["key"]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == \
        "Hello from the double."
    sent = double.requests(model)
    assert len(sent) == 1 and sent[0]["body"] == body
    # the provider sees its own key, never the caller's Omni key
    assert sent[0]["key"] == "Bearer " + KEY


def test_translated_request_carries_system_tool_calls_and_results(
        worker, auth_gw, caller, double, key_file):
    model = double_model(worker, double, key_file, "anthropic")
    body = {"model": model, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "add 1 and 2"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "fx__add", "arguments": "{\"a\":1,\"b\":2}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"}],
        "temperature": 0.25, "top_p": 0.5, "stop": "END",
        "tool_choice": {"type": "function",
                        "function": {"name": "fx__add"}},
        "parallel_tool_calls": False,
        "tools": [{"type": "function", "function": {
            "name": "fx__add", "description": "adds",
            "parameters": {"type": "object", "properties": {
                "a": {"type": "number"}}}}}]}
    r = auth_gw.post("/v1/chat/completions", body,
                     headers={"Authorization": "Bearer " + caller["key"]})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["object"] == "chat.completion" and doc["model"] == model
    assert doc["choices"][0]["message"]["content"] == \
        "Hello from the double."
    assert doc["choices"][0]["finish_reason"] == "stop"
    assert doc["usage"]["prompt_tokens"] > 0
    sent = double.requests(model)
    assert len(sent) == 1 and sent[0]["path"] == "/v1/messages"
    got = sent[0]["body"]
    assert sent[0]["key"] == KEY
    assert got["system"] == "Be brief." and got["max_tokens"] == 256
    assert (got["temperature"], got["top_p"], got["stop_sequences"]) == \
        (0.25, 0.5, ["END"])
    assert got["tool_choice"] == {"type": "tool", "name": "fx__add",
                                  "disable_parallel_tool_use": True}
    assert [m["role"] for m in got["messages"]] == \
        ["user", "assistant", "user"]
    use = [b for b in got["messages"][1]["content"]
           if b["type"] == "tool_use"]
    assert use == [{"type": "tool_use", "id": "call_1", "name": "fx__add",
                    "input": {"a": 1, "b": 2}}]
    res = [b for b in got["messages"][2]["content"]
           if b["type"] == "tool_result"]
    assert res[0]["tool_use_id"] == "call_1"
    assert got["tools"] == [{"name": "fx__add", "description": "adds",
                             "input_schema": {"type": "object",
                                              "properties": {
                                                  "a": {"type": "number"}}}}]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_client_disconnect_cancels_the_provider_and_bills(
        worker, auth_nginx, caller, double, key_file, migrated, kind):
    model = double_model(worker, double, key_file, kind, "slow")
    path = "/v1/chat/completions" if kind == "openai" else "/v1/messages"
    body = json.dumps({"model": model, "max_tokens": 50, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})
    s = socket.create_connection(("127.0.0.1", auth_nginx.http_port), 10)
    s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s"
               "\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n"
               % (path, caller["key"], len(body))).encode() + body.encode())
    got = b""
    while b"Hello" not in got:
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    s.close()
    stack.wait_until(lambda: double.requests(model)[-1]["outcome"]
                     != "started", 5, "the double sees its client go")
    assert double.requests(model)[-1]["outcome"] == "disconnected"
    rows = ledger(migrated, caller["key_id"], model, 1)
    assert [r[0] for r in rows] == ["client_disconnected"]
    assert rows[0][5] is True and rows[0][3] > 0


def test_translated_anthropic_request_carries_tool_use_and_results(
        worker, auth_gw, caller, double, key_file):
    model = double_model(worker, double, key_file, "openai")
    body = {"model": model, "max_tokens": 40, "system": "Be brief.",
            "temperature": 0.5, "stop_sequences": ["END"],
            "messages": [
                {"role": "user", "content": "add 1 and 2"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Adding."},
                    {"type": "tool_use", "id": "toolu_1", "name": "fx__add",
                     "input": {"a": 1, "b": 2}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1",
                     "content": "3"}]}],
            "tools": [{"name": "fx__add", "description": "adds",
                       "input_schema": {"type": "object"}}]}
    r = auth_gw.post("/v1/messages", body,
                     headers={"x-api-key": caller["key"]})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["type"] == "message" and doc["model"] == model
    assert doc["content"] == [{"type": "text",
                               "text": "Hello from the double."}]
    assert doc["stop_reason"] == "end_turn"
    sent = double.requests(model)
    assert len(sent) == 1 and sent[0]["path"] == "/v1/chat/completions"
    got = sent[0]["body"]
    assert got["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in got["messages"][1:]] == \
        ["user", "assistant", "tool"]
    call = got["messages"][2]["tool_calls"][0]
    assert call["id"] == "toolu_1" and call["function"]["name"] == "fx__add"
    assert json.loads(call["function"]["arguments"]) == {"a": 1, "b": 2}
    assert got["messages"][3]["tool_call_id"] == "toolu_1"
    assert got["messages"][3]["content"] == "3"
    assert (got["max_tokens"], got["temperature"], got["stop"]) == \
        (40, 0.5, ["END"])
    assert got["tools"][0]["function"]["name"] == "fx__add"
