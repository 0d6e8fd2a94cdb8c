"""The LLM gateway's model aliases (a name routed to ordered provider
targets) and an API key's rate limits in tokens and requests per minute,
driven by the official `openai` and `@anthropic-ai/sdk` clients through
nginx to @copilotkit/aimock (fixtures of test_llm_gateway.py)."""

import random
import time

from auth_support import admin, auth_gw, auth_nginx, create_key, \
    new_user  # noqa: F401 (fixtures)
from test_chat_aimock import aimock  # noqa: F401 (fixture)
from test_chat_turn import PRICE, direct, key_file  # noqa: F401
from test_llm_gateway import anthropic_models, caller, ledger, \
    make_models, models, openai_models, sdk  # noqa: F401 (fixtures)

HELLO = "Hello from aimock, streamed in small chunks."


def alias_name():
    return "fast-%d" % random.randrange(10 ** 8, 10 ** 9)


def make_alias(worker, name, targets, **extra):
    body = dict(name=name, targets=targets, **extra)
    return direct(worker, "POST", "/api/v1/llm/aliases", body, role="admin")


def key_of(auth_gw):
    user = new_user(auth_gw)
    key = create_key(auth_gw, token=user.access)
    return {"user": user, "key": key["key"], "key_id": key["id"]}


def set_limits(worker, key_id, **limits):
    r = direct(worker, "PUT", "/api/v1/llm/limits/" + key_id, limits,
               role="admin")
    assert r.status == 200, r.body
    return r.json()


# --- aliases -----------------------------------------------------------------

def test_alias_admin_api_validates_with_named_fields(worker, openai_models):
    t = {"provider": openai_models["provider"],
         "model": openai_models["text"]}
    name = alias_name()

    def bad(body, status, field, method="POST", path="/api/v1/llm/aliases"):
        r = direct(worker, method, path, body, role="admin")
        assert r.status == status, r.body
        doc = r.json()
        assert doc["field"] == field and field.split("[")[0] in \
            doc["message"], doc
        return doc

    assert bad({"name": name}, 400, "targets")["error"] == "invalid_field"
    assert bad({"name": name, "targets": []}, 422,
               "targets")["error"] == "invalid_value"
    doc = bad({"name": name, "targets": [t, {"provider": t["provider"],
                                              "model": "no-such-model"}]},
              422, "targets[1]")
    assert "no-such-model" in doc["message"]
    bad({"name": name, "targets": [t, t]}, 422, "targets[1]")
    bad({"name": "has space", "targets": [t]}, 422, "name")
    bad({"name": openai_models["tools"], "targets": [t]}, 422, "name")
    bad({"name": name, "targets": [t], "roles": ["x"]}, 422, "roles")
    r = direct(worker, "POST", "/api/v1/llm/aliases",
               {"name": name, "targets": [t]}, role="developer")
    assert r.status == 403 and r.json()["error"] == "forbidden", r.body

    r = make_alias(worker, name, [t], description="the quick one")
    assert r.status == 201, r.body
    doc = r.json()
    assert doc["name"] == name and doc["targets"] == [t]
    assert doc["description"] == "the quick one" and doc["id"]
    r = make_alias(worker, name, [t])
    assert r.status == 409 and r.json()["field"] == "name", r.body

    path = "/api/v1/llm/aliases/" + name
    t2 = {"provider": openai_models["provider"],
          "model": openai_models["tools"]}
    r = direct(worker, "PATCH", path, {"targets": [t2, t]}, role="admin")
    assert r.status == 200 and r.json()["targets"] == [t2, t], r.body
    assert r.json()["description"] == "the quick one"
    bad({"name": "other"}, 422, "name", "PATCH", path)
    r = direct(worker, "GET", path, role="admin")
    assert r.status == 200 and r.json()["targets"] == [t2, t], r.body
    r = direct(worker, "GET", "/api/v1/llm/aliases?limit=500", role="admin")
    assert r.status == 200 and name in [a["name"]
                                        for a in r.json()["items"]]
    r = direct(worker, "DELETE", path, role="admin")
    assert r.status == 204, r.body
    r = direct(worker, "GET", path, role="admin")
    assert r.status == 404 and r.json()["error"] == "not_found", r.body


