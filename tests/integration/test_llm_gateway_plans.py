"""The LLM gateway's plans (a model's or alias's targets and prices, the
caller's budgets, the API key's limits) are cached by each worker process
under a generation in Redis (omni:llm:gen) that every admin change bumps
before the admin has its answer: the very next call on any process sees
the change. Each test holds a keep-alive connection to each of the shared
worker's processes (told apart by /health/live's pid), fills each one's
cache with a call, changes the plan through the admin API, then calls
through each connection."""

import json
import random
import time

import stack
from auth_support import admin, auth_gw, auth_nginx, create_key, \
    new_user  # noqa: F401 (fixtures)
from test_chat_aimock import aimock  # noqa: F401 (fixture)
from test_chat_turn import PRICE, direct, key_file  # noqa: F401
from test_llm_gateway import openai_models  # noqa: F401 (fixture)

HELLO = "Hello from aimock, streamed in small chunks."


def per_process(worker, n=2):
    """One keep-alive connection to each of the worker's n processes."""
    conns, spare = {}, []
    deadline = time.monotonic() + 15
    try:
        while len(conns) < n:
            assert time.monotonic() < deadline, "not every process reached"
            c = worker.connection()
            pid = stack.http_request(c, "GET", "/health/live").json()["pid"]
            if pid in conns:
                spare.append(c)  # held open: the next goes elsewhere
            else:
                conns[pid] = c
    finally:
        for c in spare:
            c.close()
    return list(conns.values())


def caller_of(auth_gw):
    user = new_user(auth_gw)
    key = create_key(auth_gw, token=user.access)
    return {"user": user.id, "key_id": key["id"]}


def call(conn, who, model):
    h = {"X-User-Role": "developer", "X-User-Id": who["user"],
         "X-User-Username": "plans", "X-User-Api-Key-Id": who["key_id"],
         "Content-Type": "application/json"}
    body = {"model": model,
            "messages": [{"role": "user", "content": "Say hello"}]}
    return stack.http_request(conn, "POST", "/v1/chat/completions", h,
                              json.dumps(body))


def text_of(r):
    assert r.status == 200, r.body
    return r.json()["choices"][0]["message"]["content"]


def warm(conns, who, model):
    for c in conns:
        assert text_of(call(c, who, model)) == HELLO


def provider(worker, aimock, key_file, price=PRICE):
    suffix = str(random.randrange(10 ** 8, 10 ** 9))
    names = ["aimock-text-" + suffix, "aimock-429-" + suffix]
    body = {"name": "plans-" + suffix, "type": "openai", "base_url": aimock,
            "api_key_file": str(key_file),
            "models": [{"name": n, "context_window": 8000,
                        "max_output_tokens": 256, "price": price}
                       for n in names]}
    r = direct(worker, "POST", "/api/v1/llm/providers", body, role="admin")
    assert r.status == 201, r.body
    return r.json()["id"], names, body


def test_an_alias_retargeted_is_followed_by_every_process(
        worker, auth_gw, openai_models):
    conns = per_process(worker)
    who = caller_of(auth_gw)
    name = "plans-%d" % random.randrange(10 ** 8, 10 ** 9)
    p = openai_models["provider"]
    r = direct(worker, "POST", "/api/v1/llm/aliases",
               {"name": name, "targets": [{"provider": p,
                                           "model": openai_models["text"]}]},
               role="admin")
    assert r.status == 201, r.body
    warm(conns, who, name)
    r = direct(worker, "PATCH", "/api/v1/llm/aliases/" + name,
               {"targets": [{"provider": p, "model": openai_models["429"]}]},
               role="admin")
    assert r.status == 200, r.body
    for c in conns:
        r = call(c, who, name)
        assert r.status == 429, r.body
    r = direct(worker, "DELETE", "/api/v1/llm/aliases/" + name, role="admin")
    assert r.status == 204, r.body
    for c in conns:
        r = call(c, who, name)
        assert r.status == 404 and \
            r.json()["error"]["code"] == "model_not_found", r.body


def test_a_price_change_is_billed_from_the_next_call_on_every_process(
        worker, auth_gw, aimock, key_file, migrated):
    conns = per_process(worker)
    who = caller_of(auth_gw)
    pid, names, body = provider(worker, aimock, key_file)
    warm(conns, who, names[0])
    for m in body["models"]:
        m["price"] = {"input": 200, "output": 1000, "cached": 50}
    r = direct(worker, "PATCH", "/api/v1/llm/providers/" + pid,
               {"models": body["models"]}, role="admin")
    assert r.status == 200, r.body
    warm(conns, who, names[0])
    deadline = time.monotonic() + 5
    while True:
        rows = migrated.sql(
            "SELECT price_version, cost, input_tokens, output_tokens"
            " FROM omnichat.llm_usage WHERE api_key_id = %s ORDER BY at",
            (who["key_id"],), dbname="omni")
        if len(rows) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(rows) == 4, rows
    old, new = rows[:2], rows[2:]
    assert len({r[0] for r in old}) == 1 and len({r[0] for r in new}) == 1
    assert new[0][0] > old[0][0], rows
    for v, cost, i, o in new:  # input 200, output 1000 per million
        assert float(cost) == (i * 200 + o * 1000) / 1e6, rows


def test_a_limit_set_and_lifted_holds_on_every_process(
        worker, auth_gw, openai_models):
    conns = per_process(worker)
    who = caller_of(auth_gw)
    model = openai_models["text"]
    warm(conns, who, model)
    path = "/api/v1/llm/limits/" + who["key_id"]
    r = direct(worker, "PUT", path, {"requests_per_minute": 1}, role="admin")
    assert r.status == 200, r.body
    assert text_of(call(conns[0], who, model)) == HELLO
    for c in conns:
        r = call(c, who, model)
        assert r.status == 429 and \
            "1 requests per minute" in r.json()["error"]["message"], r.body
    r = direct(worker, "DELETE", path, role="admin")
    assert r.status == 204, r.body
    warm(conns, who, model)


def test_a_budget_set_and_a_model_retired_hold_on_every_process(
        worker, auth_gw, aimock, key_file):
    conns = per_process(worker)
    who = caller_of(auth_gw)
    pid, names, body = provider(worker, aimock, key_file)
    warm(conns, who, names[0])
    r = direct(worker, "POST", "/api/v1/llm/budgets",
               {"scope": "user", "user_id": who["user"],
                "tokens_per_day": 10}, role="admin")
    assert r.status == 201, r.body
    for c in conns:
        r = call(c, who, names[0])
        assert r.status == 429 and \
            r.json()["error"]["code"] == "budget_exceeded", r.body
    other = caller_of(auth_gw)
    warm(conns, other, names[0])
    r = direct(worker, "PATCH", "/api/v1/llm/providers/" + pid,
               {"models": body["models"][1:]}, role="admin")
    assert r.status == 200, r.body
    for c in conns:
        r = call(c, other, names[0])
        assert r.status == 404 and \
            r.json()["error"]["code"] == "model_not_found", r.body
