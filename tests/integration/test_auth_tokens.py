"""The worker's access tokens verify with PyJWT (an independent
implementation) against GET /.well-known/jwks.json (issue 5): RS256 by
default, ES256 with an EC P-256 key, EdDSA with an Ed25519 key; kid, issuer,
audience and lifetimes from the configuration; refresh token expiry."""

import base64
import hashlib
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from auth_support import (  # noqa: F401
    ED25519_ARGS, P256_ARGS, PASSWORD, RSA_ARGS, assert_error,
    auth_gw, auth_nginx, claims, direct_json, login, openssl_key, register,
    unique_email, unique_username)

CLAIMS = {"iss", "aud", "sub", "preferred_username", "role", "jti", "iat",
          "exp"}
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk):
    """RFC 7638: SHA-256 of the required members, sorted, no spaces."""
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"),
                "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    text = json.dumps({k: jwk[k] for k in required}, sort_keys=True,
                      separators=(",", ":"))
    return b64url(hashlib.sha256(text.encode()).digest())


def header(token):
    return jwt.get_unverified_header(token)


def verify(token, jwks, issuer="omni", audience="omni-api"):
    """PyJWT's verification with the JWKS key the header's kid names."""
    kid = header(token)["kid"]
    matching = [k for k in jwks["keys"] if k.get("kid") == kid]
    assert len(matching) == 1, (kid, jwks)
    key = jwt.PyJWK(matching[0])
    return jwt.decode(token, key.key, algorithms=[matching[0]["alg"]],
                      issuer=issuer, audience=audience,
                      options={"require": sorted(CLAIMS)})


# --- through the gateway, the shared worker ----------------------------------

def test_jwks_is_public_and_holds_one_rsa_signing_key(auth_gw):
    r = auth_gw.get("/.well-known/jwks.json")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    keys = r.json()["keys"]
    assert len(keys) == 1
    k = keys[0]
    assert k["kty"] == "RSA" and k["use"] == "sig" and k["alg"] == "RS256"
    assert k["kid"] and k["n"] and k["e"]
    assert not PRIVATE_JWK_MEMBERS & set(k), k


def test_access_token_verifies_with_pyjwt_against_the_jwks(auth_gw):
    user = register(auth_gw, username=unique_username())
    before = int(time.time())
    login(auth_gw, user)
    after = int(time.time())
    jwks = auth_gw.get("/.well-known/jwks.json").json()
    h = header(user.access)
    assert h["alg"] == "RS256"
    assert h["typ"] == "JWT"
    assert h["kid"] == jwks["keys"][0]["kid"]
    c = verify(user.access, jwks)
    assert set(c) >= CLAIMS
    assert c["iss"] == "omni"
    assert c["aud"] == "omni-api" or c["aud"] == ["omni-api"]
    assert c["sub"] == user.id
    assert c["preferred_username"] == user.username
    assert c["role"] == "user"
    assert before - 1 <= c["iat"] <= after + 1
    assert c["exp"] - c["iat"] == 900
    assert isinstance(c["jti"], str) and len(c["jti"]) >= 16


def test_preferred_username_is_the_email_without_a_username(auth_gw):
    user = register(auth_gw)
    login(auth_gw, user)
    jwks = auth_gw.get("/.well-known/jwks.json").json()
    assert verify(user.access, jwks)["preferred_username"] == user.email


def test_refreshed_token_verifies_too(auth_gw):
    user = register(auth_gw)
    login(auth_gw, user)
    r = auth_gw.post("/auth/refresh", {"refresh_token": user.refresh})
    assert r.status_code == 200, r.text
    jwks = auth_gw.get("/.well-known/jwks.json").json()
    assert verify(r.json()["access_token"], jwks)["sub"] == user.id


def test_every_token_has_its_own_jti(auth_gw):
    user = register(auth_gw)
    jtis = set()
    for _ in range(4):
        login(auth_gw, user)
        jtis.add(claims(user.access)["jti"])
    assert len(jtis) == 4


def test_a_tampered_token_fails_pyjwt_and_the_gateway(auth_gw):
    user = register(auth_gw)
    login(auth_gw, user)
    head, payload, sig = user.access.split(".")
    doc = claims(user.access)
    doc["role"] = "admin"
    forged = ".".join((head, b64url(json.dumps(doc).encode()), sig))
    jwks = auth_gw.get("/.well-known/jwks.json").json()
    with pytest.raises(jwt.InvalidSignatureError):
        verify(forged, jwks)
    assert_error(auth_gw.get("/auth/me", token=forged), 401, "invalid_token")


