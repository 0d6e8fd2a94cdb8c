"""The verified-token cache (`omni_jwt_cache`, shared by both nginx workers
and every location), `omni_status` and `omni_metrics`.

A cached verification says a token's signature and structure were checked;
it must never stand in for what differs between locations (keys, issuer,
audience, roles) nor outlive the token's exp. Every token here carries a
fresh jti, so only a token sent twice can hit the cache."""

import time

import pytest

from jwt_support import (ALGORITHMS, AUDIENCE, ISSUER, assert_401,
                         assert_403, claims, hmac_token, now, parts, passed,
                         replace_part, sign, status_number)

pytestmark = pytest.mark.usefixtures("jwt_nginx_survives")


def _claims_token(keys, **overrides):
    return sign(keys, payload=claims(**dict(
        {"iss": ISSUER, "aud": AUDIENCE}, **overrides)))


# --- cache -------------------------------------------------------------------

def test_same_token_twice_is_one_miss_then_one_hit(jwt_gateway, jwt_keys):
    token = sign(jwt_keys)
    before = jwt_gateway.metrics()
    passed(jwt_gateway.get("/hs256/", token))
    passed(jwt_gateway.get("/hs256/", token))
    after = jwt_gateway.metrics()
    assert after.cache("miss") - before.cache("miss") == 1
    assert after.cache("hit") - before.cache("hit") == 1


def test_cache_hit_injects_the_tokens_own_identity(jwt_gateway, jwt_keys):
    c = claims(role="developer")
    token = sign(jwt_keys, payload=c)
    for _ in range(3):
        echo = passed(jwt_gateway.get("/hs256/", token))
        assert echo.one("X-User-Id") == c["sub"]
        assert echo.one("X-User-Username") == c["preferred_username"]
        assert echo.one("X-User-Role") == "developer"


def test_cached_token_is_rejected_once_expired(jwt_gateway, jwt_keys):
    t = now()
    token = sign(jwt_keys, payload=claims(iat=t, exp=t + 2))
    passed(jwt_gateway.get("/hs256/", token))
    passed(jwt_gateway.get("/hs256/", token))
    while time.time() < t + 3.2:
        time.sleep(0.2)
    assert_401(jwt_gateway.get("/hs256/", token), "token_expired")


def test_cached_token_is_rejected_from_its_exp_second(jwt_gateway, jwt_keys):
    """RFC 7519 4.1.4: a token is valid only before exp. Uncached, it is
    refused at exp itself; a cache hit must not stretch that by a second."""
    t = now()
    exp = t + 2
    token = sign(jwt_keys, payload=claims(iat=t, exp=exp))
    passed(jwt_gateway.get("/hs256/", token))
    passed(jwt_gateway.get("/hs256/", token))
    while time.time() < exp + 0.1:
        time.sleep(0.02)
    assert time.time() < exp + 0.8, "too slow to test the exp second"
    assert_401(jwt_gateway.get("/hs256/", token), "token_expired")


def test_uncached_token_is_rejected_from_its_exp_second(jwt_gateway,
                                                        jwt_keys):
    t = now()
    exp = t + 1
    token = sign(jwt_keys, payload=claims(iat=t, exp=exp))
    while time.time() < exp + 0.1:
        time.sleep(0.02)
    assert time.time() < exp + 0.8, "too slow to test the exp second"
    assert_401(jwt_gateway.get("/hs256/", token), "token_expired")


def test_cache_hit_keeps_the_variables(jwt_gateway, jwt_keys):
    c = claims(role="developer", email="fay@example.com")
    token = sign(jwt_keys, payload=c)
    passed(jwt_gateway.get("/vars/", token))
    echo = passed(jwt_gateway.get("/vars/", token))
    assert echo.one("X-Var-User-Id") == c["sub"]
    assert echo.one("X-Var-Role") == "developer"
    assert echo.one("X-Var-Claim-Email") == "fay@example.com"
    assert echo.one("X-Var-Jti") == c["jti"]
    assert echo.one("X-Var-Auth-Method") == "jwt"


def test_concurrent_requests_each_get_their_own_decision(jwt_gateway,
                                                         jwt_keys):
    import concurrent.futures
    import requests

    tokens = []
    for i in range(40):
        c = claims(role="admin" if i % 4 == 0 else "user")
        tokens.append((c, sign(jwt_keys, payload=c)))

    def one(i):
        c, token = tokens[i % len(tokens)]
        with requests.Session() as s:
            r = s.get(jwt_gateway.url("/admin/"),
                      headers={"Authorization": "Bearer " + token},
                      timeout=10)
        if c["role"] == "admin":
            assert r.status_code == 200, r.text
            assert passed(r).one("X-User-Id") == c["sub"]
        else:
            assert_403(r)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for f in [pool.submit(one, i) for i in range(400)]:
            f.result()


