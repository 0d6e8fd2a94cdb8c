"""Keys, tokens and an nginx of their own for the gateway's JWT tests.

Keys are made by `openssl` at session start; tokens by PyJWT (an
implementation independent of the module's) or, for what PyJWT refuses to
make (alg none, algorithm confusion, broken encodings), by hand. The
gateway is nginx rendered from tests/integration/fixtures/nginx-jwt.conf.in
with ngx_http_omni_module in front of jwt_upstream.EchoUpstream.
"""

import base64
import hashlib
import hmac
import http.client
import json
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import jwt
import requests

import stack

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEMPLATE = FIXTURES / "nginx-jwt.conf.in"
MODULE = stack.BUILD / "ngx_http_omni_module.so"

ISSUER = "https://issuer.omni.test"
OTHER_ISSUER = "https://other-issuer.omni.test"
AUDIENCE = "omni-api"
OTHER_AUDIENCE = "other-api"
LEEWAY = 60                 # omni_jwt_leeway 1m at /claims/

# algorithm -> (location, signing key): every location's key is its own
ALGORITHMS = {
    "HS256": ("/hs256/", "hs256.secret"),
    "HS384": ("/hs384/", "hs384.secret"),
    "HS512": ("/hs512/", "hs512.secret"),
    "RS256": ("/rs256/", "rsa"),
    "RS384": ("/rs384/", "rsa"),
    "RS512": ("/rs512/", "rsa"),
    "PS256": ("/ps256/", "rsa"),
    "PS384": ("/ps384/", "rsa"),
    "PS512": ("/ps512/", "rsa"),
    "ES256": ("/es256/", "p256"),
    "ES384": ("/es384/", "p384"),
    "ES512": ("/es512/", "p521"),
    "EdDSA": ("/eddsa/", "ed25519"),
}

# asymmetric key pairs: NAME.key (private, PKCS#8) and NAME.pub (SPKI)
KEY_PAIRS = {
    "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "rsa-other": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "p256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "p256-other": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "p384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "p521": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
    "ed25519": ["-algorithm", "ED25519"],
    "ed25519-other": ["-algorithm", "ED25519"],
}

# kid -> (key, alg) in jwks.json
JWKS_KEYS = {
    "rsa-1": ("rsa", "RS256"),
    "ec-1": ("p256", "ES256"),
    "ed-1": ("ed25519", "EdDSA"),
    "oct-1": ("jwks-oct.secret", "HS256"),
}


def _openssl(*args, stdout=None):
    res = subprocess.run(["openssl"] + [str(a) for a in args],
                         stdin=subprocess.DEVNULL, capture_output=True,
                         timeout=60)
    if res.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s"
                           % (" ".join(map(str, args)), res.stderr.decode()))
    return res.stdout


