"""Identity reaches the upstream only from the gateway (SPEC rule 3,
`omni_headers`, `omni_claim`): client-sent X-User-* and configured claim
headers are removed in any case and any number of copies, the verified
values are injected exactly once, and the module's variables carry the
same identity."""

import http.client

import pytest

from jwt_support import (assert_401, claims, passed, sign)

pytestmark = pytest.mark.usefixtures("jwt_nginx_survives")

IDENTITY = ("X-User-Id", "X-User-Username", "X-User-Role")

# every spoofing variant at once: mixed case, repeated copies
SPOOFED = [
    ("X-User-Id", "spoofed-id-1"),
    ("x-user-id", "spoofed-id-2"),
    ("X-USER-ID", "spoofed-id-3"),
    ("X-User-Username", "root"),
    ("x-User-uSeRnAmE", "root2"),
    ("X-User-Role", "admin"),
    ("x-user-role", "admin"),
    ("X-USER-ROLE", "admin"),
]


def _spoofed_values(echo):
    return [v for k, v in echo.headers if "spoofed" in v or v in
            ("root", "root2", "admin")]


def test_spoofed_identity_headers_are_replaced_by_one_verified_copy_each(
        jwt_gateway, jwt_keys):
    c = claims(role="viewer")
    lines = ([("Authorization", "Bearer " + sign(jwt_keys, payload=c))]
             + SPOOFED)
    echo = passed(jwt_gateway.send("/hs256/", lines))
    assert echo.one("X-User-Id") == c["sub"]
    assert echo.one("X-User-Username") == c["preferred_username"]
    assert echo.one("X-User-Role") == "viewer"
    assert not _spoofed_values(echo), echo


def test_spoofed_headers_sent_before_the_token_are_removed_too(jwt_gateway,
                                                               jwt_keys):
    c = claims()
    lines = SPOOFED + [("Authorization", "Bearer " + sign(jwt_keys,
                                                          payload=c))]
    echo = passed(jwt_gateway.send("/hs256/", lines))
    assert echo.one("X-User-Id") == c["sub"]
    assert not _spoofed_values(echo), echo


def test_spoofed_role_is_removed_when_the_token_has_no_role(jwt_gateway,
                                                            jwt_keys):
    c = claims(role=None)
    lines = [("Authorization", "Bearer " + sign(jwt_keys, payload=c)),
             ("X-User-Role", "admin"), ("x-user-role", "admin")]
    echo = passed(jwt_gateway.send("/hs256/", lines))
    assert echo.one("X-User-Id") == c["sub"]
    assert echo.absent("X-User-Role"), echo


def test_spoofed_username_is_removed_when_the_token_has_none(jwt_gateway,
                                                             jwt_keys):
    c = claims(preferred_username=None)
    lines = [("Authorization", "Bearer " + sign(jwt_keys, payload=c)),
             ("X-User-Username", "root")]
    echo = passed(jwt_gateway.send("/hs256/", lines))
    assert echo.absent("X-User-Username"), echo


def test_anonymous_request_on_optional_location_carries_no_identity(
        jwt_gateway):
    echo = passed(jwt_gateway.send("/optional/", SPOOFED))
    for name in IDENTITY:
        assert echo.absent(name), echo


def test_optional_location_injects_identity_for_a_valid_token(jwt_gateway,
                                                              jwt_keys):
    c = claims()
    lines = [("Authorization", "Bearer " + sign(jwt_keys, payload=c))] \
        + SPOOFED
    echo = passed(jwt_gateway.send("/optional/", lines))
    assert echo.one("X-User-Id") == c["sub"]
    assert echo.one("X-User-Role") == c["role"]
    assert not _spoofed_values(echo), echo


def test_optional_location_rejects_an_invalid_token(jwt_gateway, jwt_keys):
    """optional passes requests without credentials, not bad ones."""
    token = sign(jwt_keys, key=jwt_keys.secret("hs256-other.secret"))
    assert_401(jwt_gateway.get("/optional/", token))


def test_off_location_strips_spoofed_identity_headers(jwt_gateway):
    echo = passed(jwt_gateway.send("/off/", SPOOFED))
    for name in IDENTITY:
        assert echo.absent(name), echo


def test_off_location_passes_without_a_token(jwt_gateway):
    passed(jwt_gateway.get("/off/"))


def test_off_location_ignores_an_invalid_token(jwt_gateway):
    echo = passed(jwt_gateway.get("/off/", "not-a-token"))
    assert echo.absent("X-User-Id")


def test_any_client_sent_x_user_header_is_stripped(jwt_gateway, jwt_keys):
    """SPEC rule 3: a client-sent X-User-* never reaches the upstream."""
    lines = [("Authorization", "Bearer " + sign(jwt_keys)),
             ("X-User-Email", "ceo@example.com"),
             ("x-user-groups", "admins")]
    echo = passed(jwt_gateway.send("/hs256/", lines))
    assert echo.absent("X-User-Email"), echo
    assert echo.absent("X-User-Groups"), echo