def test_full_cache_evicts_and_keeps_serving(jwt_gateway, jwt_keys):
    """1 MB holds a few thousand entries: fill it well past that. The
    tokens are over 2 KB, which the workers' own tables in front of the
    zone do not keep: what answers here is the shared zone alone."""
    import concurrent.futures
    import http.client

    secret = jwt_keys.secret("hs256.secret")
    header = {"alg": "HS256", "typ": "JWT"}
    pad = "x" * 2100

    def batch(n):
        conn = http.client.HTTPConnection("127.0.0.1", jwt_gateway.port,
                                          timeout=10)
        try:
            for _ in range(n):
                token = hmac_token(header, claims(pad=pad), secret)
                r = jwt_gateway.send("/hs256/", [
                    ("Authorization", "Bearer " + token)], conn=conn)
                assert r.status == 200, r
        finally:
            conn.close()

    oldest = hmac_token(header, claims(pad=pad), secret)
    passed(jwt_gateway.get("/hs256/", oldest))
    before = jwt_gateway.metrics()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(batch, 2000) for _ in range(4)]:
            f.result()
    after = jwt_gateway.metrics()
    assert after.cache("miss") - before.cache("miss") == 8000
    # the least recently used entry made room
    passed(jwt_gateway.get("/hs256/", oldest))
    assert jwt_gateway.metrics().cache("miss") - after.cache("miss") == 1
    token = sign(jwt_keys)
    hits = jwt_gateway.metrics().cache("hit")
    passed(jwt_gateway.get("/hs256/", token))
    passed(jwt_gateway.get("/hs256/", token))
    assert jwt_gateway.metrics().cache("hit") - hits == 1


def test_cached_verification_does_not_serve_another_audience(jwt_gateway,
                                                             jwt_keys):
    token = _claims_token(jwt_keys)
    passed(jwt_gateway.get("/claims/", token))
    passed(jwt_gateway.get("/claims/", token))
    assert_401(jwt_gateway.get("/aud-other/", token))


def test_cached_verification_does_not_serve_another_issuer_rule(
        jwt_gateway, jwt_keys):
    token = sign(jwt_keys, payload=claims(aud="other-api",
                                          iss="https://anyone.example"))
    passed(jwt_gateway.get("/hs256/", token))
    passed(jwt_gateway.get("/hs256/", token))
    assert_401(jwt_gateway.get("/aud-other/", token))


def test_cached_verification_does_not_serve_a_location_with_another_key(
        jwt_gateway, jwt_keys):
    token = sign(jwt_keys)
    passed(jwt_gateway.get("/hs256/", token))
    passed(jwt_gateway.get("/hs256/", token))
    assert_401(jwt_gateway.get("/hs256-other/", token))


def test_cached_verification_does_not_serve_a_location_bound_to_another_alg(
        jwt_gateway, jwt_keys):
    token = sign(jwt_keys, "PS256")
    passed(jwt_gateway.get("/ps256/", token))
    passed(jwt_gateway.get("/ps256/", token))
    assert_401(jwt_gateway.get("/rs256/", token))


def test_cached_verification_does_not_skip_leeway_rules(jwt_gateway,
                                                        jwt_keys):
    # expired 20s ago: fine within /claims/' 1m leeway, not at /hs256/
    t = now()
    token = _claims_token(jwt_keys, iat=t - 300, exp=t - 20)
    passed(jwt_gateway.get("/claims/", token))
    passed(jwt_gateway.get("/claims/", token))
    assert_401(jwt_gateway.get("/hs256/", token), "token_expired")


def test_cached_token_still_needs_the_role(jwt_gateway, jwt_keys):
    token = sign(jwt_keys, payload=claims(role="user"))
    passed(jwt_gateway.get("/hs256/", token))
    passed(jwt_gateway.get("/hs256/", token))
    assert_403(jwt_gateway.get("/admin/", token))


def test_cached_token_with_another_signature_is_rejected(jwt_gateway,
                                                         jwt_keys):
    token = sign(jwt_keys)
    passed(jwt_gateway.get("/hs256/", token))
    passed(jwt_gateway.get("/hs256/", token))
    forged = replace_part(token, 2, "A" * len(parts(token)[2]))
    assert_401(jwt_gateway.get("/hs256/", forged))


