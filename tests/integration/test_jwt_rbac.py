"""Roles (SPEC 4, 5): `omni_require_role` wants any one of its roles,
`admin` satisfies every requirement, roles come from `role` then `roles`
(or `omni_roles_claim`), a string or an array. /admin/ requires admin,
/dev/ developer or user, /realm/ developer from realm_access.roles."""

import pytest

from jwt_support import assert_401, assert_403, claims, now, passed, sign

pytestmark = pytest.mark.usefixtures("jwt_nginx_survives")


def _get(gw, keys, location, **overrides):
    return gw.get(location, sign(keys, payload=claims(**overrides)))


def test_admin_location_refuses_a_user_with_403_insufficient_role(
        jwt_gateway, jwt_keys):
    assert_403(_get(jwt_gateway, jwt_keys, "/admin/", role="user"))


def test_admin_location_admits_an_admin(jwt_gateway, jwt_keys):
    echo = passed(_get(jwt_gateway, jwt_keys, "/admin/", role="admin"))
    assert echo.one("X-User-Role") == "admin"


@pytest.mark.parametrize("role", ["developer", "user", "admin"])
def test_any_one_required_role_is_enough(jwt_gateway, jwt_keys, role):
    passed(_get(jwt_gateway, jwt_keys, "/dev/", role=role))


@pytest.mark.parametrize("role", ["viewer", "Developer", "USER", "Admin",
                                  "administrator", "develop", "developers",
                                  "", "developer user"])
def test_role_not_required_here_gets_403(jwt_gateway, jwt_keys, role):
    assert_403(_get(jwt_gateway, jwt_keys, "/dev/", role=role))


def test_token_without_roles_gets_403_where_a_role_is_required(jwt_gateway,
                                                               jwt_keys):
    assert_403(_get(jwt_gateway, jwt_keys, "/dev/", role=None))


def test_roles_array_claim_is_used_when_role_is_absent(jwt_gateway,
                                                       jwt_keys):
    passed(_get(jwt_gateway, jwt_keys, "/dev/", role=None,
                roles=["viewer", "developer"]))


def test_roles_array_without_a_required_role_gets_403(jwt_gateway, jwt_keys):
    assert_403(_get(jwt_gateway, jwt_keys, "/dev/", role=None,
                    roles=["viewer", "auditor"]))


def test_role_claim_may_be_an_array(jwt_gateway, jwt_keys):
    passed(_get(jwt_gateway, jwt_keys, "/dev/", role=["viewer", "user"]))


def test_admin_in_a_roles_array_satisfies_every_requirement(jwt_gateway,
                                                            jwt_keys):
    passed(_get(jwt_gateway, jwt_keys, "/admin/", role=None,
                roles=["viewer", "admin"]))


def test_non_string_roles_do_not_count(jwt_gateway, jwt_keys):
    assert_403(_get(jwt_gateway, jwt_keys, "/admin/", role=None,
                    roles=[{"name": "admin"}, ["admin"], 1, True]))


def test_spoofed_role_header_does_not_grant_a_role(jwt_gateway, jwt_keys):
    token = sign(jwt_keys, payload=claims(role="viewer"))
    r = jwt_gateway.send("/admin/", [("Authorization", "Bearer " + token),
                                     ("X-User-Role", "admin")])
    assert_403(r)


def test_missing_token_gets_401_before_roles_are_checked(jwt_gateway):
    assert_401(jwt_gateway.get("/admin/"), "missing_credentials")


def test_expired_admin_token_gets_401_not_403(jwt_gateway, jwt_keys):
    t = now()
    assert_401(_get(jwt_gateway, jwt_keys, "/admin/", role="admin",
                    iat=t - 600, exp=t - 300), "token_expired")


def test_forged_admin_token_gets_401(jwt_gateway, jwt_keys):
    token = sign(jwt_keys, payload=claims(role="admin"),
                 key=jwt_keys.secret("hs256-other.secret"))
    assert_401(jwt_gateway.get("/admin/", token))


# --- omni_roles_claim realm_access.roles ------------------------------------

def test_roles_claim_path_admits_a_listed_role(jwt_gateway, jwt_keys):
    passed(_get(jwt_gateway, jwt_keys, "/realm/", role=None,
                realm_access={"roles": ["viewer", "developer"]}))


def test_roles_claim_path_refuses_when_the_role_is_missing(jwt_gateway,
                                                           jwt_keys):
    assert_403(_get(jwt_gateway, jwt_keys, "/realm/", role=None,
                    realm_access={"roles": ["viewer"]}))


def test_roles_claim_path_ignores_the_top_level_role(jwt_gateway, jwt_keys):
    assert_403(_get(jwt_gateway, jwt_keys, "/realm/", role="admin",
                    realm_access={"roles": ["viewer"]}))


def test_roles_claim_path_admin_satisfies_the_requirement(jwt_gateway,
                                                          jwt_keys):
    passed(_get(jwt_gateway, jwt_keys, "/realm/", role=None,
                realm_access={"roles": ["admin"]}))


def test_roles_claim_path_may_hold_a_string(jwt_gateway, jwt_keys):
    passed(_get(jwt_gateway, jwt_keys, "/realm/", role=None,
                realm_access={"roles": "developer"}))


def test_roles_claim_path_absent_gets_403(jwt_gateway, jwt_keys):
    assert_403(_get(jwt_gateway, jwt_keys, "/realm/", role="developer"))


def test_role_string_with_a_comma_is_one_role(jwt_gateway, jwt_keys):
    """A role string is one role: "viewer,admin" is not admin."""
    assert_403(_get(jwt_gateway, jwt_keys, "/admin/", role="viewer,admin"))


def test_role_in_an_array_with_a_comma_is_one_role(jwt_gateway, jwt_keys):
    assert_403(_get(jwt_gateway, jwt_keys, "/admin/", role=None,
                    roles=["viewer,admin"]))