class JwtKeys:
    """Every key the JWT tests use, in a temp dir nginx can read."""

    def __init__(self):
        self.dir = stack.make_tmpdir("omni-test-jwtkeys-")

    def path(self, name):
        return self.dir / name

    def generate(self):
        for name, args in KEY_PAIRS.items():
            _openssl("genpkey", *args, "-out", self.path(name + ".key"))
            _openssl("pkey", "-in", self.path(name + ".key"), "-pubout",
                     "-out", self.path(name + ".pub"))
        # HMAC secrets as operators make them: hex text with a newline,
        # raw bytes without one, base64 wrapped over two lines
        self.path("hs256.secret").write_bytes(_openssl("rand", "-hex", "32"))
        self.path("hs256-other.secret").write_bytes(
            _openssl("rand", "-hex", "32"))
        raw = _openssl("rand", "48")
        while raw.endswith(b"\n"):
            raw = _openssl("rand", "48")
        self.path("hs384.secret").write_bytes(raw)
        self.path("hs512.secret").write_bytes(
            _openssl("rand", "-base64", "66"))
        self.path("jwks-oct.secret").write_bytes(
            _openssl("rand", "-hex", "32"))
        self.path("short.secret").write_bytes(b"0123456789abcdef0123456789\n")
        self.path("jwks.json").write_text(json.dumps(self.jwks(JWKS_KEYS)))
        dup = self.jwks(JWKS_KEYS)
        dup["keys"].append(dict(dup["keys"][0]))
        self.path("jwks-dup.json").write_text(json.dumps(dup))
        for p in self.dir.iterdir():
            p.chmod(0o644)
        return self

    # key material

    def secret(self, name):
        """An HMAC secret: the file's bytes, one trailing newline off."""
        data = self.path(name).read_bytes()
        return data[:-1] if data.endswith(b"\n") else data

    def private_pem(self, name):
        return self.path(name + ".key").read_bytes()

    def public_pem(self, name):
        return self.path(name + ".pub").read_bytes()

    def signing_key(self, name):
        """What PyJWT signs with for key `name` (secret or private PEM)."""
        if name.endswith(".secret"):
            return self.secret(name)
        return self.private_pem(name)

    def jwks(self, entries):
        """A JWKS document {"keys": [...]} for {kid: (key, alg)}."""
        keys = []
        for kid, (name, alg) in entries.items():
            if name.endswith(".secret"):
                jwk = json.loads(jwt.algorithms.HMACAlgorithm.to_jwk(
                    self.secret(name)))
            else:
                impl = jwt.algorithms.get_default_algorithms()[alg]
                jwk = json.loads(impl.to_jwk(
                    impl.prepare_key(self.public_pem(name))))
            jwk.update({"kid": kid, "alg": alg, "use": "sig"})
            keys.append(jwk)
        return {"keys": keys}

    def destroy(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# --- tokens ------------------------------------------------------------------

def now():
    return int(time.time())


def claims(**overrides):
    """A valid claim set with a fresh sub and jti; overrides replace or
    (with None) remove claims."""
    t = now()
    tag = uuid.uuid4().hex[:12]
    doc = {
        "sub": "user-" + tag,
        "preferred_username": "alice-" + tag,
        "role": "user",
        "iat": t,
        "exp": t + 300,
        "jti": uuid.uuid4().hex,
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def sign(keys, alg="HS256", payload=None, key=None, headers=None):
    """A token made by PyJWT; key defaults to the alg's location's key."""
    if key is None:
        key = keys.signing_key(ALGORITHMS[alg][1])
    return jwt.encode(claims() if payload is None else payload, key,
                      algorithm=alg, headers=headers)


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def segment(value):
    """A token segment: bytes as they are, anything else as compact JSON."""
    if isinstance(value, (bytes, bytearray)):
        return b64url(value)
    return b64url(json.dumps(value, separators=(",", ":")))


HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384,
               "HS512": hashlib.sha512}


def hmac_token(header, payload, secret):
    """header.payload signed with HMAC(secret) under header's alg (HS256
    when the header names something else): for tokens PyJWT refuses."""
    alg = header.get("alg") if isinstance(header, dict) else None
    digest = HMAC_HASHES.get(alg if isinstance(alg, str) else None,
                             hashlib.sha256)
    signing_input = segment(header) + "." + segment(payload)
    mac = hmac.new(secret, signing_input.encode(), digest).digest()
    return signing_input + "." + b64url(mac)


def parts(token):
    return token.split(".")


def replace_part(token, index, text):
    p = parts(token)
    p[index] = text
    return ".".join(p)


# --- what the gateway answers -----------------------------------------------

class RawResponse(stack.Response):
    """stack.Response read like a requests.Response."""

    @property
    def status_code(self):
        return self.status


WWW_MISSING = 'Bearer realm="omni"'
WWW_INVALID = re.compile(r'^Bearer realm="omni", error="invalid_token", '
                         r'error_description="[^"\\]*"$')
WWW_SCOPE = re.compile(r'^Bearer realm="omni", error="insufficient_scope"'
                       r'(, error_description="[^"\\]*")?$')


def describe(r):
    return "%s %s WWW-Authenticate=%r body=%r" % (
        r.status_code, r.headers.get("Content-Type"),
        r.headers.get("WWW-Authenticate"), r.text[:300])


def _error_body(r):
    assert r.headers.get("Content-Type", "").startswith("application/json"), \
        describe(r)
    body = json.loads(r.text)
    assert isinstance(body, dict), describe(r)
    assert isinstance(body.get("message"), str) and body["message"], \
        describe(r)
    return body


def assert_401(r, error="invalid_token"):
    """A SPEC 5 rejection: 401, JSON {"error": error, "message": ...} and
    the RFC 6750 challenge (no error= when credentials are missing)."""
    assert r.status_code == 401, describe(r)
    assert _error_body(r)["error"] == error, describe(r)
    www = r.headers.get("WWW-Authenticate")
    if error == "missing_credentials":
        assert www == WWW_MISSING, describe(r)
    else:
        assert www is not None and WWW_INVALID.match(www), describe(r)


def assert_403(r):
    assert r.status_code == 403, describe(r)
    assert _error_body(r)["error"] == "insufficient_role", describe(r)
    www = r.headers.get("WWW-Authenticate")
    assert www is not None and WWW_SCOPE.match(www), describe(r)


def passed(r):
    """The echo of a request the gateway let through."""
    from jwt_upstream import Echo
    assert r.status_code == 200, describe(r)
    return Echo(r)


# --- the gateway -------------------------------------------------------------

def render_template(template, out, values):
    """Fills @NAME@ placeholders like conf/render.sh; refuses leftovers."""
    text = Path(template).read_text()
    for key, value in values.items():
        text = text.replace("@%s@" % key, str(value))
    left = sorted(set(re.findall(r"@[A-Z][A-Z0-9_]*@",
                                 re.sub(r"#.*", "", text))))
    if left:
        raise RuntimeError("%s: no value for %s" % (template, " ".join(left)))
    Path(out).write_text(text)
    Path(out).chmod(0o644)
    return text


def prepare_prefix(prefix):
    """An nginx -p prefix with temp dirs the workers may write."""
    prefix.mkdir(mode=0o755)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        path = prefix / "tmp" / sub
        path.mkdir(parents=True)
        if stack.IS_ROOT:
            shutil.chown(path, stack.NGINX_USER)
    (prefix / "tmp").chmod(0o755)


def nginx_t(prefix, conf_path):
    """`nginx -t` on conf_path; returns the CompletedProcess."""
    return subprocess.run(
        ["nginx", "-p", str(prefix), "-c", str(conf_path),
         "-e", str(Path(prefix) / "error.log"), "-t"],
        cwd=stack.REPO, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60)


def base_values(prefix, port, workers=2):
    return {
        "MODULE_PATH": MODULE,
        "USER_LINE": ("user %s;" % stack.NGINX_USER) if stack.IS_ROOT else "",
        "NGINX_WORKERS": workers,
        "PREFIX": prefix,
        "HTTP_PORT": port,
    }


class JwtGateway:
    """nginx + the module configured by fixtures/nginx-jwt.conf.in, in
    front of an echo upstream on upstream_port."""

    def __init__(self, keys, upstream_port, workers=2, template=TEMPLATE,
                 values=None):
        self.keys = keys
        self.dir = stack.make_tmpdir("omni-test-jwtnginx-")
        self.prefix = self.dir / "nginx"
        self.conf_path = self.prefix / "nginx.conf"
        self.port = stack.free_port()
        self.upstream_port = upstream_port
        self.workers = workers
        self.template = template
        self.values = dict(values or {})
        self.proc = None

    @property
    def error_log(self):
        return self.prefix / "error.log"

    @property
    def access_log(self):
        return self.prefix / "access.log"

    def render(self):
        if not MODULE.exists():
            raise RuntimeError("%s is not built (make module)" % MODULE)
        if not self.prefix.exists():
            prepare_prefix(self.prefix)
        values = base_values(self.prefix, self.port, self.workers)
        values.update({"KEYS": self.keys.dir,
                       "ECHO_PORT": self.upstream_port,
                       "ISSUER": ISSUER, "OTHER_ISSUER": OTHER_ISSUER,
                       "AUDIENCE": AUDIENCE,
                       "OTHER_AUDIENCE": OTHER_AUDIENCE})
        values.update(self.values)
        render_template(self.template, self.conf_path, values)

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("nginx exited %d:\n%s" % (
                self.proc.returncode, stack.tail(self.error_log)))
        try:
            stack.socket.create_connection(("127.0.0.1", self.port), 1).close()
            return True
        except OSError:
            return False

    def start(self):
        stack._register(self)
        self.render()
        res = nginx_t(self.prefix, self.conf_path)
        if res.returncode != 0:
            raise RuntimeError("nginx -t failed on %s (%d):\n%s%s"
                               % (self.conf_path, res.returncode,
                                  res.stdout, res.stderr))
        with open(self.dir / "nginx.stderr", "ab") as stderr:
            self.proc = subprocess.Popen(
                ["nginx", "-p", str(self.prefix), "-c", str(self.conf_path),
                 "-e", str(self.error_log), "-g", "daemon off;"],
                cwd=self.dir, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=True,
                preexec_fn=stack._dies_with_us(signal.SIGTERM))
        stack.wait_until(self._listening, 20, "nginx on port %d" % self.port)
        return self

    def workers_pids(self):
        return stack.children_of(self.proc.pid)

    def reload(self, **values):
        """Renders the template again with values changed, checks it with
        nginx -t, sends SIGHUP and waits until only new workers run."""
        self.values.update(values)
        self.render()
        res = nginx_t(self.prefix, self.conf_path)
        if res.returncode != 0:
            raise RuntimeError("nginx -t failed before reload:\n"
                               + res.stderr)
        old = set(self.workers_pids())
        self.proc.send_signal(signal.SIGHUP)

        def new_generation():
            pids = set(self.workers_pids())
            return (len(pids) == self.workers and not pids & old) or None
        stack.wait_until(new_generation, 20, "nginx workers after reload")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def destroy(self):
        stack._unregister(self)
        if self.proc is not None:
            stack._stop_popen(self.proc, signal.SIGTERM, 10)
        shutil.rmtree(self.dir, ignore_errors=True)

    # requests

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def get(self, path, token=None, headers=None, scheme="Bearer", **kwargs):
        """GET path, with `Authorization: <scheme> <token>` when token."""
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = "%s %s" % (scheme, token)
        kwargs.setdefault("timeout", 10)
        return requests.get(self.url(path), headers=headers, **kwargs)

    def send(self, path, header_lines, method="GET", conn=None):
        """One request with header_lines [(name, value)] sent exactly as
        given (any case, repeated names); returns a stack.Response."""
        own = conn is None
        if own:
            conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                              timeout=10)
        try:
            conn.putrequest(method, path)
            for name, value in header_lines:
                conn.putheader(name, value)
            conn.endheaders()
            return RawResponse.read_from(conn.getresponse())
        finally:
            if own:
                conn.close()

    def status(self):
        r = self.get("/omni/status")
        assert r.status_code == 200, r.text
        return r.json()

    def metrics(self):
        r = self.get("/omni/metrics")
        assert r.status_code == 200, r.text
        return Metrics(r.text)

    def access_log_lines(self):
        lines = []
        try:
            text = self.access_log.read_text(errors="replace")
        except FileNotFoundError:
            return lines
        for line in text.splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines


