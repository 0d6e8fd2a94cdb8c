"""Dashboard cost and tokens from the LLM ledger: real chat turns against
the provider double (fixtures/llm_double.py) write omnichat.llm_usage rows;
GET /api/v1/dashboard/stats and /charts/cost then show their sums (from
omnichat.usage_rollup, kept by triggers on the ledger), an admin everyone's,
anyone else their own (as GET /api/v1/llm/usage)."""

import datetime
import uuid
from decimal import Decimal

import pytest

from test_chat_turn import Chat, LlmDouble, Providers, direct  # noqa: F401
from test_chat_turn import key_file  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def double():
    d = LlmDouble().start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def providers(worker, double, key_file):  # noqa: F811
    return Providers(worker, double, key_file)


def _sql(pg, query, params=None):
    return pg.sql(query, params, dbname="omni")


def _get(worker, path, user, role="user"):
    r = direct(worker, "GET", path, user=user, role=role)
    assert r.status == 200, r.body
    return r


def _time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ") \
        .replace(tzinfo=datetime.timezone.utc)


def _turns(worker, providers, n, kinds=("openai", "anthropic")):
    """A user with n non-streamed turns; returns (user id, their ledger
    rows once all are stored)."""
    chat = Chat(worker)
    rows = []
    for i in range(n):
        m = providers.model("text", kinds[i % len(kinds)])
        conv = chat.conversation(m["model"])
        r = chat.send(conv, "count me %d" % i)
        assert r.status == 201, r.body
        got = chat.usage(conv, 1)
        assert len(got) == 1
        rows += got
    return chat.id, rows


def _sums(rows):
    return (sum(Decimal(str(x["cost"])) for x in rows),
            sum(x["usage"]["input_tokens"] + x["usage"]["output_tokens"]
                for x in rows))


def test_stats_show_the_callers_own_cost_and_an_admin_everyones(
        pg, worker, providers):
    alice, a_rows = _turns(worker, providers, 3)
    bob, b_rows = _turns(worker, providers, 2)
    a_cost, a_tokens = _sums(a_rows)
    b_cost, b_tokens = _sums(b_rows)
    assert a_cost > 0 and b_cost > 0 and a_tokens > 0

    for period in ("today", "24h", "7d"):
        path = "/api/v1/dashboard/stats?period=" + period
        doc = _get(worker, path, alice).json()
        assert (Decimal(str(doc["cost"])), doc["tokens"]) \
            == (a_cost, a_tokens), period
        # a cached answer is not another caller's
        doc = _get(worker, path, bob).json()
        assert (Decimal(str(doc["cost"])), doc["tokens"]) \
            == (b_cost, b_tokens), period
        doc = _get(worker, path, str(uuid.uuid4()), role="viewer").json()
        assert (doc["cost"], doc["tokens"]) == (0, 0), period

        # an admin: every ledger row of the period, counted here from the
        # ledger itself
        r = _get(worker, path, str(uuid.uuid4()), role="admin")
        doc = r.json()
        cost, tokens = _sql(pg, 
            "SELECT coalesce(sum(cost), 0),"
            " coalesce(sum(input_tokens + output_tokens), 0)"
            " FROM omnichat.llm_usage WHERE at >= %s", (doc["from"],))[0]
        assert (Decimal(str(doc["cost"])), doc["tokens"]) \
            == (cost, tokens), period
        assert Decimal(str(doc["cost"])) >= a_cost + b_cost


def test_the_cost_chart_puts_each_callers_cost_in_its_bucket(
        pg, worker, providers):
    carol, rows = _turns(worker, providers, 2)
    cost, tokens = _sums(rows)
    path = "/api/v1/dashboard/charts/cost?hours=2&bucket=5m"

    doc = _get(worker, path, carol).json()
    points = doc["points"]
    assert len(points) == 24
    assert sum(Decimal(str(p["value"])) for p in points) == cost
    assert sum(p["tokens"] for p in points) == tokens
    for p in points:
        start = _time(p["t"])
        inside = [x for x in rows
                  if start <= _time(x["at"])
                  < start + datetime.timedelta(minutes=5)]
        assert (Decimal(str(p["value"])), p["tokens"]) == _sums(inside), \
            p["t"]

    viewer = _get(worker, path, str(uuid.uuid4()), role="viewer").json()
    assert all(p["value"] == 0 and p["tokens"] == 0
               for p in viewer["points"])

    admin = _get(worker, path, str(uuid.uuid4()), role="admin").json()
    first = admin["points"][0]["t"]
    total, = _sql(pg, "SELECT coalesce(sum(cost), 0) FROM omnichat.llm_usage"
                    " WHERE at >= %s", (first,))[0]
    assert sum(Decimal(str(p["value"])) for p in admin["points"]) == total
    assert total >= cost


def test_the_rollup_follows_every_change_to_the_ledger(pg, worker,
                                                       providers):
    """Retention deletes and corrections reach the rollup in the same
    transaction; buckets left empty go."""
    dave, rows = _turns(worker, providers, 2)
    drift = ("WITH l AS (SELECT w.width, u.scope AS user_id,"
             "  to_timestamp(floor(extract(epoch FROM at) / w.width)"
             "  * w.width) AS start, count(*) AS requests,"
             "  sum(input_tokens) AS i, sum(output_tokens) AS o,"
             "  sum(cached_tokens) AS c, sum(cost) AS cost"
             "  FROM omnichat.llm_usage, (VALUES (300), (3600)) AS w(width),"
             "  LATERAL (VALUES (''), (user_id)) AS u(scope)"
             "  WHERE u.scope IS NOT NULL GROUP BY 1, 2, 3)"
             " SELECT count(*) FROM l FULL JOIN omnichat.usage_rollup AS r"
             " USING (width, user_id, start)"
             " WHERE (l.requests, l.i, l.o, l.c, l.cost) IS DISTINCT FROM"
             " (r.requests, r.input_tokens, r.output_tokens,"
             "  r.cached_tokens, r.cost)")
    assert _sql(pg, drift) == [(0,)]
    _sql(pg, "UPDATE omnichat.llm_usage SET cost = cost * 2,"
           " output_tokens = output_tokens + 1 WHERE user_id = %s", (dave,))
    assert _sql(pg, drift) == [(0,)]
    doc = _get(worker, "/api/v1/dashboard/stats?period=24h", dave).json()
    cost, tokens = _sums(rows)
    assert (Decimal(str(doc["cost"])), doc["tokens"]) \
        == (cost * 2, tokens + 2)
    _sql(pg, "DELETE FROM omnichat.llm_usage WHERE user_id = %s", (dave,))
    assert _sql(pg, drift) == [(0,)]
    assert _sql(pg, "SELECT count(*) FROM omnichat.usage_rollup"
                  " WHERE user_id = %s", (dave,)) == [(0,)]
    doc = _get(worker, "/api/v1/dashboard/stats?period=24h", dave).json()
    assert (doc["cost"], doc["tokens"]) == (0, 0)
