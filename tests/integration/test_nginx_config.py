"""`nginx -t` validates the module's JWT directives (SPEC 4): a bad key
file, a key/algorithm mismatch, an unknown algorithm, a bad duration, a
duplicate kid, an unknown omni_auth value or a bad cache size fail the
test with a message naming the directive and the problem; good
configurations pass."""

import re
import shutil

import pytest

import jwt_support
import stack

CHECK_TEMPLATE = jwt_support.FIXTURES / "nginx-check.conf.in"


@pytest.fixture
def nginx_t(jwt_keys):
    """check(http=, server=, location=) -> nginx -t's CompletedProcess for
    fixtures/nginx-check.conf.in with those directives ({keys} is the key
    dir, {tmp} is check.scratch: files of this test's own)."""
    scratch = stack.make_tmpdir("omni-test-nginxt-")
    runs = iter(range(1000))

    def check(http="", server="", location=""):
        prefix = scratch / ("nginx-%d" % next(runs))
        jwt_support.prepare_prefix(prefix)
        fill = {"keys": jwt_keys.dir, "tmp": scratch}
        values = jwt_support.base_values(prefix, stack.free_port(), 1)
        values.update({"HTTP": http.format(**fill),
                       "SERVER": server.format(**fill),
                       "LOCATION": location.format(**fill)})
        conf = prefix / "nginx.conf"
        jwt_support.render_template(CHECK_TEMPLATE, conf, values)
        return jwt_support.nginx_t(prefix, conf)

    check.scratch = scratch
    try:
        yield check
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def assert_fails(res, *patterns):
    """nginx -t failed with an [emerg] matching every pattern (regex,
    case-insensitive) on one line of stderr."""
    assert res.returncode != 0, "nginx -t passed:\n" + res.stderr
    lines = [l for l in res.stderr.splitlines() if "[emerg]" in l]
    assert lines, res.stderr
    assert any(all(re.search(p, l, re.I) for p in patterns) for l in lines), \
        "no [emerg] line matches all of %r:\n%s" % (patterns, res.stderr)


def assert_passes(res):
    assert res.returncode == 0, res.stderr
    assert "test is successful" in res.stderr


# --- good configurations -----------------------------------------------------

def test_every_jwt_directive_at_its_level_passes(nginx_t):
    assert_passes(nginx_t(
        http="omni_jwt_cache zone=jwt:1m ttl=30s;"
             " omni_jwt_key file={keys}/hs256.secret;"
             " omni_jwt_issuer https://a.example https://b.example;"
             " omni_jwt_audience api other; omni_jwt_leeway 30s;"
             " omni_claim email X-User-Email; omni_roles_claim roles;"
             " omni_headers on;",
        server="omni_auth jwt;"
               " omni_jwt_token $cookie_omni_token $arg_token;",
        location="omni_jwt_key file={keys}/rsa.pub alg=RS256,PS256 kid=r1;"
                 " omni_jwt_key file={keys}/p256.pub kid=e1;"
                 " omni_jwt_key file={keys}/p384.pub alg=ES384;"
                 " omni_jwt_key file={keys}/p521.pub;"
                 " omni_jwt_key file={keys}/ed25519.pub alg=EdDSA;"
                 " omni_jwt_key file={keys}/hs512.secret alg=HS512,HS384;"
                 " omni_jwt_jwks {keys}/jwks.json;"
                 " omni_claim realm_access.roles X-Realm-Roles;"
                 " omni_roles_claim realm_access.roles;"
                 " omni_require_role developer user; omni_jwt_leeway 1m;"))


@pytest.mark.parametrize("mode", ["off", "jwt", "optional"])
def test_omni_auth_modes_pass(nginx_t, mode):
    assert_passes(nginx_t(location="omni_jwt_key file={keys}/hs256.secret;"
                                   " omni_auth %s;" % mode))


