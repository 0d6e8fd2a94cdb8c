"""omni_jwt_jwks re-reads its file when it changes, without a restart or a
reload (SPEC 4, 11): rotated the way the kubelet updates a mounted Secret
(a new timestamped directory, then the `..data` symlink swapped by one
rename) while requests run, tokens of a new key pass within the refresh
interval, tokens of a key still in the set keep passing and no request
fails; a key taken out stops passing; a broken file keeps the keys read
before; a token naming an unknown kid makes the gateway look again after
min_refresh."""

import json
import os
import shutil
import threading
import time

import pytest
import requests

import jwt_support
import stack
from jwt_support import assert_401, passed, sign

TEMPLATE = jwt_support.FIXTURES / "nginx-jwks-rotate.conf.in"


class SecretDir:
    """A directory laid out as the kubelet mounts a Secret: jwks.json ->
    ..data/jwks.json, ..data -> ..<timestamp>/. update() writes the next
    timestamped directory, swaps ..data with one rename and removes the
    directory it replaced, as the kubelet's atomic writer does."""

    def __init__(self, root):
        self.root = root
        self.generation = 0

    @property
    def path(self):
        return self.root / "jwks.json"

    def update(self, text):
        self.generation += 1
        new = self.root / ("..2026_12_04_00_00_%02d.%d"
                           % (self.generation, os.getpid()))
        new.mkdir(mode=0o755)
        (new / "jwks.json").write_text(text)
        (new / "jwks.json").chmod(0o644)
        data = self.root / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        tmp = self.root / "..data_tmp"
        os.symlink(new.name, tmp)
        os.replace(tmp, data)
        if not self.path.is_symlink():
            os.symlink("..data/jwks.json", self.path)
        if old:
            shutil.rmtree(self.root / old)


class Load(threading.Thread):
    """Requests with each of tokens in turn until stopped; every answer
    that is not 200 is kept."""

    def __init__(self, gw, tokens):
        super().__init__(daemon=True)
        self.gw = gw
        self.tokens = tokens
        self.stopping = threading.Event()
        self.sent = 0
        self.failures = []

    def run(self):
        session = requests.Session()
        while not self.stopping.is_set():
            for token in self.tokens:
                try:
                    r = session.get(self.gw.url("/api/load"), timeout=10,
                                    headers={"Authorization":
                                             "Bearer " + token})
                    status, body = r.status_code, r.text[:200]
                except requests.RequestException as e:
                    status, body = None, str(e)
                self.sent += 1
                if status != 200:
                    self.failures.append((status, body))

    def stop(self):
        self.stopping.set()
        self.join(20)
        return self