def test_other_client_headers_pass_unchanged(jwt_gateway, jwt_keys):
    lines = [("Authorization", "Bearer " + sign(jwt_keys)),
             ("X-Request-Trace", "abc"), ("X-Userland", "kept")]
    echo = passed(jwt_gateway.send("/hs256/", lines))
    assert echo.one("X-Request-Trace") == "abc"
    assert echo.one("X-Userland") == "kept"


def test_authorization_header_is_passed_to_the_upstream(jwt_gateway,
                                                        jwt_keys):
    token = sign(jwt_keys)
    echo = passed(jwt_gateway.get("/hs256/", token))
    assert echo.one("Authorization") == "Bearer " + token


def test_authorization_header_can_stay_at_the_gateway(jwt_gateway,
                                                     jwt_keys):
    c = claims()
    lines = [("Authorization", "Bearer " + sign(jwt_keys, payload=c))]
    echo = passed(jwt_gateway.send("/no-authorization/", lines))
    assert echo.absent("Authorization"), echo
    assert echo.one("X-User-Id") == c["sub"]


def test_username_falls_back_to_the_username_claim(jwt_gateway, jwt_keys):
    c = claims(preferred_username=None, username="bob")
    echo = passed(jwt_gateway.get("/hs256/", sign(jwt_keys, payload=c)))
    assert echo.one("X-User-Username") == "bob"


def test_preferred_username_wins_over_username(jwt_gateway, jwt_keys):
    c = claims(preferred_username="carol", username="bob")
    echo = passed(jwt_gateway.get("/hs256/", sign(jwt_keys, payload=c)))
    assert echo.one("X-User-Username") == "carol"


def test_identity_does_not_leak_to_the_next_request_on_a_connection(
        jwt_gateway, jwt_keys):
    first, second = claims(), claims()
    conn = http.client.HTTPConnection("127.0.0.1", jwt_gateway.port,
                                      timeout=10)
    try:
        def echo(lines):
            return passed(jwt_gateway.send("/optional/", lines, conn=conn))
        assert echo([("Authorization", "Bearer " + sign(
            jwt_keys, payload=first))]).one("X-User-Id") == first["sub"]
        anonymous = echo([])
        for name in IDENTITY:
            assert anonymous.absent(name), anonymous
        assert echo([("Authorization", "Bearer " + sign(
            jwt_keys, payload=second))]).one("X-User-Id") == second["sub"]
    finally:
        conn.close()


def test_headers_off_location_injects_no_identity(jwt_gateway, jwt_keys):
    echo = passed(jwt_gateway.get("/headers-off/", sign(jwt_keys)))
    for name in IDENTITY:
        assert echo.absent(name), echo


def test_headers_off_location_still_authenticates(jwt_gateway):
    assert_401(jwt_gateway.get("/headers-off/"), "missing_credentials")


# --- omni_claim --------------------------------------------------------------

def test_claims_of_every_json_type_reach_their_headers(jwt_gateway,
                                                       jwt_keys):
    c = claims(num=42, ratio=1.5, flag=True, groups=["a", "b", "c"],
               org={"name": "acme", "id": 7}, email="dee@example.com")
    echo = passed(jwt_gateway.get("/types/", sign(jwt_keys, payload=c)))
    assert echo.one("X-Claim-Num") == "42"
    assert echo.one("X-Claim-Ratio") == "1.5"
    assert echo.one("X-Claim-Flag") == "true"
    assert echo.one("X-Claim-Groups") == "a,b,c"
    assert echo.one("X-Claim-Org") == "acme"
    assert echo.one("X-Claim-Email") == "dee@example.com"


def test_false_claim_reaches_its_header(jwt_gateway, jwt_keys):
    c = claims(flag=False)
    echo = passed(jwt_gateway.get("/types/", sign(jwt_keys, payload=c)))
    assert echo.one("X-Claim-Flag") == "false"


def test_absent_claims_send_no_header(jwt_gateway, jwt_keys):
    echo = passed(jwt_gateway.get("/types/", sign(jwt_keys)))
    for name in ("X-Claim-Num", "X-Claim-Ratio", "X-Claim-Flag",
                 "X-Claim-Groups", "X-Claim-Org", "X-Claim-Email"):
        assert echo.absent(name), echo


def test_object_claim_sends_no_header(jwt_gateway, jwt_keys):
    c = claims(org={"name": {"first": "a"}})
    echo = passed(jwt_gateway.get("/types/", sign(jwt_keys, payload=c)))
    assert echo.absent("X-Claim-Org"), echo


def test_spoofed_claim_header_is_replaced_by_the_verified_value(jwt_gateway,
                                                                jwt_keys):
    c = claims(email="dee@example.com")
    lines = [("X-Claim-Email", "ceo@example.com"),
             ("Authorization", "Bearer " + sign(jwt_keys, payload=c)),
             ("x-claim-email", "cfo@example.com")]
    echo = passed(jwt_gateway.send("/types/", lines))
    assert echo.one("X-Claim-Email") == "dee@example.com"


