"""The chat service's LLM providers (/api/v1/llm/providers, admin):
validation naming the field, API keys by reference only and never
returned, versioned model prices, and budgets (/api/v1/llm/budgets)."""

import json
import uuid

import pytest

PROVIDERS = "/api/v1/llm/providers"
BUDGETS = "/api/v1/llm/budgets"


def call(worker, method, path, body=None, role="admin", user=None):
    h = {"X-User-Role": role, "X-User-Id": user or str(uuid.uuid4()),
         "X-User-Username": "chat-" + role,
         "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body)
    return worker.request(method, path, h, data, timeout=30)


def unique(prefix="p"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def model(name="gpt-test", inp=1.5, out=6, cached=0.25):
    return {"name": name, "context_window": 128000,
            "max_output_tokens": 4096,
            "price": {"input": inp, "output": out, "cached": cached}}


def provider(**fields):
    body = {"name": unique(), "type": "openai",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "CHAT_TEST_KEY", "models": [model()]}
    body.update(fields)
    return body


def test_admin_adds_a_provider_and_reads_it_back(worker):
    body = provider(base_url="https://llm.example.com/v1/")
    r = call(worker, "POST", PROVIDERS, body)
    assert r.status == 201, r.body
    p = r.json()
    assert p["name"] == body["name"] and p["type"] == "openai"
    assert p["base_url"] == "https://llm.example.com"
    assert p["api_key_env"] == "CHAT_TEST_KEY"
    assert p["models"] == [{"name": "gpt-test", "context_window": 128000,
                            "max_output_tokens": 4096, "fallbacks": [],
                            "price": {"input": 1.5, "output": 6,
                                      "cached": 0.25, "version": 1}}]
    for ref in (p["id"], p["name"]):
        g = call(worker, "GET", PROVIDERS + "/" + ref)
        assert g.status == 200 and g.json() == p
    listed = call(worker, "GET", PROVIDERS + "?limit=500").json()
    assert p in listed["items"]


def test_base_url_with_or_without_v1_is_stored_the_same(worker):
    a = call(worker, "POST", PROVIDERS,
             provider(base_url="http://127.0.0.1:8080/v1")).json()
    b = call(worker, "POST", PROVIDERS,
             provider(base_url="http://127.0.0.1:8080")).json()
    assert a["base_url"] == b["base_url"] == "http://127.0.0.1:8080"


@pytest.mark.parametrize("role", ["viewer", "user", "developer"])
def test_only_admins_see_or_change_providers(worker, role):
    p = call(worker, "POST", PROVIDERS, provider()).json()
    for method, path, body in (("GET", PROVIDERS, None),
                               ("POST", PROVIDERS, provider()),
                               ("GET", PROVIDERS + "/" + p["id"], None),
                               ("PATCH", PROVIDERS + "/" + p["id"],
                                {"type": "anthropic"}),
                               ("GET", BUDGETS, None),
                               ("POST", BUDGETS,
                                {"scope": "user", "user_id": "x",
                                 "tokens_per_day": 1})):
        r = call(worker, method, path, body, role=role)
        assert r.status == 403, (method, path, r.body)
        assert r.json()["error"] == "forbidden"


def test_key_reference_is_returned_never_a_key_and_a_clear_key_is_refused(
        worker, migrated):
    secret = "sk-" + uuid.uuid4().hex
    r = call(worker, "POST", PROVIDERS, provider(api_key=secret))
    assert r.status == 422 and r.json()["field"] == "api_key"
    assert secret not in r.body.decode()
    p = call(worker, "POST", PROVIDERS, provider(
        api_key_env=None, api_key_file="/run/secrets/llm-key")).json()
    assert p["api_key_file"] == "/run/secrets/llm-key"
    assert "api_key_env" not in p and "api_key" not in p
    q = call(worker, "PATCH", PROVIDERS + "/" + p["id"],
             {"api_key_env": "OTHER_KEY"}).json()
    assert q["api_key_env"] == "OTHER_KEY" and "api_key_file" not in q
    assert secret not in worker.log_text()
    cols = migrated.sql("SELECT column_name FROM information_schema.columns"
                        " WHERE table_schema = 'omnichat'"
                        " AND table_name = 'providers'", dbname="omni")
    assert {c[0] for c in cols} & {"api_key", "key"} == set()


@pytest.mark.parametrize("field,value,status", [
    ("name", "Upper", 422), ("name", 7, 400), ("name", "", 422),
    ("type", "cohere", 422), ("type", None, 400),
    ("base_url", "ftp://x", 422), ("base_url", "http://u:p@x/v1", 422),
    ("base_url", "http://x/v1?key=1", 422), ("base_url", "not a url", 422),
    ("api_key_env", "BAD-NAME", 422), ("api_key_file", "relative/key", 422),
    ("api_key_file", "/run/../etc/shadow", 422),
    ("models", [], 422), ("models", "gpt", 400),
    ("models[0].price.input", -1, 422), ("models[0].price.output", "1", 400),
    ("models[0].price.cached", -0.01, 422),
    ("models[0].context_window", 0, 422),
    ("models[0].max_output_tokens", 200000, 422),
    ("models[0].name", "", 422), ("models[0].bogus", 1, 422),
    ("fallbacks", [{"provider": "nope", "model": "nope"}], 422),
    ("bogus", 1, 422),
])
def test_invalid_provider_fields_are_refused_naming_the_field(
        worker, field, value, status):
    body = provider()
    if field.startswith("models[0]."):
        target, key = body["models"][0], field[len("models[0]."):]
        if key.startswith("price."):
            target, key = target["price"], key[len("price."):]
        target[key] = value
    else:
        body[field] = value
    r = call(worker, "POST", PROVIDERS, body)
    assert r.status == status, r.body
    err = r.json()
    assert err["field"].startswith(field), err
    assert field.split(".")[-1].split("[")[0] in err["message"]


def test_both_key_references_at_once_are_refused(worker):
    r = call(worker, "POST", PROVIDERS,
             provider(api_key_file="/run/secrets/k"))
    assert r.status == 422 and r.json()["field"] == "api_key_env"


def test_duplicate_provider_name_is_409(worker):
    body = provider()
    assert call(worker, "POST", PROVIDERS, body).status == 201
    r = call(worker, "POST", PROVIDERS, body)
    assert r.status == 409 and r.json()["field"] == "name"


def test_unknown_provider_is_404(worker):
    assert call(worker, "GET", PROVIDERS + "/nope-" + unique()).status == 404
    r = call(worker, "PATCH", PROVIDERS + "/" + str(uuid.uuid4()),
             {"type": "anthropic"})
    assert r.status == 404


def test_a_price_change_inserts_a_new_price_version(worker, migrated):
    p = call(worker, "POST", PROVIDERS, provider()).json()
    same = call(worker, "PATCH", PROVIDERS + "/" + p["id"],
                {"models": [model()]}).json()
    assert same["models"][0]["price"]["version"] == 1
    r = call(worker, "PATCH", PROVIDERS + "/" + p["id"],
             {"models": [model(inp=2, out=8)]})
    assert r.status == 200, r.body
    price = r.json()["models"][0]["price"]
    assert price == {"input": 2, "output": 8, "cached": 0.25, "version": 2}
    rows = migrated.sql(
        "SELECT pr.version, pr.input::float8, pr.output::float8"
        " FROM omnichat.model_prices AS pr"
        " JOIN omnichat.models AS m ON m.id = pr.model_id"
        " JOIN omnichat.providers AS p ON p.id = m.provider_id"
        " WHERE p.name = %s ORDER BY pr.version", (p["name"],),
        dbname="omni")
    assert [tuple(x) for x in rows] == [(1, 1.5, 6.0), (2, 2.0, 8.0)]


def test_a_model_left_out_is_retired_and_its_prices_kept(worker, migrated):
    p = call(worker, "POST", PROVIDERS, provider(
        models=[model("m-a"), model("m-b")])).json()
    q = call(worker, "PATCH", PROVIDERS + "/" + p["id"],
             {"models": [model("m-b")]}).json()
    assert [m["name"] for m in q["models"]] == ["m-b"]
    kept = migrated.sql(
        "SELECT count(*) FROM omnichat.model_prices AS pr"
        " JOIN omnichat.models AS m ON m.id = pr.model_id"
        " WHERE m.provider_id = %s AND m.name = 'm-a'", (p["id"],),
        dbname="omni")
    assert kept[0][0] == 1


def test_stored_targets_follow_every_admin_change(worker, migrated):
    # a chat turn reads each model's target from its row (sql/019): after
    # each kind of change it must equal the one built from the tables
    def targets(pid):
        rows = migrated.sql(
            "SELECT m.name, m.target, omnichat.model_target(m.id)"
            " FROM omnichat.models AS m WHERE m.provider_id = %s"
            " ORDER BY m.name", (pid,), dbname="omni")
        for name, stored, built in rows:
            assert stored == built, (name, stored, built)
        return {name: stored for name, stored, _ in rows}

    p = call(worker, "POST", PROVIDERS, provider(
        models=[model("m-a"), model("m-b")])).json()
    t = targets(p["id"])
    assert t["m-a"]["input"] == 1.5 and t["m-a"]["price_version"] == 1
    assert t["m-a"]["base_url"] == "http://127.0.0.1:9"
    steps = [
        {"models": [model("m-a", inp=3), model("m-b")]},        # a price
        {"base_url": "http://127.0.0.1:10/v1"},                  # provider
        {"api_key_env": None, "api_key_file": "/run/secrets/k"},
        {"models": [dict(model("m-a", inp=3), context_window=9999),
                    model("m-b")]},                                # limits
        {"models": [model("m-b")]},                     # m-a retired
    ]
    for body in steps:
        r = call(worker, "PATCH", PROVIDERS + "/" + p["id"], body)
        assert r.status == 200, (body, r.body)
        t = targets(p["id"])
    assert t["m-a"]["input"] == 3 and t["m-a"]["price_version"] == 2
    assert t["m-a"]["context_window"] == 9999
    assert t["m-b"]["base_url"] == "http://127.0.0.1:10"
    assert t["m-b"]["api_key_file"] == "/run/secrets/k"
    assert t["m-b"]["api_key_env"] is None


def test_provider_list_pages_with_a_cursor(worker):
    for _ in range(3):
        assert call(worker, "POST", PROVIDERS, provider()).status == 201
    seen, cursor = [], None
    while True:
        r = call(worker, "GET", PROVIDERS + "?limit=2"
                 + ("&cursor=" + cursor if cursor else ""))
        assert r.status == 200, r.body
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [p["name"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) >= 3 and seen == sorted(seen)
    assert len(set(seen)) == len(seen)


def test_budgets_are_set_replaced_and_listed(worker):
    who = unique("u")
    r = call(worker, "POST", BUDGETS, {"scope": "user", "user_id": who,
                                       "tokens_per_day": 1000})
    assert r.status == 201, r.body
    b = r.json()
    assert b["user_id"] == who and b["tokens_per_day"] == 1000
    r = call(worker, "POST", BUDGETS, {"scope": "user", "user_id": who,
                                       "cost_per_day": 2.5})
    assert r.json()["id"] == b["id"] and r.json()["cost_per_day"] == 2.5
    items = call(worker, "GET", BUDGETS + "?limit=500").json()["items"]
    mine = [x for x in items if x.get("user_id") == who]
    assert len(mine) == 1 and mine[0]["tokens_per_day"] is None


@pytest.mark.parametrize("body,field", [
    ({"scope": "team", "user_id": "x"}, "scope"),
    ({"scope": "user"}, "user_id"),
    ({"scope": "user", "user_id": "x", "tokens_per_day": -1},
     "tokens_per_day"),
    ({"scope": "user", "user_id": "x", "cost_per_day": "1"}, "cost_per_day"),
    ({"scope": "project", "project_id": str(uuid.uuid4())}, "project_id"),
])
def test_invalid_budgets_are_refused_naming_the_field(worker, body, field):
    r = call(worker, "POST", BUDGETS, body)
    assert r.status in (400, 422), r.body
    assert r.json()["field"] == field


def test_usage_summary_is_everyones_for_admins_and_own_for_others(
        worker, migrated):
    me, other, model_name = str(uuid.uuid4()), str(uuid.uuid4()), unique("m")
    migrated.sql(
        "INSERT INTO omnichat.llm_usage (user_id, provider, model,"
        " input_tokens, output_tokens, cost, status)"
        " VALUES (%s, 'pv', %s, 10, 2, 0.5, 'ok'),"
        "        (%s, 'pv', %s, 5, 0, 0.25, 'error'),"
        "        (%s, 'pv', %s, 7, 1, 1, 'ok')",
        (me, model_name, me, model_name, other, model_name), dbname="omni")
    mine = call(worker, "GET", "/api/v1/llm/usage?group_by=model",
                role="user", user=me)
    assert mine.status == 200, mine.body
    rows = [x for x in mine.json()["items"] if x["model"] == model_name]
    assert rows == [{"model": model_name, "requests": 2, "input_tokens": 15,
                     "output_tokens": 2, "cached_tokens": 0, "cost": 0.75,
                     "errors": 1}]
    everyone = call(worker, "GET", "/api/v1/llm/usage?group_by=user")
    users = {x["user"]: x["requests"] for x in everyone.json()["items"]}
    assert users[me] == 2 and users[other] == 1
    old = call(worker, "GET", "/api/v1/llm/usage?from=2020-01-01T00:00:00Z"
               "&to=2020-01-02T00:00:00Z", role="user", user=me)
    assert old.status == 200 and old.json()["items"] == []


@pytest.mark.parametrize("query,field", [
    ("group_by=colour", "group_by"), ("from=yesterday", "from"),
    ("to=2020-13-45", "to"),
    ("from=2020-01-02T00:00:00Z&to=2020-01-01T00:00:00Z", "from"),
])
def test_usage_summary_bad_arguments_are_400_naming_them(worker, query,
                                                         field):
    r = call(worker, "GET", "/api/v1/llm/usage?" + query, role="user")
    assert r.status == 400, r.body
    assert r.json()["error"] == "invalid_parameter"
    assert r.json()["field"] == field
