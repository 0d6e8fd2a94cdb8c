"""The chat turn's first round trip split in two (sql/018): the plan
(turn_plan, read-only) that the provider call waits for, and the user's
message saved (turn_ask) at the same time on another connection. The
question is saved even when the provider fails, before the client hears
of it; another user's conversation is 404 before any provider call; a
question that cannot be saved ends the turn cleanly, nothing billed; two
turns of one conversation at once each send their own question last and
all four messages are saved."""

import threading
import time
import uuid

import psycopg2
import pytest

from test_chat_turn import (  # noqa: F401 (fixtures)
    Chat, direct, double, key_file, providers)


def ledger_rows(pg, conv):
    conn = pg.admin_connect("omni")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM omnichat.llm_usage"
                        " WHERE conversation_id = %s", (conv,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_question_is_saved_when_the_provider_fails_before_its_first_byte(
        worker, providers):
    m = providers.model("fail500")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    for stream in (False, True):
        r = chat.send(conv, "still mine %s" % stream, stream=stream)
        assert r.status == 502, r.body
        assert r.json()["error"] == "upstream_error"
    assert [(x["role"], x["content"]) for x in chat.messages(conv)] == [
        ("user", "still mine False"), ("user", "still mine True")]


def test_another_users_conversation_is_404_before_any_provider_call(
        worker, providers, double):
    m = providers.model("text")
    alice, bob = Chat(worker), Chat(worker)
    conv = alice.conversation(m["model"])
    for stream in (False, True):
        r = bob.send(conv, "let me in", stream=stream)
        assert r.status == 404, r.body
        assert r.json()["error"] == "not_found"
    assert double.requests(m["model"]) == []
    assert alice.messages(conv) == []
    assert alice.send(conv, "mine").status == 201
    assert [x["role"] for x in alice.messages(conv)] == ["user", "assistant"]


@pytest.fixture
def refusing_messages(migrated):
    """A trigger that makes saving a message whose content starts with
    `refuse-` fail, as a database error would."""
    conn = migrated.admin_connect("omni")
    name = "refuse_" + uuid.uuid4().hex[:8]
    with conn.cursor() as cur:
        cur.execute("""
            CREATE FUNCTION omnichat.%(n)s() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.content LIKE 'refuse-%%' THEN
                    RAISE EXCEPTION 'refused by the test';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER %(n)s BEFORE INSERT ON omnichat.messages
                FOR EACH ROW EXECUTE FUNCTION omnichat.%(n)s();
            """ % {"n": name})
    try:
        yield
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP TRIGGER %s ON omnichat.messages;"
                        " DROP FUNCTION omnichat.%s()" % (name, name))
        conn.close()


@pytest.mark.parametrize("stream", [False, True])
def test_question_not_saved_ends_the_turn_cleanly_nothing_billed(
        worker, providers, double, migrated, refusing_messages, stream):
    """The provider is called at once, its transfer (a slow model: 1.2 s
    to its reply) cancelled when the save fails: 503 well before the
    reply, nothing saved, no ledger row; the next turn works."""
    m = providers.model("slow")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    t0 = time.monotonic()
    r = chat.send(conv, "refuse-" + uuid.uuid4().hex, stream=stream)
    took = time.monotonic() - t0
    assert r.status == 503, r.body
    assert r.json()["error"] == "database_unavailable"
    assert took < 1.0, took
    assert chat.messages(conv) == []
    time.sleep(1.5)   # the ledger's batches
    assert ledger_rows(migrated, conv) == 0
    r = chat.send(conv, "accepted")
    assert r.status == 201, r.body
    assert [x["content"] for x in chat.messages(conv)] == [
        "accepted", "Hello from the double."]


def test_conversation_deleted_while_the_question_is_saved_is_404(
        worker, providers, double, migrated):
    """The plan reads the conversation without a lock; the question's save
    waits behind a transaction that deletes it: 404, the reply the
    provider made neither saved nor billed."""
    m = providers.model("text")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    conn = migrated.admin_connect("omni", autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM omnichat.conversations WHERE id = %s"
                        " FOR UPDATE", (conv,))
            out = {}
            th = threading.Thread(
                target=lambda: out.setdefault("r", chat.send(conv, "gone?")))
            th.start()
            deadline = time.monotonic() + 10
            while not double.requests(m["model"]):
                assert time.monotonic() < deadline, "no provider call"
                time.sleep(0.02)
            time.sleep(0.2)   # the provider's reply is in; the save waits
            assert th.is_alive()
            cur.execute("DELETE FROM omnichat.conversations WHERE id = %s",
                        (conv,))
        conn.commit()
        th.join(30)
    finally:
        conn.close()
    r = out["r"]
    assert r.status == 404, r.body
    assert r.json()["error"] == "not_found"
    time.sleep(1.5)
    assert ledger_rows(migrated, conv) == 0


