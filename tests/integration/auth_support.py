"""Helpers shared by the auth service's tests (test_auth_*.py, issue 5;
the contract is /work/notes/auth-api.md). No tests here.

`auth_gw` is a gateway of the tests' own: nginx from conf/nginx.conf.in in
front of the shared worker and the session's Redis, with the per-IP limit
on /auth/login and /auth/register raised (AUTH_RATE) so that a module can
log in as often as it needs. Its clients connect from a loopback address of
their own (127.0.0.7): limit state lives in Redis under the zone's name and
the client address, so gateways sharing Redis share it too, and another
test spending 127.0.0.1's budget on the shared gateway must not make these
tests answer 429.
"""

import json
import re
import subprocess
import time
import uuid

import pytest
import requests

import stack

PASSWORD = "correct horse battery staple"
AUTH_SOURCE = "127.0.0.7"
UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIMESTAMP_RE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
B64URL43 = r"[A-Za-z0-9_-]{43}"
REFRESH_RE = re.compile(r"^omr_" + B64URL43 + "$")
APIKEY_RE = re.compile(r"^omk_" + B64URL43 + "$")
USER_FIELDS = {"id", "email", "username", "role", "is_active", "created_at",
               "last_login_at"}


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose connections leave from `source`."""

    def __init__(self, source):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


class Client:
    """requests to an nginx of stack.Nginx, from a given loopback address,
    with a bearer token or API key when asked."""

    def __init__(self, nginx, source=AUTH_SOURCE):
        self.nginx = nginx
        self.session = requests.Session()
        self.session.mount("http://", SourceAddressAdapter(source))

    def request(self, method, path, token=None, apikey=None, headers=None,
                **kwargs):
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        if apikey is not None:
            headers["X-API-Key"] = apikey
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.nginx.http_url(path),
                                    headers=headers, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self.request("POST", path, json=body, **kwargs)

    def close(self):
        self.session.close()


class User:
    """A registered account and, once logged in, its latest tokens."""

    def __init__(self, email, password, username=None, id=None,
                 role="user"):
        self.email = email
        self.password = password
        self.username = username
        self.id = id
        self.role = role
        self.access = None
        self.refresh = None

    def __repr__(self):
        return "<User %s %s %s>" % (self.email, self.id, self.role)


def unique_email(tag="user"):
    return "%s-%s@example.com" % (tag, uuid.uuid4().hex)


def unique_username(tag="u"):
    return "%s_%s" % (tag, uuid.uuid4().hex[:16])


def assert_error(r, status, code, field=None):
    """r (a requests or stack.Response) is a JSON error {"error": code,
    "message": ...} with this status, its message naming `field` first."""
    status_of = getattr(r, "status_code", None) or r.status
    body = r.content if hasattr(r, "content") else r.body
    assert status_of == status, (status_of, body[:500])
    doc = json.loads(body)
    assert doc.get("error") == code, doc
    assert isinstance(doc.get("message"), str) and doc["message"], doc
    if field is not None:
        assert doc["message"].startswith(field), doc
    return doc


def assert_gateway_401(r, code):
    """The gateway's RFC 6750 rejection: 401, JSON error `code` and
    WWW-Authenticate naming invalid_token."""
    assert_error(r, 401, code)
    challenge = r.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer "), challenge
    assert 'error="invalid_token"' in challenge, challenge


def assert_user(doc, user=None):
    """doc has exactly the user object's fields, well formed, and matches
    `user` when given."""
    assert set(doc) == USER_FIELDS, doc
    assert UUID_RE.match(doc["id"]), doc
    assert TIMESTAMP_RE.match(doc["created_at"]), doc
    assert doc["last_login_at"] is None or TIMESTAMP_RE.match(
        doc["last_login_at"]), doc
    assert doc["role"] in ("admin", "developer", "user", "viewer"), doc
    assert isinstance(doc["is_active"], bool), doc
    if user is not None:
        assert doc["id"] == user.id
        assert doc["email"] == user.email
        assert doc["username"] == user.username


def claims(token):
    """A JWS's payload, unverified (what the token says, not whether it is
    true: verification is test_auth_tokens.py's)."""
    import jwt
    return jwt.decode(token, options={"verify_signature": False})


def register(client, email=None, password=PASSWORD, username=None):
    """POST /auth/register; asserts 201 and returns the User."""
    body = {"email": email or unique_email(), "password": password}
    if username is not None:
        body["username"] = username
    r = client.post("/auth/register", body)
    assert r.status_code == 201, (r.status_code, r.text)
    doc = r.json()
    return User(body["email"], password, username, doc["id"], doc["role"])