def test_rejected_token_is_never_a_cache_hit(jwt_gateway, jwt_keys):
    token = sign(jwt_keys, key=jwt_keys.secret("hs256-other.secret"))
    before = jwt_gateway.metrics()
    for _ in range(3):
        assert_401(jwt_gateway.get("/hs256/", token))
    assert jwt_gateway.metrics().cache("hit") == before.cache("hit")


# --- omni_status -------------------------------------------------------------

def test_status_reports_keys_loaded(jwt_gateway):
    doc = jwt_gateway.status()
    assert status_number(doc, r"(?i)keys?[._]?loaded|loaded[._]?keys",
                         "keys loaded") > 0


def test_status_key_parses_do_not_grow_with_requests(jwt_gateway, jwt_keys):
    parses = r"(?i)key[s]?[._]?pars|pars\w*[._]key"
    before = status_number(jwt_gateway.status(), parses, "key parses")
    metrics_before = jwt_gateway.metrics().key_parses()
    for _ in range(3):
        for alg, (location, _) in ALGORITHMS.items():
            passed(jwt_gateway.get(location, sign(jwt_keys, alg)))
    for _ in range(5):
        after = status_number(jwt_gateway.status(), parses, "key parses")
        assert after == before
    assert jwt_gateway.metrics().key_parses() == metrics_before


def test_status_is_json_over_get(jwt_gateway):
    r = jwt_gateway.get("/omni/status")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["module"] == "ngx_http_omni_module"


# --- omni_metrics ------------------------------------------------------------

def test_metrics_are_prometheus_text(jwt_gateway):
    r = jwt_gateway.get("/omni/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert jwt_gateway.metrics().samples


def test_metrics_report_keys_loaded(jwt_gateway):
    assert jwt_gateway.metrics().keys_loaded() > 0


def _rejection(reason, gw, keys):
    """Sends one request that the gateway must refuse for `reason`."""
    t = now()
    if reason == "missing":
        assert_401(gw.get("/hs256/"), "missing_credentials")
    elif reason == "malformed":
        assert_401(gw.get("/hs256/", "not.a-token"))
    elif reason == "bad_signature":
        assert_401(gw.get("/hs256/", sign(
            keys, key=keys.secret("hs256-other.secret"))))
    elif reason == "expired":
        assert_401(gw.get("/hs256/", sign(keys, payload=claims(
            iat=t - 600, exp=t - 300))), "token_expired")
    elif reason == "not_yet_valid":
        assert_401(gw.get("/hs256/", sign(keys, payload=claims(
            nbf=t + 300))))
    elif reason == "wrong_issuer":
        assert_401(gw.get("/claims/", _claims_token(
            keys, iss="https://evil.example")))
    elif reason == "wrong_audience":
        assert_401(gw.get("/claims/", _claims_token(keys, aud="evil")))
    elif reason == "insufficient_role":
        assert_403(gw.get("/admin/", sign(keys, payload=claims(
            role="viewer"))))
    else:
        raise AssertionError(reason)


REASONS = ["missing", "malformed", "bad_signature", "expired",
           "not_yet_valid", "wrong_issuer", "wrong_audience",
           "insufficient_role"]


@pytest.mark.parametrize("reason", REASONS)
def test_metrics_count_each_rejection_by_reason(jwt_gateway, jwt_keys,
                                                reason):
    before = jwt_gateway.metrics()
    _rejection(reason, jwt_gateway, jwt_keys)
    after = jwt_gateway.metrics()
    assert after.decisions(reason=reason) - before.decisions(reason=reason) \
        == 1, "reasons: %s\n%s" % (after.decision_reasons(), after.text)
    for other in REASONS:
        if other != reason:
            assert after.decisions(reason=other) \
                == before.decisions(reason=other), other


def test_metrics_count_allowed_requests(jwt_gateway, jwt_keys):
    before = jwt_gateway.metrics()
    for _ in range(3):
        passed(jwt_gateway.get("/hs256/", sign(jwt_keys)))
    after = jwt_gateway.metrics()
    deltas = {}
    for name, labels, value in after.samples:
        if "decision" not in name:
            continue
        old = sum(v for n, l, v in before.samples
                  if n == name and l == labels)
        if value - old:
            deltas[(name, tuple(sorted(labels.items())))] = value - old
    allowed = [k for k, d in deltas.items() if d == 3]
    assert len(allowed) == 1, deltas
    labels = dict(allowed[0][1])
    assert labels.get("reason") not in REASONS, labels