def test_two_turns_of_one_conversation_at_once(worker, providers, double):
    """Neither waits for the other: each provider call ends with its own
    question, and both questions and both replies are saved, each reply
    after its question."""
    m = providers.model("slow")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    out = {}

    def turn(q):
        out[q] = chat.send(conv, q)

    threads = [threading.Thread(target=turn, args=(q,))
               for q in ("question one", "question two")]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    took = time.monotonic() - t0
    assert all(r.status == 201 for r in out.values()), out
    assert took < 2.2, took   # a reply takes 1.2 s: they overlapped
    sent = double.requests(m["model"])
    assert sorted(x["body"]["messages"][-1]["content"] for x in sent) == [
        "question one", "question two"]
    for x in sent:
        assert [y["role"] for y in x["body"]["messages"]].count("user") \
            in (1, 2)
    msgs = chat.messages(conv)
    assert sorted(x["content"] for x in msgs if x["role"] == "user") == [
        "question one", "question two"]
    replies = [i for i, x in enumerate(msgs) if x["role"] == "assistant"]
    assert len(msgs) == 4 and len(replies) == 2, msgs
    assert msgs[0]["role"] == "user"
    ids = {r.json()["id"] for r in out.values()}
    assert ids == {msgs[i]["id"] for i in replies}


def test_plan_is_read_only_and_the_save_does_not_wait_for_the_flush(
        worker, providers, migrated):
    """turn_plan runs in a read-only transaction and takes no transaction
    id; turn_ask commits with synchronous_commit off, that transaction
    only (as turn_begin did, sql/016)."""
    m = providers.model("text")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    conn = migrated.admin_connect("omni", autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit = on")
            conn.commit()
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute("SELECT status FROM omnichat.turn_plan("
                        "%s, %s, %s, 2, 'user', NULL)",
                        (chat.id, conv, str(uuid.uuid4())))
            assert cur.fetchall() == [(200,)]
            cur.execute("SELECT txid_current_if_assigned()")
            assert cur.fetchall() == [(None,)]
            conn.commit()
            mid = str(uuid.uuid4())
            cur.execute("SELECT omnichat.turn_ask(%s, %s, %s, 'hi')",
                        (chat.id, conv, mid))
            assert cur.fetchall() == [("ok",)]
            cur.execute("SELECT current_setting('synchronous_commit')")
            assert cur.fetchall() == [("off",)]
            conn.commit()
            cur.execute("SELECT current_setting('synchronous_commit')")
            assert cur.fetchall() == [("on",)]
            cur.execute("SELECT omnichat.turn_ask(%s, %s, %s, 'hi')",
                        (str(uuid.uuid4()), conv, str(uuid.uuid4())))
            assert cur.fetchall() == [("not_found",)]
            conn.commit()
    finally:
        conn.close()
    assert [x["id"] for x in chat.messages(conv)] == [mid]


def test_history_leaves_out_the_question_saved_first(worker, providers,
                                                      migrated):
    """When the question's save commits before the plan is read, the plan
    still leaves it out (the worker appends it): it is sent once."""
    m = providers.model("text")
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    assert chat.send(conv, "first").status == 201
    conn = migrated.admin_connect("omni")
    try:
        with conn.cursor() as cur:
            mid = str(uuid.uuid4())
            cur.execute("SELECT omnichat.turn_ask(%s, %s, %s, 'second')",
                        (chat.id, conv, mid))
            cur.execute("SELECT body::json FROM omnichat.turn_plan("
                        "%s, %s, %s, 6, 'user', NULL)", (chat.id, conv, mid))
            plan = cur.fetchone()[0]
    finally:
        conn.close()
    assert [(x["role"], x["content"]) for x in plan["history"]] == [
        ("user", "first"), ("assistant", "Hello from the double.")]
    assert plan["input_estimate"] > 0
    with pytest.raises(psycopg2.Error):
        c2 = migrated.admin_connect("omni")
        try:
            with c2.cursor() as cur:   # the same id cannot be saved twice
                cur.execute("SELECT omnichat.turn_ask(%s, %s, %s, 'again')",
                            (chat.id, conv, mid))
        finally:
            c2.close()


def test_budget_refusal_answers_after_the_question_is_saved(
        worker, providers, double):
    """A turn refused by its budget (429) saves its question, as before
    the split, and calls no provider; the question is there as soon as
    the 429 is."""
    m = providers.model("text", max_output=100)
    chat = Chat(worker)
    conv = chat.conversation(m["model"])
    r = direct(worker, "POST", "/api/v1/llm/budgets",
               {"scope": "project", "project_id": chat.project["id"],
                "tokens_per_day": 50}, role="admin")
    assert r.status == 201, r.body
    r = chat.send(conv, "too dear")
    assert r.status == 429, r.body
    assert r.json()["error"] == "budget_exceeded"
    assert [(x["role"], x["content"]) for x in chat.messages(conv)] == [
        ("user", "too dear")]
    assert double.requests(m["model"]) == []
