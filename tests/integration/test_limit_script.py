"""ngx_omni_module/omni_limit.lua against a real redis-server, called the
way the module calls it: SCRIPT LOAD once, then one EVALSHA per request
with KEYS = [revoked jti key or "", API-key key or "", limit keys...] and
ARGV = [now or "", T, B, cost, by-user flag per limit]. ARGV[1] pins the
clock where a test needs exact figures; the rest run on Redis TIME.

The script must agree with omni_gcra.c, its C twin used by the module's
local fallback: a random request sequence goes through both (the C side
via a small CLI compiled here) and every decision and state must match."""

import random
import subprocess
import time

import pytest
import redis as redis_py

import stack

SCRIPT = (stack.REPO / "ngx_omni_module" / "omni_limit.lua").read_bytes()
SEC = 1_000_000             # microseconds
T0 = 1_700_000_000 * SEC    # a pinned "now", unix microseconds
DB = 9                      # away from whatever else uses this Redis


@pytest.fixture
def r(redis_server):
    client = redis_server.client(db=DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def sha(r):
    return r.script_load(SCRIPT)


class Reply:
    """A decision reply: allowed, remaining, retry_after_ms, reset_ms,
    index and the identity fields."""

    def __init__(self, raw):
        assert len(raw) == 9, raw
        self.raw = raw
        (self.allowed, self.remaining, self.retry_after_ms, self.reset_ms,
         self.index) = raw[:5]
        self.key_id, self.user_id, self.username, self.role = (
            v.decode() for v in raw[5:])
        assert all(isinstance(v, int) for v in raw[:5]), raw

    def __repr__(self):
        return "Reply(%r)" % (self.raw,)


class ByUser(bytes):
    """A limit key prefix that the API key's user_id completes
    (ARGV flag u = 1)."""


def call(r, sha, limits=(), revoked="", apikey="", now=None):
    """One EVALSHA; limits are (key, T, B, cost), the key a ByUser for a
    limit keyed by the API key's user. Returns the raw reply."""
    keys = [revoked, apikey] + [k for k, _, _, _ in limits]
    args = ["" if now is None else str(now)]
    for k, t, b, c in limits:
        args += [str(t), str(b), str(c),
                 "1" if isinstance(k, ByUser) else "0"]
    return r.evalsha(sha, len(keys), *keys, *args)


def decide(r, sha, limits=(), **kw):
    return Reply(call(r, sha, limits, **kw))


def state(r, key):
    v = r.get(key)
    return None if v is None else int(v)


def api_key(r, name, user_id="u-42", expires_at=0, **fields):
    key = "omni:apikey:" + name
    mapping = {"key_id": "k-" + name, "user_id": user_id,
               "username": "alice", "role": "developer",
               "expires_at": str(expires_at)}
    mapping.update(fields)
    r.hset(key, mapping={k: v for k, v in mapping.items() if v is not None})
    return key


# --- revocation and API keys -------------------------------------------------

def test_revoked_jti_gets_2_and_consumes_nothing(r, sha):
    r.set("omni:revoked:j1", "1", ex=60)
    lim = [("omni:rl:z:u1", SEC, 0, 1)]
    assert call(r, sha, lim, revoked="omni:revoked:j1", now=T0) == [2]
    assert r.exists("omni:rl:z:u1") == 0


def test_jti_not_revoked_passes(r, sha):
    reply = decide(r, sha, [("omni:rl:z:u1", SEC, 0, 1)],
                   revoked="omni:revoked:j2", now=T0)
    assert reply.allowed == 1
    assert reply.user_id == ""


def test_unknown_api_key_gets_3(r, sha):
    assert call(r, sha, apikey="omni:apikey:nope", now=T0) == [3]


def test_api_key_hash_without_user_id_is_unknown(r, sha):
    key = api_key(r, "nouser", user_id=None)
    assert call(r, sha, apikey=key, now=T0) == [3]
    key = api_key(r, "emptyuser", user_id="")
    assert call(r, sha, apikey=key, now=T0) == [3]


def test_expired_api_key_gets_4_from_its_expiry_second(r, sha):
    key = api_key(r, "old", expires_at=T0 // SEC)
    assert call(r, sha, apikey=key, now=T0) == [4]
    assert call(r, sha, apikey=key, now=T0 + SEC - 1) == [4]
    assert Reply(call(r, sha, apikey=key, now=T0 - 1)).allowed == 1
    key = api_key(r, "garbled", expires_at="soon")
    assert call(r, sha, apikey=key, now=T0) == [4]


def test_api_key_expired_on_the_redis_clock(r, sha):
    key = api_key(r, "past", expires_at=int(time.time()) - 1)
    assert call(r, sha, apikey=key) == [4]


def test_valid_api_key_returns_its_identity(r, sha):
    key = api_key(r, "good", expires_at=int(time.time()) + 3600)
    reply = decide(r, sha, apikey=key)
    assert reply.raw[:5] == [1, 0, 0, 0, 0]
    assert (reply.key_id, reply.user_id, reply.username, reply.role) == (
        "k-good", "u-42", "alice", "developer")
    key = api_key(r, "forever", username=None, role=None)
    reply = decide(r, sha, apikey=key)
    assert (reply.key_id, reply.user_id, reply.username, reply.role) == (
        "k-forever", "u-42", "", "")


def test_user_keyed_limits_resolve_to_the_api_keys_user(r, sha):
    key = api_key(r, "m", user_id="u-7")
    lim = [(ByUser(b"omni:rl:api:"), SEC, 1, 1),
           (b"omni:rl:ip:127.0.0.1", SEC, 5, 1)]
    reply = decide(r, sha, lim, apikey=key, now=T0)
    assert reply.allowed == 1 and reply.user_id == "u-7"
    assert state(r, "omni:rl:api:u-7") == T0 + SEC
    assert state(r, "omni:rl:ip:127.0.0.1") == T0 + SEC
    assert r.exists(b"omni:rl:api:") == 0
    # the same user's second key shares the limit
    other = api_key(r, "m2", user_id="u-7")
    assert decide(r, sha, lim, apikey=other, now=T0).allowed == 1
    reply = decide(r, sha, lim, apikey=key, now=T0)
    assert reply.allowed == 0 and reply.index == 1


def test_user_keyed_limit_without_an_api_key_is_an_error(r, sha):
    with pytest.raises(redis_py.ResponseError, match="user key"):
        call(r, sha, [(ByUser(b"omni:rl:api:"), SEC, 1, 1)], now=T0)


def test_key_bytes_never_mark_a_limit_as_user_keyed(r, sha):
    """Whatever a client puts in a key (key=$http_x_client), it is the
    key: the old in-band marker 0x01 'user' is two ordinary bytes now."""
    key = api_key(r, "mk", user_id="u-8")
    forged = b"omni:rl:hdr:x\x01user"
    reply = decide(r, sha, [(forged, SEC, 1, 1)], now=T0)
    assert reply.allowed == 1
    assert state(r, forged) == T0 + SEC
    reply = decide(r, sha, [(forged, SEC, 1, 1)], apikey=key, now=T0)
    assert reply.allowed == 1 and reply.user_id == "u-8"
    assert state(r, forged) == T0 + 2 * SEC
    assert r.exists(b"omni:rl:hdr:xu-8") == 0


def test_unknown_or_expired_api_key_consumes_nothing(r, sha):
    lim = [(ByUser(b"omni:rl:api:"), SEC, 0, 1),
           ("omni:rl:ip:1.2.3.4", SEC, 0, 1)]
    assert call(r, sha, lim, apikey="omni:apikey:none", now=T0) == [3]
    key = api_key(r, "x", expires_at=1)
    assert call(r, sha, lim, apikey=key, now=T0) == [4]
    assert r.dbsize() == 1


# --- GCRA --------------------------------------------------------------------

@pytest.mark.parametrize("rate,burst", [(10, 0), (10, 4), (3, 2), (100, 9)])
def test_burst_plus_one_admitted_then_denied_with_exact_retry_after(
        r, sha, rate, burst):
    t = round(SEC / rate)
    lim = [("omni:rl:z:k", t, burst, 1)]
    for i in range(burst + 1):
        reply = decide(r, sha, lim, now=T0)
        assert reply.raw[:5] == [1, burst - i, 0, -(-(i + 1) * t // 1000), 1]
    late = T0 + 1234
    reply = decide(r, sha, lim, now=late)
    assert reply.allowed == 0
    assert reply.retry_after_ms == -(-(t - 1234) // 1000)
    assert reply.reset_ms == -(-((burst + 1) * t - 1234) // 1000)
    assert decide(r, sha, lim, now=T0 + t - 1).allowed == 0
    assert decide(r, sha, lim, now=T0 + t).allowed == 1


def test_burst_and_retry_after_on_the_redis_clock(r, sha):
    lim = [("omni:rl:z:real", SEC // 10, 2, 1)]    # 10r/s burst=2
    assert [decide(r, sha, lim).allowed for _ in range(3)] == [1, 1, 1]
    reply = decide(r, sha, lim)
    assert reply.allowed == 0
    assert 0 < reply.retry_after_ms <= 100
    assert 200 < reply.reset_ms <= 300
    time.sleep(reply.retry_after_ms / 1000 + 0.005)
    assert decide(r, sha, lim).allowed == 1


def test_steady_pacing_at_the_rate_is_admitted(r, sha):
    t = SEC // 50
    lim = [("omni:rl:z:pace", t, 0, 1)]
    now = T0
    for _ in range(200):
        reply = decide(r, sha, lim, now=now)
        assert reply.allowed == 1 and reply.remaining == 0
        now += t
    assert decide(r, sha, lim, now=now - 1).allowed == 0


def test_several_limits_are_all_enforced_all_or_nothing(r, sha):
    lim = [("omni:rl:a:k", SEC, 9, 1),          # 10 at once
           ("omni:rl:b:k", SEC // 2, 2, 1),     # 3 at once
           ("omni:rl:c:k", 2 * SEC, 4, 1)]      # 5 at once
    for i in range(3):
        reply = decide(r, sha, lim, now=T0)
        assert reply.allowed == 1 and reply.index == 2
        assert reply.remaining == 2 - i
    before = {k: (r.get(k), r.pttl(k)) for k, _, _, _ in lim}
    reply = decide(r, sha, lim, now=T0)
    assert reply.allowed == 0 and reply.index == 2
    assert reply.retry_after_ms == 500
    after = {k: (r.get(k), r.pttl(k)) for k, _, _, _ in lim}
    for k in before:    # a denied call consumes nothing
        assert after[k][0] == before[k][0]
        assert after[k][1] <= before[k][1]
    assert state(r, "omni:rl:a:k") == T0 + 3 * SEC
    # once b has room again, every limit is charged
    reply = decide(r, sha, lim, now=T0 + SEC // 2)
    assert reply.allowed == 1
    assert state(r, "omni:rl:a:k") == T0 + 4 * SEC
    assert state(r, "omni:rl:b:k") == T0 + 4 * (SEC // 2)
    assert state(r, "omni:rl:c:k") == T0 + 8 * SEC


def test_tightest_denial_is_the_longest_retry_after(r, sha):
    lim = [("omni:rl:a:d", SEC, 0, 1), ("omni:rl:b:d", 3 * SEC, 0, 1)]
    assert decide(r, sha, lim, now=T0).allowed == 1
    reply = decide(r, sha, lim, now=T0)
    assert reply.raw[:5] == [0, 0, 3000, 3000, 2]


def test_cost_spends_several_units(r, sha):
    lim = [("omni:rl:z:cost", SEC, 9, 4)]
    reply = decide(r, sha, lim, now=T0)
    assert reply.raw[:5] == [1, 6, 0, 4000, 1]
    lim = [("omni:rl:z:cost", SEC, 9, 6)]
    assert decide(r, sha, lim, now=T0).raw[:5] == [1, 0, 0, 10000, 1]
    lim = [("omni:rl:z:cost", SEC, 9, 3)]
    reply = decide(r, sha, lim, now=T0 + SEC)
    assert reply.allowed == 0 and reply.retry_after_ms == 2000


def test_cost_above_burst_plus_one_is_never_allowed(r, sha):
    lim = [("omni:rl:z:big", SEC, 4, 6)]
    reply = decide(r, sha, lim, now=T0)
    assert reply.raw[:5] == [0, 0, -1, 0, 1]
    assert r.exists("omni:rl:z:big") == 0
    lim = [("omni:rl:z:big", SEC, 4, 5)]
    assert decide(r, sha, lim, now=T0).allowed == 1


def test_fractional_rate_ten_per_minute(r, sha):
    lim = [("omni:rl:z:slow", 6 * SEC, 1, 1)]    # 10r/m burst=1
    assert decide(r, sha, lim, now=T0).allowed == 1
    assert decide(r, sha, lim, now=T0).allowed == 1
    reply = decide(r, sha, lim, now=T0 + SEC)
    assert reply.raw[:5] == [0, 0, 5000, 11000, 1]
    reply = decide(r, sha, lim, now=T0 + 6 * SEC)
    assert reply.raw[:5] == [1, 0, 0, 12000, 1]
    assert state(r, "omni:rl:z:slow") == T0 + 18 * SEC


def test_limit_keys_get_ttls_and_expire(r, sha):
    lim = [("omni:rl:z:ttl", 150_000, 1, 1)]
    assert decide(r, sha, lim).allowed == 1
    assert 0 < r.pttl("omni:rl:z:ttl") <= 150
    assert decide(r, sha, lim).allowed == 1
    assert 150 < r.pttl("omni:rl:z:ttl") <= 300
    stack.wait_until(lambda: r.exists("omni:rl:z:ttl") == 0, 2,
                     "the limit key to expire")
    reply = decide(r, sha, lim)
    assert reply.allowed == 1 and reply.remaining == 1


def test_ttl_is_the_state_ahead_of_now_rounded_up_to_ms(r, sha):
    lim = [("omni:rl:z:px", 333_333, 2, 1)]
    decide(r, sha, lim, now=T0)
    # PX was ceil(333333 / 1000) = 334 ms, counted down since the call
    assert 300 < r.pttl("omni:rl:z:px") <= 334


def test_state_far_ahead_is_lowered_to_a_full_debt(r, sha):
    """A clock stepped back: the key waits c * T, not the hour."""
    r.set("omni:rl:z:back", str(T0 + 3600 * SEC))
    lim = [("omni:rl:z:back", SEC, 1, 1)]
    reply = decide(r, sha, lim, now=T0)
    assert reply.raw[:5] == [0, 0, 1000, 2000, 1]
    assert state(r, "omni:rl:z:back") == T0 + 2 * SEC
    assert 0 < r.pttl("omni:rl:z:back") <= 2000
    assert decide(r, sha, lim, now=T0 + SEC).allowed == 1


def test_garbage_state_counts_as_none(r, sha):
    r.set("omni:rl:z:junk", "not a number")
    reply = decide(r, sha, [("omni:rl:z:junk", SEC, 2, 1)], now=T0)
    assert reply.raw[:5] == [1, 2, 0, 1000, 1]


def test_no_limits_allow_with_index_0(r, sha):
    assert call(r, sha, now=T0) == [1, 0, 0, 0, 0, b"", b"", b"", b""]


@pytest.mark.parametrize("keys,args,match", [
    ([""], [""], "wrong number"),
    (["", "", "omni:rl:z:k"], ["", "1000", "0", "1"], "wrong number"),
    (["", "", "omni:rl:z:k"], ["", "0", "0", "1", "0"], "bad limit 1"),
    (["", "", "omni:rl:z:k"], ["", "1000", "-1", "1", "0"], "bad limit 1"),
    (["", "", "omni:rl:z:k"], ["", "1000", "0", "0", "0"], "bad limit 1"),
    (["", "", "omni:rl:z:k"], ["", "1000", "0", "1000001", "0"],
     "bad limit 1"),
    (["", "", "omni:rl:z:k"], ["", "1.5", "0", "1", "0"], "bad limit 1"),
    (["", "", "omni:rl:z:k"], ["", str(2**40), str(2**10), "1", "0"],
     "bad limit 1"),
    (["", "", "omni:rl:z:k"], ["", "1000", "0", "1", "2"], "bad limit 1"),
    (["", "", "omni:rl:z:k"], ["", "1000", "0", "1", ""], "bad limit 1"),
    (["", "", "omni:rl:z:k"], ["soon", "1000", "0", "1", "0"], "bad now"),
    (["", "", "omni:rl:z:k"], [str(2**52 + 1), "1000", "0", "1", "0"],
     "bad now"),
    (["", "", "omni:rl:z:k", "omni:rl:z:k"],
     ["", "1000", "0", "1", "0", "1000", "0", "1", "0"], "repeated"),
])
def test_malformed_call_is_an_error_reply(r, sha, keys, args, match):
    with pytest.raises(redis_py.ResponseError, match=match):
        r.evalsha(sha, len(keys), *keys, *args)
    assert r.dbsize() == 0


def test_revocation_is_answered_before_any_error(r, sha):
    """A revoked jti gets {2} even from a call that then fails: a limit
    key of the wrong type or a malformed call cannot hide it."""
    r.set("omni:revoked:jr", "1", ex=60)
    r.hset("omni:rl:z:wrong", "a", "b")
    lim = [("omni:rl:z:wrong", SEC, 1, 1)]
    assert call(r, sha, lim, revoked="omni:revoked:jr", now=T0) == [2]
    keys = ["omni:revoked:jr", "", "omni:rl:z:k"]
    assert r.evalsha(sha, len(keys), *keys, "", "0", "0", "1", "0") == [2]
    assert r.evalsha(sha, 1, "omni:revoked:jr") == [2]
    # a live jti: the wrong type is an error the module answers itself
    with pytest.raises(redis_py.ResponseError, match="WRONGTYPE"):
        call(r, sha, lim, revoked="omni:revoked:live", now=T0)


def test_largest_limit_stays_exact(r, sha):
    span = 2**50
    lim = [("omni:rl:z:max", span // 1_000_001, 1_000_000, 1_000_000)]
    reply = decide(r, sha, lim, now=2**52)
    assert reply.allowed == 1 and reply.remaining == 1
    assert state(r, "omni:rl:z:max") == 2**52 + 1_000_000 * (span // 1_000_001)


# --- the script cache --------------------------------------------------------

def test_script_flush_gives_noscript_and_eval_caches_it_again(r, sha):
    """The module must answer NOSCRIPT with EVAL of the full text (which
    caches it under the same sha) and go back to EVALSHA."""
    lim = [("omni:rl:z:flush", SEC, 1, 1)]
    assert decide(r, sha, lim, now=T0).allowed == 1
    r.script_flush()
    with pytest.raises(redis_py.exceptions.NoScriptError):
        call(r, sha, lim, now=T0)
    keys = ["", ""] + [k for k, _, _, _ in lim]
    raw = r.eval(SCRIPT, len(keys), *keys, str(T0), str(SEC), "1", "1", "0")
    assert Reply(raw).allowed == 1 and Reply(raw).remaining == 0
    assert r.script_exists(sha) == [True]
    assert decide(r, sha, lim, now=T0).allowed == 0


def test_one_evalsha_is_the_only_command_a_request_sends(private_redis):
    r = private_redis.client(db=DB)
    sha = r.script_load(SCRIPT)
    key = api_key(r, "one")
    lim = [(ByUser(b"omni:rl:a:"), SEC, 3, 1), ("omni:rl:b:ip", SEC, 3, 1),
           ("omni:rl:c:ip", SEC, 3, 1)]
    r.config_resetstat()
    decide(r, sha, lim, revoked="omni:revoked:j", apikey=key)
    stats = r.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert stats["cmdstat_set"]["calls"] == 3


# --- agreement with omni_gcra.c ----------------------------------------------

CLI_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include "omni_gcra.h"

/* argv: T B per limit; stdin: "now cost..." per request; stdout: the
 * decision as the script replies it, then every limit's state. */
int main(int argc, char **argv)
{
    omni_gcra_item_t items[8];
    omni_gcra_result_t res;
    long long now, cost;
    int i, n = (argc - 1) / 2;

    for (i = 0; i < n; i++) {
        items[i].limit.interval = atoll(argv[1 + 2 * i]);
        items[i].limit.burst = atoll(argv[2 + 2 * i]);
        items[i].tat = 0;
    }
    while (scanf("%lld", &now) == 1) {
        for (i = 0; i < n; i++) {
            if (scanf("%lld", &cost) != 1)
                return 2;
            items[i].cost = cost;
        }
        if (omni_gcra_check_all(items, n, now, &res) != 0)
            return 3;
        printf("%d %lld %lld %lld %d", res.allowed,
            (long long) res.remaining,
            (long long) omni_gcra_ms(res.retry_after_us),
            (long long) omni_gcra_ms(res.reset_us), res.index + 1);
        for (i = 0; i < n; i++)
            printf(" %lld", (long long) items[i].tat);
        printf("\n");
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def gcra_cli(tmp_path_factory):
    d = tmp_path_factory.mktemp("gcra")
    (d / "cli.c").write_text(CLI_SOURCE)
    mod = stack.REPO / "ngx_omni_module"
    res = subprocess.run(
        ["gcc", "-std=gnu11", "-O1", "-Wall", "-Werror", "-I", str(mod),
         "-o", str(d / "cli"), str(d / "cli.c"), str(mod / "omni_gcra.c")],
        capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return d / "cli"


def _sequence(rng, limits, count, start, same_cost=False):
    """count requests: (now, [cost per limit]). Time mostly moves forward,
    with bursts at one instant and a few steps back; it moves far faster
    than the real clock, so a key Redis expires (in real time) is always
    one whose state the simulated time has passed for good."""
    smallest = min(t for t, _ in limits)
    now, seq = start, []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.25:
            pass
        elif roll < 0.28:
            now -= rng.randint(1, 3 * smallest)
        else:
            now += rng.randint(0, 2 * smallest)
        costs = []
        for _, b in limits:
            costs.append(b + 2 if rng.random() < 0.03
                         else rng.randint(1, min(3, b + 1)))
        if same_cost:
            costs = [costs[0]] * len(limits)
        seq.append((now, costs))
    return seq


# equal limits: every decision is a tie, settled by reset, then index
TIES = [(SEC, 2), (SEC, 2), (2 * SEC, 1), (2 * SEC, 1)]


@pytest.mark.parametrize("seed,limits", [(1, None), (2, None), (3, None),
                                         (4, None), (5, None), (6, TIES)])
def test_script_agrees_with_omni_gcra(r, sha, gcra_cli, seed, limits):
    rng = random.Random(seed)
    # intervals of half a second and more: keys live at least that long
    # in real time, which this test never takes between two calls
    if limits is None:
        limits = [(rng.choice([SEC // 2, SEC, 1_333_333, 6 * SEC,
                               514_285_714, rng.randint(SEC // 2, 5 * SEC)]),
                   rng.randint(0, 5))
                  for _ in range(rng.randint(1, 3))]
    keys = ["omni:rl:z%d:s%d" % (i, seed) for i in range(len(limits))]
    seq = _sequence(rng, limits, 1500, int(time.time() * SEC),
                    same_cost=limits is TIES)

    feed = "".join("%d %s\n" % (now, " ".join(map(str, costs)))
                   for now, costs in seq)
    res = subprocess.run([str(gcra_cli)] + [str(v) for lim in limits
                                            for v in lim],
                         input=feed, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    expected = [list(map(int, line.split()))
                for line in res.stdout.splitlines()]
    assert len(expected) == len(seq)

    allowed = denied = 0
    for step, ((now, costs), want) in enumerate(zip(seq, expected)):
        lim = [(k, t, b, c) for k, (t, b), c in zip(keys, limits, costs)]
        reply = Reply(call(r, sha, lim, now=now))
        context = "step %d now=%d limits=%r costs=%r" % (step, now, limits,
                                                         costs)
        assert reply.raw[:5] == want[:5], context
        for k, tat in zip(keys, want[5:]):
            got = state(r, k)
            # Redis drops a key once its TTL passes: C keeps a stale TAT
            assert got == tat or (got is None and tat <= now), (
                context + " key %s: redis %r, C %r" % (k, got, tat))
        allowed += reply.allowed
        denied += 1 - reply.allowed
    assert allowed > 100 and denied > 100
