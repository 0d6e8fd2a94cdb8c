"""The gateway verifies JWTs (SPEC 4, 5, 10): every algorithm with its own
key, keys chosen by kid, and every way a token can be wrong answered with
401 and the RFC 6750 challenge before anything reaches the upstream.

Tokens come from PyJWT, or are built by hand where PyJWT refuses to make
them (alg none, algorithm confusion, broken encodings)."""

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature)

from jwt_support import (ALGORITHMS, JWKS_KEYS, assert_401, b64url,
                         b64url_decode, claims, hmac_token, parts, passed,
                         replace_part, segment, sign)
import jwt_support

pytestmark = pytest.mark.usefixtures("jwt_nginx_survives")

ALG_IDS = list(ALGORITHMS)


def _hs256(keys, payload=None, header=None):
    """An HS256 token for /hs256/, by hand."""
    return hmac_token(header or {"alg": "HS256", "typ": "JWT"},
                      claims() if payload is None else payload,
                      keys.secret("hs256.secret"))


def _hmac_over(signing_input, keys):
    """signing_input as given (any encoding) signed for /hs256/."""
    import hashlib
    import hmac
    mac = hmac.new(keys.secret("hs256.secret"), signing_input.encode(),
                   hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def _flip(text, index):
    """text with the base64url character at index changed."""
    c = "A" if text[index] != "A" else "B"
    return text[:index] + c + text[index + 1:]


# --- every algorithm ---------------------------------------------------------

@pytest.mark.parametrize("alg", ALG_IDS)
def test_valid_token_passes_with_exactly_the_verified_identity(
        jwt_gateway, jwt_keys, alg):
    location = ALGORITHMS[alg][0]
    c = claims(role="developer")
    echo = passed(jwt_gateway.get(location + "x", sign(jwt_keys, alg, c)))
    assert echo.path == location + "x"
    assert echo.one("X-User-Id") == c["sub"]
    assert echo.one("X-User-Username") == c["preferred_username"]
    assert echo.one("X-User-Role") == c["role"]


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_key_bound_to_two_algorithms_verifies_both(jwt_gateway, jwt_keys,
                                                   alg):
    c = claims()
    echo = passed(jwt_gateway.get("/rs-ps/", sign(jwt_keys, alg, c)))
    assert echo.one("X-User-Id") == c["sub"]


def test_authorization_scheme_is_case_insensitive(jwt_gateway, jwt_keys):
    for scheme in ("bearer", "BEARER", "bEaReR"):
        passed(jwt_gateway.get("/hs256/", sign(jwt_keys), scheme=scheme))


def test_hmac_secret_file_is_its_bytes_with_one_trailing_newline_ignored(
        jwt_gateway, jwt_keys):
    # hs512.secret is base64 over two lines: the inner newline is secret
    raw = jwt_keys.path("hs512.secret").read_bytes()
    assert raw.count(b"\n") == 2
    token = sign(jwt_keys, "HS512", key=raw[:-1])
    passed(jwt_gateway.get("/hs512/", token))
    assert_401(jwt_gateway.get("/hs512/", sign(jwt_keys, "HS512", key=raw)))


# --- keys chosen by kid ------------------------------------------------------

@pytest.mark.parametrize("kid", list(JWKS_KEYS))
def test_jwks_key_selected_by_kid_verifies(jwt_gateway, jwt_keys, kid):
    name, alg = JWKS_KEYS[kid]
    c = claims()
    token = sign(jwt_keys, alg, c, key=jwt_keys.signing_key(name),
                 headers={"kid": kid})
    echo = passed(jwt_gateway.get("/jwks/", token))
    assert echo.one("X-User-Id") == c["sub"]


def test_jwks_unknown_kid_gets_401(jwt_gateway, jwt_keys):
    token = sign(jwt_keys, "RS256", key=jwt_keys.private_pem("rsa"),
                 headers={"kid": "no-such-kid"})
    assert_401(jwt_gateway.get("/jwks/", token))


def test_jwks_token_signed_by_another_kids_key_gets_401(jwt_gateway,
                                                        jwt_keys):
    # signed with rsa-1's key but naming ec-1 (ES256): no key verifies it
    token = sign(jwt_keys, "RS256", key=jwt_keys.private_pem("rsa"),
                 headers={"kid": "ec-1"})
    assert_401(jwt_gateway.get("/jwks/", token))


def test_jwks_kid_is_never_used_as_a_path(jwt_gateway, jwt_keys):
    kid = "../" * 8 + str(jwt_keys.path("rsa.pub")).lstrip("/")
    token = sign(jwt_keys, "RS256", key=jwt_keys.private_pem("rsa"),
                 headers={"kid": kid})
    assert_401(jwt_gateway.get("/jwks/", token))


def test_omni_jwt_key_kid_selects_among_keys(jwt_gateway, jwt_keys):
    c = claims()
    token = sign(jwt_keys, "RS256", c, key=jwt_keys.private_pem("rsa-other"),
                 headers={"kid": "other"})
    assert passed(jwt_gateway.get("/kid/", token)).one("X-User-Id") \
        == c["sub"]


def test_omni_jwt_key_kid_naming_another_key_gets_401(jwt_gateway, jwt_keys):
    token = sign(jwt_keys, "RS256", key=jwt_keys.private_pem("rsa-other"),
                 headers={"kid": "main"})
    assert_401(jwt_gateway.get("/kid/", token))


def test_omni_jwt_key_unknown_kid_gets_401(jwt_gateway, jwt_keys):
    token = sign(jwt_keys, "RS256", key=jwt_keys.private_pem("rsa"),
                 headers={"kid": "third"})
    assert_401(jwt_gateway.get("/kid/", token))


def test_key_without_kid_verifies_a_token_that_names_a_kid(jwt_gateway,
                                                           jwt_keys):
    """IdPs put a kid in every token; a key configured without kid= is a
    candidate whatever the kid (the signature still decides)."""
    c = claims()
    token = sign(jwt_keys, "RS256", c, headers={"kid": "idp-2024"})
    assert passed(jwt_gateway.get("/rs256/", token)).one("X-User-Id") \
        == c["sub"]


# --- wrong key, wrong algorithm ----------------------------------------------

@pytest.mark.parametrize("alg,other", [
    ("HS256", "hs256-other.secret"),
    ("RS256", "rsa-other"),
    ("PS256", "rsa-other"),
    ("ES256", "p256-other"),
    ("EdDSA", "ed25519-other"),
])
def test_token_signed_with_another_key_gets_401(jwt_gateway, jwt_keys, alg,
                                                other):
    token = sign(jwt_keys, alg, key=jwt_keys.signing_key(other))
    assert_401(jwt_gateway.get(ALGORITHMS[alg][0], token))


@pytest.mark.parametrize("alg,location", [
    ("RS384", "/rs256/"),     # same RSA key, bound to RS256 only
    ("RS512", "/rs256/"),
    ("PS256", "/rs256/"),
    ("RS256", "/ps256/"),
    ("RS256", "/rs384/"),
    ("HS384", "/hs256/"),     # same secret, bound to HS256 only
    ("HS512", "/hs256/"),
    ("PS384", "/rs-ps/"),
])
def test_algorithm_not_bound_to_the_key_gets_401(jwt_gateway, jwt_keys, alg,
                                                 location):
    key_name = {"/rs256/": "rsa", "/ps256/": "rsa", "/rs384/": "rsa",
                "/rs-ps/": "rsa", "/hs256/": "hs256.secret"}[location]
    token = sign(jwt_keys, alg, key=jwt_keys.signing_key(key_name))
    assert_401(jwt_gateway.get(location, token))


def test_location_keys_replace_the_servers_key(jwt_gateway, jwt_keys):
    # the server's HS256 secret does not verify at /rs256/
    assert_401(jwt_gateway.get("/rs256/", sign(jwt_keys, "HS256")))


@pytest.mark.parametrize("location,key", [
    ("/rs256/", "rsa"),
    ("/ps256/", "rsa"),
    ("/es256/", "p256"),
    ("/eddsa/", "ed25519"),
])
@pytest.mark.parametrize("newline", [True, False], ids=["pem", "pem-no-nl"])
def test_hs256_signed_with_the_public_key_pem_gets_401(
        jwt_gateway, jwt_keys, location, key, newline):
    pem = jwt_keys.public_pem(key)
    secret = pem if newline else pem.rstrip(b"\n")
    token = hmac_token({"alg": "HS256", "typ": "JWT"}, claims(), secret)
    assert_401(jwt_gateway.get(location, token))


def test_hs256_signed_with_the_jwks_rsa_key_pem_gets_401(jwt_gateway,
                                                         jwt_keys):
    token = hmac_token({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"},
                       claims(), jwt_keys.public_pem("rsa"))
    assert_401(jwt_gateway.get("/jwks/", token))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["empty", "hmac"])
def test_alg_none_gets_401(jwt_gateway, jwt_keys, alg, signature):
    header = {"alg": alg, "typ": "JWT"}
    if signature == "empty":
        token = segment(header) + "." + segment(claims()) + "."
    else:
        token = _hs256(jwt_keys, header=header)
    assert_401(jwt_gateway.get("/hs256/", token))


@pytest.mark.parametrize("header", [
    {"typ": "JWT"},
    {"alg": "", "typ": "JWT"},
    {"alg": "HS1024", "typ": "JWT"},
    {"alg": "hs256", "typ": "JWT"},
    {"alg": ["HS256"], "typ": "JWT"},
    {"alg": "HS256", "crit": ["exp"], "typ": "JWT"},
], ids=["no-alg", "empty-alg", "unknown-alg", "lowercase-alg", "alg-array",
        "crit"])
def test_header_without_a_usable_alg_gets_401(jwt_gateway, jwt_keys, header):
    assert_401(jwt_gateway.get("/hs256/", _hs256(jwt_keys, header=header)))


def test_es256_zero_signature_gets_401(jwt_gateway, jwt_keys):
    # CVE-2022-21449: r = s = 0 must never verify
    token = sign(jwt_keys, "ES256")
    assert_401(jwt_gateway.get("/es256/",
                               replace_part(token, 2, b64url(bytes(64)))))


def test_es256_signature_in_der_form_gets_401(jwt_gateway, jwt_keys):
    # JWS carries r || s; a DER signature is not a JWS signature
    token = sign(jwt_keys, "ES256")
    raw = b64url_decode(parts(token)[2])
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                               int.from_bytes(raw[32:], "big"))
    assert decode_dss_signature(der)
    assert_401(jwt_gateway.get("/es256/", replace_part(token, 2,
                                                       b64url(der))))


