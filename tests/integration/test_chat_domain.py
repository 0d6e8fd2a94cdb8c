"""The chat service's domain (/api/v1/projects, prompts and their
immutable versions, conversations, messages): every object is its owner's
only (another user gets 404 and never sees it in a list), an edit makes a
new prompt version while conversations keep theirs, lists page with
cursors, bad input names the field, and a conversation's events channel
is open to its owner only."""

import json
import uuid

import pytest
import websocket

from events_support import Sse, ws_connect

PROVIDERS = "/api/v1/llm/providers"


def call(worker, method, path, body=None, user=None, role="user"):
    h = {"X-User-Role": role, "X-User-Id": user or str(uuid.uuid4()),
         "X-User-Username": "chat-" + role,
         "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body)
    return worker.request(method, path, h, data, timeout=30)


def unique(prefix="x"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


@pytest.fixture(scope="module")
def llm_model(worker):
    """A configured provider's model name."""
    name = unique("model")
    r = call(worker, "POST", PROVIDERS, {
        "name": unique("prov"), "type": "anthropic",
        "base_url": "http://127.0.0.1:9", "api_key_env": "CHAT_TEST_KEY",
        "models": [{"name": name, "context_window": 200000,
                    "max_output_tokens": 8192,
                    "price": {"input": 3, "output": 15, "cached": 0.3}}]},
        role="admin")
    assert r.status == 201, r.body
    return name


class Owner:
    """A user with a project, a prompt (version 1) and a conversation."""

    def __init__(self, worker, model):
        self.w, self.id = worker, str(uuid.uuid4())
        self.project = self.post("/api/v1/projects",
                                 {"name": unique("proj"),
                                  "description": "d"})
        self.prompt = self.post(
            "/api/v1/projects/%s/prompts" % self.project["id"],
            {"name": unique("prompt"), "content": "You are terse."})
        self.version = self.prompt["latest_version"]
        self.conversation = self.post("/api/v1/conversations", {
            "project_id": self.project["id"],
            "prompt_version_id": self.version["id"], "model": model})

    def call(self, method, path, body=None):
        return call(self.w, method, path, body, user=self.id)

    def post(self, path, body):
        r = self.call("POST", path, body)
        assert r.status == 201, (path, r.body)
        return r.json()


@pytest.fixture
def alice(worker, llm_model):
    return Owner(worker, llm_model)


@pytest.fixture
def bob(worker, llm_model):
    return Owner(worker, llm_model)


def test_owner_creates_and_reads_the_whole_chain(alice, llm_model):
    p = alice.project
    assert p["user_id"] == alice.id and p["description"] == "d"
    v = alice.version
    assert v["version"] == 1 and v["content"] == "You are terse."
    assert v["prompt_id"] == alice.prompt["id"]
    c = alice.conversation
    assert c["prompt_version_id"] == v["id"] and c["model"] == llm_model
    assert c["project_id"] == p["id"] and c["max_tool_rounds"] == 8
    assert alice.call("GET", "/api/v1/projects/" + p["id"]).json() == p
    g = alice.call("GET", "/api/v1/conversations/" + c["id"])
    assert g.status == 200 and g.json() == c
    m = alice.call("GET", "/api/v1/conversations/%s/messages" % c["id"])
    assert m.status == 200 and m.json() == {"items": [], "next_cursor": None}


def test_another_users_objects_are_404_and_never_listed(alice, bob):
    a = alice
    for method, path, body in (
            ("GET", "/api/v1/projects/" + a.project["id"], None),
            ("PATCH", "/api/v1/projects/" + a.project["id"], {"name": "x"}),
            ("DELETE", "/api/v1/projects/" + a.project["id"], None),
            ("GET", "/api/v1/projects/%s/prompts" % a.project["id"], None),
            ("POST", "/api/v1/projects/%s/prompts" % a.project["id"],
             {"name": "x", "content": "y"}),
            ("POST", "/api/v1/prompts/%s/versions" % a.prompt["id"],
             {"content": "stolen"}),
            ("GET", "/api/v1/conversations/" + a.conversation["id"], None),
            ("DELETE", "/api/v1/conversations/" + a.conversation["id"],
             None),
            ("GET", "/api/v1/conversations/%s/messages"
             % a.conversation["id"], None)):
        r = bob.call(method, path, body)
        assert r.status == 404, (method, path, r.body)
        assert r.json()["error"] == "not_found"
    # Bob cannot pin Alice's project or prompt version either
    r = bob.call("POST", "/api/v1/conversations", {
        "project_id": a.project["id"],
        "prompt_version_id": bob.version["id"],
        "model": bob.conversation["model"]})
    assert r.status == 404 and r.json()["field"] == "project_id"
    r = bob.call("POST", "/api/v1/conversations", {
        "project_id": bob.project["id"],
        "prompt_version_id": a.version["id"],
        "model": bob.conversation["model"]})
    assert r.status == 404 and r.json()["field"] == "prompt_version_id"
    projects = bob.call("GET", "/api/v1/projects?limit=500").json()["items"]
    assert [p["id"] for p in projects] == [bob.project["id"]]
    convs = bob.call("GET", "/api/v1/conversations?limit=500").json()
    assert [c["id"] for c in convs["items"]] == [bob.conversation["id"]]
    # and Alice's objects are all still there, unchanged
    assert a.call("GET", "/api/v1/projects/" + a.project["id"]).json() \
        == a.project
    prompts = a.call("GET", "/api/v1/projects/%s/prompts"
                     % a.project["id"]).json()["items"]
    assert [p["latest_version"]["version"] for p in prompts] == [1]


def test_a_prompt_edit_is_a_new_version_and_conversations_keep_theirs(
        alice, llm_model):
    r = alice.call("POST", "/api/v1/prompts/%s/versions" % alice.prompt["id"],
                   {"content": "You are verbose."})
    assert r.status == 201, r.body
    v2 = r.json()
    assert set(v2) == {"id", "prompt_id", "version", "content", "created_at"}
    assert v2["version"] == 2 and v2["prompt_id"] == alice.prompt["id"]
    assert v2["id"] != alice.version["id"]
    old = alice.call("GET", "/api/v1/conversations/"
                     + alice.conversation["id"]).json()
    assert old["prompt_version_id"] == alice.version["id"]
    assert old["prompt_version"] == 1
    new = alice.post("/api/v1/conversations", {
        "project_id": alice.project["id"], "prompt_version_id": v2["id"],
        "model": llm_model})
    assert new["prompt_version"] == 2
    listed = alice.call("GET", "/api/v1/projects/%s/prompts"
                        % alice.project["id"]).json()["items"]
    assert listed[0]["latest_version"]["content"] == "You are verbose."


def test_project_patch_and_delete(alice):
    pid = alice.project["id"]
    r = alice.call("PATCH", "/api/v1/projects/" + pid,
                   {"name": "renamed-" + pid[:8], "description": None})
    assert r.status == 200, r.body
    assert r.json()["name"] == "renamed-" + pid[:8]
    assert r.json()["description"] is None
    assert alice.call("DELETE", "/api/v1/projects/" + pid).status == 204
    assert alice.call("GET", "/api/v1/projects/" + pid).status == 404
    # its prompts and conversations went with it
    assert alice.call("GET", "/api/v1/conversations/"
                      + alice.conversation["id"]).status == 404


def test_conversation_delete(alice):
    cid = alice.conversation["id"]
    assert alice.call("DELETE", "/api/v1/conversations/" + cid).status == 204
    assert alice.call("GET", "/api/v1/conversations/" + cid).status == 404
    assert alice.call("DELETE", "/api/v1/conversations/" + cid).status == 404


def test_duplicate_names_are_409(alice):
    r = alice.call("POST", "/api/v1/projects",
                   {"name": alice.project["name"]})
    assert r.status == 409 and r.json()["field"] == "name"
    r = alice.call("POST", "/api/v1/projects/%s/prompts"
                   % alice.project["id"],
                   {"name": alice.prompt["name"], "content": "again"})
    assert r.status == 409 and r.json()["field"] == "name"


def test_same_project_name_for_two_users_is_fine(alice, bob):
    r = bob.call("POST", "/api/v1/projects", {"name": alice.project["name"]})
    assert r.status == 201, r.body


@pytest.mark.parametrize("path,body,status,field", [
    ("/api/v1/projects", {}, 400, "name"),
    ("/api/v1/projects", {"name": "  "}, 422, "name"),
    ("/api/v1/projects", {"name": "a" * 201}, 422, "name"),
    ("/api/v1/projects", {"name": 3}, 400, "name"),
    ("/api/v1/projects", {"name": "n", "colour": "red"}, 422, "colour"),
    ("/api/v1/projects", {"name": "n", "fallbacks": [{"provider": "no",
                                                      "model": "no"}]},
     422, "fallbacks[0]"),
    ("/api/v1/projects", {"name": "n", "fallbacks": "x"}, 400, "fallbacks"),
    ("PROMPTS", {"name": "p"}, 400, "content"),
    ("PROMPTS", {"name": "p", "content": ""}, 422, "content"),
    ("PROMPTS", {"name": "p", "content": "c" * 100001}, 422, "content"),
    ("VERSIONS", {"content": ""}, 422, "content"),
    ("VERSIONS", {}, 400, "content"),
    ("CONV", {"model": "no-such-model"}, 422, "model"),
    ("CONV", {"model": None}, 400, "model"),
    ("CONV", {"max_tool_rounds": 33}, 422, "max_tool_rounds"),
    ("CONV", {"max_tool_rounds": "3"}, 400, "max_tool_rounds"),
    ("CONV", {"prompt_version_id": "not-a-uuid"}, 404, "prompt_version_id"),
    ("CONV", {"project_id": str(uuid.uuid4())}, 404, "project_id"),
])
def test_bad_input_is_refused_naming_the_field(alice, path, body, status,
                                               field):
    if path == "PROMPTS":
        path = "/api/v1/projects/%s/prompts" % alice.project["id"]
    elif path == "VERSIONS":
        path = "/api/v1/prompts/%s/versions" % alice.prompt["id"]
    elif path == "CONV":
        full = {"project_id": alice.project["id"],
                "prompt_version_id": alice.version["id"],
                "model": alice.conversation["model"]}
        full.update(body)
        path, body = "/api/v1/conversations", full
    r = alice.call("POST", path, body)
    assert r.status == status, r.body
    assert r.json()["field"] == field, r.body
    assert field.split("[")[0] in r.json()["message"]


def test_a_version_of_another_projects_prompt_is_422(alice):
    other = alice.post("/api/v1/projects", {"name": unique("proj")})
    r = alice.call("POST", "/api/v1/conversations", {
        "project_id": other["id"], "prompt_version_id": alice.version["id"],
        "model": alice.conversation["model"]})
    assert r.status == 422 and r.json()["field"] == "prompt_version_id"


def test_malformed_ids_are_404_and_bad_cursors_400(alice):
    assert alice.call("GET", "/api/v1/projects/nope").status == 404
    assert alice.call("GET", "/api/v1/conversations/1").status == 404
    r = alice.call("GET", "/api/v1/projects?cursor=garbage")
    assert r.status == 400
    r = alice.call("GET", "/api/v1/projects?limit=501")
    assert r.status == 400


def test_lists_page_with_cursors_newest_first(alice, llm_model):
    made = [alice.project["id"]]
    for _ in range(4):
        made.append(alice.post("/api/v1/projects",
                               {"name": unique("proj")})["id"])
    seen, cursor = [], None
    while True:
        r = alice.call("GET", "/api/v1/projects?limit=2"
                       + ("&cursor=" + cursor if cursor else ""))
        page = r.json()
        assert r.status == 200 and len(page["items"]) <= 2
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))
    for _ in range(2):
        alice.post("/api/v1/conversations", {
            "project_id": alice.project["id"],
            "prompt_version_id": alice.version["id"], "model": llm_model})
    first = alice.call("GET", "/api/v1/conversations?limit=2").json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = alice.call("GET", "/api/v1/conversations?limit=2&cursor="
                      + first["next_cursor"]).json()
    assert [c["id"] for c in rest["items"]] == [alice.conversation["id"]]
    assert rest["next_cursor"] is None