def test_server_auth_with_keys_only_in_its_locations_passes(nginx_t):
    """omni_auth jwt for the whole server, each location its own key."""
    assert_passes(nginx_t(server="omni_auth jwt;",
                          location="omni_jwt_key file={keys}/rsa.pub;"))


def test_status_and_metrics_locations_pass(nginx_t):
    assert_passes(nginx_t(location="omni_auth off; omni_metrics;"))


def test_the_jwt_test_gateway_configuration_passes(jwt_keys, echo_upstream):
    gw = jwt_support.JwtGateway(jwt_keys, echo_upstream.port)
    try:
        gw.render()
        assert_passes(jwt_support.nginx_t(gw.prefix, gw.conf_path))
    finally:
        gw.destroy()


# --- omni_jwt_key ------------------------------------------------------------

def test_missing_key_file_fails_naming_directive_and_path(nginx_t):
    res = nginx_t(location="omni_jwt_key file=/nonexistent/omni/key.pem;")
    assert_fails(res, "omni_jwt_key", re.escape("/nonexistent/omni/key.pem"))


def test_key_file_that_is_a_directory_fails(nginx_t):
    assert_fails(nginx_t(location="omni_jwt_key file={keys};"),
                 "omni_jwt_key")


def test_empty_key_file_fails(nginx_t):
    (nginx_t.scratch / "empty.key").write_bytes(b"")
    assert_fails(nginx_t(location="omni_jwt_key file={tmp}/empty.key;"),
                 "omni_jwt_key", "empty")


def test_garbled_pem_fails(nginx_t, jwt_keys):
    bad = nginx_t.scratch / "garbled.pub"
    pem = jwt_keys.public_pem("rsa").decode().splitlines()
    bad.write_text("\n".join([pem[0], "Zm9vYmFy" * 8, pem[-1]]) + "\n")
    assert_fails(nginx_t(location="omni_jwt_key file={tmp}/garbled.pub;"),
                 "omni_jwt_key", re.escape(str(bad)))


@pytest.mark.parametrize("key,alg", [
    ("rsa.pub", "ES256"),
    ("rsa.pub", "EdDSA"),
    ("p256.pub", "ES384"),
    ("p384.pub", "ES256"),
    ("p521.pub", "RS512"),
    ("ed25519.pub", "ES256"),
    ("rsa.pub", "HS256"),         # a PEM is never an HMAC secret
    ("p256.pub", "HS256"),
    ("hs256.secret", "RS256"),    # nor a secret a public key
    ("hs256.secret", "EdDSA"),
])
def test_key_algorithm_mismatch_fails(nginx_t, key, alg):
    res = nginx_t(location="omni_jwt_key file={keys}/%s alg=%s;" % (key, alg))
    assert_fails(res, "omni_jwt_key", alg, "mismatch|match|cannot|not "
                 "(usable|valid|allowed|suitable)|incompatible")


def test_mismatch_in_a_list_of_algorithms_fails(nginx_t):
    res = nginx_t(location="omni_jwt_key file={keys}/rsa.pub alg=RS256,ES256;")
    assert_fails(res, "omni_jwt_key", "ES256")


@pytest.mark.parametrize("alg", ["XS256", "none", "rs256", "RS1024", "HS",
                                 "RS256,"])
def test_unknown_algorithm_fails(nginx_t, alg):
    res = nginx_t(location="omni_jwt_key file={keys}/rsa.pub alg=%s;" % alg)
    assert_fails(res, "omni_jwt_key", "unknown algorithm")


def test_private_key_is_refused(nginx_t):
    assert_fails(nginx_t(location="omni_jwt_key file={keys}/rsa.key;"),
                 "omni_jwt_key", "private")


def test_private_ec_key_is_refused(nginx_t):
    assert_fails(nginx_t(location="omni_jwt_key file={keys}/p256.key;"),
                 "omni_jwt_key", "private")


def test_hmac_secret_under_32_bytes_fails(nginx_t):
    assert_fails(nginx_t(location="omni_jwt_key file={keys}/short.secret;"),
                 "omni_jwt_key", r"short|32")


