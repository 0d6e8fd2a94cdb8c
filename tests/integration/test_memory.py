"""Contexts and memories (SPEC 6) on a worker without an embedding model:
every object is its owner's only (another user gets 404 and never sees it
in a list or a search), a put upserts, lists page by namespace, tag and key
prefix with cursors, full-text search ranks a fixed corpus in a known
order, and bad input gets a 4xx naming the field."""

import json

import pytest

from memory_support import User, unique

CTX = "/api/v1/contexts"
MEM = "/api/v1/memories"


@pytest.fixture
def alice(worker):
    return User(worker)


@pytest.fixture
def bob(worker):
    return User(worker)


def test_context_put_creates_then_replaces_value_and_tags(alice):
    ns = unique()
    first = alice.ok("PUT", "%s/%s/theme" % (CTX, ns),
                     {"value": {"color": "blue"}, "tags": ["ui", "prefs"]},
                     status=201)
    assert first["namespace"] == ns and first["key"] == "theme"
    assert first["value"] == {"color": "blue"}
    assert first["tags"] == ["prefs", "ui"]
    second = alice.ok("PUT", "%s/%s/theme" % (CTX, ns), {"value": [1, 2]})
    assert second["id"] == first["id"]
    assert second["value"] == [1, 2] and second["tags"] == []
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] > first["updated_at"]
    got = alice.ok("GET", "%s/%s/theme" % (CTX, ns))
    assert got == second


def test_contexts_are_their_owners_only(alice, bob):
    ns = unique()
    path = "%s/%s/secret" % (CTX, ns)
    alice.ok("PUT", path, {"value": "alice's"}, status=201)
    assert bob.call("GET", path).status == 404
    assert bob.call("DELETE", path).status == 404
    assert bob.ok("GET", "%s?namespace=%s" % (CTX, ns))["items"] == []
    # bob's own context under the same namespace and key is another one
    bob.ok("PUT", path, {"value": "bob's"}, status=201)
    assert alice.ok("GET", path)["value"] == "alice's"
    assert bob.ok("GET", path)["value"] == "bob's"
    alice.ok("DELETE", path, status=204)
    assert alice.call("GET", path).status == 404
    assert bob.ok("GET", path)["value"] == "bob's"


