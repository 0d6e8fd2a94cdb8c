"""The gateway verifies the worker's tokens from the JWKS file the worker
writes (OMNI_JWKS_FILE + omni_jwt_jwks), for every algorithm the worker can
sign with, and the file follows a key change on SIGHUP, keeping the previous key while
its tokens live."""

import json
import shutil
import subprocess
import uuid

import pytest

import stack

GATEWAY = """
load_module {module};
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    {preamble}
    omni_jwt_jwks     {jwks} {params};
    omni_jwt_issuer   omni;
    omni_jwt_audience omni-api;
    upstream worker {{ server unix:{socket}; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            omni_auth jwt;
            proxy_pass http://worker;
        }}
    }}
}}
"""

PASSWORD = "correct horse battery"

KEYGEN = {
    "RS256": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "ES256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "EdDSA": ["-algorithm", "ED25519"],
}


def private_key(path, alg):
    subprocess.run(["openssl", "genpkey"] + KEYGEN[alg] + ["-out", str(path)],
                   check=True, capture_output=True)
    return path


def sign_in(w):
    """Registers a user straight at the worker and logs in: the tokens."""
    email = "jwks-%s@example.com" % uuid.uuid4().hex[:12]
    body = json.dumps({"email": email, "password": PASSWORD})
    r = w.request("POST", "/auth/register", body=body,
                  headers={"Content-Type": "application/json"})
    assert r.status == 201, r
    r = w.request("POST", "/auth/login", body=body,
                  headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    return r.json()


def gateway_for(w, jwks, params=""):
    # as root, nginx's workers run as the user the worker's socket admits
    user = "user %s;" % stack.NGINX_USER if stack.IS_ROOT else ""
    return stack.NginxConf(GATEWAY, name="jwks", jwks=jwks, params=params,
                           user=user, socket=w.socket_path).start(
                               probe="/health/live")


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_gateway_verifies_worker_tokens_from_the_jwks_file(worker_factory,
                                                            tmp_path, alg):
    jwks = tmp_path / "jwks.json"
    key = private_key(tmp_path / "key.pem", alg)
    w = worker_factory(env={"OMNI_JWT_PRIVATE_KEY": key,
                            "OMNI_JWKS_FILE": jwks})
    doc = json.loads(jwks.read_text())
    assert [k["alg"] for k in doc["keys"]] == [alg]
    # the file and the endpoint publish the same key
    assert w.request("GET", "/.well-known/jwks.json").json() == doc

    tokens = sign_in(w)
    gw = gateway_for(w, jwks)
    try:
        status, _, body = gw.get("/auth/me", {
            "Authorization": "Bearer " + tokens["access_token"]})
        assert status == 200, body
        assert json.loads(body)["email"].startswith("jwks-")
        status, headers, _ = gw.get("/auth/me")
        assert status == 401
    finally:
        gw.destroy()


def kids(doc):
    return [k["kid"] for k in doc["keys"]]


def rotate(w, key, jwks, alg):
    """A new private key at the same path, then SIGHUP: returns when the
    new processes run with it."""
    before = kids(json.loads(jwks.read_text()))
    private_key(key.with_name("next.pem"), alg).replace(key)
    old_pids = set(w.children())
    w.proc.send_signal(1)   # SIGHUP: new processes with the new key
    stack.wait_until(lambda: kids(json.loads(jwks.read_text()))[0]
                     != before[0], 10, "the JWKS file to change")
    stack.wait_until(lambda: len(w.children()) == 2
                     and not old_pids & set(w.children()), 15,
                     "the new worker processes")
    return json.loads(jwks.read_text())


def test_sighup_with_a_new_key_publishes_it_beside_the_previous_one(
        worker_factory, tmp_path):
    # the gateway runs through the rotation and re-reads the file itself,
    # from its worker processes: they need to reach it
    shared = stack.make_tmpdir("omni-test-jwks-")
    jwks = shared / "jwks.json"
    key = private_key(tmp_path / "key.pem", "ES256")
    w = worker_factory(env={"OMNI_JWT_PRIVATE_KEY": key,
                            "OMNI_JWKS_FILE": jwks})
    first = kids(json.loads(jwks.read_text()))
    old = sign_in(w)
    gw = gateway_for(w, jwks, "refresh=1s")
    try:
        doc = rotate(w, key, jwks, "ES256")
        second = kids(doc)
        assert len(second) == 2 and second[1] == first[0], doc
        assert w.request("GET", "/.well-known/jwks.json").json() == doc
        new = sign_in(w)
        assert jwt_kid(new["access_token"]) == second[0]

        def accepted(tokens):
            return gw.get("/auth/me", {
                "Authorization": "Bearer " + tokens["access_token"]})[0]
        try:
            stack.wait_until(lambda: accepted(new) == 200, 5,
                             "the gateway to take the new key")
        except TimeoutError:
            raise AssertionError(stack.tail(gw.error_log))
        # signed before the rotation, not expired: still good
        assert accepted(old) == 200

        # a reload with the same key keeps the previous one published
        old_pids = set(w.children())
        w.proc.send_signal(1)
        stack.wait_until(lambda: len(w.children()) == 2
                         and not old_pids & set(w.children()), 15,
                         "the new worker processes")
        assert kids(json.loads(jwks.read_text())) == second

        # the next rotation retires the second key; the first is gone
        third = kids(rotate(w, key, jwks, "ES256"))
        assert third[1:] == second[:1] and first[0] not in third
        stack.wait_until(lambda: accepted(old) == 401, 5,
                         "the first key's tokens to be refused")
        assert accepted(new) == 200
    finally:
        gw.destroy()
        shutil.rmtree(shared, ignore_errors=True)


def jwt_kid(token):
    import base64
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(
        head + "=" * (-len(head) % 4)))["kid"]


def test_worker_refuses_to_start_with_a_bad_signing_key(tmp_path):
    weak = tmp_path / "weak.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:1024", "-out", str(weak)], check=True,
                   capture_output=True)
    public = tmp_path / "public.pem"
    subprocess.run(["openssl", "pkey", "-in", str(weak), "-pubout", "-out",
                    str(public)], check=True, capture_output=True)
    for path, says in ((weak, "at least 2048"),
                       (public, "not an unencrypted PEM private key"),
                       (tmp_path / "missing.pem", "cannot open")):
        code, out, err = stack.run_worker({
            "OMNI_DATABASE_URL": "postgresql://127.0.0.1:1/x",
            "OMNI_REDIS_ADDR": "127.0.0.1:1",
            "OMNI_LISTEN": "unix:%s" % (tmp_path / "w.sock"),
            "OMNI_JWT_PRIVATE_KEY": path})
        assert code == 78, (path, out, err)
        assert str(path) in err and says in err, err