def test_key_without_file_fails(nginx_t):
    assert_fails(nginx_t(location="omni_jwt_key alg=RS256;"),
                 "omni_jwt_key", "file")


def test_key_with_unknown_parameter_fails(nginx_t):
    res = nginx_t(location="omni_jwt_key file={keys}/rsa.pub colour=blue;")
    assert_fails(res, "omni_jwt_key", "colour")


def test_duplicate_kid_fails(nginx_t):
    res = nginx_t(location="omni_jwt_key file={keys}/rsa.pub kid=k1;"
                           " omni_jwt_key file={keys}/rsa-other.pub kid=k1;")
    assert_fails(res, "omni_jwt_key", "duplicate kid", "k1")


def test_jwt_auth_without_any_key_fails(nginx_t):
    assert_fails(nginx_t(location="omni_auth jwt;"), "omni_auth",
                 "omni_jwt_key")


# --- omni_jwt_jwks -----------------------------------------------------------

def test_missing_jwks_file_fails_naming_directive_and_path(nginx_t):
    res = nginx_t(location="omni_jwt_jwks /nonexistent/omni/jwks.json;")
    assert_fails(res, "omni_jwt_jwks",
                 re.escape("/nonexistent/omni/jwks.json"))


def test_jwks_with_duplicate_kid_fails(nginx_t):
    assert_fails(nginx_t(location="omni_jwt_jwks {keys}/jwks-dup.json;"),
                 "omni_jwt_jwks", "duplicate kid")


def test_jwks_that_is_not_json_fails(nginx_t):
    assert_fails(nginx_t(location="omni_jwt_jwks {keys}/rsa.pub;"),
                 "omni_jwt_jwks")


def test_jwks_refresh_parameters_pass(nginx_t):
    assert_passes(nginx_t(location="omni_jwt_jwks {keys}/jwks.json"
                                   " refresh=5s min_refresh=500ms;"))


@pytest.mark.parametrize("param", ["refresh=0", "refresh=soon",
                                   "min_refresh=-1s", "every=5s"])
def test_jwks_bad_refresh_parameter_fails(nginx_t, param):
    assert_fails(nginx_t(location="omni_jwt_jwks {keys}/jwks.json %s;"
                                  % param), "omni_jwt_jwks",
                 re.escape(param))


def test_jwks_https_url_passes(nginx_t):
    # nothing is fetched by nginx -t
    assert_passes(nginx_t(location="omni_jwt_jwks"
                                   " https://127.0.0.1:9/jwks.json"
                                   " refresh=5s timeout=2s;"))


def test_jwks_plain_http_url_to_another_host_fails(nginx_t):
    assert_fails(nginx_t(location="omni_jwt_jwks"
                                  " http://192.0.2.1/jwks.json;"),
                 "omni_jwt_jwks", "loopback", re.escape("192.0.2.1"))


def test_jwks_ca_for_a_file_fails(nginx_t):
    assert_fails(nginx_t(location="omni_jwt_jwks {keys}/jwks.json"
                                  " ca=/etc/ssl/certs/ca-certificates.crt;"),
                 "omni_jwt_jwks", "URL")


def test_second_jwks_in_one_location_fails(nginx_t):
    assert_fails(nginx_t(location="omni_jwt_jwks {keys}/jwks.json;"
                                  " omni_jwt_jwks {keys}/jwks.json;"),
                 "omni_jwt_jwks", "duplicate")


def test_key_with_a_kid_of_the_jwks_fails(nginx_t):
    assert_fails(nginx_t(location="omni_jwt_jwks {keys}/jwks.json;"
                                  " omni_jwt_key file={keys}/rsa.pub"
                                  " kid=rsa-1;"),
                 "omni_jwt_key", "duplicate kid", "rsa-1")


# --- durations, modes, cache, arguments --------------------------------------

