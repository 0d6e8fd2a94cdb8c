"""ngx_omni_module/omni_limit_batch.lua, the call that checks several
requests of one nginx worker at once, against omni_limit.lua called once
per request: on random request sequences (users, API keys, revoked jtis,
several limits, costs, keys of the wrong type, malformed requests, and
identical requests, sent as one group with a count) every request gets
the same reply either way, and Redis ends in the same state. The batch
script is omni_limit.lua rewritten for many requests (no shared text),
so these sequences are what holds the two together. A group's decision
comes back as the state Redis found; it is expanded here as the module
expands it, by omni_gcra_check_all() once per request of the group (a
small CLI compiled from omni_gcra.c)."""

import random
import subprocess

import pytest
import redis as redis_py

import limit_support
import stack

MODULE = stack.REPO / "ngx_omni_module"
ONE = (MODULE / "omni_limit.lua").read_bytes()
RUN = (MODULE / "omni_limit_batch.lua").read_bytes()
SEC = 1_000_000
SINGLE_DB, BATCH_DB = 9, 10
# how far apart in real time the two paths may set or read an expiry on
# a loaded machine
SLACK_MS = 2000


class Batch:
    """The batch script loaded into a Redis in one of the module's two
    forms (ngx_http_omni_limit.c): "function", the function library
    FCALL calls, or "script", the text EVALSHA runs; called with KEYS
    and ARGV, it answers as the module's call would be answered."""

    def __init__(self, r, form):
        self.r, self.form = r, form
        if form == "function":
            self.name = limit_support.function_name(RUN)
            r.function_load(limit_support.function_library(RUN), replace=True)
            self.command = ("FCALL", self.name)
        else:
            self.command = ("EVALSHA",
                            r.script_load(limit_support.script(RUN)))
        self.stat = "cmdstat_" + self.command[0].lower()

    def __call__(self, keys, args):
        return self.r.execute_command(*self.command, len(keys), *keys,
                                      *args)


@pytest.fixture(params=["function", "script"])
def form(request):
    return request.param


@pytest.fixture
def dbs(redis_server):
    clients = [redis_server.client(db=db) for db in (SINGLE_DB, BATCH_DB)]
    for c in clients:
        c.flushdb()
    yield clients
    for c in clients:
        c.flushdb()
        c.close()


def _args(req):
    """omni_limit.lua's KEYS and ARGV[2..] for a request."""
    keys = [req["revoked"], req["apikey"]] + [k for k, *_ in req["limits"]]
    args = []
    for _, t, b, c, u in req["limits"]:
        args += [str(t), str(b), str(c), u]
    return keys, args


def single(r, sha, req, now):
    keys, args = _args(req)
    try:
        return r.evalsha(sha, len(keys), *keys, str(now), *args)
    except redis_py.ResponseError as e:
        return e


def groups(reqs):
    """The module's groups: identical requests (the same KEYS and
    limits), in the order of their first; [[index of each request]]."""
    out = []
    for i, req in enumerate(reqs):
        for g in out:
            if reqs[g[0]] == req:
                g.append(i)
                break
        else:
            out.append([i])
    return out


def decision_order(reqs):
    """The requests' indexes in the order the batch decides them: group
    after group."""
    return [i for g in groups(reqs) for i in g]


def envelope(reqs, now):
    """The batch script's KEYS and ARGV for requests: each group's KEYS
    one after the other, now, each distinct limit list once (a profile),
    and two bytes per group: its profile, its count."""
    keys, profiles, index = [], [], []
    for g in groups(reqs):
        req = reqs[g[0]]
        k, a = _args(req)
        keys += k
        profile = [str(len(req["limits"]))] + a
        if profile not in profiles:
            profiles.append(profile)
        index += [profiles.index(profile) + 1, len(g)]
    args = [str(now), str(len(profiles))]
    for profile in profiles:
        args += profile
    return keys, args + [bytes(index)]


def expand(cli, req, now, tats, count):
    """A group's decisions, as the module makes them from the state the
    script found: omni_gcra_check_all() once per request, in order."""
    argv = [str(cli), str(now), str(count)]
    for (_, t, b, c, _), tat in zip(req["limits"], tats):
        argv += [str(t), str(b), str(c), str(tat)]
    res = subprocess.run(argv, capture_output=True, text=True)
    assert res.returncode == 0, (argv, res.stderr)
    return [list(map(int, line.split())) for line in res.stdout.splitlines()]


