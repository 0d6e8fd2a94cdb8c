"""Semantic and hybrid memory search with an embedding model configured
(OMNI_EMBEDDING_MODEL naming a model of an openai-type provider), against
a /v1/embeddings double answering each text with a fixed vector: added
memories are embedded off the request path within the queue's bound, the
top-k by cosine similarity is exactly the one computed here, hybrid fuses
the text and semantic rankings, and vectors of another model are never
compared (test_memory_models.py)."""

import time
import uuid

import pytest

import stack
from memory_support import (EmbeddingsDouble, User, cosine,
                            register_provider, unique, vector)

MEM = "/api/v1/memories"
KEY = "sk-embed-%s" % uuid.uuid4().hex


@pytest.fixture(scope="module")
def double():
    d = EmbeddingsDouble()
    yield d
    d.close()


@pytest.fixture(scope="module")
def model(worker, double):
    name = "embed-a-%s" % uuid.uuid4().hex[:8]
    register_provider(worker, name, double.url, "MEMORY_TEST_EMBED_KEY")
    return name


@pytest.fixture(scope="module")
def eworker(migrated, redis_server, model):
    w = stack.Worker(migrated, redis_server, env={
        "OMNI_EMBEDDING_MODEL": model, "MEMORY_TEST_EMBED_KEY": KEY})
    try:
        w.start()
        yield w
    finally:
        w.stop()
        report = w.sanitizer_report()
        w.destroy()
        assert not report, report


def wait_embedded(user, ids, timeout=10):
    stack.wait_until(
        lambda: all(user.ok("GET", "%s/%s" % (MEM, i))["embedded"]
                    for i in ids), timeout, "memories embedded")


CORPUS = [
    "my kitten sleeps all day",                 # animals
    "the rocket reached orbit around the moon",  # space
    "bake bread with a simple recipe",           # cooking
    "a dog and a cat and a rocket",              # animals, space
]


@pytest.fixture
def corpus(eworker):
    user, ns = User(eworker), unique()
    ids = user.add(ns, *CORPUS)
    wait_embedded(user, ids)
    return user, ns, ids


def test_added_memories_are_embedded_off_the_request_path(eworker, double):
    user, ns = User(eworker), unique()
    out = user.ok("POST", MEM, {"namespace": ns, "content": "a song on piano"},
                  status=201)
    assert out["embedded"] is False
    t0 = time.monotonic()
    wait_embedded(user, [out["id"]], timeout=5)
    assert time.monotonic() - t0 < 5
    sent = [r for r in double.requests if "a song on piano" in r[1]]
    assert sent and sent[0][2] == "Bearer " + KEY


def test_semantic_top_k_is_the_exact_cosine_ranking(corpus, model):
    user, ns, ids = corpus
    res = user.search(query="puppy", namespace=ns, mode="semantic", k=2)
    assert res["mode"] == "semantic"
    q = vector(model, "puppy")
    expected = sorted(range(len(CORPUS)),
                      key=lambda i: -cosine(vector(model, CORPUS[i]), q))[:2]
    assert [h["id"] for h in res["items"]] == [ids[i] for i in expected]
    assert expected == [0, 3]
    for h, i in zip(res["items"], expected):
        assert h["score"] == pytest.approx(
            cosine(vector(model, CORPUS[i]), q), abs=1e-5)
    # the text search finds nothing: no memory holds the word
    assert user.search(query="puppy", namespace=ns,
                       mode="text")["items"] == []


def test_hybrid_is_the_default_and_fuses_both_rankings(corpus):
    user, ns, ids = corpus
    res = user.search(query="rocket", namespace=ns, k=4)
    assert res["mode"] == "hybrid"
    got = [h["id"] for h in res["items"]]
    # found by both: text ranks 1 and 2 (equal rank, older first: a
    # batch's memories are in input order), semantic ranks 1 and 2:
    # reciprocal rank fusion with k = 60
    assert got[:2] == [ids[1], ids[3]]
    assert res["items"][0]["score"] == pytest.approx(2 / 61)
    assert res["items"][1]["score"] == pytest.approx(2 / 62)
    # the others only semantically, after them
    assert set(got[2:]) == {ids[0], ids[2]}
    assert all(h["score"] < 2 / 62 for h in res["items"][2:])
    # a query only the vectors understand still finds its memory first
    res = user.search(query="puppy", namespace=ns, mode="hybrid", k=1)
    assert [h["id"] for h in res["items"]] == [ids[0]]
    assert res["items"][0]["score"] == pytest.approx(1 / 61)


def test_semantic_search_is_the_owners_only(corpus, eworker):
    user, ns, ids = corpus
    other = User(eworker)
    assert other.search(query="puppy", namespace=ns,
                        mode="semantic")["items"] == []
    assert other.search(query="puppy", mode="hybrid")["items"] == []


def test_semantic_search_honours_namespace_and_filter(eworker):
    user = User(eworker)
    ns1, ns2 = unique(), unique()
    a = user.ok("POST", MEM, {"items": [
        {"namespace": ns1, "content": "my kitten sleeps",
         "metadata": {"room": "attic"}},
        {"namespace": ns1, "content": "a dog barks",
         "metadata": {"room": "garden"}}]}, status=201)["items"]
    (b,) = user.add(ns2, "the cat purrs")
    wait_embedded(user, [m["id"] for m in a] + [b])
    hits = user.search(query="puppy", namespace=ns1, mode="semantic",
                       filter={"room": "garden"})["items"]
    assert [h["id"] for h in hits] == [a[1]["id"]]
    hits = user.search(query="puppy", namespace=ns2, mode="semantic")["items"]
    assert [h["id"] for h in hits] == [b]
    # without a namespace: every one of the caller's memories
    hits = user.search(query="puppy", mode="semantic", k=100)["items"]
    assert {a[0]["id"], a[1]["id"], b} <= {h["id"] for h in hits}