def test_spoofed_claim_header_is_removed_when_the_claim_is_absent(
        jwt_gateway, jwt_keys):
    lines = [("Authorization", "Bearer " + sign(jwt_keys)),
             ("X-Claim-Email", "ceo@example.com"),
             ("X-CLAIM-ORG", "evil")]
    echo = passed(jwt_gateway.send("/types/", lines))
    assert echo.absent("X-Claim-Email"), echo
    assert echo.absent("X-Claim-Org"), echo


@pytest.mark.parametrize("path", ["/hs256/", "/off/", "/optional/"])
def test_claim_headers_of_other_locations_are_stripped_here(jwt_gateway,
                                                            jwt_keys, path):
    """X-Claim-Email is the gateway's at /types/: a client must not get a
    forged copy to the upstream through a location that does not set it."""
    lines = [("Authorization", "Bearer " + sign(jwt_keys)),
             ("X-Claim-Email", "ceo@example.com"),
             ("x-realm-roles", "admin"),
             ("X-Token-Id", "forged")]
    echo = passed(jwt_gateway.send(path, lines))
    for name in ("X-Claim-Email", "X-Realm-Roles", "X-Token-Id"):
        assert echo.absent(name), echo


def test_dotted_roles_claim_reaches_its_header_comma_joined(jwt_gateway,
                                                            jwt_keys):
    c = claims(role=None, realm_access={"roles": ["viewer", "developer"]})
    lines = [("Authorization", "Bearer " + sign(jwt_keys, payload=c)),
             ("X-Realm-Roles", "admin"), ("x-realm-roles", "admin")]
    echo = passed(jwt_gateway.send("/realm/", lines))
    assert echo.one("X-Realm-Roles") == "viewer,developer"


# --- variables ---------------------------------------------------------------

def test_variables_carry_the_verified_identity(jwt_gateway, jwt_keys):
    c = claims(role="developer", email="eve@example.com")
    echo = passed(jwt_gateway.get("/vars/", sign(jwt_keys, payload=c)))
    assert echo.one("X-Var-User-Id") == c["sub"]
    assert echo.one("X-Var-Username") == c["preferred_username"]
    assert echo.one("X-Var-Role") == "developer"
    assert echo.one("X-Var-Roles") == "developer"
    assert echo.one("X-Var-Auth-Method") == "jwt"
    assert echo.one("X-Var-Claim-Email") == "eve@example.com"
    assert echo.one("X-Var-Jti") == c["jti"]
    assert echo.one("X-Var-Decision")


def test_roles_variable_joins_a_roles_array(jwt_gateway, jwt_keys):
    c = claims(role=None, roles=["viewer", "developer"])
    echo = passed(jwt_gateway.get("/vars/", sign(jwt_keys, payload=c)))
    assert echo.one("X-Var-Roles") == "viewer,developer"


def test_anonymous_variables_say_auth_method_none(jwt_gateway):
    echo = passed(jwt_gateway.send("/vars/", SPOOFED))
    assert echo.one("X-Var-Auth-Method") == "none"
    # proxy_set_header sends nothing for an empty value
    for name in ("X-Var-User-Id", "X-Var-Username", "X-Var-Role",
                 "X-Var-Jti"):
        assert echo.absent(name), echo


def test_access_log_records_decision_and_user(jwt_gateway, jwt_keys):
    import time
    c = claims()
    passed(jwt_gateway.get("/hs256/log-ok", sign(jwt_keys, payload=c)))
    t = int(time.time())
    assert_401(jwt_gateway.get("/hs256/log-expired", sign(
        jwt_keys, payload=claims(iat=t - 600, exp=t - 300))), "token_expired")
    import stack
    lines = {}

    def logged():
        # nginx writes the line after the response: it may trail it
        lines.update((l["uri"], l) for l in jwt_gateway.access_log_lines())
        return {"/hs256/log-ok", "/hs256/log-expired"} <= set(lines)
    stack.wait_until(logged, 5, "both requests in the access log")
    ok, expired = lines["/hs256/log-ok"], lines["/hs256/log-expired"]
    assert ok["user_id"] == c["sub"]
    assert ok["auth_method"] == "jwt"
    assert ok["jti"] == c["jti"]
    assert ok["decision"]
    assert "expired" in expired["decision"]
    assert expired["user_id"] == ""


@pytest.mark.parametrize("claim", ["sub", "preferred_username", "role"])
def test_claim_with_crlf_never_becomes_a_header_line(jwt_gateway, jwt_keys,
                                                     claim):
    c = claims(role="viewer")
    c[claim] = "x\r\nX-Injected: 1\r\nX-User-Role: admin"
    r = jwt_gateway.get("/hs256/", sign(jwt_keys, payload=c))
    if r.status_code != 200:
        assert 400 <= r.status_code < 500, r.text
        return
    echo = passed(r)
    assert echo.absent("X-Injected"), echo
    assert "admin" not in echo.values("X-User-Role"), echo
    for _, value in echo.headers:
        assert "\r" not in value and "\n" not in value, echo
