"""The embedding model's life: after OMNI_EMBEDDING_MODEL changes, the old
model's vectors are never compared with the new one's (same dimension
here, so only the model's name keeps them apart) until the queue has
embedded the memories again; a model no provider serves, or a provider
that cannot be reached, answers semantic search with a clear 503 / 502
while text search and adds go on."""

import uuid

import pytest

import stack
from memory_support import (EmbeddingsDouble, User, cosine,
                            register_provider, unique, vector)

MEM = "/api/v1/memories"
CORPUS = ["my kitten sleeps all day", "bake bread with a simple recipe"]


@pytest.fixture
def double():
    d = EmbeddingsDouble()
    yield d
    d.close()


def model_worker(worker_factory, model):
    return worker_factory(env={"OMNI_EMBEDDING_MODEL": model,
                               "MEMORY_TEST_EMBED_KEY": "k"})


def embedded(user, ids):
    return all(user.ok("GET", "%s/%s" % (MEM, i))["embedded"] for i in ids)


def test_a_new_model_never_compares_the_old_models_vectors(
        worker, worker_factory, double):
    a = "embed-a-%s" % uuid.uuid4().hex[:8]
    b = "embed-b-%s" % uuid.uuid4().hex[:8]
    register_provider(worker, a, double.url, "MEMORY_TEST_EMBED_KEY")
    register_provider(worker, b, double.url, "MEMORY_TEST_EMBED_KEY")

    wa = model_worker(worker_factory, a)
    user, ns = User(wa), unique()
    ids = user.add(ns, *CORPUS)
    stack.wait_until(lambda: embedded(user, ids), 10, "embedded under a")
    hits = user.search(query="puppy", namespace=ns, mode="semantic")
    assert [h["id"] for h in hits["items"]][0] == ids[0]
    wa.stop()

    # b's worker cannot embed the corpus yet: the double holds it
    double.hold(*CORPUS)
    wb = model_worker(worker_factory, b)
    user.w = wb
    assert not any(user.ok("GET", "%s/%s" % (MEM, i))["embedded"]
                   for i in ids)
    res = user.search(query="puppy", namespace=ns, mode="semantic")
    assert res["items"] == []
    # text search is not affected
    assert [h["id"] for h in user.search(
        query="kitten", namespace=ns, mode="text")["items"]] == [ids[0]]

    double.release()
    stack.wait_until(lambda: embedded(user, ids), 25, "embedded under b")
    res = user.search(query="puppy", namespace=ns, mode="semantic", k=2)
    assert [h["id"] for h in res["items"]] == ids[:2]
    assert res["items"][0]["score"] == pytest.approx(
        cosine(vector(b, CORPUS[0]), vector(b, "puppy")), abs=1e-5)


def test_a_model_no_provider_serves_is_a_503(worker_factory):
    w = model_worker(worker_factory, "embed-a-%s" % uuid.uuid4().hex[:8])
    user, ns = User(w), unique()
    (mid,) = user.add(ns, "bake bread")
    r = user.call("POST", MEM + "/search",
                  {"query": "bread", "mode": "semantic"})
    assert r.status == 503, r.body
    assert r.json()["error"] == "embedding_unavailable"
    assert [h["id"] for h in user.search(
        query="bread", namespace=ns, mode="text")["items"]] == [mid]


def test_an_unreachable_provider_is_a_502(worker, worker_factory):
    model = "embed-a-%s" % uuid.uuid4().hex[:8]
    register_provider(worker, model, "http://127.0.0.1:9",
                      "MEMORY_TEST_EMBED_KEY")
    w = model_worker(worker_factory, model)
    user = User(w)
    r = user.call("POST", MEM + "/search",
                  {"query": "bread", "mode": "hybrid"})
    assert r.status == 502, r.body
    assert r.json()["error"] == "upstream_error"
    assert "127.0.0.1:9" not in r.text
    user.ok("POST", MEM, {"content": "still accepted"}, status=201)


def test_postgres_restart_during_batch_adds_loses_nothing_acknowledged(
        worker, migrated, worker_factory, double):
    model = "embed-a-%s" % uuid.uuid4().hex[:8]
    register_provider(worker, model, double.url, "MEMORY_TEST_EMBED_KEY")
    w = model_worker(worker_factory, model)
    user, ns = User(w), unique()
    acked, refused = [], 0
    try:
        for b in range(30):
            if b == 10:
                migrated.stop("fast")
            if b == 15:
                migrated.start()
                stack.wait_until(
                    lambda: user.call("GET", "/api/v1/contexts").status
                    == 200, 15, "the worker back on Postgres", interval=0.2)
            r = user.call("POST", MEM, {"items": [
                {"namespace": ns, "content": "kitten %d-%d" % (b, i)}
                for i in range(20)]})
            if r.status == 201:
                acked += [m["id"] for m in r.json()["items"]]
            else:
                assert r.status == 503, r.body
                refused += 1
    finally:
        migrated.ensure_running()
    assert refused >= 5 and len(acked) >= 20 * 20
    for mid in acked:
        assert user.call("GET", "%s/%s" % (MEM, mid)).status == 200
    # a batch claimed when Postgres went away is claimed again (30 s)
    stack.wait_until(lambda: embedded(user, acked), 60,
                     "every acknowledged memory embedded", interval=1)


def test_a_text_the_provider_refuses_holds_back_no_other(
        worker, worker_factory, double):
    model = "embed-a-%s" % uuid.uuid4().hex[:8]
    register_provider(worker, model, double.url, "MEMORY_TEST_EMBED_KEY")
    poison = "poison %s" % uuid.uuid4().hex
    double.refuse.add(poison)
    w = model_worker(worker_factory, model)
    user, ns = User(w), unique()
    ids = user.add(ns, "my kitten", poison, "bake bread", "a rocket")
    good = [ids[0], ids[2], ids[3]]
    # the batch fails; its memories are retried one by one 30 s later
    stack.wait_until(lambda: embedded(user, good), 60,
                     "the others embedded", interval=1)
    assert not user.ok("GET", "%s/%s" % (MEM, ids[1]))["embedded"]
    # still found by text
    assert [h["id"] for h in user.search(
        query="poison", namespace=ns, mode="text")["items"]] == [ids[1]]