@pytest.mark.parametrize("value", ["abc", "-5s", "10x"])
def test_bad_leeway_fails_with_invalid_value(nginx_t, value):
    assert_fails(nginx_t(location="omni_jwt_leeway %s;" % value),
                 "omni_jwt_leeway", "invalid value")


@pytest.mark.parametrize("value", ["sometimes", "on", "JWT", "apikeys"])
def test_unknown_omni_auth_value_fails(nginx_t, value):
    assert_fails(nginx_t(location="omni_auth %s;" % value),
                 "omni_auth", "invalid value", re.escape(value))


def test_bad_omni_headers_value_fails(nginx_t):
    assert_fails(nginx_t(location="omni_headers maybe;"),
                 "omni_headers", "invalid value")


@pytest.mark.parametrize("arg", ["zone=jwt:abc", "zone=jwt:", "zone=jwt",
                                 "zone=:1m", "size=1m"])
def test_bad_cache_zone_fails(nginx_t, arg):
    assert_fails(nginx_t(http="omni_jwt_cache %s;" % arg), "omni_jwt_cache",
                 r"invalid|size|zone")


def test_cache_zone_too_small_fails(nginx_t):
    assert_fails(nginx_t(http="omni_jwt_cache zone=jwt:1k;"),
                 "omni_jwt_cache|jwt", r"small|size")


def test_bad_cache_ttl_fails(nginx_t):
    assert_fails(nginx_t(http="omni_jwt_cache zone=jwt:1m ttl=soon;"),
                 "omni_jwt_cache", r"invalid|ttl")


def test_cache_in_a_location_is_not_allowed(nginx_t):
    assert_fails(nginx_t(location="omni_jwt_cache zone=jwt:1m;"),
                 "omni_jwt_cache", "not allowed here")


def test_require_role_in_http_is_not_allowed(nginx_t):
    assert_fails(nginx_t(http="omni_require_role admin;"),
                 "omni_require_role", "not allowed here")


@pytest.mark.parametrize("directive", [
    "omni_require_role", "omni_jwt_issuer", "omni_jwt_audience",
    "omni_jwt_token", "omni_claim sub", "omni_roles_claim", "omni_jwt_key",
    "omni_jwt_jwks", "omni_jwt_leeway", "omni_auth",
])
def test_missing_arguments_fail(nginx_t, directive):
    assert_fails(nginx_t(location="%s;" % directive),
                 directive.split()[0], "invalid number of arguments")


def test_token_source_that_is_not_a_variable_fails(nginx_t):
    assert_fails(nginx_t(location="omni_jwt_token cookie_omni_token;"),
                 "omni_jwt_token")


# --- omni_auth, omni_redis_fail, omni_headers values; "off" ------------------

@pytest.mark.parametrize("value", ["off jwt", "jwt jwt", "optional apikey",
                                   "jwt optional"])
def test_omni_auth_pair_other_than_jwt_apikey_fails(nginx_t, value):
    assert_fails(nginx_t(location="omni_auth %s;" % value),
                 "omni_auth", "invalid value", re.escape(value),
                 re.escape('"jwt apikey"'))


def test_bad_omni_redis_fail_value_fails_naming_the_modes(nginx_t):
    assert_fails(nginx_t(location="omni_redis_fail sometimes;"),
                 "omni_redis_fail", "invalid value", "sometimes",
                 "open, closed or local")


def test_nodes_parameter_only_for_local_fail_mode(nginx_t):
    assert_fails(nginx_t(location="omni_redis_fail open nodes=2;"),
                 "omni_redis_fail", "invalid parameter", "nodes=2")


def test_bad_omni_headers_authorization_value_fails(nginx_t):
    assert_fails(nginx_t(location="omni_headers on authorization=maybe;"),
                 "omni_headers", "authorization=maybe",
                 "authorization=keep or authorization=remove")


def test_require_role_off_passes_where_nothing_authenticates(nginx_t):
    assert_passes(nginx_t(location="omni_auth off; omni_require_role off;"))


