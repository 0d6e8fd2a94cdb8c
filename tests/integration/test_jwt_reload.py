"""`nginx -s reload` with the verified-token cache (its zone outlives the
reload): what a new configuration no longer accepts, a cached verification
made under the old one must not accept either — a removed key (rotation
after a leak), a changed audience, locations in another order."""

import pytest

import jwt_support
from jwt_support import assert_401, claims, passed, sign

RELOAD_TEMPLATE = jwt_support.FIXTURES / "nginx-jwt-reload.conf.in"

FIRST_LOCATION = """location /first/ {
            omni_jwt_key file=%s/hs256-other.secret;
            proxy_pass http://echo;
        }"""


@pytest.fixture
def reload_gateway(jwt_keys, echo_upstream):
    """nginx of this test's own from fixtures/nginx-jwt-reload.conf.in."""
    gw = jwt_support.JwtGateway(
        jwt_keys, echo_upstream.port, template=RELOAD_TEMPLATE,
        values={"FIRST": "", "ROTATED_KEY": "rsa.pub",
                "RELOAD_AUDIENCE": "aud-a"})
    try:
        gw.start()
        yield gw
    finally:
        gw.destroy()


def _cached(gw, path, token):
    """Sends token twice and checks the second was a cache hit."""
    before = gw.metrics().cache("hit")
    passed(gw.get(path, token))
    passed(gw.get(path, token))
    assert gw.metrics().cache("hit") - before == 1


def test_reload_serves_with_the_new_configuration(reload_gateway, jwt_keys):
    reload_gateway.reload(ROTATED_KEY="rsa-other.pub")
    token = sign(jwt_keys, "RS256", key=jwt_keys.private_pem("rsa-other"))
    passed(reload_gateway.get("/rotated/", token))


def test_token_of_a_removed_key_is_rejected_after_reload(reload_gateway,
                                                         jwt_keys):
    token = sign(jwt_keys, "RS256", key=jwt_keys.private_pem("rsa"))
    _cached(reload_gateway, "/rotated/", token)
    reload_gateway.reload(ROTATED_KEY="rsa-other.pub")
    assert_401(reload_gateway.get("/rotated/", token))


def test_token_of_a_removed_audience_is_rejected_after_reload(reload_gateway,
                                                              jwt_keys):
    token = sign(jwt_keys, payload=claims(aud="aud-a"))
    _cached(reload_gateway, "/audience/", token)
    reload_gateway.reload(RELOAD_AUDIENCE="aud-b")
    assert_401(reload_gateway.get("/audience/", token))


def test_cached_token_does_not_pass_a_location_added_by_reload(
        reload_gateway, jwt_keys):
    # /first/ takes the place /rotated/ had in the old configuration
    token = sign(jwt_keys, "RS256", key=jwt_keys.private_pem("rsa"))
    _cached(reload_gateway, "/rotated/", token)
    reload_gateway.reload(FIRST=FIRST_LOCATION % jwt_keys.dir)
    assert_401(reload_gateway.get("/first/", token))


def test_reload_parses_keys_once_not_per_request(reload_gateway, jwt_keys):
    reload_gateway.reload(ROTATED_KEY="rsa-other.pub")
    before = reload_gateway.metrics().key_parses()
    for _ in range(5):
        passed(reload_gateway.get("/rotated/", sign(
            jwt_keys, "RS256", key=jwt_keys.private_pem("rsa-other"))))
    assert reload_gateway.metrics().key_parses() == before