def test_alias_routes_to_its_first_target_and_is_listed(
        worker, auth_gw, auth_nginx, aimock, caller, models, migrated):
    """The SDK names the alias: it gets what the target answers directly,
    /v1/models lists the alias, the ledger row names the real target."""
    kind = models["kind"]
    name = alias_name()
    r = make_alias(worker, name, [{"provider": models["provider"],
                                   "model": models["text"]}])
    assert r.status == 201, r.body
    r = auth_gw.get("/v1/models",
                    headers={"Authorization": "Bearer " + caller["key"]})
    assert r.status_code == 200, r.text
    listed = {m["id"]: m for m in r.json()["data"]}
    assert listed[name]["object"] == "model"
    assert listed[name]["owned_by"] == "omni"

    via = sdk(kind, "stream", auth_nginx.http_url(""), caller["key"], name)
    plain = sdk(kind, "stream", aimock, "sk-direct", models["text"])
    assert "error" not in via, via
    assert via == plain and via["text"] == HELLO
    rows = migrated.sql(
        "SELECT provider, model, status FROM omnichat.llm_usage"
        " WHERE api_key_id = %s AND model = %s", (caller["key_id"], name),
        dbname="omni")
    assert rows == []  # never the alias: the target it called
    rows = ledger(migrated, caller["key_id"], models["text"], 1)
    assert rows[-1][0] == "ok"


def test_alias_falls_back_through_its_targets_in_order(
        worker, auth_nginx, aimock, key_file, auth_gw, models,
        anthropic_models, migrated):
    """Target 1 answers 429, target 2 (another provider, the Anthropic
    format, translated for an OpenAI caller) answers: the SDK gets target
    2's text; one ledger row per attempt, each naming its provider."""
    who = key_of(auth_gw)
    kind = models["kind"]
    name = alias_name()
    targets = [{"provider": models["provider"], "model": models["429"]},
               {"provider": anthropic_models["provider"],
                "model": anthropic_models["text"]}]
    r = make_alias(worker, name, targets)
    assert r.status == 201, r.body
    via = sdk(kind, "text", auth_nginx.http_url(""), who["key"], name)
    assert "error" not in via, via
    assert via["text"] == HELLO
    deadline = time.monotonic() + 5
    while True:
        rows = migrated.sql(
            "SELECT provider, model, status FROM omnichat.llm_usage"
            " WHERE api_key_id = %s ORDER BY at", (who["key_id"],),
            dbname="omni")
        if len(rows) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [tuple(x) for x in rows] == [
        (models["provider"], models["429"], "fallback"),
        (anthropic_models["provider"], anthropic_models["text"], "ok")]


def test_alias_with_no_live_target_is_404(worker, auth_gw, caller,
                                          aimock, key_file):
    """Retiring the alias's only model takes the alias off /v1/models and
    calling it is the caller's-format 404."""
    m = make_models(worker, aimock, key_file, "openai")
    name = alias_name()
    r = make_alias(worker, name, [{"provider": m["provider"],
                                   "model": m["text"]}])
    assert r.status == 201, r.body
    h = {"Authorization": "Bearer " + caller["key"]}
    body = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
    assert auth_gw.post("/v1/chat/completions", body,
                        headers=h).status_code == 200
    r = direct(worker, "PATCH", "/api/v1/llm/providers/" + m["provider"],
               {"models": [{"name": m["tools"], "context_window": 8000,
                            "max_output_tokens": 256, "price": PRICE}]},
               role="admin")
    assert r.status == 200, r.body
    r = auth_gw.post("/v1/chat/completions", body, headers=h)
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "model_not_found"
    ids = {x["id"] for x in auth_gw.get("/v1/models",
                                        headers=h).json()["data"]}
    assert name not in ids and m["tools"] in ids


# --- per-key limits ----------------------------------------------------------