# --- tampering ---------------------------------------------------------------

def test_tampered_header_gets_401(jwt_gateway, jwt_keys):
    token = sign(jwt_keys)
    header = json.loads(b64url_decode(parts(token)[0]))
    header["typ"] = "at+jwt"
    assert_401(jwt_gateway.get("/hs256/",
                               replace_part(token, 0, segment(header))))


@pytest.mark.parametrize("alg", ALG_IDS)
def test_tampered_payload_gets_401(jwt_gateway, jwt_keys, alg):
    token = sign(jwt_keys, alg)
    payload = json.loads(b64url_decode(parts(token)[1]))
    payload["role"] = "admin"
    assert_401(jwt_gateway.get(ALGORITHMS[alg][0],
                               replace_part(token, 1, segment(payload))))


@pytest.mark.parametrize("alg", ALG_IDS)
def test_tampered_signature_gets_401(jwt_gateway, jwt_keys, alg):
    token = sign(jwt_keys, alg)
    sig = parts(token)[2]
    assert_401(jwt_gateway.get(ALGORITHMS[alg][0],
                               replace_part(token, 2, _flip(sig,
                                                            len(sig) // 2))))


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256", "EdDSA"])
def test_truncated_signature_gets_401(jwt_gateway, jwt_keys, alg):
    token = sign(jwt_keys, alg)
    sig = parts(token)[2]
    assert_401(jwt_gateway.get(ALGORITHMS[alg][0],
                               replace_part(token, 2, sig[:-4])))


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256", "EdDSA"])
def test_empty_signature_gets_401(jwt_gateway, jwt_keys, alg):
    token = sign(jwt_keys, alg)
    assert_401(jwt_gateway.get(ALGORITHMS[alg][0], replace_part(token, 2, "")))


# --- malformed tokens --------------------------------------------------------

@pytest.mark.parametrize("shape", [
    "one", "two", "four", "five", "dots", "trailing-dot", "leading-dot",
])
def test_wrong_number_of_segments_gets_401(jwt_gateway, jwt_keys, shape):
    token = sign(jwt_keys)
    h, p, s = parts(token)
    bad = {
        "one": h,
        "two": h + "." + p,
        "four": token + "." + s,
        "five": ".".join([h, p, s, s, s]),
        "dots": "..",
        "trailing-dot": token + ".",
        "leading-dot": "." + token,
    }[shape]
    assert_401(jwt_gateway.get("/hs256/", bad))


def _segment_with(jwt_keys, want):
    """A claims() payload segment holding one of the characters `want`."""
    for _ in range(500):
        seg = segment(claims(pad="~~?>>"))
        if any(c in seg for c in want):
            return seg
    raise AssertionError("no payload segment with any of %r" % want)


@pytest.mark.parametrize("encoding", [
    "padded-payload", "standard-alphabet", "invalid-char", "impossible-length",
    "padded-signature", "percent-encoded",
])
def test_bad_base64url_gets_401(jwt_gateway, jwt_keys, encoding):
    """Each token is signed over exactly the text it carries: only a strict
    base64url decoder refuses it."""
    head = segment({"alg": "HS256", "typ": "JWT"})
    if encoding == "padded-payload":
        seg = next(s for s in (segment(claims(pad="x" * n))
                               for n in (1, 2, 3)) if len(s) % 4)
        token = _hmac_over(head + "." + seg + "=" * (-len(seg) % 4), jwt_keys)
    elif encoding == "standard-alphabet":
        seg = _segment_with(jwt_keys, "-_")
        seg = seg.replace("-", "+").replace("_", "/")
        token = _hmac_over(head + "." + seg, jwt_keys)
    elif encoding == "invalid-char":
        seg = segment(claims())
        token = _hmac_over(head + "." + seg[:10] + "*" + seg[10:], jwt_keys)
    elif encoding == "impossible-length":
        seg = segment(claims())
        while len(seg) % 4 != 1:
            seg += "A"
        token = _hmac_over(head + "." + seg, jwt_keys)
    elif encoding == "padded-signature":
        token = _hs256(jwt_keys)
        token += "=" * (-len(parts(token)[2]) % 4 or 4)
    else:
        token = _hs256(jwt_keys).replace("e", "%65", 1)
    assert_401(jwt_gateway.get("/hs256/", token))


@pytest.mark.parametrize("payload", [
    b"[1,2,3]", b'"a string"', b"42", b"null", b"true", b"", b'{"sub":',
    b"not json", b'{"sub":"u1"} trailing', b'{"sub":"\xff\xfe"}',
], ids=["array", "string", "number", "null", "bool", "empty", "truncated",
        "not-json", "trailing-garbage", "invalid-utf8"])
def test_payload_that_is_not_a_json_object_gets_401(jwt_gateway, jwt_keys,
                                                    payload):
    assert_401(jwt_gateway.get("/hs256/", _hs256(jwt_keys, payload=payload)))


@pytest.mark.parametrize("header", [b'["HS256"]', b'"HS256"', b"",
                                    b'{"alg":"HS256"'],
                         ids=["array", "string", "empty", "truncated"])
def test_header_that_is_not_a_json_object_gets_401(jwt_gateway, jwt_keys,
                                                   header):
    token = _hmac_over(b64url(header) + "." + segment(claims()), jwt_keys)
    assert_401(jwt_gateway.get("/hs256/", token))


def test_deeply_nested_payload_gets_401(jwt_gateway, jwt_keys):
    depth = 2500
    payload = json.dumps(claims()).rstrip("}") + ',"deep":' + "[" * depth \
        + "]" * depth + "}"
    token = _hs256(jwt_keys, payload=payload.encode())
    assert len(token) < 8192
    assert_401(jwt_gateway.get("/hs256/", token))


@pytest.mark.parametrize("bad", [{"exp": "9999999999"}, {"nbf": "0"},
                                 {"iat": [1]}, {"exp": None, "nbf": {}}],
                         ids=["exp-string", "nbf-string", "iat-array",
                              "nbf-object"])
def test_non_numeric_time_claim_gets_401(jwt_gateway, jwt_keys, bad):
    c = claims()
    c.update(bad)
    c = {k: v for k, v in c.items() if v is not None}
    assert_401(jwt_gateway.get("/hs256/", _hs256(jwt_keys, payload=c)))


def _token_of_length(jwt_keys, target):
    """A valid HS256 token for /hs256/ of length close to target
    (longest <= target when target is under the limit, else shortest >
    target)."""
    base = claims()
    best = None
    for n in range(max(0, target * 3 // 4 - 400), target * 3 // 4 + 10):
        t = sign(jwt_keys, "HS256", dict(base, pad="p" * n))
        if t and len(t) <= target:
            best = t
        elif len(t) > target:
            return best, t
    raise AssertionError("no token near %d" % target)


def test_token_just_under_8k_passes(jwt_gateway, jwt_keys):
    under, _ = _token_of_length(jwt_keys, 8100)
    assert 8000 < len(under) <= 8100
    passed(jwt_gateway.get("/hs256/", under))


def test_token_over_8k_gets_401(jwt_gateway, jwt_keys):
    _, over = _token_of_length(jwt_keys, 8192)
    assert 8192 < len(over) < 8200
    assert_401(jwt_gateway.get("/hs256/", over))


def test_huge_token_gets_401(jwt_gateway, jwt_keys):
    token = sign(jwt_keys, "HS256", claims(pad="p" * 20000))
    assert_401(jwt_gateway.get("/hs256/", token))


def test_garbage_bearer_value_gets_401(jwt_gateway):
    assert_401(jwt_gateway.get("/hs256/", "not-a-token"))


# --- where the token comes from ----------------------------------------------

def test_missing_token_gets_401_missing_credentials_without_error(
        jwt_gateway):
    assert_401(jwt_gateway.get("/hs256/"), "missing_credentials")


def test_token_in_cookie_is_accepted_where_configured(jwt_gateway, jwt_keys):
    c = claims()
    r = jwt_gateway.get("/cookie/", cookies={"omni_token": sign(jwt_keys,
                                                                 payload=c)})
    assert passed(r).one("X-User-Id") == c["sub"]


def test_token_in_query_arg_is_accepted_where_configured(jwt_gateway,
                                                         jwt_keys):
    c = claims()
    r = jwt_gateway.get("/cookie/", params={"token": sign(jwt_keys,
                                                          payload=c)})
    assert passed(r).one("X-User-Id") == c["sub"]


def test_token_sources_are_tried_in_order(jwt_gateway, jwt_keys):
    first, second = claims(), claims()
    r = jwt_gateway.get("/cookie/",
                        cookies={"omni_token": sign(jwt_keys, payload=first)},
                        params={"token": sign(jwt_keys, payload=second)})
    assert passed(r).one("X-User-Id") == first["sub"]


def test_configured_sources_without_a_token_get_missing_credentials(
        jwt_gateway):
    assert_401(jwt_gateway.get("/cookie/"), "missing_credentials")


def test_invalid_token_in_cookie_gets_401(jwt_gateway, jwt_keys):
    token = sign(jwt_keys, key=jwt_keys.secret("hs256-other.secret"))
    assert_401(jwt_gateway.get("/cookie/", cookies={"omni_token": token}))


def test_cookie_is_not_a_token_source_by_default(jwt_gateway, jwt_keys):
    r = jwt_gateway.get("/hs256/", cookies={"omni_token": sign(jwt_keys)})
    assert_401(r, "missing_credentials")


def test_query_arg_is_not_a_token_source_by_default(jwt_gateway, jwt_keys):
    r = jwt_gateway.get("/hs256/", params={"token": sign(jwt_keys)})
    assert_401(r, "missing_credentials")


# --- what a rejection looks like ---------------------------------------------

def test_invalid_token_gets_json_401_with_rfc6750_challenge(jwt_gateway,
                                                            jwt_keys):
    token = sign(jwt_keys, key=jwt_keys.secret("hs256-other.secret"))
    r = jwt_gateway.get("/hs256/", token)
    assert_401(r, "invalid_token")
    assert set(r.json()) >= {"error", "message"}


def test_expired_token_gets_401_token_expired_with_invalid_token_challenge(
        jwt_gateway, jwt_keys):
    t = jwt_support.now()
    r = jwt_gateway.get("/hs256/", sign(jwt_keys, payload=claims(
        iat=t - 600, exp=t - 300)))
    assert_401(r, "token_expired")


def test_rejection_never_reaches_the_upstream(jwt_gateway, jwt_keys):
    token = sign(jwt_keys, key=jwt_keys.secret("hs256-other.secret"))
    r = jwt_gateway.get("/hs256/", token)
    assert r.status_code == 401
    assert "headers" not in r.json()


def test_error_description_does_not_echo_the_token(jwt_gateway, jwt_keys):
    token = sign(jwt_keys, key=jwt_keys.secret("hs256-other.secret"))
    r = jwt_gateway.get("/hs256/", token)
    assert_401(r)
    for part in parts(token):
        assert part not in r.headers["WWW-Authenticate"]
        assert part not in r.text


def test_rejection_is_not_logged_with_the_token(jwt_gateway, jwt_keys):
    token = sign(jwt_keys, key=jwt_keys.secret("hs256-other.secret"))
    assert_401(jwt_gateway.get("/hs256/", token))
    sig = parts(token)[2]
    assert sig not in jwt_gateway.error_log.read_text(errors="replace")
