"""Bad input to the auth endpoints gets a JSON 4xx naming the field
(issue 5): malformed JSON, JSON that is no object, missing fields, wrong
types, weak passwords, invalid emails and usernames, duplicates, overlong
values and oversized bodies."""

import uuid

import pytest

from auth_support import (  # noqa: F401
    PASSWORD, assert_error, auth_gw, auth_nginx, register, unique_email,
    unique_username)

JSON = {"Content-Type": "application/json"}


def post_raw(client, path, data):
    return client.request("POST", path, data=data, headers=JSON)


# --- malformed and non-object bodies -----------------------------------------

@pytest.mark.parametrize("path", ["/auth/register", "/auth/login",
                                  "/auth/refresh"])
@pytest.mark.parametrize("data", [b'{"email": "a@example.com",',
                                  b"{email: 1}", b"", b"\xff\xfe{}",
                                  b'{"email": "\xc3\x28@example.com", '
                                  b'"password": "12345678"}'])
def test_malformed_json_is_400_invalid_json(auth_gw, path, data):
    assert_error(post_raw(auth_gw, path, data), 400, "invalid_json")


@pytest.mark.parametrize("path", ["/auth/register", "/auth/login",
                                  "/auth/refresh"])
@pytest.mark.parametrize("data", [b"[]", b'["a@example.com", "pw"]',
                                  b'"text"', b"42", b"null", b"true"])
def test_json_that_is_no_object_is_refused(auth_gw, path, data):
    """The contract names no code for this: the worker's existing answer
    for it (422 invalid_value, test_errors.py) or 400 invalid_json."""
    r = post_raw(auth_gw, path, data)
    assert (r.status_code, r.json()["error"]) in (
        (422, "invalid_value"), (400, "invalid_json")), r.text
    assert r.json()["message"]


def test_body_over_the_gateway_limit_is_413_json(auth_gw):
    data = b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    r = post_raw(auth_gw, "/auth/register", data)
    assert_error(r, 413, "payload_too_large")


# --- register: missing fields and wrong types --------------------------------

@pytest.mark.parametrize("field", ["email", "password"])
def test_register_without_a_required_field_is_400_naming_it(auth_gw, field):
    body = {"email": unique_email(), "password": PASSWORD}
    del body[field]
    assert_error(auth_gw.post("/auth/register", body), 400, "missing_field",
                 field)


@pytest.mark.parametrize("field,value", [
    ("email", 5), ("email", None), ("email", ["a@example.com"]),
    ("email", {"a": 1}), ("email", True),
    ("password", 12345678), ("password", None), ("password", ["x" * 10]),
    ("password", False),
    ("username", 5), ("username", ["abc"]), ("username", {"u": "abc"}),
])
def test_register_with_a_wrong_type_is_400_naming_the_field(auth_gw, field,
                                                            value):
    body = {"email": unique_email(), "password": PASSWORD}
    body[field] = value
    assert_error(auth_gw.post("/auth/register", body), 400, "invalid_field",
                 field)


# --- register: values --------------------------------------------------------

@pytest.mark.parametrize("password", [
    "", "short", "1234567", "\u00e4" * 7, "\U0001f600" * 7,
    "x" * 1025, "\u00e4" * 513,
])
def test_weak_or_overlong_password_is_422_naming_password(auth_gw, password):
    r = auth_gw.post("/auth/register", {"email": unique_email(),
                                        "password": password})
    assert_error(r, 422, "invalid_value", "password")


@pytest.mark.parametrize("password", [
    "12345678", "\u00e4" * 8, "\U0001f600" * 8, "x" * 1024,
    "\u00e4" * 512, "with spaces and \u20ac",
])
def test_password_of_8_code_points_to_1024_bytes_is_accepted(auth_gw,
                                                              password):
    """8 characters (code points, not bytes) up to 1024 bytes of UTF-8;
    the account then logs in with exactly that password."""
    user = register(auth_gw, password=password)
    r = auth_gw.post("/auth/login", {"email": user.email,
                                     "password": password})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("email", [
    "", "plainaddress", "@example.com", "user@", "user@example",
    "user@@example.com", "us@er@example.com", "user name@example.com",
    "user@exa mple.com", "user@example.com ", " user@example.com",
    "user\t@example.com", "user\x01@example.com", "user@example.com\n",
    "user\x7f@example.com",
])
def test_invalid_email_is_422_naming_email(auth_gw, email):
    r = auth_gw.post("/auth/register", {"email": email, "password": PASSWORD})
    assert_error(r, 422, "invalid_value", "email")


def _email_of(length):
    """A unique address of `length` bytes: a 32-character local part and
    a domain of labels of at most 61 characters."""
    local = uuid.uuid4().hex + "@"
    left = length - len(local) - len(".com")
    labels = []
    while left > 61:
        labels.append("d" * 60)
        left -= 61
    labels.append("d" * left)
    return local + ".".join(labels) + ".com"


def test_email_of_254_bytes_is_accepted_and_255_is_422(auth_gw):
    r = auth_gw.post("/auth/register", {"email": _email_of(254),
                                        "password": PASSWORD})
    assert r.status_code == 201, r.text
    r = auth_gw.post("/auth/register", {"email": _email_of(255),
                                        "password": PASSWORD})
    assert_error(r, 422, "invalid_value", "email")