def test_key_over_its_tokens_per_minute_gets_a_typed_429(
        worker, auth_gw, auth_nginx, models, migrated):
    """A key limited to 30 tokens a minute: the first call (28 tokens by
    aimock's usage) passes, the next is the SDK's RateLimitError with a
    Retry-After, in the caller's format, and reaches no provider; another
    key of the same user is not limited."""
    kind, model = models["kind"], models["text"]
    who = key_of(auth_gw)
    doc = set_limits(worker, who["key_id"], tokens_per_minute=30)
    assert doc["tokens_per_minute"] == 30 and \
        doc["requests_per_minute"] is None
    base = auth_nginx.http_url("")
    first = sdk(kind, "text", base, who["key"], model)
    assert first.get("text") == HELLO, first
    via = sdk(kind, "text", base, who["key"], model)
    assert via["error"] == "RateLimitError", via
    assert via["status"] == 429 and 0 < int(via["retry_after"]) <= 60
    assert via["type"] == ("rate_limit_error" if kind == "anthropic"
                           else "rate_limit")
    assert "30 tokens per minute" in via["message"]
    time.sleep(0.7)  # a batch of ledger rows is flushed every 0.5 s
    assert [r[0] for r in ledger(migrated, who["key_id"], model, 1)] == \
        ["ok"]

    other = create_key(auth_gw, token=who["user"].access)
    assert sdk(kind, "text", base, other["key"], model).get("text") == HELLO


def test_streamed_usage_is_settled_against_the_tokens_per_minute(
        worker, auth_gw, auth_nginx, openai_models):
    """A key limited to 75 tokens a minute: a streamed call takes its
    estimate (42: the body's length / 4 + 8) before the provider is called
    and settles at the 28 it used, so a second one fits (two estimates
    would not: 84) and a third does not (56 + 42)."""
    model = openai_models["text"]
    who = key_of(auth_gw)
    set_limits(worker, who["key_id"], tokens_per_minute=75)
    base = auth_nginx.http_url("")
    assert sdk("openai", "stream", base, who["key"], model).get("text") == \
        HELLO
    assert sdk("openai", "stream", base, who["key"], model).get("text") == \
        HELLO
    via = sdk("openai", "stream", base, who["key"], model)
    assert via["error"] == "RateLimitError" and via["status"] == 429, via
    assert "may use 42" in via["message"]


def test_key_over_its_requests_per_minute_gets_a_typed_429(
        worker, auth_gw, auth_nginx, models):
    kind, model = models["kind"], models["text"]
    who = key_of(auth_gw)
    set_limits(worker, who["key_id"], requests_per_minute=2)
    base = auth_nginx.http_url("")
    for _ in range(2):
        assert sdk(kind, "text", base, who["key"], model).get("text") == \
            HELLO
    via = sdk(kind, "text", base, who["key"], model)
    assert via["error"] == "RateLimitError" and via["status"] == 429, via
    assert 0 < int(via["retry_after"]) <= 30
    assert "2 requests per minute" in via["message"]


def test_limits_admin_api_and_lifting_a_limit(worker, auth_gw, auth_nginx,
                                              openai_models):
    who = key_of(auth_gw)
    path = "/api/v1/llm/limits/" + who["key_id"]

    def bad(body, status, field, p=path):
        r = direct(worker, "PUT", p, body, role="admin")
        assert r.status == status, r.body
        assert r.json().get("field") == field, r.body
        return r.json()

    assert "at least one" in bad({}, 422, "tokens_per_minute")["message"]
    bad({"tokens_per_minute": 0}, 422, "tokens_per_minute")
    bad({"tokens_per_minute": 1.5}, 422, "tokens_per_minute")
    bad({"requests_per_minute": "5"}, 400, "requests_per_minute")
    bad({"tokens": 5}, 422, "tokens")
    bad({"tokens_per_minute": 5}, 404, None,
        "/api/v1/llm/limits/00000000-0000-4000-8000-000000000000")
    r = direct(worker, "PUT", path, {"tokens_per_minute": 5},
               role="developer")
    assert r.status == 403, r.body

    set_limits(worker, who["key_id"], requests_per_minute=1)
    r = direct(worker, "GET", "/api/v1/llm/limits?limit=500", role="admin")
    assert r.status == 200
    mine = [x for x in r.json()["items"] if x["api_key_id"] == who["key_id"]]
    assert mine and mine[0]["requests_per_minute"] == 1
    base, model = auth_nginx.http_url(""), openai_models["text"]
    assert sdk("openai", "text", base, who["key"], model).get("text") == HELLO
    assert sdk("openai", "text", base, who["key"],
               model).get("status") == 429
    r = direct(worker, "DELETE", path, role="admin")
    assert r.status == 204, r.body
    assert sdk("openai", "text", base, who["key"], model).get("text") == HELLO
    r = direct(worker, "DELETE", path, role="admin")
    assert r.status == 404, r.body