def split(cli, reqs, flat, now):
    """The flat reply cut into one reply per request (in the requests'
    order), as omni_limit.lua would give it: {2}, {3}, {4}, an error, or
    a decision of 5 elements and, with an API key, the 4 identity fields
    (else 4 '')."""
    out, i = [None] * len(reqs), 0
    for g in groups(reqs):
        req = reqs[g[0]]
        head = flat[i]
        if isinstance(head, Exception) or head != 0:
            for j in g:
                out[j] = head if isinstance(head, Exception) else [head]
            i += 1
            continue
        n = len(req["limits"])
        assert flat[i + 1] == now, flat
        tats = flat[i + 2:i + 2 + n]
        assert len(tats) == n, flat
        i += 2 + n
        ids = [b""] * 4
        if req["apikey"]:
            ids = list(flat[i:i + 4])
            i += 4
        for j, one in zip(g, expand(cli, req, now, tats, len(g))):
            out[j] = one + ids
    assert i == len(flat), (reqs, flat)
    return out


def batch(call, reqs, now, cli):
    keys, args = envelope(reqs, now)
    return split(cli, reqs, call(keys, args), now)


# the module's expansion of a group: argv now, count, then T B cost tat
# per limit; a line per request: the decision as omni_limit.lua replies
# it
CLI_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include "omni_gcra.h"