def test_messages_are_listed_oldest_first_with_the_spec_shape(
        alice, migrated):
    cid = alice.conversation["id"]
    migrated.sql(
        "INSERT INTO omnichat.messages (conversation_id, user_id, role,"
        " content, input_tokens, output_tokens, cost, latency_ms,"
        " provider_request_id)"
        " VALUES (%s, %s, 'user', 'hi', 0, 0, 0, NULL, NULL),"
        "        (%s, %s, 'assistant', 'hello', 12, 3, 0.0001, 420,"
        "         'req_1')", (cid, alice.id, cid, alice.id), dbname="omni")
    r = alice.call("GET", "/api/v1/conversations/%s/messages?limit=1" % cid)
    page = r.json()
    assert [m["role"] for m in page["items"]] == ["user"]
    nxt = alice.call("GET", "/api/v1/conversations/%s/messages?cursor=%s"
                     % (cid, page["next_cursor"])).json()
    m = nxt["items"][0]
    assert m["role"] == "assistant" and m["content"] == "hello"
    assert m["usage"] == {"input_tokens": 12, "output_tokens": 3,
                          "cached_tokens": 0}
    assert m["cost"] == 0.0001 and m["latency_ms"] == 420
    assert m["status"] == "ok" and m["created_at"].endswith("Z")