# --- workers of the tests' own, by key type ----------------------------------

def _login_direct(worker, username=None):
    """Registers and logs in straight on the worker's socket; returns
    (user id, login answer)."""
    email = unique_email("tok")
    body = {"email": email, "password": PASSWORD}
    if username:
        body["username"] = username
    r = direct_json(worker, "POST", "/auth/register", body)
    assert r.status == 201, r
    uid = r.json()["id"]
    r = direct_json(worker, "POST", "/auth/login",
                    {"email": email, "password": PASSWORD})
    assert r.status == 200, r
    return uid, r.json()


def _jwks(worker):
    r = worker.request("GET", "/.well-known/jwks.json")
    assert r.status == 200, r
    return r.json()


def _public_jwk(pem_path, alg):
    """The JWK PyJWT makes of the key file's public half."""
    private = serialization.load_pem_private_key(pem_path.read_bytes(), None)
    impl = jwt.algorithms.get_default_algorithms()[alg]
    return json.loads(impl.to_jwk(private.public_key()))


@pytest.mark.parametrize("args,alg,kty,crv", [
    (RSA_ARGS, "RS256", "RSA", None),
    (P256_ARGS, "ES256", "EC", "P-256"),
    (ED25519_ARGS, "EdDSA", "OKP", "Ed25519"),
])
def test_the_key_type_selects_the_algorithm(worker_factory, tmp_path, args,
                                            alg, kty, crv):
    key = openssl_key(tmp_path / "signing.pem", *args)
    w = worker_factory(workers=1, env={"OMNI_JWT_PRIVATE_KEY": key})
    jwks = _jwks(w)
    assert len(jwks["keys"]) == 1
    jwk = jwks["keys"][0]
    assert jwk["kty"] == kty and jwk["alg"] == alg and jwk["use"] == "sig"
    if crv:
        assert jwk["crv"] == crv
    assert not PRIVATE_JWK_MEMBERS & set(jwk), jwk
    # the JWKS carries exactly the key file's public key
    expected = _public_jwk(key, alg)
    for member in ("n", "e", "x", "y", "crv"):
        assert jwk.get(member) == expected.get(member), member
    # the default kid is the key's RFC 7638 thumbprint
    assert jwk["kid"] == thumbprint(jwk)

    uid, doc = _login_direct(w, username=unique_username())
    assert header(doc["access_token"])["alg"] == alg
    assert header(doc["access_token"])["kid"] == jwk["kid"]
    c = verify(doc["access_token"], jwks)
    assert c["sub"] == uid and c["role"] == "user"


def test_kid_issuer_audience_and_lifetime_come_from_the_environment(
        worker_factory, tmp_path):
    key = openssl_key(tmp_path / "signing.pem", *RSA_ARGS)
    w = worker_factory(workers=1, env={
        "OMNI_JWT_PRIVATE_KEY": key, "OMNI_JWT_KID": "key-2026-a",
        "OMNI_JWT_ISSUER": "https://auth.omni.test",
        "OMNI_JWT_AUDIENCE": "omni-test-api",
        "OMNI_ACCESS_TOKEN_TTL": "120"})
    jwks = _jwks(w)
    assert jwks["keys"][0]["kid"] == "key-2026-a"
    uid, doc = _login_direct(w)
    assert doc["expires_in"] == 120
    assert header(doc["access_token"])["kid"] == "key-2026-a"
    c = verify(doc["access_token"], jwks, issuer="https://auth.omni.test",
               audience="omni-test-api")
    assert c["exp"] - c["iat"] == 120
    with pytest.raises(jwt.InvalidAudienceError):
        verify(doc["access_token"], jwks, issuer="https://auth.omni.test")


def test_jwks_file_is_written_at_start(worker_factory, tmp_path):
    key = openssl_key(tmp_path / "signing.pem", *P256_ARGS)
    path = tmp_path / "jwks.json"
    w = worker_factory(workers=1, env={"OMNI_JWT_PRIVATE_KEY": key,
                                       "OMNI_JWKS_FILE": path})
    assert json.loads(path.read_text()) == _jwks(w)