int main(int argc, char **argv)
{
    omni_gcra_item_t items[8];
    omni_gcra_result_t res;
    long long now = atoll(argv[1]), count = atoll(argv[2]);
    int i, n = (argc - 3) / 4;

    for (i = 0; i < n; i++) {
        items[i].limit.interval = atoll(argv[3 + 4 * i]);
        items[i].limit.burst = atoll(argv[4 + 4 * i]);
        items[i].cost = atoll(argv[5 + 4 * i]);
        items[i].tat = atoll(argv[6 + 4 * i]);
    }
    while (count-- > 0) {
        if (omni_gcra_check_all(items, n, now, &res) != 0)
            return 3;
        printf("%d %lld %lld %lld %d\n", res.allowed,
            (long long) res.remaining,
            (long long) omni_gcra_ms(res.retry_after_us),
            (long long) omni_gcra_ms(res.reset_us), res.index + 1);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    d = tmp_path_factory.mktemp("expand")
    (d / "cli.c").write_text(CLI_SOURCE)
    mod = stack.REPO / "ngx_omni_module"
    res = subprocess.run(
        ["gcc", "-std=gnu11", "-O1", "-Wall", "-Werror", "-I", str(mod),
         "-o", str(d / "cli"), str(d / "cli.c"), str(mod / "omni_gcra.c")],
        capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return d / "cli"


def same(a, b):
    """Equal replies; errors alike up to the text Redis appends to a
    script's own error (its sha and line)."""
    if isinstance(a, Exception) or isinstance(b, Exception):
        return (isinstance(a, redis_py.ResponseError)
                and isinstance(b, redis_py.ResponseError)
                and str(a).split(" script: ")[0]
                == str(b).split(" script: ")[0])
    return a == b


ZONES = [(SEC, 2), (SEC // 2, 0), (3 * SEC, 5), (1_333_333, 1)]
USERS = ["u1", "u2", "u3"]


def populate(r):
    """API keys, a revoked jti and a limit state of the wrong type."""
    for name, user in (("a1", "u1"), ("a2", "u2")):
        r.hset("omni:apikey:" + name, mapping={
            "key_id": "k-" + name, "user_id": user, "username": name,
            "role": "developer", "expires_at": "0"})
    r.hset("omni:apikey:old", mapping={
        "key_id": "k-old", "user_id": "u3", "username": "old",
        "role": "developer", "expires_at": "1000"})
    r.set("omni:revoked:bad", "1")
    r.hset("omni:rl:z0:u3", "not", "a TAT")


def request(rng):
    apikey = rng.choice(["", "", "", "omni:apikey:a1", "omni:apikey:a2",
                         "omni:apikey:old", "omni:apikey:none"])
    revoked = "" if apikey else rng.choice(
        ["", "omni:revoked:ok", "omni:revoked:ok2", "omni:revoked:bad"])
    user = rng.choice(USERS)
    limits = []
    for z in rng.sample(range(len(ZONES)), rng.randint(0, 3)):
        t, b = ZONES[z]
        cost = rng.choice([1, 1, 1, 2, b + 2])
        by_user = bool(apikey) and rng.random() < 0.5
        key = "omni:rl:z%d:%s" % (z, "" if by_user else user)
        limits.append((key, t, b, cost, "1" if by_user else "0"))
    if rng.random() < 0.03:
        # malformed: a cost out of range
        k, t, b, _, u = limits[0] if limits else ("omni:rl:z9:x", SEC, 0,
                                                   0, "0")
        limits[:1] = [(k, t, b, 0, u)]
    return {"revoked": revoked, "apikey": apikey, "limits": limits}


def state(r):
    """The limit keys: {key: (type, value, pttl)}; a key that expires
    while this reads it (pttl -2) counts as gone."""
    out = {}
    for k in sorted(r.keys("omni:rl:*")):
        kind = r.type(k)
        value = r.get(k) if kind == b"string" else None
        left = r.pttl(k)
        if kind != b"none" and left != -2:
            out[k] = (kind, value, left)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_batch_decides_as_one_call_per_request(form, dbs, cli, seed):
    rng = random.Random(seed)
    one_db, batch_db = dbs
    for r in dbs:
        populate(r)
    sha_one = one_db.script_load(ONE)
    call = Batch(batch_db, form)
    now = 1_700_000_000 * SEC
    kinds = set()
    grouped = 0
    for step in range(150):
        now += rng.choice([0, 1000, 200_000, SEC, 3 * SEC])
        # a few distinct requests, often repeated: groups of identical
        # ones, one client's burst, are the batch's common case
        pool = [request(rng) for _ in range(rng.randint(1, 6))]
        reqs = [rng.choice(pool) for _ in range(rng.randint(1, 12))]
        want = [None] * len(reqs)
        for i in decision_order(reqs):
            want[i] = single(one_db, sha_one, reqs[i], now)
        got = batch(call, reqs, now, cli)
        assert len(got) == len(reqs)
        grouped += sum(len(g) for g in groups(reqs)
                       if len(g) > 1 and isinstance(want[g[0]], list)
                       and want[g[0]][0] in (0, 1))
        for i, (w, g) in enumerate(zip(want, got)):
            assert same(w, g), "step %d request %d %r: %r vs %r" % (
                step, i, reqs[i], w, g)
            kinds.add(type(w).__name__ if isinstance(w, Exception)
                      else w[0])
        s1, s2 = state(one_db), state(batch_db)
        for k in s1.keys() | s2.keys():
            # Redis expires keys in real time, and the two paths ran a
            # moment apart: a key about to go may be gone from one only
            if k not in s1 or k not in s2:
                left = (s1.get(k) or s2.get(k))[2]
                assert 0 <= left < SLACK_MS, (step, k, s1.get(k), s2.get(k))
                continue
            (t1, v1, p1), (t2, v2, p2) = s1[k], s2[k]
            assert (t1, v1) == (t2, v2) and abs(p1 - p2) < SLACK_MS, (
                step, k, s1[k], s2[k])
    # every kind of answer came up: allowed, denied, revoked, unknown and
    # expired keys, and errors
    assert kinds >= {0, 1, 2, 3, 4, "ResponseError"}, kinds
    # and many were decided in groups of identical requests
    assert grouped > 100, grouped


def test_error_in_one_request_leaves_the_others_decided(form, dbs, cli):
    r = dbs[1]
    populate(r)
    call = Batch(r, form)
    ok = {"revoked": "", "apikey": "",
          "limits": [("omni:rl:z1:u1", SEC, 0, 1, "0")]}
    wrong = {"revoked": "omni:revoked:live", "apikey": "",
             "limits": [("omni:rl:z0:u3", SEC, 0, 1, "0")]}
    revoked = {"revoked": "omni:revoked:bad", "apikey": "",
               "limits": [("omni:rl:z0:u3", SEC, 0, 1, "0")]}
    got = batch(call, [ok, wrong, revoked, ok], 1_700_000_000 * SEC, cli)
    assert got[0][0] == 1
    assert isinstance(got[1], redis_py.ResponseError)
    assert "WRONGTYPE" in str(got[1])
    assert got[2] == [2]
    assert got[3][0] == 0          # burst 0: the first one took it


@pytest.mark.parametrize("keys,args", [
    ([], [""]),
    ([], ["", "0"]),
    (["", ""], ["", "1", "0"]),
    (["", ""], ["", "1", "0", b""]),
    (["", ""], ["", "1", "0", b"\x02\x01"]),
    (["", ""], ["", "1", "0", b"\x00\x01"]),
    (["", ""], ["", "1", "1", b"\x01\x01"]),
    (["", "", "omni:rl:z:k"], ["", "1", "1", "1000", "0", "1",
                               b"\x01\x01"]),
    (["", "", "omni:rl:z:k"], ["", "1", "1", "1000", "0", "1", "0",
                               b"\x01\x01\x01\x01"]),
    (["", "", ""], ["", "1", "0", b"\x01\x01"]),
    (["", ""], ["", "x", "0", b"\x01\x01"]),
    (["", ""], ["", "1", "x", b"\x01\x01"]),
    (["", ""], ["", "1", "0", b"\x01\x01", "extra"]),
    # a group is two bytes, its count at least 1
    (["", ""], ["", "1", "0", b"\x01"]),
    (["", ""], ["", "1", "0", b"\x01\x01\x01"]),
    (["", ""], ["", "1", "0", b"\x01\x00"]),
])
def test_malformed_batch_is_an_error_and_runs_nothing(form, dbs, keys,
                                                      args):
    r = dbs[1]
    call = Batch(r, form)
    with pytest.raises(redis_py.ResponseError, match="bad batch"):
        call(keys, args)
    assert r.dbsize() == 0


def test_requests_of_one_user_cost_one_mget_and_one_set_per_limit(
        form, private_redis, cli):
    r = private_redis.client(db=BATCH_DB)
    call = Batch(r, form)
    req = {"revoked": "omni:revoked:j", "apikey": "",
           "limits": [("omni:rl:a:u", SEC, 99, 1, "0"),
                      ("omni:rl:b:u", SEC, 99, 1, "0")]}
    r.config_resetstat()
    got = batch(call, [req] * 20, 1_700_000_000 * SEC, cli)
    assert [g[1] for g in got] == list(range(99, 79, -1))
    stats = r.info("commandstats")
    assert stats[call.stat]["calls"] == 1
    # the jti's, and the two new limit keys' (both absent)
    assert stats["cmdstat_exists"]["calls"] == 2
    assert stats["cmdstat_mget"]["calls"] == 1
    assert "cmdstat_get" not in stats
    assert stats["cmdstat_set"]["calls"] == 2
    # the next batch finds them: no EXISTS for them
    r.config_resetstat()
    got = batch(call, [req] * 2, 1_700_000_000 * SEC, cli)
    assert [g[1] for g in got] == [79, 78]
    stats = r.info("commandstats")
    assert stats["cmdstat_exists"]["calls"] == 1
    assert stats["cmdstat_mget"]["calls"] == 1
    assert "cmdstat_get" not in stats


def test_one_key_with_mixed_costs_exceeded_midway_matches_single_calls(
        form, private_redis, cli):
    """Requests of one batch on the same key, of mixed costs, the burst
    running out midway: a denied expensive request leaves room for a
    cheaper one after it, each decided as its own call would be, and
    the key is read once and written once."""
    r = private_redis.client(db=BATCH_DB)
    one = private_redis.client(db=SINGLE_DB)
    r.flushdb()
    one.flushdb()
    call = Batch(r, form)
    sha_one = one.script_load(ONE)
    costs = [2, 3, 4, 1, 7, 1, 1]
    reqs = [{"revoked": "omni:revoked:j", "apikey": "",
             "limits": [("omni:rl:m:u", SEC, 5, c, "0")]} for c in costs]
    now = 1_700_000_000 * SEC
    want = [single(one, sha_one, q, now) for q in reqs]
    r.config_resetstat()
    got = batch(call, reqs, now, cli)
    assert got == want
    # burst 5 holds 6 units: 2 + 3 taken, 4 does not fit (3 s to wait),
    # 1 still does, 7 never can, then nothing is left
    assert [g[0] for g in got] == [1, 1, 0, 1, 0, 0, 0]
    assert [g[2] for g in got] == [0, 0, 3000, 0, -1, 1000, 1000]
    assert [g[1] for g in got[:4]] == [4, 1, 0, 0]
    stats = r.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 1
    assert "cmdstat_get" not in stats
    assert stats["cmdstat_set"]["calls"] == 1
    assert r.get("omni:rl:m:u") == one.get("omni:rl:m:u") == (
        b"%d" % (now + 6 * SEC))


def test_a_group_costs_one_answer_however_many_requests_it_holds(
        form, private_redis, cli):
    """200 identical requests (one client's burst on one key, 40 times
    its burst) in one call: the reply does not grow with them (0, now,
    the state found, per group), the requests decided from it are those
    200 calls of omni_limit.lua, and the key ends as they leave it."""
    r = private_redis.client(db=BATCH_DB)
    one = private_redis.client(db=SINGLE_DB)
    r.flushdb()
    one.flushdb()
    call = Batch(r, form)
    sha_one = one.script_load(ONE)
    now = 1_700_000_000 * SEC
    req = {"revoked": "omni:revoked:j", "apikey": "",
           "limits": [("omni:rl:g:u", SEC, 4, 1, "0"),
                      ("omni:rl:h:u", SEC // 2, 9, 1, "0")]}
    for r_ in (r, one):
        r_.set("omni:rl:g:u", str(now - 3 * SEC))
        r_.set("omni:rl:h:u", str(now + SEC))
    keys, args = envelope([req] * 200, now)
    assert args[-1] == bytes([1, 200])
    raw = call(keys, args)
    assert raw == [0, now, now - 3 * SEC, now + SEC]
    got = split(cli, [req] * 200, raw, now)
    want = [single(one, sha_one, req, now) for _ in range(200)]
    assert got == want
    # the first limit holds 5, the second 8 of its 10: 5 allowed
    assert [g[0] for g in got].count(1) == 5
    for k in ("omni:rl:g:u", "omni:rl:h:u"):
        assert r.get(k) == one.get(k)
        assert abs(r.pttl(k) - one.pttl(k)) < SLACK_MS


def test_groups_apart_in_one_call_share_a_key_in_order(form, private_redis,
                                                       cli):
    """Two groups on one limit key (two users' requests through one
    client-keyed zone): the second group finds the state the first
    left."""
    r = private_redis.client(db=BATCH_DB)
    r.flushdb()
    call = Batch(r, form)
    now = 1_700_000_000 * SEC
    a = {"revoked": "omni:revoked:a", "apikey": "",
         "limits": [("omni:rl:ip:1", SEC, 2, 1, "0")]}
    b = {"revoked": "omni:revoked:b", "apikey": "",
         "limits": [("omni:rl:ip:1", SEC, 2, 1, "0")]}
    got = batch(call, [a, b, a, b], now, cli)
    # a, a take 2 of 3; b, b: one left, then denied
    assert [g[0] for g in got] == [1, 1, 1, 0]
    assert [g[1] for g in got] == [2, 0, 1, 0]


def test_revocation_key_among_a_groups_limit_keys_is_an_error(form, dbs,
                                                               cli):
    """A request whose limit key is its own revocation key would revoke
    the next identical one; one answer cannot stand for both, so such a
    group gets an error (the module's keys never meet: other prefixes),
    and nothing is written."""
    r = dbs[1]
    call = Batch(r, form)
    req = {"revoked": "omni:rl:z:k", "apikey": "",
           "limits": [("omni:rl:z:k", SEC, 5, 1, "0")]}
    got = batch(call, [req, req], 1_700_000_000 * SEC, cli)
    assert all(isinstance(g, redis_py.ResponseError) for g in got)
    assert "revocation key is a limit key" in str(got[0])
    assert r.dbsize() == 0
    # alone it is decided as omni_limit.lua decides it
    assert batch(call, [req], 1_700_000_000 * SEC, cli)[0][0] == 1


@pytest.mark.parametrize("ahead,cost", [(100 * SEC, 1), (0, 7), (6 * SEC, 1)])
def test_a_group_over_capacity_matches_single_calls(form, private_redis,
                                                    cli, ahead, cost):
    """A group whose first request is denied: a state far ahead of
    capacity (a clock stepped back, a limit tightened) is lowered to a
    full debt, a cost above the burst is never allowed, a full bucket
    waits; the other limit is not consumed. As many single calls."""
    r = private_redis.client(db=BATCH_DB)
    one = private_redis.client(db=SINGLE_DB)
    r.flushdb()
    one.flushdb()
    call = Batch(r, form)
    sha_one = one.script_load(ONE)
    now = 1_700_000_000 * SEC
    req = {"revoked": "", "apikey": "",
           "limits": [("omni:rl:o:u", SEC, 0, 1, "0"),
                      ("omni:rl:p:u", SEC, 5, cost, "0")]}
    for r_ in (r, one):
        r_.set("omni:rl:p:u", str(now + ahead))
    got = batch(call, [req] * 3, now, cli)
    want = [single(one, sha_one, req, now) for _ in range(3)]
    assert got == want
    assert [g[0] for g in got] == [0, 0, 0]
    for k in ("omni:rl:o:u", "omni:rl:p:u"):
        assert r.get(k) == one.get(k)
        assert abs(r.pttl(k) - one.pttl(k)) < SLACK_MS