def test_conversation_channel_is_open_to_its_owner_only(gateway, alice):
    path = "/events/conversation-" + alice.conversation["id"]
    mine = {"Authorization": "Bearer "
            + gateway.token(sub=alice.id, role="user")}
    sub = Sse(gateway.http_port, path, headers=mine)
    try:
        assert sub.status == 200, sub.body
    finally:
        sub.close()
    for role in ("user", "admin"):
        other = {"Authorization": "Bearer "
                 + gateway.token(sub=str(uuid.uuid4()), role=role)}
        sub = Sse(gateway.http_port, path, headers=other)
        assert sub.status == 403, (role, sub.body)
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        ws_connect(gateway.http_port, "/ws/conversation-"
                   + alice.conversation["id"], headers=other)
    assert e.value.status_code == 403


def test_a_number_postgres_cannot_hold_is_400_not_500(alice):
    r = alice.w.request("POST", "/api/v1/projects",
                        {"X-User-Role": "user", "X-User-Id": alice.id,
                         "Content-Type": "application/json"},
                        b'{"name":"n","description":1e999999}', timeout=30)
    assert r.status == 400 and r.json()["error"] == "invalid_json", r.body


def test_a_caller_without_a_user_id_is_401(worker):
    r = worker.request("GET", "/api/v1/projects", {"X-User-Role": "user"},
                       None, timeout=30)
    assert r.status == 401, r.body