def test_context_list_pages_by_namespace_tag_and_prefix(alice, bob):
    ns = unique()
    for i in range(7):
        alice.ok("PUT", "%s/%s/item-%02d" % (CTX, ns, i),
                 {"value": i, "tags": ["even" if i % 2 == 0 else "odd"]},
                 status=201)
    alice.ok("PUT", "%s/%s/other" % (CTX, ns), {"value": 0}, status=201)
    bob.ok("PUT", "%s/%s/item-99" % (CTX, ns), {"value": 99}, status=201)

    keys, cursor = [], None
    while True:
        q = "%s?namespace=%s&prefix=item-&limit=3" % (CTX, ns)
        page = alice.ok("GET", q + ("&cursor=" + cursor if cursor else ""))
        assert len(page["items"]) <= 3
        keys += [c["key"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert keys == ["item-%02d" % i for i in range(7)]

    even = alice.ok("GET", "%s?namespace=%s&tag=even" % (CTX, ns))
    assert [c["value"] for c in even["items"]] == [0, 2, 4, 6]
    assert even["next_cursor"] is None


def test_context_bad_input_names_the_field(alice):
    ns = unique()
    r = alice.call("PUT", "%s/%s/k" % (CTX, ns), {"tags": []})
    assert r.status == 400 and r.json()["field"] == "value"
    r = alice.call("PUT", "%s/%s/k" % (CTX, ns), {"value": 1, "tags": "x"})
    assert r.status == 400 and r.json()["field"] == "tags"
    r = alice.call("PUT", "%s/%s/k" % (CTX, ns),
                   {"value": 1, "tags": ["x" * 65]})
    assert r.status == 422 and r.json()["field"] == "tags"
    r = alice.call("PUT", "%s/%s/%s" % (CTX, ns, "k" * 129), {"value": 1})
    assert r.status == 422 and r.json()["field"] == "key"
    r = alice.call("PUT", "%s/bad%%20ns/k" % CTX, {"value": 1})
    assert r.status == 422 and r.json()["field"] == "namespace"
    r = alice.call("GET", "%s/bad%%20ns/k" % CTX)
    assert r.status == 422 and r.json()["field"] == "namespace"
    r = alice.call("GET", "%s/%s/%s" % (CTX, ns, "k" * 129))
    assert r.status == 422 and r.json()["field"] == "key"
    r = alice.call("PUT", "%s/%s/k" % (CTX, ns),
                   {"value": "x" * (256 * 1024)})
    assert r.status == 413 and r.json()["field"] == "value"
    r = alice.call("GET", "%s?cursor=not-a-cursor" % CTX)
    assert r.status == 400 and r.json()["field"] == "cursor"
    r = alice.call("GET", "%s?limit=0" % CTX)
    assert r.status == 400
    r = alice.call("PUT", "%s/%s/k" % (CTX, ns), raw="{")
    assert r.status == 400


def test_memory_add_one_and_batch_in_input_order(alice):
    ns = unique()
    one = alice.ok("POST", MEM, {"namespace": ns, "content": "first",
                                 "metadata": {"source": "chat"}},
                   status=201)
    assert one["content"] == "first" and one["metadata"] == {
        "source": "chat"}
    assert one["embedded"] is False and one["namespace"] == ns
    batch = alice.ok("POST", MEM, {"items": [
        {"namespace": ns, "content": "m%d" % i} for i in range(100)]},
        status=201)
    assert [m["content"] for m in batch["items"]] == [
        "m%d" % i for i in range(100)]
    got = alice.ok("GET", "%s/%s" % (MEM, batch["items"][42]["id"]))
    assert got["content"] == "m42"
    d = alice.ok("GET", "%s/%s" % (MEM, one["id"]))
    assert d == one


def test_memory_batch_limits_and_bad_items_name_the_field(alice):
    ns = unique()
    r = alice.call("POST", MEM, {"items": [
        {"namespace": ns, "content": "m"}] * 101})
    assert r.status == 422 and r.json()["field"] == "items"
    r = alice.call("POST", MEM, {"items": []})
    assert r.status == 422 and r.json()["field"] == "items"
    r = alice.call("POST", MEM, {"items": [
        {"namespace": ns, "content": "ok"}, {"namespace": ns}]})
    assert r.status == 400 and r.json()["field"] == "items[1].content"
    # nothing of a refused batch was kept
    assert alice.search(query="ok", namespace=ns, mode="text")["items"] == []
    r = alice.call("POST", MEM, {"content": "x" * (64 * 1024 + 1)})
    assert r.status == 413 and r.json()["field"] == "content"
    r = alice.call("POST", MEM, {"content": "   "})
    assert r.status == 422 and r.json()["field"] == "content"
    r = alice.call("POST", MEM, {"content": "x", "metadata": [1]})
    assert r.status == 400 and r.json()["field"] == "metadata"
    r = alice.call("POST", MEM, {"content": "x", "namespace": "a/b"})
    assert r.status == 422 and r.json()["field"] == "namespace"


def test_memories_are_their_owners_only(alice, bob):
    ns = unique()
    (mid,) = alice.add(ns, "the launch code is in the drawer")
    assert bob.call("GET", "%s/%s" % (MEM, mid)).status == 404
    assert bob.call("DELETE", "%s/%s" % (MEM, mid)).status == 404
    assert bob.search(query="launch code", namespace=ns)["items"] == []
    assert bob.search(query="launch code")["items"] == []
    hits = alice.search(query="launch code", namespace=ns)["items"]
    assert [h["id"] for h in hits] == [mid]
    alice.ok("DELETE", "%s/%s" % (MEM, mid), status=204)
    assert alice.call("GET", "%s/%s" % (MEM, mid)).status == 404
    assert alice.call("GET", "%s/not-a-uuid" % MEM).status == 404


def test_text_search_ranks_the_corpus_in_the_known_order(alice):
    ns = unique()
    ids = alice.add(
        ns,
        "Postgres stores the memories",                      # 0
        "Postgres replication: the primary streams to a replica; "
        "replication lag is watched",                        # 1
        "nginx proxies requests to the worker",              # 2
        "replication of Postgres, replication everywhere",   # 3
        "a cat sat on the mat")                              # 4
    res = alice.search(query="postgres replication", namespace=ns, k=10)
    assert res["mode"] == "text"
    got = [h["id"] for h in res["items"]]
    # both words, closest together and most often first; a memory without
    # replication does not match
    assert got == [ids[3], ids[1]]
    scores = [h["score"] for h in res["items"]]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    res = alice.search(query="postgres", namespace=ns, k=2)
    assert len(res["items"]) == 2
    assert set(h["id"] for h in res["items"]) <= {ids[0], ids[1], ids[3]}
    assert alice.search(query='"mat sat"', namespace=ns)["items"] == []
    assert [h["id"] for h in alice.search(
        query='"sat on the mat"', namespace=ns)["items"]] == [ids[4]]


def test_search_filter_matches_metadata(alice):
    ns = unique()
    alice.ok("POST", MEM, {"items": [
        {"namespace": ns, "content": "deploy on monday",
         "metadata": {"team": "infra"}},
        {"namespace": ns, "content": "deploy on friday",
         "metadata": {"team": "web"}}]}, status=201)
    hits = alice.search(query="deploy", namespace=ns,
                        filter={"team": "web"})["items"]
    assert [h["content"] for h in hits] == ["deploy on friday"]
    assert hits[0]["metadata"] == {"team": "web"}


def test_search_bad_input_names_the_field(alice):
    for body, status, field in [
            ({}, 400, "query"),
            ({"query": 5}, 400, "query"),
            ({"query": " "}, 422, "query"),
            ({"query": "x" * 4097}, 422, "query"),
            ({"query": "x", "k": 0}, 422, "k"),
            ({"query": "x", "k": 101}, 422, "k"),
            ({"query": "x", "k": "3"}, 400, "k"),
            ({"query": "x", "mode": "fuzzy"}, 422, "mode"),
            ({"query": "x", "namespace": "a b"}, 422, "namespace"),
            ({"query": "x", "filter": [1]}, 400, "filter")]:
        r = alice.call("POST", MEM + "/search", body)
        assert r.status == status, (body, r.body)
        assert r.json()["field"] == field, (body, r.body)


def test_semantic_search_without_a_model_is_refused_naming_mode(alice):
    for mode in ("semantic", "hybrid"):
        r = alice.call("POST", MEM + "/search", {"query": "x", "mode": mode})
        assert r.status == 422, r.body
        body = r.json()
        assert body["field"] == "mode"
        assert "OMNI_EMBEDDING_MODEL" in body["message"]


def test_routes_need_a_user(worker):
    r = worker.request("GET", CTX, {}, None)
    assert r.status == 401
    r = worker.request("POST", MEM, {"Content-Type": "application/json"},
                       json.dumps({"content": "x"}))
    assert r.status == 401
