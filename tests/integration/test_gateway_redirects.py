"""One decision per main request (SPEC 5): a request that nginx sends
through the phases again after an internal redirect (error_page,
try_files to a named location) is not verified again and no limit of it
is charged twice, while the roles of the location it lands in are still
checked. Nested locations lift what they inherit with
`omni_require_role off` and `omni_limit off`."""

import json
import re

import pytest

import stack
import test_limits
from test_limits import SECRET, token

# Every limited location uses zone "twice": burst=1 admits two requests at
# once, so a request charged twice leaves nothing for the next one.
# /echo/ answers from the rewrite phase, before any access check. The
# head (module, Redis, the HS256 key) is test_limits's.
CONF = test_limits.CONF[:test_limits.CONF.index("    omni_limit_zone")] + """
    omni_limit_zone twice rate=1r/h burst=1;
    server {{
        listen 127.0.0.1:{port};
        default_type application/json;

        location = /omni/metrics {{ omni_metrics; }}

        location /echo/ {{
            omni_auth off;
            return 200 '{{"id":"$http_x_user_id","role":"$http_x_user_role"}}';
        }}
        location /missing/ {{
            omni_auth off;
            return 404;
        }}

        location /errpage/ {{
            omni_auth jwt;
            omni_limit zone=twice;
            proxy_pass http://127.0.0.1:{port}/missing/;
            proxy_intercept_errors on;
            error_page 404 = /fallback/;
        }}
        location /fallback/ {{
            omni_auth jwt;
            omni_limit zone=twice;
            add_header X-Omni-User $omni_user_id always;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}

        location /tryfiles/ {{
            omni_auth jwt;
            omni_limit zone=twice;
            root {prefix}/empty;
            try_files $uri @app;
        }}
        location @app {{
            omni_auth jwt;
            omni_limit zone=twice;
            add_header X-Omni-User $omni_user_id always;
            rewrite ^ /echo/ break;
            proxy_pass http://127.0.0.1:{port};
        }}

        location /to-admin/ {{
            omni_auth jwt;
            proxy_pass http://127.0.0.1:{port}/missing/;
            proxy_intercept_errors on;
            error_page 404 = /admin-only/;
        }}
        location /admin-only/ {{
            omni_auth jwt;
            omni_require_role admin;
            proxy_pass http://127.0.0.1:{port}/echo/;
        }}

        location /open/ {{
            omni_auth off;
            root {prefix}/empty;
            try_files $uri @protected;
        }}
        location @protected {{
            omni_auth jwt;
            rewrite ^ /echo/ break;
            proxy_pass http://127.0.0.1:{port};
        }}

        location /ops/ {{
            omni_auth jwt;
            omni_require_role admin;
            omni_limit zone=twice;
            proxy_pass http://127.0.0.1:{port}/echo/;

            location /ops/health/ {{
                omni_require_role off;
                proxy_pass http://127.0.0.1:{port}/echo/;
            }}
            location /ops/unlimited/ {{
                omni_limit off;
                proxy_pass http://127.0.0.1:{port}/echo/;
            }}
        }}
    }}
}}
"""


class Gateway(stack.NginxConf):
    def __init__(self, redis_addr):
        super().__init__(CONF, "redirects", redis=redis_addr)
        (self.prefix / "hs.secret").write_bytes(SECRET)
        (self.prefix / "empty").mkdir()
        self.start("/omni/metrics")

    def bearer(self, path, tok):
        return self.get(path, {"Authorization": "Bearer " + tok})

    def allowed(self):
        """How many requests were decided "allow" (each one a token
        verified: no cache is configured)."""
        text = self.get("/omni/metrics")[2].decode()
        m = re.search(r'^omni_gateway_decisions_total\{outcome="allow",'
                      r'reason="[^"]*"\} (\d+)$', text, re.M)
        assert m, text
        return int(m.group(1))


@pytest.fixture(scope="module")
def gw(redis_server):
    """Each test limits users of its own: the session's Redis serves."""
    g = Gateway(redis_server.addr)
    try:
        yield g
    finally:
        g.destroy()


# --- once per main request ---------------------------------------------------

@pytest.mark.parametrize("path", ["/errpage/x", "/tryfiles/x"])
def test_redirected_request_is_verified_once(gw, path):
    before = gw.allowed()
    status, headers, _ = gw.bearer(path, token("verified-once" + path))
    assert status == 200
    assert gw.allowed() - before == 1


@pytest.mark.parametrize("path", ["/errpage/x", "/tryfiles/x"])
def test_redirected_request_is_charged_once(gw, path):
    tok = token("charged-once" + path)
    # burst=1: two requests pass only if each was charged once
    statuses = [gw.bearer(path, tok)[0] for _ in range(3)]
    assert statuses == [200, 200, 429]


@pytest.mark.parametrize("path", ["/errpage/x", "/tryfiles/x"])
def test_identity_survives_the_redirect(gw, path):
    sub = "identity" + path
    status, headers, raw = gw.bearer(path, token(sub))
    assert status == 200
    assert json.loads(raw)["id"] == sub
    assert headers["X-Omni-User"] == sub


def test_redirect_target_still_checks_its_roles(gw):
    status, headers, raw = gw.bearer("/to-admin/x", token("plain-user"))
    assert status == 403
    assert json.loads(raw)["error"] == "insufficient_role"
    status, _, raw = gw.bearer("/to-admin/x", token("boss", role="admin"))
    assert status == 200
    assert json.loads(raw)["role"] == "admin"


def test_open_location_redirecting_to_a_protected_one_needs_credentials(gw):
    status, headers, raw = gw.get("/open/x")
    assert status == 401
    assert json.loads(raw)["error"] == "missing_credentials"
    status, _, raw = gw.bearer("/open/x", token("via-open"))
    assert status == 200
    assert json.loads(raw)["id"] == "via-open"


# --- nested locations lift what they inherit ---------------------------------

def test_inherited_role_requirement_applies_to_the_parent(gw):
    assert gw.bearer("/ops/x", token("ops-user"))[0] == 403


def test_require_role_off_lifts_the_inherited_requirement(gw):
    status, _, raw = gw.bearer("/ops/health/x", token("health-user"))
    assert status == 200
    assert json.loads(raw)["id"] == "health-user"


def test_require_role_off_keeps_authentication(gw):
    status, _, raw = gw.get("/ops/health/x")
    assert status == 401


def test_limit_off_lifts_the_inherited_limit(gw):
    tok = token("unlimited-admin", role="admin")
    statuses = [gw.bearer("/ops/unlimited/x", tok)[0] for _ in range(4)]
    assert statuses == [200] * 4
    statuses = [gw.bearer("/ops/x", tok)[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