def test_very_long_email_is_422(auth_gw):
    r = auth_gw.post("/auth/register", {"email": _email_of(100000),
                                        "password": PASSWORD})
    assert_error(r, 422, "invalid_value", "email")


def test_duplicate_email_is_409_conflict(auth_gw):
    user = register(auth_gw)
    r = auth_gw.post("/auth/register", {"email": user.email,
                                        "password": PASSWORD})
    assert_error(r, 409, "conflict", "email")


def test_duplicate_email_is_found_whatever_its_case(auth_gw):
    user = register(auth_gw)
    local, domain = user.email.split("@")
    r = auth_gw.post("/auth/register", {"email": local.upper() + "@"
                                        + domain.upper(),
                                        "password": PASSWORD})
    assert_error(r, 409, "conflict", "email")


@pytest.mark.parametrize("username", [
    "", "ab", "x" * 65, "has space", "slash/name", "at@name", "tab\tname",
    "\u00e4bc", "semi;colon", "new\nline",
])
def test_invalid_username_is_422_naming_username(auth_gw, username):
    r = auth_gw.post("/auth/register", {"email": unique_email(),
                                        "password": PASSWORD,
                                        "username": username})
    assert_error(r, 422, "invalid_value", "username")


@pytest.mark.parametrize("username", ["abc", "A.b-c_9", "x" * 64])
def test_valid_username_is_accepted(auth_gw, username):
    if len(username) > 8:
        username = uuid.uuid4().hex + username[32:]
    else:
        username = username + "." + uuid.uuid4().hex[:8]
    r = auth_gw.post("/auth/register", {"email": unique_email(),
                                        "password": PASSWORD,
                                        "username": username})
    assert r.status_code == 201, r.text
    assert r.json()["username"] == username


def test_duplicate_username_is_409_whatever_its_case(auth_gw):
    name = unique_username()
    register(auth_gw, username=name)
    r = auth_gw.post("/auth/register", {"email": unique_email(),
                                        "password": PASSWORD,
                                        "username": name.upper()})
    assert_error(r, 409, "conflict", "username")


def test_refused_registration_leaves_no_account(auth_gw):
    """A 422 for the username must not have created the email's account."""
    email = unique_email()
    r = auth_gw.post("/auth/register", {"email": email, "password": PASSWORD,
                                        "username": "no"})
    assert r.status_code == 422
    r = auth_gw.post("/auth/register", {"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text


# --- login and refresh -------------------------------------------------------

def test_login_without_password_is_400_naming_password(auth_gw):
    r = auth_gw.post("/auth/login", {"email": unique_email()})
    assert_error(r, 400, "missing_field", "password")


def test_login_without_email_or_username_is_400_missing_field(auth_gw):
    r = auth_gw.post("/auth/login", {"password": PASSWORD})
    doc = assert_error(r, 400, "missing_field")
    assert doc["message"].startswith(("email", "username")), doc


@pytest.mark.parametrize("field,value", [
    ("email", 5), ("email", ["a@example.com"]), ("email", True),
    ("password", 12345678), ("password", None), ("password", {"p": 1}),
])
def test_login_with_a_wrong_type_is_400_naming_the_field(auth_gw, field,
                                                         value):
    body = {"email": unique_email(), "password": PASSWORD}
    body[field] = value
    assert_error(auth_gw.post("/auth/login", body), 400, "invalid_field",
                 field)


def test_login_with_a_null_email_is_like_none(auth_gw):
    """email and username are each optional at login (one is needed), and
    null on an optional field means absent."""
    r = auth_gw.post("/auth/login", {"email": None, "password": PASSWORD})
    assert_error(r, 400, "missing_field", "email")


def test_register_with_a_null_username_has_none(auth_gw):
    r = auth_gw.post("/auth/register", {"email": unique_email(),
                                        "password": PASSWORD,
                                        "username": None})
    assert r.status_code == 201, r.text
    assert r.json()["username"] is None


def test_login_with_a_wrong_typed_username_is_400_naming_it(auth_gw):
    r = auth_gw.post("/auth/login", {"username": 5, "password": PASSWORD})
    assert_error(r, 400, "invalid_field", "username")


def test_refresh_without_the_token_is_400_naming_it(auth_gw):
    assert_error(auth_gw.post("/auth/refresh", {}), 400, "missing_field",
                 "refresh_token")


@pytest.mark.parametrize("value", [5, None, ["omr_x"], {"t": "omr_x"}])
def test_refresh_with_a_wrong_type_is_400_naming_it(auth_gw, value):
    assert_error(auth_gw.post("/auth/refresh", {"refresh_token": value}),
                 400, "invalid_field", "refresh_token")


def test_login_with_an_overlong_password_is_refused_without_500(auth_gw):
    user = register(auth_gw)
    r = auth_gw.post("/auth/login", {"email": user.email,
                                     "password": "x" * 100000})
    assert r.status_code in (401, 422), r.text
    assert r.json()["error"] in ("invalid_credentials", "invalid_value")