@pytest.fixture
def secret(jwt_keys):
    root = stack.make_tmpdir("omni-test-jwks-secret-")
    try:
        yield SecretDir(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def jwks(keys, **entries):
    return json.dumps(keys.jwks(entries))


def token(keys, kid):
    name, alg = {"a": ("rsa", "RS256"), "b": ("p256", "ES256"),
                 "c": ("ed25519", "EdDSA")}[kid]
    return sign(keys, alg, key=keys.private_pem(name), headers={"kid": kid})


def gateway(keys, echo, jwks_path, params):
    gw = jwt_support.JwtGateway(keys, echo.port, template=TEMPLATE,
                                values={"JWKS": jwks_path,
                                        "JWKS_PARAMS": params})
    return gw.start()


def reloads(gw, result):
    return sum(v for n, l, v in gw.metrics().samples
               if n == "omni_gateway_jwks_reloads_total"
               and l.get("result") == result)


def first_pass(gw, tok, timeout):
    """Seconds until a request with tok passed (401s before are fine)."""
    start = time.monotonic()
    stack.wait_until(lambda: gw.get("/api/x", tok).status_code == 200,
                     timeout, "the new key to be accepted", interval=0.1)
    return time.monotonic() - start


def test_secret_symlink_swap_rotates_keys_while_requests_run(
        jwt_keys, echo_upstream, secret):
    secret.update(jwks(jwt_keys, a=("rsa", "RS256")))
    gw = gateway(jwt_keys, echo_upstream, secret.path, "refresh=1s")
    try:
        old, new = token(jwt_keys, "a"), token(jwt_keys, "b")
        passed(gw.get("/api/x", old))
        assert_401(gw.get("/api/x", new))

        # publish the next key beside the current one
        load = Load(gw, [old])
        load.start()
        time.sleep(0.5)
        secret.update(jwks(jwt_keys, a=("rsa", "RS256"),
                           b=("p256", "ES256")))
        took = first_pass(gw, new, 5)
        # both workers have it, not just the one that answered first
        for _ in range(20):
            passed(gw.get("/api/x", new))
        time.sleep(1)
        load.stop()
        assert load.sent > 20 and load.failures == [], load.failures[:5]

        # retire the old key under a load signed by the new one
        load = Load(gw, [new])
        load.start()
        time.sleep(0.5)
        secret.update(jwks(jwt_keys, b=("p256", "ES256")))
        stack.wait_until(lambda: gw.get("/api/x", old).status_code == 401,
                         5, "the retired key to be refused")
        for _ in range(20):
            assert_401(gw.get("/api/x", old))
        time.sleep(1)
        load.stop()
        assert load.sent > 20 and load.failures == [], load.failures[:5]

        assert took < 5
        assert reloads(gw, "ok") == 2 * gw.workers
        assert gw.alive()
        log = gw.error_log.read_text()
        assert "[alert]" not in log and "[crit]" not in log, log[-2000:]
        assert "changed: 2 keys" in log and "changed: 1 keys" in log
    finally:
        gw.destroy()


def test_broken_file_keeps_the_keys_read_before(jwt_keys, echo_upstream,
                                                secret):
    secret.update(jwks(jwt_keys, a=("rsa", "RS256")))
    gw = gateway(jwt_keys, echo_upstream, secret.path, "refresh=1s")
    try:
        old = token(jwt_keys, "a")
        load = Load(gw, [old])
        load.start()
        bad = ['{"keys": [', json.dumps({"keys": []}),
               json.dumps({"keys": [{"kty": "RSA", "kid": "x", "n": "AQAB"}]})]
        for n, text in enumerate(bad, 1):
            secret.update(text)
            stack.wait_until(lambda: reloads(gw, "failed") >= n * gw.workers,
                             5, "the broken file to be refused")
        time.sleep(1.5)
        load.stop()
        assert load.sent > 20 and load.failures == [], load.failures[:5]
        passed(gw.get("/api/x", old))

        log = gw.error_log.read_text()
        assert "keeping the 1 keys read before" in log, log[-2000:]
        assert str(secret.root) in log
        assert reloads(gw, "ok") == 0

        # a good file after the bad ones is taken
        secret.update(jwks(jwt_keys, c=("ed25519", "EdDSA")))
        assert first_pass(gw, token(jwt_keys, "c"), 5) < 5
    finally:
        gw.destroy()


def test_file_replaced_by_rename_is_read_again(jwt_keys, echo_upstream,
                                               tmp_path):
    # configuration management tools write a temp file and rename it
    d = stack.make_tmpdir("omni-test-jwks-file-")
    try:
        path = d / "jwks.json"
        path.write_text(jwks(jwt_keys, a=("rsa", "RS256")))
        path.chmod(0o644)
        gw = gateway(jwt_keys, echo_upstream, path, "refresh=1s")
        try:
            tmp = d / "jwks.json.tmp"
            tmp.write_text(jwks(jwt_keys, b=("p256", "ES256")))
            tmp.chmod(0o644)
            os.replace(tmp, path)
            assert first_pass(gw, token(jwt_keys, "b"), 5) < 5
            stack.wait_until(lambda: gw.get(
                "/api/x", token(jwt_keys, "a")).status_code == 401, 5,
                "the replaced key to be refused")
        finally:
            gw.destroy()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_unknown_kid_looks_again_after_min_refresh(jwt_keys, echo_upstream,
                                                   secret):
    # refresh is far off: only the token naming an unknown kid can make
    # the workers look at the file within the test's time
    secret.update(jwks(jwt_keys, a=("rsa", "RS256")))
    gw = gateway(jwt_keys, echo_upstream, secret.path,
                 "refresh=1h min_refresh=1s")
    try:
        new = token(jwt_keys, "b")
        secret.update(jwks(jwt_keys, a=("rsa", "RS256"),
                           b=("p256", "ES256")))
        time.sleep(1.2)
        took = first_pass(gw, new, 6)
        assert took < 6
        for _ in range(10):
            passed(gw.get("/api/x", new))
    finally:
        gw.destroy()


def test_without_unknown_kids_the_file_waits_for_refresh(jwt_keys,
                                                         echo_upstream,
                                                         secret):
    # the counterpart of the test above: a known kid does not make the
    # gateway read the file, so a removed key passes until refresh
    secret.update(jwks(jwt_keys, a=("rsa", "RS256")))
    gw = gateway(jwt_keys, echo_upstream, secret.path,
                 "refresh=1h min_refresh=1s")
    try:
        old = token(jwt_keys, "a")
        secret.update(jwks(jwt_keys, b=("p256", "ES256")))
        for _ in range(10):
            time.sleep(0.2)
            passed(gw.get("/api/x", old))
        assert reloads(gw, "ok") == 0
    finally:
        gw.destroy()