def _refresh_row(pg, token):
    """(created_at, expires_at) epoch seconds of a refresh token's row,
    found by its SHA-256 hex (how the schema stores it)."""
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT extract(epoch FROM created_at), "
                        "extract(epoch FROM expires_at) "
                        "FROM auth_service.refresh_tokens "
                        "WHERE token_hash = %s",
                        (hashlib.sha256(token.encode()).hexdigest(),))
            row = cur.fetchone()
    finally:
        conn.close()
    assert row is not None
    return float(row[0]), float(row[1])


def test_refresh_token_past_its_lifetime_is_401_token_expired(auth_gw,
                                                             migrated):
    """Its expiry moved into the past in the database (the shortest
    OMNI_REFRESH_TOKEN_TTL is 60 s)."""
    user = register(auth_gw)
    login(auth_gw, user)
    created, expires = _refresh_row(migrated, user.refresh)
    assert abs(expires - created - 1209600) <= 5, (created, expires)
    conn = migrated.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE auth_service.refresh_tokens "
                        "SET expires_at = now() - interval '1 second' "
                        "WHERE token_hash = %s",
                        (hashlib.sha256(user.refresh.encode()).hexdigest(),))
            assert cur.rowcount == 1
        conn.commit()
    finally:
        conn.close()
    r = auth_gw.post("/auth/refresh", {"refresh_token": user.refresh})
    assert_error(r, 401, "token_expired")


def test_refresh_token_lifetime_comes_from_the_environment(
        worker_factory, migrated, tmp_path):
    key = openssl_key(tmp_path / "signing.pem", *RSA_ARGS)
    w = worker_factory(workers=1, env={"OMNI_JWT_PRIVATE_KEY": key,
                                       "OMNI_REFRESH_TOKEN_TTL": "120"})
    uid, doc = _login_direct(w)
    created, expires = _refresh_row(migrated, doc["refresh_token"])
    assert abs(expires - created - 120) <= 5, (created, expires)
    r = direct_json(w, "POST", "/auth/refresh",
                    {"refresh_token": doc["refresh_token"]})
    assert r.status == 200, r
    assert verify(r.json()["access_token"], _jwks(w))["sub"] == uid


@pytest.mark.parametrize("env,name", [
    ({"OMNI_PASSWORD_ITERATIONS": "28999"}, "OMNI_PASSWORD_ITERATIONS"),
    ({"OMNI_JWT_PRIVATE_KEY": "/nonexistent/key.pem"},
     "OMNI_JWT_PRIVATE_KEY"),
])
def test_bad_auth_settings_stop_the_worker_naming_them(worker_factory,
                                                       tmp_path, env, name):
    key = openssl_key(tmp_path / "signing.pem", *RSA_ARGS)
    env = dict({"OMNI_JWT_PRIVATE_KEY": key}, **env)
    w = worker_factory(workers=1, env=env, wait=False)
    code = w.proc.wait(30)
    assert code != 0
    assert name in w.log_text(), w.log_text()


def test_a_key_that_is_not_a_private_key_stops_the_worker(worker_factory,
                                                          tmp_path):
    pem = tmp_path / "public.pem"
    key = openssl_key(tmp_path / "signing.pem", *RSA_ARGS)
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    pem.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo))
    w = worker_factory(workers=1, env={"OMNI_JWT_PRIVATE_KEY": pem},
                       wait=False)
    assert w.proc.wait(30) != 0
    assert "OMNI_JWT_PRIVATE_KEY" in w.log_text(), w.log_text()


def test_me_reads_the_user_the_header_names(worker_factory, tmp_path):
    """Straight to the worker: /auth/me trusts X-User-Id (the gateway's)."""
    key = openssl_key(tmp_path / "signing.pem", *RSA_ARGS)
    w = worker_factory(workers=1, env={"OMNI_JWT_PRIVATE_KEY": key})
    uid, _ = _login_direct(w)
    r = direct_json(w, "GET", "/auth/me", headers={"X-User-Id": uid,
                                                    "X-User-Role": "user"})
    assert r.status == 200, r
    assert r.json()["id"] == uid
    r = direct_json(w, "GET", "/auth/me",
                    headers={"X-User-Id": str(uuid.uuid4()),
                             "X-User-Role": "user"})
    assert_error(r, 404, "not_found")
