"""Registered claims (SPEC 4): exp, nbf and iat against the clock with
omni_jwt_leeway, iss against omni_jwt_issuer, aud against
omni_jwt_audience. /hs256/ has no leeway, issuer or audience; /claims/
has two issuers, two audiences and `omni_jwt_leeway 1m`."""

import pytest

from jwt_support import (AUDIENCE, ISSUER, LEEWAY, OTHER_AUDIENCE,
                         OTHER_ISSUER, assert_401, claims, now, passed, sign)

pytestmark = pytest.mark.usefixtures("jwt_nginx_survives")

# seconds kept from the boundaries: the clock moves while a test runs
MARGIN = 20


def _at_claims(jwt_keys, **overrides):
    """A token for /claims/ (its issuer and audience) with overrides."""
    return sign(jwt_keys, payload=claims(**dict(
        {"iss": ISSUER, "aud": AUDIENCE}, **overrides)))


# --- time, no leeway ---------------------------------------------------------

def test_expired_token_gets_401_token_expired(jwt_gateway, jwt_keys):
    t = now()
    r = jwt_gateway.get("/hs256/", sign(jwt_keys, payload=claims(
        iat=t - 60, exp=t - 3)))
    assert_401(r, "token_expired")


def test_token_not_yet_valid_gets_401_invalid_token(jwt_gateway, jwt_keys):
    t = now()
    r = jwt_gateway.get("/hs256/", sign(jwt_keys, payload=claims(
        nbf=t + 30)))
    assert_401(r, "invalid_token")


def test_token_issued_in_the_future_gets_401(jwt_gateway, jwt_keys):
    t = now()
    r = jwt_gateway.get("/hs256/", sign(jwt_keys, payload=claims(
        iat=t + 120, exp=t + 600)))
    assert_401(r, "invalid_token")


def test_token_with_past_nbf_and_future_exp_passes(jwt_gateway, jwt_keys):
    t = now()
    passed(jwt_gateway.get("/hs256/", sign(jwt_keys, payload=claims(
        nbf=t - 10, iat=t - 10, exp=t + 60))))


def test_fractional_numeric_dates_are_accepted(jwt_gateway, jwt_keys):
    t = now()
    passed(jwt_gateway.get("/hs256/", sign(jwt_keys, payload=claims(
        iat=t - 0.5, nbf=t - 1.25, exp=t + 60.75))))


# --- leeway (1m at /claims/) -------------------------------------------------

def test_leeway_accepts_a_token_expired_within_it(jwt_gateway, jwt_keys):
    t = now()
    passed(jwt_gateway.get("/claims/", _at_claims(
        jwt_keys, iat=t - 300, exp=t - LEEWAY + MARGIN)))


def test_leeway_rejects_a_token_expired_beyond_it(jwt_gateway, jwt_keys):
    t = now()
    assert_401(jwt_gateway.get("/claims/", _at_claims(
        jwt_keys, iat=t - 300, exp=t - LEEWAY - MARGIN)), "token_expired")


def test_leeway_accepts_nbf_within_it(jwt_gateway, jwt_keys):
    t = now()
    passed(jwt_gateway.get("/claims/", _at_claims(
        jwt_keys, nbf=t + LEEWAY - MARGIN)))


def test_leeway_rejects_nbf_beyond_it(jwt_gateway, jwt_keys):
    t = now()
    assert_401(jwt_gateway.get("/claims/", _at_claims(
        jwt_keys, nbf=t + LEEWAY + MARGIN)))


def test_leeway_accepts_iat_within_it(jwt_gateway, jwt_keys):
    t = now()
    passed(jwt_gateway.get("/claims/", _at_claims(
        jwt_keys, iat=t + LEEWAY - MARGIN)))


def test_leeway_rejects_iat_beyond_it(jwt_gateway, jwt_keys):
    t = now()
    assert_401(jwt_gateway.get("/claims/", _at_claims(
        jwt_keys, iat=t + LEEWAY + MARGIN, exp=t + 600)))