def test_conversation_usage_lists_its_ledger_rows_to_its_owner_only(
        alice, bob, migrated):
    cid = alice.conversation["id"]
    migrated.sql(
        "INSERT INTO omnichat.llm_usage (at, user_id, conversation_id,"
        " provider, model, provider_request_id, input_tokens,"
        " output_tokens, cost, price_version, status, estimated)"
        " VALUES (now() - interval '1 second', %s, %s, 'a', 'm', 'req_a',"
        "         9, 0, 0.01, 1, 'fallback', false),"
        "        (now(), %s, %s, 'b', 'm', 'req_b', 9, 4, 0.02, 3, 'ok',"
        "         true)", (alice.id, cid, alice.id, cid), dbname="omni")
    first = alice.call("GET", "/api/v1/conversations/%s/usage?limit=1"
                       % cid).json()
    assert [u["provider_request_id"] for u in first["items"]] == ["req_a"]
    assert first["items"][0]["status"] == "fallback"
    rest = alice.call("GET", "/api/v1/conversations/%s/usage?cursor=%s"
                      % (cid, first["next_cursor"])).json()
    u = rest["items"][0]
    assert u["provider_request_id"] == "req_b" and u["estimated"] is True
    assert u["usage"] == {"input_tokens": 9, "output_tokens": 4,
                          "cached_tokens": 0}
    assert u["price_version"] == 3 and rest["next_cursor"] is None
    r = bob.call("GET", "/api/v1/conversations/%s/usage" % cid)
    assert r.status == 404