def test_require_role_off_with_roles_fails(nginx_t):
    assert_fails(nginx_t(location="omni_auth jwt;"
                                  " omni_jwt_key file={keys}/rsa.pub;"
                                  " omni_require_role admin off;"),
                 "omni_require_role", "off")


@pytest.mark.parametrize("limits", ["omni_limit zone=z; omni_limit off;",
                                    "omni_limit off; omni_limit zone=z;"])
def test_limit_off_with_zones_in_one_block_fails(nginx_t, limits):
    assert_fails(nginx_t(http="omni_redis 127.0.0.1:6379;"
                              " omni_limit_zone z rate=1r/s;",
                         location=limits),
                 "omni_limit", "off", "zones")


def test_limit_off_passes(nginx_t):
    assert_passes(nginx_t(http="omni_redis 127.0.0.1:6379;"
                               " omni_limit_zone z rate=1r/s;",
                          server="omni_limit zone=z;",
                          location="omni_limit off;"))


# --- omni_redis through Sentinel ----------------------------------------------

def test_redis_through_sentinels_passes(nginx_t):
    assert_passes(nginx_t(http="omni_redis sentinel://127.0.0.1:26379,"
                               "localhost,127.0.0.2:26380/mymaster"
                               " password=x timeout=100ms;"))


@pytest.mark.parametrize("addr", ["sentinel://127.0.0.1:26379",
                                  "sentinel://127.0.0.1:26379/",
                                  "sentinel:///mymaster",
                                  "sentinel://127.0.0.1:26379,,x/m",
                                  "sentinel://no-such-host.invalid/m"])
def test_bad_sentinel_address_fails_naming_it(nginx_t, addr):
    assert_fails(nginx_t(http="omni_redis %s;" % addr), "omni_redis",
                 "sentinel|Sentinel")


# --- the product's configuration: how long nginx waits for the worker --------

def _locations(text):
    """{location args: its directives' text} of conf/nginx.conf.in's main
    server (nested blocks' text included in their parent's)."""
    out, stack_ = {}, []
    for m in re.finditer(r"[{}]", text):
        if m.group() == "{":
            head = text[text.rfind("\n", 0, m.start()) + 1:m.start()].strip()
            stack_.append((head, m.end()))
        else:
            head, start = stack_.pop()
            if head.startswith("location "):
                out.setdefault(head[len("location "):].strip(),
                               text[start:m.start()])
    return out


def _read_timeout(body):
    m = re.search(r"^\s*proxy_read_timeout\s+(\d+)s;", body, re.M)
    return int(m.group(1)) if m else None


def test_model_and_tool_calls_wait_past_the_workers_own_limit():
    """A model or a tool may be silent for up to the worker's own limit
    (300 s: a provider call, a server's timeout_ms): nginx must wait
    longer on those routes, so the caller gets the worker's error in its
    own format, not nginx's 504 after 60 s; other API routes keep 60 s."""
    text = (stack.REPO / "conf" / "nginx.conf.in").read_text()
    proxy = (stack.REPO / "conf" / "omni-proxy.conf").read_text()
    assert _read_timeout(proxy) is None, \
        "omni-proxy.conf must leave the read timeout to each location"
    server = re.search(r"^        proxy_read_timeout (\d+)s;", text, re.M)
    assert server and int(server.group(1)) == 60
    locs = _locations(text)
    long_ones = ['/v1/', '~ "^/mcp(/[a-z0-9][a-z0-9-]{0,31})?$"',
                 '= /api/v1/mcp/tools/call',
                 '~ "^/api/v1/conversations/[^/]+/messages$"']
    for loc in long_ones:
        assert loc in locs, (loc, sorted(locs))
        assert (_read_timeout(locs[loc]) or 0) > 300, loc
    for loc in ("/api/", "/auth/", "/api/v1/users"):
        assert _read_timeout(locs[loc]) is None, loc