def test_no_leeway_where_none_is_configured(jwt_gateway, jwt_keys):
    # accepted at /claims/ (1m) but not at /hs256/ (0): same key
    t = now()
    token = _at_claims(jwt_keys, iat=t - 300, exp=t - MARGIN)
    passed(jwt_gateway.get("/claims/", token))
    assert_401(jwt_gateway.get("/hs256/", token), "token_expired")


# --- issuer ------------------------------------------------------------------

@pytest.mark.parametrize("iss", [ISSUER, OTHER_ISSUER])
def test_any_configured_issuer_passes(jwt_gateway, jwt_keys, iss):
    passed(jwt_gateway.get("/claims/", _at_claims(jwt_keys, iss=iss)))


@pytest.mark.parametrize("iss", [
    "https://evil.omni.test", ISSUER.upper(), ISSUER + "/", ISSUER[:-1], "",
    [ISSUER], 42,
], ids=["other", "case", "trailing-slash", "prefix", "empty", "array",
        "number"])
def test_wrong_issuer_gets_401(jwt_gateway, jwt_keys, iss):
    assert_401(jwt_gateway.get("/claims/", _at_claims(jwt_keys, iss=iss)))


def test_missing_issuer_gets_401_where_one_is_required(jwt_gateway, jwt_keys):
    assert_401(jwt_gateway.get("/claims/", _at_claims(jwt_keys, iss=None)))


def test_issuer_is_not_checked_where_none_is_configured(jwt_gateway,
                                                        jwt_keys):
    passed(jwt_gateway.get("/hs256/", sign(jwt_keys, payload=claims(
        iss="https://anyone.example"))))


# --- audience ----------------------------------------------------------------

@pytest.mark.parametrize("aud", [
    AUDIENCE, "omni-admin", [AUDIENCE], [OTHER_AUDIENCE, AUDIENCE],
    ["x", "y", "omni-admin"],
], ids=["string", "second-configured", "array", "array-second",
        "array-third"])
def test_accepted_audience_passes(jwt_gateway, jwt_keys, aud):
    passed(jwt_gateway.get("/claims/", _at_claims(jwt_keys, aud=aud)))


@pytest.mark.parametrize("aud", [
    OTHER_AUDIENCE, AUDIENCE + "-evil", AUDIENCE[:-1], AUDIENCE.upper(), "",
], ids=["other", "suffixed", "prefix", "case", "empty"])
def test_wrong_audience_string_gets_401(jwt_gateway, jwt_keys, aud):
    assert_401(jwt_gateway.get("/claims/", _at_claims(jwt_keys, aud=aud)))


@pytest.mark.parametrize("aud", [
    [OTHER_AUDIENCE], [OTHER_AUDIENCE, "third"], [], [AUDIENCE + "x"],
    [[AUDIENCE]], [42],
], ids=["one-other", "two-others", "empty", "suffixed", "nested", "number"])
def test_wrong_audience_array_gets_401(jwt_gateway, jwt_keys, aud):
    assert_401(jwt_gateway.get("/claims/", _at_claims(jwt_keys, aud=aud)))


def test_missing_audience_gets_401_where_one_is_required(jwt_gateway,
                                                         jwt_keys):
    assert_401(jwt_gateway.get("/claims/", _at_claims(jwt_keys, aud=None)))


def test_audience_of_another_location_gets_401(jwt_gateway, jwt_keys):
    token = _at_claims(jwt_keys)
    passed(jwt_gateway.get("/claims/", token))
    assert_401(jwt_gateway.get("/aud-other/", token))


def test_audience_is_not_checked_where_none_is_configured(jwt_gateway,
                                                          jwt_keys):
    passed(jwt_gateway.get("/hs256/", sign(jwt_keys, payload=claims(
        aud="someone-else"))))