# --- reading omni_metrics and omni_status -----------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """Prometheus text format, parsed into (name, labels, value) samples.

    SPEC 4 names no metric, so families are found by what they count: a
    name with "decision" (labels outcome/reason), "cache" with hit/miss in
    the name or a label, "key" with "pars"(e), "key" with "loaded"."""

    def __init__(self, text):
        self.text = text
        self.samples = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            if not m:
                raise AssertionError("not Prometheus text: %r" % line)
            labels = dict(_LABEL.findall(m.group(2) or ""))
            self.samples.append((m.group(1), labels, float(m.group(3))))

    def names(self):
        return sorted({name for name, _, _ in self.samples})

    def _pick(self, name_pred, what, label_pred=None):
        found = [(n, l, v) for n, l, v in self.samples if name_pred(n)]
        if not found:
            raise AssertionError("omni_metrics has no %s metric; it has: %s"
                                 % (what, ", ".join(self.names())))
        if label_pred is not None:
            found = [(n, l, v) for n, l, v in found if label_pred(l)]
        return found

    def decisions(self, reason=None, outcome=None):
        """Sum of the decision counters with this reason/outcome label."""
        def labels_match(labels):
            return ((reason is None or labels.get("reason") == reason)
                    and (outcome is None or labels.get("outcome") == outcome))
        found = self._pick(lambda n: "decision" in n
                           and not n.endswith(("_bucket", "_sum")),
                           "decisions", labels_match)
        return sum(v for _, _, v in found)

    def decision_reasons(self):
        return sorted({l.get("reason") for n, l, _ in self.samples
                       if "decision" in n and "reason" in l})

    def cache(self, kind):
        """Cache lookups of kind "hit" or "miss"."""
        def by_label(labels):
            return any(v in (kind, kind + "s", kind + "es")
                       for v in labels.values())
        named = [(n, l, v) for n, l, v in self.samples
                 if "cache" in n and kind in n]
        if named:
            return sum(v for _, _, v in named)
        found = self._pick(lambda n: "cache" in n, "JWT cache", by_label)
        if not found:
            raise AssertionError("omni_metrics has no cache %s count:\n%s"
                                 % (kind, self.text))
        return sum(v for _, _, v in found)

    def key_parses(self):
        found = self._pick(lambda n: "key" in n and "pars" in n,
                           "key parses")
        return sum(v for _, _, v in found)

    def keys_loaded(self):
        found = self._pick(lambda n: "key" in n and "load" in n
                           and "pars" not in n, "keys loaded")
        return sum(v for _, _, v in found)


def walk(doc, path=""):
    """(dotted path, value) of every scalar in a JSON document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from walk(v, path + "." + k if path else k)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from walk(v, "%s[%d]" % (path, i))
    else:
        yield path, doc


def status_number(doc, pattern, what):
    """The one number in omni_status whose dotted path matches pattern."""
    found = [(p, v) for p, v in walk(doc)
             if re.search(pattern, p) and isinstance(v, (int, float))
             and not isinstance(v, bool)]
    assert len(found) == 1, "omni_status: want one %s number (/%s/), got %r " \
        "in %s" % (what, pattern, found, json.dumps(doc))
    return found[0][1]