def login(client, user, by="email"):
    """POST /auth/login as user; asserts 200, keeps and returns the pair."""
    body = {"password": user.password}
    body[by] = user.email if by == "email" else user.username
    r = client.post("/auth/login", body)
    assert r.status_code == 200, (r.status_code, r.text)
    doc = r.json()
    user.access, user.refresh = doc["access_token"], doc["refresh_token"]
    return doc


def refresh(client, user):
    """POST /auth/refresh with user's refresh token; asserts 200 and keeps
    the new pair."""
    r = client.post("/auth/refresh", {"refresh_token": user.refresh})
    assert r.status_code == 200, (r.status_code, r.text)
    doc = r.json()
    user.access, user.refresh = doc["access_token"], doc["refresh_token"]
    return doc


def set_role(client, admin, user, role):
    """PATCH the user's role as admin; asserts 200."""
    r = client.request("PATCH", "/api/v1/users/" + user.id,
                       token=admin.access, json={"role": role})
    assert r.status_code == 200, (r.status_code, r.text)
    user.role = role
    return r.json()


def new_user(client, admin=None, role="user", username=None):
    """A registered, logged-in user of `role` (set by `admin`)."""
    user = register(client, username=username)
    if role != "user":
        set_role(client, admin, user, role)
    login(client, user)
    return user


def create_key(client, token=None, apikey=None, **body):
    """POST /api/v1/api-keys; asserts 201 and returns the answer."""
    body.setdefault("name", "key-" + uuid.uuid4().hex[:8])
    r = client.request("POST", "/api/v1/api-keys", token=token,
                       apikey=apikey, json=body)
    assert r.status_code == 201, (r.status_code, r.text)
    return r.json()


def cli_create_user(pg, tmp_dir, email, password, role, username=None):
    """`omni-worker user create`: (exit code, stdout, stderr)."""
    pwfile = tmp_dir / ("pw-" + uuid.uuid4().hex)
    pwfile.write_text(password + "\n")
    args = ["user", "create", "--email", email, "--password-file",
            str(pwfile), "--role", role]
    if username is not None:
        args += ["--username", username]
    return stack.run_worker({"OMNI_DATABASE_URL": pg.url(),
                             "OMNI_SQL_DIR": stack.SQL_DIR,
                             "OMNI_LOG_LEVEL": "warn"}, args=args,
                            timeout=60)


def openssl_key(path, *genpkey):
    """A PEM private key made by openssl genpkey at path (mode 600)."""
    subprocess.run(["openssl", "genpkey", "-out", str(path)] + list(genpkey),
                   check=True, capture_output=True, timeout=60)
    path.chmod(0o600)
    return path


RSA_ARGS = ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
P256_ARGS = ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
ED25519_ARGS = ("-algorithm", "ED25519")


def direct_json(worker, method, path, body=None, headers=None, timeout=30):
    """A request straight to a worker's socket (no gateway: identity
    headers are the caller's to set); returns a stack.Response."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    return worker.request(method, path, headers, data, timeout=timeout)


def wait_for(predicate, timeout, what):
    return stack.wait_until(predicate, timeout, what, interval=0.2)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * len(values))))]


def now():
    return time.time()


# --- fixtures (import them into the test module) -----------------------------

@pytest.fixture(scope="module")
def auth_nginx(worker, shared_dir, redis_server):
    """nginx from conf/nginx.conf.in before the shared worker, with the
    per-IP auth limit raised to 10000r/s and the per-user API limit out of
    the way; everything else as in the shared gateway."""
    server = stack.Nginx(worker_socket=shared_dir / "worker.sock",
                         redis_addr=redis_server.addr,
                         api_rate="1000r/s",
                         extra={"AUTH_RATE": "10000r/s"})
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def auth_gw(auth_nginx):
    """A Client of auth_nginx, from 127.0.0.7."""
    client = Client(auth_nginx)
    yield client
    client.close()


@pytest.fixture(scope="module")
def admin(auth_gw, migrated, tmp_path_factory):
    """A real admin, made by `omni-worker user create` and logged in
    through auth_gw."""
    email = unique_email("admin")
    code, out, err = cli_create_user(migrated,
                                     tmp_path_factory.mktemp("admin"),
                                     email, PASSWORD, "admin")
    assert code == 0, (code, out, err)
    user = User(email, PASSWORD, id=out.strip(), role="admin")
    login(auth_gw, user)
    return user
